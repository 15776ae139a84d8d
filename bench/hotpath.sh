#!/usr/bin/env bash
# Hot path (issue #16): the issue's targets side by side in ONE run, optionally against
# two router binaries. With BASE_BIN set, every scenario runs against BASE_BIN ("base")
# and target/release/junction ("new"), alternating base, new, base, new ... (ROUNDS
# rounds), so the new/base ratios come from one run on a noisy machine.
#
# Scenarios (WebSocket, msgpack, 64-byte payload):
#   relay-ws-if128        the raw relay, 1 caller 1 echoer, 128 in flight (once a round)
#   relay-chain-ws-if128  the same through two relays (`relay-server --forward` into the
#                         first): each request crosses two processes each way, the
#                         shape of a cross-node call with no routing work (once a round)
#   relay-ws-if1, relay-chain-ws-if1  both at depth 1: what a second process costs
#                         a request's latency with no routing work (the floor of the
#                         cross-node depth-1 ratio on this machine)
#   rpc-d128-lone         the same through a lone node: router/relay rate ratio
#   rpc-4x32-fbf          4 callers x 32 in flight, every frame written on its own
#   rpc-4x32-batched      the same with the default batched writes
#   rpc-d1-lone/-cross    depth 1 (p50 latency), lone node / caller on node 1 and
#   rpc-d128-lone/-cross  callee on node 2 of a 3-node cluster; depth 128: calls per
#                         router CPU-second (cluster: summed over the three nodes)
#   pubsub-1x1000-3nodes  1 publisher on node 1, 1,000 subscribers round-robin over the
#                         three nodes: deliveries/s and each node's CPU seconds
# Router cost counters (all threads of every router process): syscr+syscw per call
# (/proc/PID/io: misses the recvfrom/sendto of socket I/O), every syscall per call counted by `perf stat`
# (when perf works here), context switches per call.
#
# Output: the Markdown table (printed, and target/bench/hotpath-<date>.md) and the
# JSON lines (target/bench/hotpath-<date>.jsonl, with "bin" and "round" added).
#   BASE_BIN=/path/to/old/junction   also measure that binary (adds a new/base column)
#   DURATION (default 8), WARMUP (2), ROUNDS (2 with BASE_BIN, else 1), SUBSCRIBERS (1000),
#   THREADS (load generator threads, default 1)
#   QUICK=1   0.5 s warm-up, 2 s per scenario, one round
#   PERF=0    no perf syscall counting;  NO_BUILD=1  skip the cargo build
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_BIN=${BASE_BIN:-}
if [ "${QUICK:-0}" = 1 ]; then
  DURATION=${DURATION:-2}; WARMUP=${WARMUP:-0.5}; ROUNDS=${ROUNDS:-1}
else
  DURATION=${DURATION:-8}; WARMUP=${WARMUP:-2}; ROUNDS=${ROUNDS:-$([ -n "$BASE_BIN" ] && echo 2 || echo 1)}
fi
SUBSCRIBERS=${SUBSCRIBERS:-1000}
THREADS=${THREADS:-1}
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=target/bench/hotpath-$STAMP.jsonl
MD=target/bench/hotpath-$STAMP.md
mkdir -p target/bench
: > "$OUT"
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin junction --bin junction-bench
B=target/release/junction-bench
if [ -n "$BASE_BIN" ]; then
  [ -x "$BASE_BIN" ] || { echo "BASE_BIN=$BASE_BIN is not an executable" >&2; exit 1; }
  BINS=(base new)
else
  BINS=(new)
fi
HARD=$(ulimit -Hn)
if [ "$HARD" = unlimited ]; then ulimit -n 1048576 || true; else ulimit -n "$HARD"; fi
PERF_FLAG=()
if [ "${PERF:-1}" != 0 ] && perf stat -x, -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
  PERF_FLAG=(--perf-syscalls)
fi
LOAD0=$(cut -d' ' -f1 /proc/loadavg)

# --- routers: per binary a lone node and a 3-node cluster; one raw relay ------------
# shellcheck source=bench/nodes.sh
. bench/nodes.sh
for b in "${BINS[@]}"; do
  if [ "$b" = base ]; then JUNCTION_BIN=$BASE_BIN; else JUNCTION_BIN=target/release/junction; fi
  export JUNCTION_BIN
  printf "$NODE" > "$DIR/${b}_lone.toml"
  start "${b}_lone" "$DIR/${b}_lone.toml"
  cluster3 "${b}_n" "$NODE"
done
unset JUNCTION_BIN
# relay_server NAME ARGS...: a raw relay (junction-bench relay-server ARGS), its pid in
# RELAY_PID_<NAME> once it printed `ready`
relay_server() {
  local name=$1; shift
  $B relay-server --rawsocket "" "$@" > "$DIR/relay-$name.out" 2>&1 &
  PIDS+=($!); printf -v "RELAY_PID_$name" '%s' "$!"
  for _ in $(seq 100); do grep -q '^ready' "$DIR/relay-$name.out" && break; sleep 0.1; done
  grep -q '^ready' "$DIR/relay-$name.out" || { echo "relay $name did not start"; cat "$DIR/relay-$name.out"; exit 1; }
}
RELAY_WS=$(free_port)
relay_server pair --ws "127.0.0.1:$RELAY_WS"
RELAY_PID=$RELAY_PID_pair
RELAY_FWD_WS=$(free_port)
relay_server fwd --ws "127.0.0.1:$RELAY_FWD_WS" --forward "ws://127.0.0.1:$RELAY_WS"
RELAY_FWD_PID=$RELAY_PID_fwd
sleep 1 # let the clusters elect a leader

# run BIN ROUND LABEL SCENARIO ARGS...: one junction-bench run, its RESULT line kept
# with "bin" and "round" added; a failed run is reported and skipped.
run() {
  local bin=$1 round=$2 label=$3; shift 3
  local res
  echo "## round $round  $bin  $label" >&2
  if res=$($B "$@" --label "$label" --target "$bin" --duration "$DURATION" --warmup "$WARMUP" \
    --threads "$THREADS" --quiet 2> "$DIR/err"); then
    res=$(grep '^RESULT ' <<< "$res" | sed "s/^RESULT {/{\"bin\":\"$bin\",\"round\":$round,/" || true)
    if [ -n "$res" ]; then echo "$res" >> "$OUT"; else echo "!! $label against $bin: no RESULT line" >&2; fi
  else
    echo "!! $label against $bin failed:" >&2
    cat "$DIR/err" >&2
  fi
}
v() { local n="$1_$2"; printf '%s' "${!n}"; } # v WS base_lone -> $WS_base_lone
RPC=(--serializer msgpack --payload 64 --callees 1)
for r in $(seq "$ROUNDS"); do
  run relay "$r" relay-ws-if128 relay --url "ws://127.0.0.1:$RELAY_WS/ws" --router-pid "$RELAY_PID" \
    --serializer msgpack --payload 64 --callers 1 --inflight 128
  run relay "$r" relay-chain-ws-if128 relay --url "ws://127.0.0.1:$RELAY_FWD_WS/ws" \
    --echo-url "ws://127.0.0.1:$RELAY_WS/ws" --router-pid "$RELAY_FWD_PID" --router-pid "$RELAY_PID" \
    --serializer msgpack --payload 64 --callers 1 --inflight 128
  run relay "$r" relay-ws-if1 relay --url "ws://127.0.0.1:$RELAY_WS/ws" --router-pid "$RELAY_PID" \
    --serializer msgpack --payload 64 --callers 1 --inflight 1
  run relay "$r" relay-chain-ws-if1 relay --url "ws://127.0.0.1:$RELAY_FWD_WS/ws" \
    --echo-url "ws://127.0.0.1:$RELAY_WS/ws" --router-pid "$RELAY_FWD_PID" --router-pid "$RELAY_PID" \
    --serializer msgpack --payload 64 --callers 1 --inflight 1
  for b in "${BINS[@]}"; do
    run "$b" "$r" rpc-d128-lone rpc --url "$(v WS "${b}_lone")" --router-pid "$(v PID "${b}_lone")" \
      "${RPC[@]}" "${PERF_FLAG[@]}" --callers 1 --inflight 128
  done
  for mode in fbf batched; do
    flag=(); [ "$mode" = fbf ] && flag=(--frame-by-frame)
    for b in "${BINS[@]}"; do
      run "$b" "$r" "rpc-4x32-$mode" rpc --url "$(v WS "${b}_lone")" --router-pid "$(v PID "${b}_lone")" \
        "${RPC[@]}" "${PERF_FLAG[@]}" --callers 4 --inflight 32 "${flag[@]}"
    done
  done
  for depth in 1 128; do
    for b in "${BINS[@]}"; do
      if [ "$depth" = 1 ]; then
        run "$b" "$r" rpc-d1-lone rpc --url "$(v WS "${b}_lone")" --router-pid "$(v PID "${b}_lone")" \
          "${RPC[@]}" "${PERF_FLAG[@]}" --callers 1 --inflight 1
      fi
      run "$b" "$r" "rpc-d$depth-cross" rpc --url "$(v WS "${b}_n1")" --callee-url "$(v WS "${b}_n2")" \
        --router-pid "$(v PID "${b}_n1")" --router-pid "$(v PID "${b}_n2")" --router-pid "$(v PID "${b}_n3")" \
        "${RPC[@]}" "${PERF_FLAG[@]}" --callers 1 --inflight "$depth"
    done
  done
  for b in "${BINS[@]}"; do
    run "$b" "$r" pubsub-1x1000-3nodes pubsub --url "$(v WS "${b}_n1")" \
      --subscriber-url "$(v WS "${b}_n1")" --subscriber-url "$(v WS "${b}_n2")" --subscriber-url "$(v WS "${b}_n3")" \
      --router-pid "$(v PID "${b}_n1")" --router-pid "$(v PID "${b}_n2")" --router-pid "$(v PID "${b}_n3")" \
      --serializer msgpack --payload 64 --publishers 1 --subscribers "$SUBSCRIBERS" --topics 1 "${PERF_FLAG[@]}"
  done
done

# --- the table -------------------------------------------------------------------------
MACHINE="$(nproc) cores, $(uname -sr), load average at start $LOAD0"
BINS_TEXT="new=target/release/junction${BASE_BIN:+, base=$BASE_BIN}"
python3 - "$OUT" "$MD" "$STAMP" "$MACHINE" "$BINS_TEXT" "$DURATION" "$WARMUP" "$ROUNDS" "${BINS[@]}" <<'PY'
import json, statistics, sys
out, md, stamp, machine, bins_text, duration, warmup, rounds = sys.argv[1:9]
bins = sys.argv[9:]
rows = [json.loads(l) for l in open(out) if l.strip()]
def runs(label, b):
    return [r for r in rows if r.get("label") == label and r.get("bin") == b]
def mean(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.mean(xs) if xs else None
def lat(k):
    return lambda r: (r.get("latency_us") or {}).get(k)
def field(k):
    return lambda r: r.get(k)
def node_cpu(i):
    return lambda r: (r.get("router_cpu_s_each") or [None] * 3)[i]
def paired(label, r, value):
    # `value` (a getter) of this run and of `label`'s run in the same round (and binary)
    other = [x for x in rows if x.get("label") == label and x.get("round") == r.get("round")
             and (label.startswith("relay") or x.get("bin") == r.get("bin"))]
    mine, theirs = value(r), other and value(other[0])
    return (mine, theirs) if mine and theirs else None
def ratio_vs(label, value):
    # this run's `value` over `label`'s
    def get(r):
        p = paired(label, r, value)
        return p and p[0] / p[1]
    return get
def hop_us(label):
    # CPU µs per call this run spends beyond `label`'s: what the second process costs
    def get(r):
        p = paired(label, r, field("per_cpu_s"))
        return p and 1e6 / p[0] - 1e6 / p[1]
    return get
# (label, metric, getter, format)
spec = [
    ("relay-ws-if128", "requests/s (raw relay, the ceiling)", field("rate"), "{:,.0f}"),
    ("relay-ws-if128", "requests per relay CPU-s", field("per_cpu_s"), "{:,.0f}"),
    ("relay-chain-ws-if128", "requests per relay CPU-s (2 relays)", field("per_cpu_s"), "{:,.0f}"),
    ("relay-chain-ws-if128", "chain/single per CPU-s", ratio_vs("relay-ws-if128", field("per_cpu_s")), "{:.2f}"),
    ("relay-chain-ws-if128", "CPU µs per request added by the 2nd relay", hop_us("relay-ws-if128"), "{:.2f}"),
    ("relay-ws-if1", "p50 latency µs (raw relay, depth 1)", lat("p50"), "{:.1f}"),
    ("relay-chain-ws-if1", "p50 latency µs (2 relays, depth 1)", lat("p50"), "{:.1f}"),
    ("relay-chain-ws-if1", "chain/single p50", ratio_vs("relay-ws-if1", lat("p50")), "{:.2f}"),
]
spec += [
    ("rpc-d128-lone", "calls/s", field("rate"), "{:,.0f}"),
    ("rpc-d128-lone", "router/relay rate", ratio_vs("relay-ws-if128", field("rate")), "{:.2f}"),
]
for mode in ("fbf", "batched"):
    lbl = "rpc-4x32-" + mode
    spec += [
        (lbl, "calls/s", field("rate"), "{:,.0f}"),
        (lbl, "calls per router CPU-s", field("per_cpu_s"), "{:,.0f}"),
        (lbl, "syscalls/call (syscr+syscw: no recv/send)", field("syscalls_per_call"), "{:.3f}"),
        (lbl, "syscalls/call (all, perf)", field("perf_syscalls_per_call"), "{:.3f}"),
        (lbl, "context switches/call", field("ctx_switches_per_call"), "{:.3f}"),
    ]
spec += [
    ("rpc-d1-lone", "p50 latency µs", lat("p50"), "{:.1f}"),
    ("rpc-d1-lone", "mean latency µs", lat("mean"), "{:.1f}"),
    ("rpc-d1-cross", "p50 latency µs", lat("p50"), "{:.1f}"),
    ("rpc-d1-cross", "mean latency µs", lat("mean"), "{:.1f}"),
    ("rpc-d1-cross", "cross/lone p50", ratio_vs("rpc-d1-lone", lat("p50")), "{:.2f}"),
    ("rpc-d1-cross", "context switches/call (3 nodes)", field("ctx_switches_per_call"), "{:.2f}"),
    ("rpc-d128-lone", "calls per router CPU-s", field("per_cpu_s"), "{:,.0f}"),
    ("rpc-d128-cross", "calls per router CPU-s (3 nodes)", field("per_cpu_s"), "{:,.0f}"),
    ("rpc-d128-cross", "calls/s", field("rate"), "{:,.0f}"),
    ("rpc-d128-cross", "cross/lone per CPU-s", ratio_vs("rpc-d128-lone", field("per_cpu_s")), "{:.2f}"),
    ("rpc-d128-cross", "CPU µs per call added by the 2nd node", hop_us("rpc-d128-lone"), "{:.2f}"),
    ("pubsub-1x1000-3nodes", "deliveries/s", field("rate"), "{:,.0f}"),
    ("pubsub-1x1000-3nodes", "deliveries per router CPU-s", field("per_cpu_s"), "{:,.0f}"),
    ("pubsub-1x1000-3nodes", "CPU s node 1 (publisher)", node_cpu(0), "{:.2f}"),
    ("pubsub-1x1000-3nodes", "CPU s node 2", node_cpu(1), "{:.2f}"),
    ("pubsub-1x1000-3nodes", "CPU s node 3", node_cpu(2), "{:.2f}"),
    ("pubsub-1x1000-3nodes", "syscalls/delivery (all, perf)", field("perf_syscalls_per_delivery"), "{:.3f}"),
    ("pubsub-1x1000-3nodes", "context switches/delivery", field("ctx_switches_per_delivery"), "{:.3f}"),
    ("pubsub-1x1000-3nodes", "lost / dropped subscribers",
     lambda r: (r.get("lost") or 0) + (r.get("dropped_subscribers") or 0), "{:.0f}"),
]
cols = list(bins) + (["new/base"] if "base" in bins else [])
lines = [f"Hot path (issue #16), {stamp}: {machine}; {bins_text}; "
         f"{duration} s per scenario after {warmup} s warm-up, {rounds} round(s), "
         "WebSocket msgpack, 64-byte payload; figures are means over rounds.", ""]
lines.append("| scenario | metric | " + " | ".join(cols) + " |")
lines.append("|---|---|" + "---:|" * len(cols))
for label, metric, get, fmt in spec:
    vals = {}
    for b in (["relay"] if label.startswith("relay") else bins):
        vals[b] = mean([get(r) for r in runs(label, b)])
    cells = []
    for b in bins:
        x = vals.get("relay" if label.startswith("relay") else b)
        cells.append(fmt.format(x) if x is not None else "—")
    if "base" in bins:
        nb, bb = vals.get("new"), vals.get("base")
        cells.append(f"{nb / bb:.2f}" if nb is not None and bb else "—")
    lines.append(f"| {label} | {metric} | " + " | ".join(cells) + " |")
text = "\n".join(lines) + "\n"
open(md, "w").write(text)
print(text)
PY
echo "results: $OUT  table: $MD"
