#!/usr/bin/env bash
# Per-node cost constants of Junction for the scaling model (bench/model.py, issue #17):
# CPU per call / event / SUBSCRIBE / REGISTER (lone node, and split per node in a
# 3-node cluster), memory per session / subscription / registration / retained event,
# idle per-peer overhead and link bytes per call and event. Writes
# bench/results/costs.json (constants with units and the method) and prints them.
#   DURATION (4), WARMUP (1), MEM_ITEMS (20000), SESSIONS (2000), NO_BUILD=1, OUT
# Takes about 2 minutes; nodes and the load generator share this machine's cores, so
# the figures are CPU seconds the node processes themselves used, not rates.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin junction --bin junction-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 bench/scale/costs.py
