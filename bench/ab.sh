#!/usr/bin/env bash
# bench/ab.sh OLD_BINARY NEW_BINARY [ROUNDS]: two builds of junction side by side in one
# run, alternating A B A B ... per scenario, so machine noise hits both alike. Each
# round starts a fresh router of each build on free loopback ports and runs:
#   rpc128-ws-msgpack   1 caller, 1 callee, 128 calls in flight
#   rpc1-ws-msgpack     one call in flight (latency)
#   pubsub-1x10         1 publisher, 10 subscribers
# Prints one line per run (rate and rate per router CPU-second) and, per scenario,
# the median new/old ratio of both. Needs target/release/junction-bench (built when
# missing). DURATION (default 5 s) and WARMUP (1 s) per run.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?old junction binary}
NEW=${2:?new junction binary}
ROUNDS=${3:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
JBENCH=${JBENCH:-target/release/junction-bench}
[ -x "$JBENCH" ] || cargo build --release --bin junction-bench
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start BINARY NAME: a router on free ports; sets PID and WS.
start() {
    WS=$(free_port)
    "$1" --ws "127.0.0.1:$WS" --rawsocket "" --admin "" >"$OUT/$2.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do grep -q '^ready' "$OUT/$2.log" && return; sleep 0.1; done
    echo "router $2 did not start:" >&2; cat "$OUT/$2.log" >&2; exit 1
}

run() { # run NAME SCENARIO ARGS...: one measured run, appends its RESULT line
    local name=$1 label=$2
    shift 2
    "$JBENCH" "$@" --url "ws://127.0.0.1:$WS/ws" --target "$name" --label "$label" --router-pid "$PID" \
        --warmup "$WARMUP" --duration "$DURATION" --quiet | grep '^RESULT ' | cut -c8- >>"$OUT/results.jsonl"
}

for round in $(seq "$ROUNDS"); do
    for pair in "old:$OLD" "new:$NEW"; do
        name=${pair%%:*}
        start "${pair#*:}" "$name-$round"
        run "$name" rpc128-ws-msgpack rpc --inflight 128 --serializer msgpack
        run "$name" rpc1-ws-msgpack rpc --inflight 1 --serializer msgpack
        run "$name" pubsub-1x10 pubsub --publishers 1 --subscribers 10 --serializer msgpack
        kill "$PID"; wait "$PID" 2>/dev/null || true
    done
done

python3 - "$OUT/results.jsonl" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
for r in runs:
    print(f"{r['label']:20} {r['target']:4} rate {r['rate']:>12,.0f}/s  per CPU-s {r.get('per_cpu_s') or 0:>12,.0f}")
print()
for label in dict.fromkeys(r["label"] for r in runs):
    def med(target, key):
        return statistics.median(r.get(key) or 0 for r in runs if r["label"] == label and r["target"] == target)
    ratio = lambda key: med("new", key) / med("old", key) if med("old", key) else float("nan")
    print(f"{label:20} new/old: rate {ratio('rate'):.3f}, per CPU-s {ratio('per_cpu_s'):.3f}")
EOF
