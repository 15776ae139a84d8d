# Sourced by the bench scripts that start their own nodes (churn.sh, cluster.sh,
# hotpath.sh, http.sh, storm.sh): a temp dir DIR for configs and logs, every started
# node killed and DIR removed on exit (its logs and configs copied to $LOGS first
# when LOGS is set), free_port, `start NAME CONFIG` (a release node; sets WS_<NAME>
# to its WebSocket URL and PID_<NAME> to its pid once it printed `ready`, within
# START_TRIES tenths of a second, default 200) and `cluster3 PREFIX BASE [EXTRA]`
# (a 3-node cluster on loopback, node 1 bootstrapping, in memory: nodes PREFIX1 to
# PREFIX3, each config BASE (printf text) then its [cluster] section, the lines EXTRA
# in node 1's only). JUNCTION_BIN overrides the binary (default target/release/junction).
# NODE: the client side of a benchmark node's config (printf text): WebSocket on a
# free loopback port, no RawSocket, no admin endpoint.
NODE='[websocket]\nlisten = "127.0.0.1:0"\n[rawsocket]\nlisten = ""\n[admin]\nlisten = ""\n'
DIR=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${LOGS:-}" ]; then mkdir -p "$LOGS"; cp "$DIR"/*.err "$DIR"/*.toml "$LOGS"/ 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
start() {
  "${JUNCTION_BIN:-target/release/junction}" --config "$2" > "$DIR/$1.out" 2> "$DIR/$1.err" &
  PIDS+=($!)
  printf -v "PID_$1" '%s' "$!"
  for _ in $(seq "${START_TRIES:-200}"); do grep -qs '^ready' "$DIR/$1.out" && break; sleep 0.1; done
  grep -q '^ready' "$DIR/$1.out" || { echo "node $1 did not start"; cat "$DIR/$1.err"; exit 1; }
  printf -v "WS_$1" '%s' "$(sed -n 's/^listening websocket //p' "$DIR/$1.out")"
}
cluster3() {
  local prefix=$1 base=$2 extra=${3:-} i j peers boot
  local -a grpc
  for i in 1 2 3; do grpc[$i]=$(free_port); done
  for i in 1 2 3; do
    peers=""; for j in 1 2 3; do [ "$j" != "$i" ] && peers="$peers\"127.0.0.1:${grpc[$j]}\","; done
    boot=false; [ "$i" = 1 ] && boot=true
    {
      printf "$base"
      if [ "$i" = 1 ] && [ -n "$extra" ]; then printf '%s\n' "$extra"; fi
      printf '[cluster]\nnode_id = %s\nlisten = "127.0.0.1:%s"\npeers = [%s]\nbootstrap = %s\nephemeral = true\n' \
        "$i" "${grpc[$i]}" "${peers%,}" "$boot"
    } > "$DIR/$prefix$i.toml"
    start "$prefix$i" "$DIR/$prefix$i.toml"
  done
}
