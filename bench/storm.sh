#!/usr/bin/env bash
# Reconnect storm, a lone node against node 1 of a 3-node cluster, side by side in
# one run: `junction-bench storm` opens N sessions with K subscriptions each (topics
# of their own: new node interest that the other cluster nodes acknowledge), closes
# all their sockets at once and reconnects them as fast as `--connect-concurrency`
# allows, each subscribing its K topics again. Prints the storm time (drop to the
# last SUBSCRIBED), sessions/s, subscribes/s, p50/p99 of a session's own reconnect +
# resubscribe time, refusals, and the cluster/lone ratio; then a publisher on
# another node (the lone node itself for the lone run) publishes one event per
# topic and all N×K must arrive. The `cluster-move` run reconnects node 1's
# sessions to node 2 (the node they were on is left, as when it fails).
#   SESSIONS (default 10000), TOPICS (10), CONCURRENCY (512), THREADS (1),
#   PROFILE (release; debug for a quick test), BIN_DIR (target/$PROFILE),
#   SKIP_BUILD=1, MOVE=0 to skip the cluster-move run, VERIFY_TIMEOUT (10 s)
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=${SESSIONS:-10000}
TOPICS=${TOPICS:-10}
CONCURRENCY=${CONCURRENCY:-512}
THREADS=${THREADS:-1}
PROFILE=${PROFILE:-release}
BIN_DIR=${BIN_DIR:-target/$PROFILE}
MOVE=${MOVE:-1}
VERIFY_TIMEOUT=${VERIFY_TIMEOUT:-10}
OUT=target/bench/storm-$(date -u +%Y-%m-%dT%H%M%SZ).jsonl
mkdir -p target/bench
if [ -z "${SKIP_BUILD:-}" ]; then
  if [ "$PROFILE" = release ]; then flag=--release; else flag=; fi
  cargo build $flag --bin junction --bin junction-bench
fi
# One descriptor per connection, in the nodes and in the load generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((SESSIONS * 2 + 256)) ]; then
  echo "warning: open-file limit $(ulimit -n) is low for $SESSIONS sessions (old and new sockets overlap)" >&2
fi
LOGS=${OUT%.jsonl}-logs
JUNCTION_BIN=$BIN_DIR/junction
START_TRIES=300
# shellcheck source=bench/nodes.sh
. bench/nodes.sh
# Every session comes from 127.0.0.x: lift the per-address failed-authentication
# budget (handshakes in progress count against it) for the benchmark's nodes only.
BASE="$NODE"'[limits]\nauth_failures_per_ip = 0\n'
# the cluster's nodes serve /metrics on loopback (read after the runs)
CBASE=${BASE/'listen = ""\n[limits]'/'listen = "127.0.0.1:0"\n[limits]'}
printf "$BASE" > "$DIR/lone.toml"
start lone "$DIR/lone.toml"
cluster3 n "$CBASE"
CLUSTER_PIDS="--router-pid $PID_n1 --router-pid $PID_n2 --router-pid $PID_n3"
run() { # run LABEL URL RECONNECT_URL VERIFY_URL PIDS
  "$BIN_DIR/junction-bench" storm --url "$2" --reconnect-url "$3" --verify-url "$4" $5 \
    --sessions "$SESSIONS" --topics "$TOPICS" --connect-concurrency "$CONCURRENCY" --verify-timeout "$VERIFY_TIMEOUT" \
    --threads "$THREADS" --target junction --label "$1" --quiet | grep '^RESULT' | sed 's/^RESULT //' | tee -a "$OUT"
}
run lone "$WS_lone" "$WS_lone" "$WS_lone" "--router-pid $PID_lone"
run cluster-node1 "$WS_n1" "$WS_n1" "$WS_n2" "$CLUSTER_PIDS"
[ "$MOVE" = 1 ] && run cluster-move "$WS_n1" "$WS_n2" "$WS_n3" "$CLUSTER_PIDS"
echo
# frames the cluster's links dropped (a full queue: events published faster than the
# receiving node takes them) or missed, from each node's /metrics
for i in 1 2 3; do
  admin=$(sed -n 's/^listening admin //p' "$DIR/n$i.out")
  [ -n "$admin" ] || continue
  echo "node $i link counters: $(curl -s "$admin/metrics" | grep -E '^junction_(link_(frames_dropped|gaps|frames_missed)|events_dropped)_total' | grep -v ' 0$' | tr '\n' ' ')"
done
python3 - "$OUT" <<'PY'
import json, sys
rows = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
print(f"{'run':14} {'sessions':>8} {'subs':>7} {'storm s':>8} {'sess/s':>8} {'subs/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'delivered':>13} {'cpu s':>6} {'ovf':>5}")
for k, r in rows.items():
    lat = r.get("session_latency_us") or {}
    dl = f"{r.get('verify_delivered', '-')}/{r.get('verify_expected', '-')}"
    print(f"{k:14} {r['reconnected']:>8} {r['subscriptions']:>7} {r['storm_s']:>8.2f} {r['rate']:>8.0f} "
          f"{r['subscribes_rate']:>8.0f} {lat.get('p50', 0)/1000:>7.0f} {lat.get('p99', 0)/1000:>7.0f} "
          f"{r['error_count']:>6} {dl:>13} {r.get('router_cpu_s', 0):>6.1f} {r.get('listen_overflows', '-'):>5}")
    if r["errors"]:
        print("    errors:", r["errors"])
    if r.get("verify_silent_topics"):
        print(f"    {r['verify_silent_topics']} topics got no event, e.g.", ", ".join(r.get("verify_silent_sample", [])[:3]))
    if r.get("verify_closed_sessions"):
        print(f"    {r['verify_closed_sessions']} sessions ended while awaiting events:", r.get("verify_first_close"))
lone = rows.get("lone")
for k in ("cluster-node1", "cluster-move"):
    if lone and k in rows:
        print(f"{k}: storm time {rows[k]['storm_s'] / max(lone['storm_s'], 1e-9):.2f}x the lone node's")
print(f"results: {sys.argv[1]} (node logs and configs: {sys.argv[1][:-6]}-logs/)")
PY
