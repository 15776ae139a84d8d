#!/usr/bin/env bash
# Cluster benchmark: the same RPC and pub/sub scenarios on one node and across a
# 3-node cluster on this machine (callers on node 1, callees/subscribers on node 2),
# plus REGISTER commit latency and replication lag. Prints the table and writes the
# JSON lines to target/bench/cluster-<date>.jsonl.
#   DURATION (default 10), WARMUP (2), SERIALIZER (msgpack)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SER=${SERIALIZER:-msgpack}
OUT=target/bench/cluster-$(date -u +%Y-%m-%dT%H%M%SZ).jsonl
mkdir -p target/bench
cargo build --release --bin junction --bin junction-bench
[ -x target/pyenv/bin/python ] || { python3 -m venv target/pyenv; target/pyenv/bin/pip install -q -r tests/python/requirements.txt; }
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
declare -a GRPC WS
for i in 1 2 3; do GRPC[$i]=$(free_port); done
for i in 1 2 3; do
  peers=""; for j in 1 2 3; do [ "$j" != "$i" ] && peers="$peers\"127.0.0.1:${GRPC[$j]}\","; done
  boot=false; [ "$i" = 1 ] && boot=true
  printf '[websocket]\nlisten = "127.0.0.1:0"\n[rawsocket]\nlisten = ""\n[admin]\nlisten = ""\n[cluster]\nnode_id = %s\nlisten = "127.0.0.1:%s"\npeers = [%s]\nbootstrap = %s\nephemeral = true\n' \
    "$i" "${GRPC[$i]}" "${peers%,}" "$boot" > "$DIR/n$i.toml"
  target/release/junction --config "$DIR/n$i.toml" > "$DIR/n$i.out" 2> "$DIR/n$i.err" &
  PIDS+=($!)
  for _ in $(seq 200); do grep -q '^ready' "$DIR/n$i.out" && break; sleep 0.1; done
  grep -q '^ready' "$DIR/n$i.out" || { echo "node $i did not start"; cat "$DIR/n$i.err"; exit 1; }
  WS[$i]=$(sed -n 's/^listening websocket //p' "$DIR/n$i.out")
done
ALL="--router-pid ${PIDS[0]} --router-pid ${PIDS[1]} --router-pid ${PIDS[2]}"
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
