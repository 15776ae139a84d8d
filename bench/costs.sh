#!/usr/bin/env bash
# Per-node cost constants of Junction for the scaling model (bench/model.py, issue #17):
# CPU per call / event / SUBSCRIBE / REGISTER (lone node, split per node in a 3-node
# cluster, REGISTER churn and pub/sub to 4 remote nodes in a 5-node one), memory per
# session / subscription / registration / retained event, idle per-peer overhead and
# link bytes per call and event. Writes bench/results/costs.json (constants with units
# and the method) and prints them.
#   DURATION (4), WARMUP (1), REPEAT (3, medians), MEM_ITEMS (20000), SESSIONS (2000),
#   QUOTA (0.5: cores per node, a cgroup CPU quota so the node is saturated), NETNS (1: a
#   network namespace per node, as bench/scaling.sh; needs root), NO_BUILD=1, OUT
# Takes about 13 minutes; nodes and the load generator share this machine's cores, so
# the figures are CPU seconds the node processes themselves used, not rates.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin junction --bin junction-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 bench/scale/costs.py
