#!/usr/bin/env bash
# Junction vs Crossbar.io vs the raw relay, side by side, in one run.
#
# Builds the release binaries, installs Crossbar.io into target/crossbar-venv (once),
# starts Junction, Crossbar.io and the raw relay on free loopback ports, runs every
# scenario against each back to back, and prints the comparison table (ratios
# Junction/Crossbar and Junction/relay, figures per router CPU-second, the issue's
# targets). Results: target/bench/results-<date>.jsonl (+ .md table); chart:
# bench/results/latest.svg (QUICK runs: target/bench/quick.svg).
#
# Environment:
#   QUICK=1              short durations, fewer sessions (smoke run, ~2 minutes)
#   DURATION, WARMUP     seconds per scenario (default 10 and 2; QUICK: 2 and 0.5)
#   SESSIONS             idle sessions against Junction (default 5000; QUICK: 1000),
#                        capped by the open-file hard limit (ulimit -Hn)
#   CROSSBAR_SESSIONS    idle sessions against Crossbar.io (default: min(SESSIONS, 5000))
#   SKIP_CROSSBAR=1      Junction and the relay only
#   THREADS              load generator threads (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    DURATION=${DURATION:-2}
    WARMUP=${WARMUP:-0.5}
    SESSIONS=${SESSIONS:-1000}
else
    DURATION=${DURATION:-10}
    WARMUP=${WARMUP:-2}
    SESSIONS=${SESSIONS:-5000}
fi
CROSSBAR_SESSIONS=${CROSSBAR_SESSIONS:-$((SESSIONS < 5000 ? SESSIONS : 5000))}
SKIP_CROSSBAR=${SKIP_CROSSBAR:-0}
THREADS=${THREADS:-1}

OUT=$ROOT/target/bench
VENV=$ROOT/target/crossbar-venv
CBDIR=$OUT/crossbar/.crossbar
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
RESULTS=$OUT/results-$STAMP.jsonl
JBENCH=$ROOT/target/release/junction-bench
mkdir -p "$OUT" "$ROOT/bench/results"
: >"$RESULTS"

log() { printf '\n### %s\n' "$*" >&2; }

LOAD0=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD0" 'BEGIN { exit !(l > 1.0) }'; then
    echo "note: load average is $LOAD0: other work shares the CPUs; compare per-CPU-second figures" >&2
fi

# --- build and install ---------------------------------------------------------------
log "building release binaries"
cargo build --release --bin junction --bin junction-bench

if [[ $SKIP_CROSSBAR != 1 && ! -x $VENV/bin/crossbar ]]; then
    log "installing Crossbar.io into $VENV (about a minute)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q crossbar
    # bjdata's wheel is built for NumPy 1.x and prints a traceback at import under
    # NumPy 2: rebuild it from source against the installed NumPy.
    "$VENV/bin/pip" install -q --no-build-isolation --no-deps --force-reinstall \
        --no-cache-dir --no-binary bjdata bjdata==0.6.6
fi

# --- limits --------------------------------------------------------------------------
HARD=$(ulimit -Hn)
if [[ $HARD != unlimited ]]; then
    ulimit -n "$HARD"
    MAXS=$((HARD - 200))
    if ((SESSIONS > MAXS)); then
        echo "note: open-file hard limit is $HARD (this process cannot raise it): sessions capped at $MAXS" >&2
        SESSIONS=$MAXS
    fi
    ((CROSSBAR_SESSIONS > MAXS)) && CROSSBAR_SESSIONS=$MAXS
else
    ulimit -n 1048576 || true
fi

# --- servers -------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

SERVER_PIDS=()
cleanup() {
    local p
    for p in "${SERVER_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${SERVER_PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until a TCP port accepts connections.
wait_port() {
    local port=$1 what=$2 i
    for i in $(seq 1 240); do
        if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.25
    done
    echo "$what did not open port $port" >&2
    return 1
}

# Waits until a log file has a line "ready".
wait_ready() {
    local file=$1 what=$2 i
    for i in $(seq 1 120); do
        if grep -q '^ready' "$file" 2>/dev/null; then return 0; fi
        sleep 0.25
    done
    echo "$what did not become ready; see $file" >&2
    return 1
}

# A process and all its descendants, comma separated.
descendants() {
    local p=$1 c
    printf '%s' "$p"
    for c in $(pgrep -P "$p" || true); do
        printf ','
        descendants "$c"
    done
}

stop_server() {
    local pid=$1 p keep=()
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${SERVER_PIDS[@]}"; do [[ $p != "$pid" ]] && keep+=("$p"); done
    SERVER_PIDS=("${keep[@]}")
}

J_WS=$(free_port); J_RS=$(free_port)
start_junction() {
    "$ROOT/target/release/junction" --ws "127.0.0.1:$J_WS" --rawsocket "127.0.0.1:$J_RS" \
        >"$OUT/junction.log" 2>"$OUT/junction.err" &
    J_PID=$!
    SERVER_PIDS+=("$J_PID")
    wait_ready "$OUT/junction.log" junction
}

R_WS=$(free_port); R_RS=$(free_port)
start_relay() {
    "$JBENCH" relay-server --ws "127.0.0.1:$R_WS" --rawsocket "127.0.0.1:$R_RS" >"$OUT/relay.log" 2>&1 &
    R_PID=$!
    SERVER_PIDS+=("$R_PID")
    wait_ready "$OUT/relay.log" relay
}

C_WS=$(free_port); C_RS=$(free_port)
start_crossbar() {
    rm -rf "$OUT/crossbar"
    mkdir -p "$CBDIR/web"
    sed -e "s/@WS_PORT@/$C_WS/" -e "s/@RS_PORT@/$C_RS/" "$ROOT/bench/crossbar/config.json" >"$CBDIR/config.json"
    "$VENV/bin/crossbar" start --cbdir "$CBDIR" --loglevel warn >"$OUT/crossbar.log" 2>&1 &
    C_PID=$!
    SERVER_PIDS+=("$C_PID")
    wait_port "$C_RS" crossbar
    wait_port "$C_WS" crossbar
    sleep 1
    C_PIDS=$(descendants "$C_PID")
}

# --- running scenarios ---------------------------------------------------------------
# bench TARGET PIDS ARGS...: runs junction-bench, shows its table, keeps its RESULT line.
bench() {
    local target=$1 pids=$2
    shift 2
    local tmp
    tmp=$(mktemp)
    if "$JBENCH" "$@" --target "$target" --router-pid "$pids" --threads "$THREADS" \
        --warmup "$WARMUP" --duration "$DURATION" >"$tmp"; then
        grep -v '^RESULT ' "$tmp" || true
        grep '^RESULT ' "$tmp" | cut -c8- >>"$RESULTS"
    else
        echo "!! scenario failed: $target $*" >&2
        cat "$tmp" >&2
    fi
    rm -f "$tmp"
}

# rate_of LABEL TARGET: the measured rate of an earlier run (0 if none).
rate_of() {
    python3 - "$RESULTS" "$1" "$2" <<'EOF'
import json, sys
rate = 0
for line in open(sys.argv[1]):
    j = json.loads(line)
    if j.get("label") == sys.argv[2] and j.get("target") == sys.argv[3]:
        rate = j.get("rate", 0)
print(rate)
EOF
}

# each LABEL SCENARIO ARGS...: the same WebSocket scenario against Junction, then
# Crossbar.io; @WS@ in ARGS stands for the router's WebSocket URL.
each() {
    local label=$1 scenario=$2
    shift 2
    local args=("$@")
    log "$label"
    bench junction "$J_PID" "$scenario" --label "$label" "${args[@]/@WS@/ws://127.0.0.1:$J_WS/ws}"
    if [[ $SKIP_CROSSBAR != 1 ]]; then
        bench crossbar "$C_PIDS" "$scenario" --label "$label" "${args[@]/@WS@/ws://127.0.0.1:$C_WS/ws}"
    fi
}

log "starting servers"
start_junction
start_relay
[[ $SKIP_CROSSBAR != 1 ]] && start_crossbar

# each_rs LABEL SCENARIO ARGS...: the same RawSocket scenario against both routers.
each_rs() {
    local label=$1 scenario=$2
    shift 2
    log "$label"
    bench junction "$J_PID" "$scenario" --label "$label" --url "rs://127.0.0.1:$J_RS" "$@"
    if [[ $SKIP_CROSSBAR != 1 ]]; then
        bench crossbar "$C_PIDS" "$scenario" --label "$label" --url "rs://127.0.0.1:$C_RS" "$@"
    fi
}
# relay LABEL URL ARGS...: the request/echo measurement through the raw relay.
relay() {
    local label=$1 url=$2
    shift 2
    bench relay "$R_PID" relay --label "$label" --url "$url" "$@"
}

RPC=(--payload 64 --callers 1 --callees 1)

each_rs rpc128-rs-msgpack rpc "${RPC[@]}" --inflight 128 --serializer msgpack
relay rpc128-rs-msgpack "rs://127.0.0.1:$R_RS" --payload 64 --inflight 128 --serializer msgpack

each rpc128-ws-msgpack rpc --url @WS@ "${RPC[@]}" --inflight 128 --serializer msgpack
relay rpc128-ws-msgpack "ws://127.0.0.1:$R_WS" --payload 64 --inflight 128 --serializer msgpack

each rpc128-ws-json rpc --url @WS@ "${RPC[@]}" --inflight 128 --serializer json
relay rpc128-ws-json "ws://127.0.0.1:$R_WS" --payload 64 --inflight 128 --serializer json

each rpc1-ws-msgpack rpc --url @WS@ "${RPC[@]}" --inflight 1 --serializer msgpack
relay rpc1-ws-msgpack "ws://127.0.0.1:$R_WS" --payload 64 --inflight 1 --serializer msgpack

each_rs rpc1-rs-msgpack rpc "${RPC[@]}" --inflight 1 --serializer msgpack
relay rpc1-rs-msgpack "rs://127.0.0.1:$R_RS" --payload 64 --inflight 1 --serializer msgpack

# Latency at half of each router's own maximum (WebSocket msgpack, 128 in flight).
log "rpc-half-ws-msgpack"
J_HALF=$(python3 -c "print(max(1, $(rate_of rpc128-ws-msgpack junction) / 2))")
bench junction "$J_PID" rpc --label rpc-half-ws-msgpack --url "ws://127.0.0.1:$J_WS/ws" "${RPC[@]}" \
    --inflight 128 --serializer msgpack --rate "$J_HALF"
if [[ $SKIP_CROSSBAR != 1 ]]; then
    C_HALF=$(python3 -c "print(max(1, $(rate_of rpc128-ws-msgpack crossbar) / 2))")
    bench crossbar "$C_PIDS" rpc --label rpc-half-ws-msgpack --url "ws://127.0.0.1:$C_WS/ws" "${RPC[@]}" \
        --inflight 128 --serializer msgpack --rate "$C_HALF"
fi

each pubsub-1x10-ws-msgpack pubsub --url @WS@ --publishers 1 --subscribers 10 --topics 1 \
    --payload 64 --inflight 128 --serializer msgpack
each pubsub-4x40-t20-ws-msgpack pubsub --url @WS@ --publishers 4 --subscribers 40 --topics 20 \
    --payload 64 --inflight 64 --serializer msgpack
# Pattern subscriptions: 100 distinct prefix / wildcard patterns over 1000 topics.
each pubsub-4x100-prefix100-ws-msgpack pubsub --url @WS@ --publishers 4 --subscribers 100 --topics 1000 \
    --match prefix --patterns 100 --payload 64 --inflight 64 --serializer msgpack
each pubsub-4x100-wildcard100-ws-msgpack pubsub --url @WS@ --publishers 4 --subscribers 100 --topics 1000 \
    --match wildcard --patterns 100 --payload 64 --inflight 64 --serializer msgpack

# Memory per idle session needs fresh routers (freed memory is not given back).
log "sessions (fresh routers)"
stop_server "$J_PID"
start_junction
bench junction "$J_PID" sessions --label sessions-ws --url "ws://127.0.0.1:$J_WS/ws" \
    --sessions "$SESSIONS" --serializer msgpack
if [[ $SKIP_CROSSBAR != 1 ]]; then
    stop_server "$C_PID"
    start_crossbar
    bench crossbar "$C_PIDS" sessions --label sessions-ws --url "ws://127.0.0.1:$C_WS/ws" \
        --sessions "$CROSSBAR_SESSIONS" --serializer msgpack
fi

# --- report --------------------------------------------------------------------------
log "comparison ($RESULTS)"
MACHINE="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), load average at start $LOAD0"
TITLE="Junction vs Crossbar.io vs raw relay — $STAMP — $MACHINE"
"$JBENCH" compare "$RESULTS" --markdown "${RESULTS%.jsonl}.md"
if [[ $QUICK == 1 ]]; then
    CHART=$OUT/quick.svg
else
    CHART=$ROOT/bench/results/latest.svg
    cp "$RESULTS" "$ROOT/bench/results/latest.jsonl"
    { echo "Measured $STAMP on $MACHINE (load generator on the same machine)."; echo; cat "${RESULTS%.jsonl}.md"; } \
        >"$ROOT/bench/results/latest.md"
fi
"$JBENCH" chart "$RESULTS" --out "$CHART" --title "$TITLE"
echo "results: $RESULTS"
