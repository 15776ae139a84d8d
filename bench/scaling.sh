#!/usr/bin/env bash
# Validation of the scaling model (issue #17): runs clusters of 1, 3 and 5 nodes, each
# node in its own network namespace (veth to a bridge), with link latency from tc netem
# where the kernel has it (otherwise skipped, with the reason printed) and a CPU quota
# per node (cgroup v2 cpu.max / v1 cfs_quota_us; taskset if neither), drives RPC and
# pub/sub with one junction-bench per node from the root namespace, and prints
# measured vs bench/model.py's prediction (error %, within ±25 %?). Writes
# target/bench/scaling-<date>.{md,jsonl}. Needs root (ip netns, cgroups). Not part of
# ./test.sh. Knobs: SIZES ("1 3 5"), QUOTA (0.1 cores/node), DELAY_MS (1), DURATION (5),
# WARMUP (1), SUBSCRIBERS (10), INFLIGHT (128), COSTS (bench/results/costs.json), NO_BUILD=1,
# JUNCTION_BIN (another build's binary for the nodes), KEEP_LOGS=1 (keep the nodes' logs).
# Takes about 10 minutes (REPEAT=3 runs of each round, the median kept).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/scaling.sh needs root (network namespaces, cgroups)"; exit 1; }
[ -f "${COSTS:-bench/results/costs.json}" ] || { echo "no costs.json: run bench/costs.sh first"; exit 1; }
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin junction --bin junction-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 bench/scale/scaling.py
