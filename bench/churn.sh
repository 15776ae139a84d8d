#!/usr/bin/env bash
# Route churn, a lone node against a node of a 3-node cluster, side by side in one
# run: `junction-bench churn` with C clients each adding a new route and removing
# it again, one request at a time (new-topic SUBSCRIBE + UNSUBSCRIBE, new
# REGISTER + UNREGISTER). A cluster node acknowledges new subscription interest
# with every other node and commits registrations through Raft; the lone node
# does neither. Prints rates, p50/p99 of the SUBSCRIBE/REGISTER, and the
# cluster/lone ratio per kind (the average of ROUNDS alternating rounds).
#   DURATION (default 5), WARMUP (1), CLIENTS (20), ROUNDS (2), KINDS ("subscribe register")
#   BASE_BIN=/path/to/old/junction: also a lone node and a cluster of that build, each
#   run alternating base, new; adds the new/base ratios (labels gain "-base").
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
BASE_BIN=${BASE_BIN:-}
[ -z "$BASE_BIN" ] || [ -x "$BASE_BIN" ] || { echo "BASE_BIN=$BASE_BIN is not an executable" >&2; exit 1; }
printf "$NODE" > "$DIR/lone.toml"
start lone "$DIR/lone.toml"
cluster3 n "$NODE"
BUILDS=("")
if [ -n "$BASE_BIN" ]; then
  JUNCTION_BIN=$BASE_BIN start lone_base "$DIR/lone.toml"
  JUNCTION_BIN=$BASE_BIN cluster3 b "$NODE"
  BUILDS=(-base "")
fi
run() { # run LABEL URL PIDS KIND
  target/release/junction-bench churn --url "$2" $3 --kind "$4" --clients "$CLIENTS" \
    --duration "$DURATION" --warmup "$WARMUP" --label "$1" --quiet | grep '^RESULT' | sed 's/^RESULT //' | tee -a "$OUT"
}
for _ in $(seq "$ROUNDS"); do
  for kind in ${KINDS:-subscribe register}; do
    for build in "${BUILDS[@]}"; do
      if [ "$build" = -base ]; then lone=lone_base c=b; else lone=lone c=n; fi
      pl=PID_$lone wl=WS_$lone p1=PID_${c}1 p2=PID_${c}2 p3=PID_${c}3 w2=WS_${c}2
      run "$kind-lone$build" "${!wl}" "--router-pid ${!pl}" "$kind"
      run "$kind-cluster-node2$build" "${!w2}" "--router-pid ${!p1} --router-pid ${!p2} --router-pid ${!p3}" "$kind"
    done
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
    for build in ("-base", ""):
        lone, node = by.get(f"{kind}-lone{build}"), by.get(f"{kind}-cluster-node2{build}")
        if lone and node:
            ratios = [n["rate"] / l["rate"] for l, n in zip(lone, node)]
            each = " ".join(f"{r:.2f}" for r in ratios)
            name = " (base)" if build else ""
            print(f"{kind}{name}: a node of 3 at {statistics.mean(ratios):.2f}x a lone node ({each})")
    for where in ("lone", "cluster-node2"):
        base, new = by.get(f"{kind}-{where}-base"), by.get(f"{kind}-{where}")
        if base and new:
            each = [n["rate"] / b["rate"] for b, n in zip(base, new)]
            pairs = " ".join(f"{r:.2f}" for r in each)
            print(f"{kind} {where}: new/base {statistics.mean(each):.2f} ({pairs})")
PY
