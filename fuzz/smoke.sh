#!/usr/bin/env bash
# Smoke run of every fuzz target: builds them (cargo-fuzz, libFuzzer) and runs each for
# a short time over its seed corpus in fuzz/corpus/<target>. New inputs go to a
# scratch directory, so the committed corpus stays small.
#
#   fuzz/smoke.sh            # 20 s per target
#   fuzz/smoke.sh 60         # 60 s per target
#   FUZZ_RUNS=100000 fuzz/smoke.sh   # a fixed number of runs per target instead
#
# Needs cargo-fuzz (installed from crates.io when missing). No sanitizer (-s none): the
# code is safe Rust, the checks are panics, debug assertions and overflow checks, and
# a stable toolchain builds it as is (RUSTC_BOOTSTRAP=1 is set only for runs with
# `-s address`, whose -Z flag stable rustc refuses otherwise).
# Exits non-zero when a target finds a crash; its reproducer is in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-20}"
targets=(decode_json decode_msgpack decode_cbor rawsocket_frames session_sequence websocket_frames)
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo fuzz build -s none

limit=(-max_total_time="$secs")
if [[ -n "${FUZZ_RUNS:-}" ]]; then
    limit=(-runs="$FUZZ_RUNS")
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
passed=0
failed=0
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    if cargo fuzz run -s none "$t" "$scratch/$t" "corpus/$t" -- "${limit[@]}" -print_final_stats=1 >"$log" 2>&1; then
        runs="$(grep -m1 '^stat::number_of_executed_units' "$log" | awk '{print $2}')"
        rate="$(grep -m1 '^stat::average_exec_per_sec' "$log" | awk '{print $2}')"
        echo "fuzz $t: ok, ${runs:-?} runs, ${rate:-?} exec/s"
        passed=$((passed + 1))
    else
        echo "fuzz $t: FAILED"
        tail -n 40 "$log"
        failed=$((failed + 1))
    fi
done
echo "fuzz smoke: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
