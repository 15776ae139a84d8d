#!/usr/bin/env bash
# HTTP bridge against WebSocket, side by side in one run (issue #15): C clients, one
# request at a time each, on a lone node and across a 3-node cluster (bridge and
# callers on node 1, the callee on node 2):
#   http-call      `junction-bench http --kind call`    (C keep-alive HTTP connections)
#   ws-call        `junction-bench rpc --callers C --inflight 1`
#   http-publish   `junction-bench http --kind publish` (acknowledged, one subscriber)
#   ws-publish     `junction-bench pubsub --publishers C --inflight 1 --subscribers 1`
# Prints rate, p50/p99 and rate per router CPU-second, and HTTP/WebSocket ratios.
#   DURATION (default 5), WARMUP (1), CLIENTS (32), NO_BUILD=1
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CLIENTS=${CLIENTS:-32}
OUT=target/bench/http-$(date -u +%Y-%m-%dT%H%M%SZ).jsonl
mkdir -p target/bench
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin junction --bin junction-bench
# shellcheck source=bench/nodes.sh
. bench/nodes.sh
BRIDGE='[bridge]\nlisten = "127.0.0.1:%s"\nanonymous_role = "anonymous"\nrate = 1000000000.0\nburst = 1000000000\n'
LONE_HTTP=$(free_port)
{ printf "$NODE"; printf "$BRIDGE" "$LONE_HTTP"; } > "$DIR/lone.toml"
start lone "$DIR/lone.toml"
N1_HTTP=$(free_port)
cluster3 n "$NODE" "$(printf "$BRIDGE" "$N1_HTTP")"
# the cluster is ready once node 1 routes a call to a callee on node 2
B=target/release/junction-bench
COMMON=(--duration "$DURATION" --warmup "$WARMUP" --quiet)
run() { "$@" | grep '^RESULT' | sed 's/^RESULT //' | tee -a "$OUT"; }
ONE="--router-pid $PID_lone"
ALL="--router-pid $PID_n1 --router-pid $PID_n2 --router-pid $PID_n3"
run $B http --url "$WS_lone" $ONE --bridge "http://127.0.0.1:$LONE_HTTP/bridge" --kind call --connections "$CLIENTS" --label http-call-lone "${COMMON[@]}"
run $B rpc --url "$WS_lone" $ONE --callers "$CLIENTS" --inflight 1 --label ws-call-lone "${COMMON[@]}"
run $B http --url "$WS_lone" $ONE --bridge "http://127.0.0.1:$LONE_HTTP/bridge" --kind publish --connections "$CLIENTS" --label http-publish-lone "${COMMON[@]}"
run $B pubsub --url "$WS_lone" $ONE --publishers "$CLIENTS" --inflight 1 --subscribers 1 --label ws-publish-lone "${COMMON[@]}"
run $B http --url "$WS_n1" $ALL --callee-url "$WS_n2" --bridge "http://127.0.0.1:$N1_HTTP/bridge" --kind call --connections "$CLIENTS" --label http-call-cross "${COMMON[@]}"
run $B rpc --url "$WS_n1" $ALL --callee-url "$WS_n2" --callers "$CLIENTS" --inflight 1 --label ws-call-cross "${COMMON[@]}"
run $B http --url "$WS_n1" $ALL --callee-url "$WS_n2" --bridge "http://127.0.0.1:$N1_HTTP/bridge" --kind publish --connections "$CLIENTS" --label http-publish-cross "${COMMON[@]}"
run $B pubsub --url "$WS_n1" $ALL --subscriber-url "$WS_n2" --publishers "$CLIENTS" --inflight 1 --subscribers 1 --label ws-publish-cross "${COMMON[@]}"
echo
python3 - "$OUT" <<'PY'
import json, sys
rows = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
print(f"{'scenario':22} {'rate/s':>9} {'p50 us':>8} {'p99 us':>8} {'per CPU-s':>10}")
for k, r in rows.items():
    lat = r.get("latency_us", {})
    print(f"{k:22} {r['rate']:>9.0f} {lat.get('p50', 0):>8.0f} {lat.get('p99', 0):>8.0f} {r.get('per_cpu_s') or 0:>10.0f}")
for kind in ("call", "publish"):
    for where in ("lone", "cross"):
        h, w = rows.get(f"http-{kind}-{where}"), rows.get(f"ws-{kind}-{where}")
        if h and w:
            print(f"{kind} {where}: HTTP at {h['rate'] / w['rate']:.2f}x WebSocket's rate, "
                  f"{(h.get('per_cpu_s') or 0) / max(w.get('per_cpu_s') or 1, 1):.2f}x per router CPU-second")
PY
