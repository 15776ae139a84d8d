# Sourced by the bench scripts that start their own nodes (churn.sh, http.sh): a temp
# dir DIR for configs and logs, every started node killed and DIR removed on exit,
# free_port, and `start NAME CONFIG` (a release node; sets WS_<NAME> to its WebSocket
# URL and PID_<NAME> to its pid once it printed `ready`). JUNCTION_BIN overrides the
# binary (default target/release/junction).
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
start() {
  "${JUNCTION_BIN:-target/release/junction}" --config "$2" > "$DIR/$1.out" 2> "$DIR/$1.err" &
  PIDS+=($!)
  printf -v "PID_$1" '%s' "$!"
  for _ in $(seq 200); do grep -q '^ready' "$DIR/$1.out" && break; sleep 0.1; done
  grep -q '^ready' "$DIR/$1.out" || { echo "node $1 did not start"; cat "$DIR/$1.err"; exit 1; }
  printf -v "WS_$1" '%s' "$(sed -n 's/^listening websocket //p' "$DIR/$1.out")"
}
