#!/usr/bin/env bash
# Route churn, a lone node against a node of a 3-node cluster, side by side in one
# run: `junction-bench churn` with C clients each adding a new route and removing
# it again, one request at a time (new-topic SUBSCRIBE + UNSUBSCRIBE, new
# REGISTER + UNREGISTER). A cluster node acknowledges new subscription interest
# with every other node and commits registrations through Raft; the lone node
# does neither. Prints rates, p50/p99 of the SUBSCRIBE/REGISTER, and the
# cluster/lone ratio per kind (the average of ROUNDS alternating rounds).
#   DURATION (default 5), WARMUP (1), CLIENTS (20), ROUNDS (2), KINDS ("subscribe register")
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CLIENTS=${CLIENTS:-20}
ROUNDS=${ROUNDS:-2}
OUT=target/bench/churn-$(date -u +%Y-%m-%dT%H%M%SZ).jsonl
mkdir -p target/bench
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin junction --bin junction-bench
# shellcheck source=bench/nodes.sh
. bench/nodes.sh
printf "$NODE" > "$DIR/lone.toml"
start lone "$DIR/lone.toml"
cluster3 n "$NODE"
CLUSTER_PIDS="--router-pid $PID_n1 --router-pid $PID_n2 --router-pid $PID_n3"
run() { # run LABEL URL PIDS KIND
  target/release/junction-bench churn --url "$2" $3 --kind "$4" --clients "$CLIENTS" \
    --duration "$DURATION" --warmup "$WARMUP" --label "$1" --quiet | grep '^RESULT' | sed 's/^RESULT //' | tee -a "$OUT"
}
for _ in $(seq "$ROUNDS"); do
  for kind in ${KINDS:-subscribe register}; do
    run "$kind-lone" "$WS_lone" "--router-pid $PID_lone" "$kind"
    run "$kind-cluster-node2" "$WS_n2" "$CLUSTER_PIDS" "$kind"
  done
done
echo
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r)
print(f"{'scenario':26} {'rate/s':>9} {'p50 us':>9} {'p99 us':>9}")
for k, rs in by.items():
    rate = statistics.mean(r["rate"] for r in rs)
    p50 = statistics.mean(r["latency_us"]["p50"] for r in rs)
    p99 = statistics.mean(r["latency_us"]["p99"] for r in rs)
    print(f"{k:26} {rate:>9.0f} {p50:>9.0f} {p99:>9.0f}")
for kind in ("subscribe", "register"):
    lone, node = by.get(f"{kind}-lone"), by.get(f"{kind}-cluster-node2")
    if lone and node:
        ratio = statistics.mean(n["rate"] / l["rate"] for l, n in zip(lone, node))
        print(f"{kind}: a node of 3 at {ratio:.2f}x a lone node")
PY
