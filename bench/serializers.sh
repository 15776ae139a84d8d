#!/usr/bin/env bash
# RPC through a lone node per serializer, two router binaries side by side in one run
# (issue #16's payload passthrough, CBOR included): `junction-bench rpc` at 128 in
# flight with a small and a 4 KiB payload, alternating base and new ROUNDS times.
# Prints calls/s and calls per router CPU-second, and new/base per serializer.
#   BASE_BIN (required: the binary to compare with), SERIALIZERS ("json msgpack cbor"),
#   PAYLOADS ("64 4096"), DURATION (4), WARMUP (1), ROUNDS (2), NO_BUILD=1
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASE_BIN:?set BASE_BIN to the router binary to compare with}"
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-2}
OUT=target/bench/serializers-$(date -u +%Y-%m-%dT%H%M%SZ).jsonl
mkdir -p target/bench
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin junction --bin junction-bench
# shellcheck source=bench/nodes.sh
. bench/nodes.sh
printf "$NODE" > "$DIR/lone.toml"
JUNCTION_BIN=$BASE_BIN start base "$DIR/lone.toml"
JUNCTION_BIN=target/release/junction start new "$DIR/lone.toml"
for _ in $(seq "$ROUNDS"); do
  for ser in ${SERIALIZERS:-json msgpack cbor}; do
    for size in ${PAYLOADS:-64 4096}; do
      for b in base new; do
        url=WS_$b; pid=PID_$b
        target/release/junction-bench rpc --url "${!url}" --router-pid "${!pid}" --serializer "$ser" \
          --payload "$size" --inflight 128 --duration "$DURATION" --warmup "$WARMUP" \
          --label "$b/$ser/$size" --quiet | grep '^RESULT' | sed 's/^RESULT //' | tee -a "$OUT" >/dev/null
      done
    done
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r)
def mean(label, key):
    return statistics.mean(r[key] for r in by[label])
print(f"{'serializer/payload':20} {'base calls/s':>12} {'new calls/s':>12} {'base /CPU-s':>12} {'new /CPU-s':>12} {'new/base /CPU-s':>15}")
for label in sorted({l.split('/', 1)[1] for l in by}):
    b, n = f"base/{label}", f"new/{label}"
    print(f"{label:20} {mean(b, 'rate'):>12,.0f} {mean(n, 'rate'):>12,.0f} {mean(b, 'per_cpu_s'):>12,.0f} "
          f"{mean(n, 'per_cpu_s'):>12,.0f} {mean(n, 'per_cpu_s') / mean(b, 'per_cpu_s'):>15.2f}")
print(f"results: {sys.argv[1]}")
PY
