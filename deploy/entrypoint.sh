#!/bin/bash
# junction-entrypoint: the container entrypoint of the Junction image (installed
# as /usr/local/bin/junction-entrypoint). It turns "who am I" facts from the
# environment into a junction.toml and starts the router, so one image and one
# config template serve every replica of a Kubernetes StatefulSet or a
# docker-compose cluster.
#
# Usage:
#   junction-entrypoint [JUNCTION-FLAGS...]   check the template renders (a copy goes to
#                                             JUNCTION_RENDERED_CONFIG), then exec junction
#                                             --config TEMPLATE FLAGS...: junction expands the
#                                             ${NAME} placeholders itself and re-reads the
#                                             template when it changes or on SIGHUP
#   junction-entrypoint render                print the rendered config and exit
#   junction-entrypoint healthcheck [PATH]    GET http://127.0.0.1:<admin port>PATH (default
#                                             /healthz); exit 0 on HTTP 200 (Docker HEALTHCHECK).
#                                             The port is JUNCTION_ADMIN's (junction's own
#                                             --admin variable), else 8090 as in the template.
#   junction-entrypoint COMMAND [ARGS...]     anything else not starting with "-" runs as is
#
# Identity, in this order of precedence:
#   POD_NAME (or HOSTNAME) = <set name>-<ordinal>, e.g. "junction-2" (a StatefulSet pod,
#   or a compose service named like one). A name without a numeric suffix is a
#   standalone node: node id 1, bootstrap, no peers.
#
# Derived values; each can be set explicitly instead:
#   JUNCTION_NODE_ID       ordinal + 1 (Raft ids start at 1)
#   JUNCTION_BOOTSTRAP     "true" for ordinal 0, else "false"
#   JUNCTION_PEER_DOMAIN   DNS suffix of the pods: with NAMESPACE set,
#                          <JUNCTION_HEADLESS_SERVICE>.<NAMESPACE>.svc.<JUNCTION_CLUSTER_DOMAIN>;
#                          unset NAMESPACE (compose) = none: peers are reached by bare name
#   JUNCTION_ADVERTISE     <POD_NAME>[.<domain>]:<JUNCTION_GRPC_PORT>
#   JUNCTION_PEERS         comma-separated host:port list; default: pods 0 .. VOTERS-1
#                          of the same set, except this pod (the voters are the seeds a
#                          learner asks to join; any member forwards to the leader)
# Settings with defaults:
#   JUNCTION_VOTERS=3  JUNCTION_GRPC_PORT=7001
#   JUNCTION_GRPC_LISTEN=0.0.0.0:<grpc port> for a set member, 127.0.0.1:<grpc port> for a
#                          standalone node (nobody else needs to reach it)
#   JUNCTION_DATA_DIR=/var/lib/junction
#   JUNCTION_HEADLESS_SERVICE=<set name>-headless  JUNCTION_CLUSTER_DOMAIN=cluster.local
#   JUNCTION_CONFIG_TEMPLATE=/etc/junction/junction.toml.tmpl
#   JUNCTION_RENDERED_CONFIG=/tmp/junction.toml   JUNCTION_BIN=junction
#
# The cluster secret (junction refuses to serve cluster gRPC on a non-loopback
# address without one, exit 2). junction itself reads JUNCTION_CLUSTER_SECRET (the
# value) or JUNCTION_CLUSTER_SECRET_FILE (a file, first line); the entrypoint only
# creates the file when asked to:
#   JUNCTION_CLUSTER_SECRET_CREATE=true   if JUNCTION_CLUSTER_SECRET_FILE does not exist,
#                          write 32 random bytes (hex) to it, atomically: of several
#                          nodes sharing the volume the first one wins (docker-compose).
#                          A Kubernetes Secret is mounted read-only instead.
# A JUNCTION_CLUSTER_SECRET_FILE that does not exist is reported and not passed on:
# junction then has no secret, which it accepts only on a loopback cluster.listen.
#
# The template's ${NAME} placeholders (outside comment lines) are replaced by the
# environment variable NAME, which must be set. Values that would break TOML
# quoting are refused. Needs only bash and awk (both in debian:*-slim).
set -euo pipefail

die() {
    echo "junction-entrypoint: $*" >&2
    exit 2
}

# is_uint VALUE: a non-negative decimal integer without leading zeros.
is_uint() {
    [[ $1 =~ ^(0|[1-9][0-9]{0,18})$ ]]
}

# safe VALUE NAME: refuse characters that cannot appear unescaped in a TOML string.
safe() {
    if [[ $1 == *[\"\\]* || $1 == *[[:cntrl:]]* ]]; then
        die "$2 contains a quote, backslash or control character: ${1@Q}"
    fi
}

# Identity and derived settings -> exported JUNCTION_* variables.
derive() {
    local pod=${POD_NAME:-${HOSTNAME:-}}
    local set_name="" ordinal=""
    if [[ $pod =~ ^(.+)-(0|[1-9][0-9]*)$ ]]; then
        set_name=${BASH_REMATCH[1]}
        ordinal=${BASH_REMATCH[2]}
    fi

    export JUNCTION_VOTERS=${JUNCTION_VOTERS:-3}
    if ! is_uint "$JUNCTION_VOTERS" || ((JUNCTION_VOTERS < 1)); then
        die "JUNCTION_VOTERS must be a positive integer, not ${JUNCTION_VOTERS@Q}"
    fi
    export JUNCTION_GRPC_PORT=${JUNCTION_GRPC_PORT:-7001}
    if ! is_uint "$JUNCTION_GRPC_PORT" || ((JUNCTION_GRPC_PORT < 1 || JUNCTION_GRPC_PORT > 65535)); then
        die "JUNCTION_GRPC_PORT must be a port number, not ${JUNCTION_GRPC_PORT@Q}"
    fi
    export JUNCTION_DATA_DIR=${JUNCTION_DATA_DIR:-/var/lib/junction}

    local domain=""
    if [[ -n ${JUNCTION_PEER_DOMAIN+set} ]]; then
        domain=$JUNCTION_PEER_DOMAIN
    elif [[ -n ${NAMESPACE:-} && -n $set_name ]]; then
        domain=${JUNCTION_HEADLESS_SERVICE:-$set_name-headless}.$NAMESPACE.svc.${JUNCTION_CLUSTER_DOMAIN:-cluster.local}
    fi
    # host NAME -> NAME[.domain]:port
    host() { echo "$1${domain:+.$domain}:$JUNCTION_GRPC_PORT"; }

    if [[ -n $ordinal ]]; then
        export JUNCTION_GRPC_LISTEN=${JUNCTION_GRPC_LISTEN:-0.0.0.0:$JUNCTION_GRPC_PORT}
        export JUNCTION_NODE_ID=${JUNCTION_NODE_ID:-$((ordinal + 1))}
        if [[ -z ${JUNCTION_BOOTSTRAP:-} ]]; then
            if ((ordinal == 0)); then JUNCTION_BOOTSTRAP=true; else JUNCTION_BOOTSTRAP=false; fi
        fi
        export JUNCTION_BOOTSTRAP
        export JUNCTION_ADVERTISE=${JUNCTION_ADVERTISE:-$(host "$pod")}
        if [[ -z ${JUNCTION_PEERS+set} ]]; then
            local i list=()
            for ((i = 0; i < JUNCTION_VOTERS; i++)); do
                ((i == ordinal)) || list+=("$(host "$set_name-$i")")
            done
            JUNCTION_PEERS=$(IFS=,; echo "${list[*]}")
        fi
    else
        # Standalone (docker run, a hostname without an ordinal): a one-node cluster
        # whose cluster port only this container reaches.
        export JUNCTION_GRPC_LISTEN=${JUNCTION_GRPC_LISTEN:-127.0.0.1:$JUNCTION_GRPC_PORT}
        export JUNCTION_NODE_ID=${JUNCTION_NODE_ID:-1}
        export JUNCTION_BOOTSTRAP=${JUNCTION_BOOTSTRAP:-true}
        export JUNCTION_ADVERTISE=${JUNCTION_ADVERTISE:-$(host "${pod:-localhost}")}
        JUNCTION_PEERS=${JUNCTION_PEERS:-}
    fi

    if ! is_uint "$JUNCTION_NODE_ID" || ((JUNCTION_NODE_ID < 1)); then
        die "JUNCTION_NODE_ID must be a positive integer, not ${JUNCTION_NODE_ID@Q}"
    fi
    [[ $JUNCTION_BOOTSTRAP == true || $JUNCTION_BOOTSTRAP == false ]] ||
        die "JUNCTION_BOOTSTRAP must be true or false, not ${JUNCTION_BOOTSTRAP@Q}"
    local name
    for name in JUNCTION_ADVERTISE JUNCTION_GRPC_LISTEN JUNCTION_DATA_DIR; do
        safe "${!name}" "$name"
    done

    # JUNCTION_PEERS "a:1, b:2" -> TOML array ["a:1", "b:2"]
    local peer toml="" raw
    IFS=, read -r -a raw <<<"$JUNCTION_PEERS"
    for peer in "${raw[@]}"; do
        peer=${peer//[[:space:]]/}
        [[ -n $peer ]] || continue
        safe "$peer" JUNCTION_PEERS
        toml+=${toml:+, }\"$peer\"
    done
    export JUNCTION_PEERS="[$toml]"
}

# cluster_secret: with JUNCTION_CLUSTER_SECRET_CREATE=true and no JUNCTION_CLUSTER_SECRET_FILE
# yet, a new random secret there (mode 0600). `ln` does not replace an existing
# file, so nodes starting together on a shared volume agree on the first one. A
# secret file that still does not exist (or cannot be read) is reported and
# JUNCTION_CLUSTER_SECRET_FILE dropped: junction then runs without a secret, which
# it allows on a loopback cluster.listen only (exit 2 otherwise).
cluster_secret() {
    local file=${JUNCTION_CLUSTER_SECRET_FILE:-}
    if [[ ${JUNCTION_CLUSTER_SECRET_CREATE:-false} == true ]]; then
        [[ -n $file ]] || die "JUNCTION_CLUSTER_SECRET_CREATE=true needs JUNCTION_CLUSTER_SECRET_FILE"
        [[ -e $file ]] || create_secret "$file"
    fi
    if [[ -n $file && ! -r $file ]]; then
        echo "junction-entrypoint: no readable cluster secret at $file (JUNCTION_CLUSTER_SECRET_FILE);" \
            "junction refuses a non-loopback cluster.listen without one" >&2
        unset JUNCTION_CLUSTER_SECRET_FILE
    fi
}

# admin_token: a JUNCTION_ADMIN_TOKEN_FILE that does not exist (the Kubernetes
# Secret junction-admin is optional) is reported and not passed on: junction then
# starts with its admin API closed (401) instead of refusing to start.
admin_token() {
    local file=${JUNCTION_ADMIN_TOKEN_FILE:-}
    if [[ -n $file && ! -e $file ]]; then
        echo "junction-entrypoint: no admin token at $file (JUNCTION_ADMIN_TOKEN_FILE);" \
            "the admin API stays closed" >&2
        unset JUNCTION_ADMIN_TOKEN_FILE
    fi
}

# create_secret FILE: 32 random bytes, hex, into FILE unless it appeared meanwhile.
create_secret() {
    local dir tmp
    dir=$(dirname -- "$1")
    if [[ ! -d $dir || ! -w $dir ]]; then
        echo "junction-entrypoint: cannot create the cluster secret: $dir is not a writable directory" >&2
        return 0
    fi
    tmp=$(umask 077 && mktemp "$dir/.secret.XXXXXX") || die "cannot create a file in $dir"
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$tmp" || die "cannot write $tmp"
    echo >>"$tmp"
    if ln -- "$tmp" "$1" 2>/dev/null; then
        echo "junction-entrypoint: created a new cluster secret in $1" >&2
    fi
    rm -f -- "$tmp"
}

# render TEMPLATE: substitute ${NAME} from the environment; unset NAME is an error.
render() {
    [[ -r $1 ]] || die "cannot read the config template $1 (JUNCTION_CONFIG_TEMPLATE)"
    awk '
        /^[[:space:]]*#/ { print; next }
        {
            out = ""; line = $0
            while (match(line, /\$\{[A-Za-z_][A-Za-z0-9_]*\}/)) {
                name = substr(line, RSTART + 2, RLENGTH - 3)
                if (!(name in ENVIRON)) {
                    printf "junction-entrypoint: %s line %d: %s is not set\n", FILENAME, FNR, name > "/dev/stderr"
                    failed = 1
                }
                out = out substr(line, 1, RSTART - 1) ENVIRON[name]
                line = substr(line, RSTART + RLENGTH)
            }
            print out line
        }
        END { exit failed }
    ' "$1"
}

# healthcheck [PATH]: one HTTP/1.0 GET to the admin port on loopback, no curl needed.
healthcheck() {
    local path=${1:-/healthz} port=${JUNCTION_ADMIN:-0.0.0.0:8090}
    port=${port##*:}
    local status=""
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
    IFS= read -r -t 5 status <&3 || true
    exec 3<&-
    status=${status%$'\r'}
    if [[ $status =~ ^HTTP/[0-9.]+\ 200( |$) ]]; then
        exit 0
    fi
    echo "junction-entrypoint: GET $path on port $port: ${status:-no answer}" >&2
    exit 1
}

main() {
    case ${1:-} in
        healthcheck)
            shift
            healthcheck "$@"
            ;;
        render)
            derive
            render "${JUNCTION_CONFIG_TEMPLATE:-/etc/junction/junction.toml.tmpl}"
            ;;
        "" | -*)
            derive
            cluster_secret
            admin_token
            local out=${JUNCTION_RENDERED_CONFIG:-/tmp/junction.toml}
            local template=${JUNCTION_CONFIG_TEMPLATE:-/etc/junction/junction.toml.tmpl}
            render "$template" >"$out.tmp" || die "cannot render $out"
            mv -f "$out.tmp" "$out"
            echo "junction-entrypoint: node ${JUNCTION_NODE_ID} advertise ${JUNCTION_ADVERTISE}" \
                "bootstrap ${JUNCTION_BOOTSTRAP} peers ${JUNCTION_PEERS} config $template (as rendered: $out)" >&2
            # junction reads the template itself (it expands ${NAME} from the exported
            # environment the same way), so it re-reads the mounted file when a
            # ConfigMap update changes it, or on SIGHUP; the rendered copy is the
            # start's check and a record of what the node started with.
            exec "${JUNCTION_BIN:-junction}" --config "$template" "$@"
            ;;
        *)
            exec "$@"
            ;;
    esac
}

main "$@"
