#!/bin/bash
# local-cluster.sh: a 3-node Junction cluster on this machine (127.0.0.1 only), for
# development and trying things out. It writes one config per node, starts the
# nodes in the background, waits until each answers GET /readyz with 200 and
# prints where to connect. Nothing is built: it runs an existing binary.
#
# Usage:
#   deploy/local-cluster.sh start    write the configs and the admin token, start the 3 nodes,
#                                    wait until they are ready, print the addresses
#   deploy/local-cluster.sh status   `junction cluster status` of the cluster, and which
#                                    node processes are alive
#   deploy/local-cluster.sh stop     SIGTERM every node and wait for it to exit (SIGKILL
#                                    after JUNCTION_STOP_TIMEOUT seconds)
#   deploy/local-cluster.sh clean    stop, then remove the state directory (data, logs, token)
#
# Ports (all on 127.0.0.1; JUNCTION_PORT_OFFSET is added to every one):
#   node i (1..3): WebSocket 808i (ws://127.0.0.1:808i/ws), RawSocket 809i,
#                  admin HTTP 810i (/healthz, /readyz, /metrics, /api, /console),
#                  cluster gRPC 700i
#
# State directory (JUNCTION_LOCAL_DIR, default target/local-cluster in the repository):
#   nodeN.toml          node N's configuration (the example of a cluster node's config)
#   nodeN.log           node N's stdout and stderr
#   nodeN.pid           node N's process id while it runs
#   data/nodeN/         node N's Raft log, vote and snapshots (kept across stop/start)
#   admin.token         the admin HTTP bearer token (random, mode 0600), also the ticket
#                       of the principal "admin" (role admin) in realm1 for the console
#   port-offset         the JUNCTION_PORT_OFFSET the cluster was started with
#   junction-bin        the path of the binary it was started with
#
# Environment:
#   JUNCTION_BIN            the junction binary (default: the one the state directory's
#                           cluster was started with, else target/release/junction in the
#                           repository; build it with `cargo build --release`)
#   JUNCTION_LOCAL_DIR      the state directory (above)
#   JUNCTION_PORT_OFFSET    added to every port (default: the offset the state directory's
#                           cluster was started with, else 0; a cluster's data is tied to its
#                           ports, so `start` refuses another offset until `clean`)
#   JUNCTION_READY_TIMEOUT  seconds `start` waits for the nodes to be ready (default 60)
#   JUNCTION_STOP_TIMEOUT   seconds `stop` waits for a node to exit before SIGKILL (default 30)
#
# Exit codes: 0 done; 1 failed (already running, a port taken, a node did not get
# ready, status failed); 2 bad usage.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODES=(1 2 3)
REALM=realm1
MARKER=.junction-local-cluster

die() {
    echo "local-cluster: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|status|stop|clean  (see the header of $0)" >&2
    exit 2
}

abspath() {
    case $1 in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$PWD/$1" ;;
    esac
}

STATE_DIR=$(abspath "${JUNCTION_LOCAL_DIR:-$REPO_ROOT/target/local-cluster}")
BIN_FILE=$STATE_DIR/junction-bin
if [[ -n ${JUNCTION_BIN:-} ]]; then
    BIN=$JUNCTION_BIN
elif [[ -f $BIN_FILE ]]; then
    BIN=$(<"$BIN_FILE")
else
    BIN=$REPO_ROOT/target/release/junction
fi
case $BIN in
    /*) ;;
    */*) BIN=$(abspath "$BIN") ;;
    *) BIN=$(command -v "$BIN" || echo "$BIN") ;; # a bare name: from PATH
esac
case $STATE_DIR in
    *[\"\\]* | *$'\n'*)
        echo "local-cluster: the state directory's path may not contain \", \\ or a newline: $STATE_DIR" >&2
        exit 2
        ;;
esac
OFFSET_FILE=$STATE_DIR/port-offset
if [[ -n ${JUNCTION_PORT_OFFSET:-} ]]; then
    OFFSET=$JUNCTION_PORT_OFFSET
elif [[ -f $OFFSET_FILE ]]; then
    OFFSET=$(<"$OFFSET_FILE")
else
    OFFSET=0
fi
READY_TIMEOUT=${JUNCTION_READY_TIMEOUT:-60}
STOP_TIMEOUT=${JUNCTION_STOP_TIMEOUT:-30}
TOKEN_FILE=$STATE_DIR/admin.token

check_number() { # NAME VALUE
    [[ $2 =~ ^(0|[1-9][0-9]*)$ ]] || { echo "local-cluster: $1 must be a non-negative integer, not '$2'" >&2; exit 2; }
}
check_number JUNCTION_PORT_OFFSET "$OFFSET"
check_number JUNCTION_READY_TIMEOUT "$READY_TIMEOUT"
check_number JUNCTION_STOP_TIMEOUT "$STOP_TIMEOUT"
if ((8103 + OFFSET > 65535)); then
    echo "local-cluster: JUNCTION_PORT_OFFSET $OFFSET puts ports above 65535" >&2
    exit 2
fi

ws_port() { echo $((8080 + $1 + OFFSET)); }
rs_port() { echo $((8090 + $1 + OFFSET)); }
admin_port() { echo $((8100 + $1 + OFFSET)); }
grpc_port() { echo $((7000 + $1 + OFFSET)); }

config_file() { echo "$STATE_DIR/node$1.toml"; }
log_file() { echo "$STATE_DIR/node$1.log"; }
pid_file() { echo "$STATE_DIR/node$1.pid"; }
data_dir() { echo "$STATE_DIR/data/node$1"; }

# has_data: whether node 1 ever ran here (a cluster exists in the state directory).
has_data() { [[ -d $(data_dir 1) && -n $(ls -A "$(data_dir 1)") ]]; }

# alive PID: whether the process exists and is not a zombie (a node this very
# script started and has not reaped yet).
alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(ps -o stat= -p "$1" 2>/dev/null || true)
    [[ -n $stat && $stat != Z* ]]
}

# node_pid I: the pid of node I if its pid file names a live junction process
# started with this node's config (a stale file or a reused pid gives nothing).
node_pid() {
    local f pid args
    f=$(pid_file "$1")
    [[ -f $f ]] || return 0
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    alive "$pid" || return 0
    args=$(ps -ww -o args= -p "$pid" 2>/dev/null || true)
    [[ $args == *"$(config_file "$1")"* ]] || return 0
    echo "$pid"
}

# http_status PORT PATH: the HTTP status of GET http://127.0.0.1:PORT/PATH, or 000.
http_status() {
    local port=$1 path=$2 line=""
    if command -v curl >/dev/null 2>&1; then
        curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 2 \
            "http://127.0.0.1:$port$path" 2>/dev/null || true
        return 0
    fi
    # No curl: one HTTP/1.0 request over bash's /dev/tcp.
    if exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
        IFS= read -r -t 2 line <&3 || true
        exec 3<&-
    fi
    line=${line%$'\r'}
    if [[ $line =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]]; then
        echo "${BASH_REMATCH[1]}"
    else
        echo 000
    fi
}

# port_free PORT: whether a listener could bind 127.0.0.1:PORT now.
port_free() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the router does
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
    else
        # Without python3: taken if something accepts a connection there.
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 1
        fi
    fi
}

random_token() {
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

write_config() { # I
    local i=$1 peers="" j boot=false
    for j in "${NODES[@]}"; do
        [[ $j == "$i" ]] && continue
        peers+="${peers:+, }\"127.0.0.1:$(grpc_port "$j")\""
    done
    [[ $i == 1 ]] && boot=true
    cat >"$(config_file "$i")" <<EOF
# Node $i of the local cluster; written by deploy/local-cluster.sh (start rewrites it).

[websocket]
listen = "127.0.0.1:$(ws_port "$i")"

[rawsocket]
listen = "127.0.0.1:$(rs_port "$i")"

[admin]
listen = "127.0.0.1:$(admin_port "$i")"
token_file = "$TOKEN_FILE"
realm = "$REALM"               # the console's WAMP session joins here ...
role = "admin"                 # ... with this role (the principal "admin" below)

[[realms]]
name = "$REALM"
[realms.auth.anonymous]        # anonymous clients, as with no [realms.auth] at all
role = "anonymous"
[realms.auth.ticket.principals.admin]
role = "admin"
ticket = { file = "$TOKEN_FILE" }

[cluster]
node_id = $i
$(printf '%-30s' "listen = \"127.0.0.1:$(grpc_port "$i")\"") # loopback: no cluster secret needed
peers = [$peers]
$(printf '%-30s' "bootstrap = $boot") # exactly one node initialises the cluster
data_dir = "$(data_dir "$i")"
EOF
}

start_node() { # I
    local i=$1 pid
    # Addresses and the token come from the config file only.
    env -u JUNCTION_CONFIG -u JUNCTION_WS -u JUNCTION_WS_PATH -u JUNCTION_RAWSOCKET \
        -u JUNCTION_UNIX -u JUNCTION_ADMIN -u JUNCTION_ADMIN_TOKEN -u JUNCTION_ADMIN_TOKEN_FILE \
        setsid "$BIN" --config "$(config_file "$i")" </dev/null >>"$(log_file "$i")" 2>&1 &
    pid=$!
    echo "$pid" >"$(pid_file "$i")"
    echo "started node $i (pid $pid, log $(log_file "$i"))"
}

# wait_ready DEADLINE I...: until each node's /readyz answers 200; fails when a
# node exits or the deadline (epoch seconds) passes.
wait_ready() {
    local deadline=$1 i pending code pid
    shift
    pending=("$@")
    while ((${#pending[@]})); do
        local still=()
        for i in "${pending[@]}"; do
            pid=$(<"$(pid_file "$i")")
            if ! alive "$pid"; then
                echo "local-cluster: node $i (pid $pid) exited before it was ready; the end of $(log_file "$i"):" >&2
                tail -n 20 "$(log_file "$i")" >&2 || true
                return 1
            fi
            code=$(http_status "$(admin_port "$i")" /readyz)
            if [[ $code == 200 ]]; then
                echo "node $i is ready"
            else
                still+=("$i")
            fi
        done
        pending=("${still[@]+"${still[@]}"}")
        ((${#pending[@]})) || break
        if (($(date +%s) >= deadline)); then
            echo "local-cluster: node(s) ${pending[*]} not ready within ${READY_TIMEOUT}s (GET /readyz on the admin port); logs in $STATE_DIR" >&2
            return 1
        fi
        sleep 0.2
    done
}

cmd_start() {
    local i p running=() taken=() fresh=1 deadline
    [[ -x $BIN ]] || die "no junction binary at $BIN (build it with \`cargo build --release\` or set JUNCTION_BIN)"
    if [[ -d $STATE_DIR ]]; then
        if [[ ! -e $STATE_DIR/$MARKER ]] && [[ -n $(ls -A "$STATE_DIR") ]]; then
            die "$STATE_DIR exists and was not made by this script; set JUNCTION_LOCAL_DIR to another directory"
        fi
        for i in "${NODES[@]}"; do
            [[ -n $(node_pid "$i") ]] && running+=("$i")
        done
        ((${#running[@]} == 0)) || die "already running (node(s) ${running[*]}, state in $STATE_DIR); \`$0 stop\` first"
    fi
    if has_data && [[ -f $OFFSET_FILE && $(<"$OFFSET_FILE") != "$OFFSET" ]]; then
        die "the cluster in $STATE_DIR was made with JUNCTION_PORT_OFFSET=$(<"$OFFSET_FILE") (its members' addresses are in its data); start it with that offset, or \`$0 clean\` first"
    fi
    for i in "${NODES[@]}"; do
        for p in "$(ws_port "$i")" "$(rs_port "$i")" "$(admin_port "$i")" "$(grpc_port "$i")"; do
            port_free "$p" || taken+=("$p")
        done
    done
    ((${#taken[@]} == 0)) || die "port(s) ${taken[*]} on 127.0.0.1 are in use; free them or set JUNCTION_PORT_OFFSET"

    mkdir -p "$STATE_DIR"
    touch "$STATE_DIR/$MARKER"
    echo "$OFFSET" >"$OFFSET_FILE"
    echo "$BIN" >"$BIN_FILE"
    has_data && fresh=0
    if [[ ! -s $TOKEN_FILE ]]; then
        (umask 077 && random_token >"$TOKEN_FILE" && echo >>"$TOKEN_FILE")
    fi
    chmod 600 "$TOKEN_FILE"
    for i in "${NODES[@]}"; do
        mkdir -p "$(data_dir "$i")"
        rm -f "$(pid_file "$i")"
        write_config "$i"
    done

    deadline=$(($(date +%s) + READY_TIMEOUT))
    if ((fresh)); then
        # A new cluster: node 1 bootstraps it, the others join through it.
        start_node 1
        wait_ready "$deadline" 1 || { cmd_stop >&2 || true; exit 1; }
        start_node 2
        start_node 3
        wait_ready "$deadline" 2 3 || { cmd_stop >&2 || true; exit 1; }
    else
        # A restart on existing data: no node is ready before a quorum is back.
        for i in "${NODES[@]}"; do start_node "$i"; done
        wait_ready "$deadline" "${NODES[@]}" || { cmd_stop >&2 || true; exit 1; }
    fi

    # The commands to come need the state directory, when it is not the default.
    local me=$0
    [[ -n ${JUNCTION_LOCAL_DIR:-} ]] && me="JUNCTION_LOCAL_DIR=$(printf %q "$STATE_DIR") $0"
    echo
    printf '%-5s %-27s %-24s %s\n' node websocket rawsocket "admin / console"
    for i in "${NODES[@]}"; do
        printf '%-5s %-27s %-24s %s\n' "$i" "ws://127.0.0.1:$(ws_port "$i")/ws" \
            "rs://127.0.0.1:$(rs_port "$i")" "http://127.0.0.1:$(admin_port "$i")/console"
    done
    cat <<EOF

realm:        $REALM (anonymous clients)
admin token:  $TOKEN_FILE
              curl -H "Authorization: Bearer \$(cat $TOKEN_FILE)" http://127.0.0.1:$(admin_port 1)/api/status
console:      open http://127.0.0.1:$(admin_port 1)/console?url=ws://127.0.0.1:$(ws_port 1)/ws&realm=$REALM&authid=admin
              and paste the token (as the admin token and as the ticket)
cluster:      $BIN cluster status --node 127.0.0.1:$(grpc_port 1)
logs, data:   $STATE_DIR
status:       $me status
stop:         $me stop    (keeps the data; start again later)
clean:        $me clean   (stop, then remove $STATE_DIR)
EOF
}

cmd_status() {
    local i pid rc=0
    for i in "${NODES[@]}"; do
        pid=$(node_pid "$i")
        if [[ -n $pid ]]; then
            echo "node $i: running (pid $pid), ws://127.0.0.1:$(ws_port "$i")/ws, admin http://127.0.0.1:$(admin_port "$i")"
        else
            echo "node $i: not running"
        fi
    done
    echo
    "$BIN" cluster status --node "127.0.0.1:$(grpc_port 1)" || rc=$?
    return "$rc"
}

cmd_stop() {
    local i pid pids=() ids=() deadline left
    [[ -d $STATE_DIR ]] || { echo "not running (no $STATE_DIR)"; return 0; }
    for i in "${NODES[@]}"; do
        pid=$(node_pid "$i")
        if [[ -n $pid ]]; then
            kill -TERM "$pid" 2>/dev/null || true
            echo "stopping node $i (pid $pid)"
            pids+=("$pid")
            ids+=("$i")
        fi
    done
    deadline=$(($(date +%s) + STOP_TIMEOUT))
    for ((k = 0; k < ${#pids[@]}; k++)); do
        pid=${pids[k]}
        while alive "$pid"; do
            if (($(date +%s) >= deadline)); then
                echo "local-cluster: node ${ids[k]} (pid $pid) still running after ${STOP_TIMEOUT}s; sending SIGKILL" >&2
                kill -KILL "$pid" 2>/dev/null || true
                left=50
                while alive "$pid" && ((left-- > 0)); do sleep 0.1; done
                break
            fi
            sleep 0.1
        done
        echo "node ${ids[k]} stopped"
    done
    for i in "${NODES[@]}"; do rm -f "$(pid_file "$i")"; done
    ((${#pids[@]})) || echo "not running"
}

cmd_clean() {
    cmd_stop
    [[ -d $STATE_DIR ]] || return 0
    if [[ ! -e $STATE_DIR/$MARKER ]]; then
        die "$STATE_DIR was not made by this script; not removing it"
    fi
    rm -rf -- "$STATE_DIR"
    echo "removed $STATE_DIR"
}

(($# == 1)) || usage
case $1 in
    start) cmd_start ;;
    status) cmd_status ;;
    stop) cmd_stop ;;
    clean) cmd_clean ;;
    -h | --help | help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        ;;
    *) usage ;;
esac
