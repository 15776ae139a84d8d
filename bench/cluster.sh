#!/usr/bin/env bash
# Cluster benchmark: the same RPC and pub/sub scenarios on one node and across a
# 3-node cluster on this machine (callers on node 1, callees/subscribers on node 2),
# plus REGISTER commit latency and replication lag. Prints the table and writes the
# JSON lines to target/bench/cluster-<date>.jsonl.
#   DURATION (default 10), WARMUP (2), SERIALIZER (msgpack), NO_BUILD=1
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SER=${SERIALIZER:-msgpack}
OUT=target/bench/cluster-$(date -u +%Y-%m-%dT%H%M%SZ).jsonl
mkdir -p target/bench
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin junction --bin junction-bench
[ -x target/pyenv/bin/python ] || { python3 -m venv target/pyenv; target/pyenv/bin/pip install -q -r tests/python/requirements.txt; }
# shellcheck source=bench/nodes.sh
. bench/nodes.sh
cluster3 n "$NODE"
WS=("" "$WS_n1" "$WS_n2" "$WS_n3")
ALL="--router-pid $PID_n1 --router-pid $PID_n2 --router-pid $PID_n3"
run() { target/release/junction-bench "$@" --serializer "$SER" --duration "$DURATION" --warmup "$WARMUP" $ALL --quiet | grep '^RESULT' | sed 's/^RESULT //' | tee -a "$OUT"; }
run rpc --url "${WS[1]}" --inflight 128 --label rpc128-same-node
run rpc --url "${WS[1]}" --callee-url "${WS[2]}" --inflight 128 --label rpc128-cross-node
run rpc --url "${WS[1]}" --inflight 1 --label rpc1-same-node
run rpc --url "${WS[1]}" --callee-url "${WS[2]}" --inflight 1 --label rpc1-cross-node
run pubsub --url "${WS[1]}" --publishers 1 --subscribers 10 --label pubsub-1x10-same-node
run pubsub --url "${WS[1]}" --subscriber-url "${WS[2]}" --publishers 1 --subscribers 10 --label pubsub-1x10-cross-node
target/pyenv/bin/python bench/cluster_commit.py "${WS[2]}" "${WS[1]}" 300 | grep '^RESULT' | sed 's/^RESULT //' | tee -a "$OUT"
echo
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {r.get("label", r.get("scenario")): r for r in rows}
print(f"{'scenario':28} {'rate/s':>10} {'p50 us':>9} {'p99 us':>9}")
for k, r in by.items():
    if "rate" in r:
        lat = r.get("latency_us") or r.get("delivery_latency_us") or {}
        print(f"{k:28} {r['rate']:>10.0f} {lat.get('p50', 0):>9.0f} {lat.get('p99', 0):>9.0f}")
for same, cross in [("rpc128-same-node", "rpc128-cross-node"), ("rpc1-same-node", "rpc1-cross-node"), ("pubsub-1x10-same-node", "pubsub-1x10-cross-node")]:
    if same in by and cross in by:
        print(f"{cross}: {100 * by[cross]['rate'] / by[same]['rate']:.0f}% of {same}")
c = by.get("register-commit")
if c:
    print(f"REGISTER commit p50 {c['commit_us']['p50']:.0f} us, p99 {c['commit_us']['p99']:.0f} us; "
          f"seen on another node p50 {c['replication_lag_us']['p50']:.0f} us, p99 {c['replication_lag_us']['p99']:.0f} us")
PY
