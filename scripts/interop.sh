#!/usr/bin/env bash
# Interop run: official Azure Web PubSub SDKs (Python and JS, from their package registries)
# against the local emulator (wps-emulator).
#
#   scripts/interop.sh            install what is missing, build the emulator, run every suite
#   INTEROP_SUITES="python js" scripts/interop.sh    run a subset (python, js, official)
#
# Suites:
#   python   tests/interop/python    our pytest suite driving the official Python SDKs
#   js       tests/interop/js        our node:test suite driving the official JS SDKs (client,
#            server SDK, and the @azure/web-pubsub-express event handler as upstream), and
#            the `wps` CLI together with the official JS client (cli.test.mjs)
#   official the azure-messaging-webpubsubclient 1.1.0 sdist's own tests/ (stand-in
#            devtools_testutils + harness plugin from tests/interop/official_py)
#
# Idempotent: the venv, node_modules and the unpacked sdist live under build/ and
# tests/interop/js/node_modules (both ignored by git) and are reused when up to date.
# Prints one line per suite and a final "N passed, M failed"; exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INTEROP="$ROOT/tests/interop"
BUILD="$ROOT/build/interop"
VENV="$ROOT/build/interop-venv"
SDIST_VERSION="1.1.0"
SDIST_DIR="$BUILD/sdist/azure-messaging-webpubsubclient-$SDIST_VERSION"
LOGS="$BUILD/logs"
SUITES="${INTEROP_SUITES:-python js official}"
SUITE_TIMEOUT_S="${INTEROP_SUITE_TIMEOUT_S:-600}"

started_at=$(date +%s)
mkdir -p "$BUILD" "$LOGS"

log() { printf '[interop] %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------- prerequisites
apt_updated=0
apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        log "missing $*: install it (needs root + apt-get)"
        exit 2
    fi
    if [ "$apt_updated" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

command -v python3 >/dev/null || apt_install python3
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
fi
command -v cargo >/dev/null || { log "cargo is required to build the emulator"; exit 2; }

# ---------------------------------------------------------------------------- python venv
requirements="$INTEROP/python/requirements.txt"
stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "creating Python venv in ${VENV#"$ROOT"/}"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" >&2
    echo "$want" >"$stamp"
fi
PY="$VENV/bin/python"

# ---------------------------------------------------------------------------- node modules
js_stamp="$INTEROP/js/node_modules/.interop-lock.sha256"
js_want=$(sha256sum "$INTEROP/js/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$js_stamp" 2>/dev/null)" != "$js_want" ]; then
    log "installing JS packages (npm ci)"
    (cd "$INTEROP/js" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$js_want" >"$js_stamp"
fi

# ---------------------------------------------------------------------------- official sdist
if [ ! -f "$SDIST_DIR/tests/conftest.py" ]; then
    log "fetching the azure-messaging-webpubsubclient $SDIST_VERSION sdist"
    mkdir -p "$BUILD/sdist"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
        "azure-messaging-webpubsubclient==$SDIST_VERSION" -d "$BUILD/sdist" >&2
    tar -xzf "$BUILD/sdist/azure-messaging-webpubsubclient-$SDIST_VERSION.tar.gz" -C "$BUILD/sdist"
fi

# ---------------------------------------------------------------------------- emulator
log "building wps-emulator, wps and the client library (cargo build --release -p webpubsub-emulator -p wps-cli -p webpubsub-client)"
(cd "$ROOT" && cargo build --release -p webpubsub-emulator -p wps-cli -p webpubsub-client >&2)
EMULATOR="$ROOT/target/release/wps-emulator"
WPS_BIN="$ROOT/target/release/wps"
# Our C library's side of the cross-implementation stream tests: examples/c/stream_listen.c.
# The library's SONAME is libwebpubsub_client.so.0; give the loader that name.
mkdir -p "$BUILD/lib"
ln -sf "$ROOT/target/release/libwebpubsub_client.so" "$BUILD/lib/libwebpubsub_client.so"
ln -sf "$ROOT/target/release/libwebpubsub_client.so" "$BUILD/lib/libwebpubsub_client.so.0"
C_STREAM_LISTEN="$BUILD/stream_listen"
gcc -std=c11 -Wall -Wextra -Werror -O2 -I "$ROOT/include" "$ROOT/examples/c/stream_listen.c" \
    -o "$C_STREAM_LISTEN" -L "$BUILD/lib" -lwebpubsub_client -lpthread -Wl,-rpath,"$BUILD/lib"

ACCESS_KEY="interop-$("$PY" -c 'import secrets; print(secrets.token_hex(24))')"
EMU_OUT="$LOGS/emulator.stdout"
EMU_ERR="$LOGS/emulator.stderr"
emulator_pid=""
stop_emulator() {
    if [ -n "$emulator_pid" ] && kill -0 "$emulator_pid" 2>/dev/null; then
        kill "$emulator_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$emulator_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$emulator_pid" 2>/dev/null || true
    fi
}
trap stop_emulator EXIT

"$EMULATOR" --host 127.0.0.1 --port 0 --access-key "$ACCESS_KEY" >"$EMU_OUT" 2>"$EMU_ERR" &
emulator_pid=$!

CONNECTION_STRING=""
for _ in $(seq 1 300); do
    if [ -s "$EMU_OUT" ] && head -n1 "$EMU_OUT" | grep -q ';$'; then
        CONNECTION_STRING=$(head -n1 "$EMU_OUT")
        break
    fi
    kill -0 "$emulator_pid" 2>/dev/null || break
    sleep 0.1
done
if ! [[ "$CONNECTION_STRING" =~ ^Endpoint=http://127\.0\.0\.1:[0-9]+\;AccessKey=.+\;Version=1\.0\;$ ]]; then
    log "emulator did not print its endpoint line; stdout: $(head -c 300 "$EMU_OUT"); stderr:"
    tail -n 20 "$EMU_ERR" >&2 || true
    echo "0 passed, 1 failed"
    exit 1
fi
log "emulator up (pid $emulator_pid): $CONNECTION_STRING"

# ---------------------------------------------------------------------------- suites
total_passed=0
total_failed=0
summary=()

# junit XML -> "passed failed" (errors count as failed, skips are reported apart)
junit_counts() {
    "$PY" - "$1" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 0 0"); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
k = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - k, f, k)
PYEOF
}

record() { # suite passed failed skipped exit_code seconds
    local name=$1 passed=$2 failed=$3 skipped=$4 rc=$5 secs=$6
    if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
        failed=1 # the runner failed without reporting a failing test (crash, timeout, no tests)
    fi
    if [ $((passed + failed)) = 0 ]; then
        failed=1 # ran no test
    fi
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    summary+=("$(printf '%-9s %3d passed, %d failed, %d skipped (exit %s, %ss)' "$name" "$passed" "$failed" "$skipped" "$rc" "$secs")")
}

run_python() {
    local t0=$SECONDS rc=0 junit="$LOGS/python.xml"
    rm -f "$junit"
    (cd "$INTEROP/python" &&
        WPS_CONNECTION_STRING="$CONNECTION_STRING" \
            PYTHONPATH="$INTEROP/official_py:$INTEROP/python:$ROOT/bindings/python" \
            timeout "$SUITE_TIMEOUT_S" "$PY" -m pytest -p sdk_harness -q -rfE \
            --junitxml="$junit" .) || rc=$?
    read -r p f k < <(junit_counts "$junit")
    record python "$p" "$f" "$k" "$rc" $((SECONDS - t0))
}

run_js() {
    local t0=$SECONDS rc=0 tap="$LOGS/js.tap" serial=()
    rm -f "$tap"
    # one test file at a time where node supports choosing (node >= 20.10; older nodes, such as
    # Debian's 18, run files in parallel, which the suite also tolerates: every test has its own hub)
    if node --test-concurrency=1 -e 0 >/dev/null 2>&1; then serial=(--test-concurrency=1); fi
    (cd "$INTEROP/js" &&
        WPS_CONNECTION_STRING="$CONNECTION_STRING" WPS_EMULATOR_BIN="$EMULATOR" WPS_BIN="$WPS_BIN" \
            WPS_C_STREAM_LISTEN="$C_STREAM_LISTEN" \
            timeout "$SUITE_TIMEOUT_S" \
            node --test "${serial[@]}" \
            --test-reporter=spec --test-reporter-destination=stderr \
            --test-reporter=tap --test-reporter-destination="$tap" \
            client.test.mjs server.test.mjs recovery.test.mjs keepalive.test.mjs upstream.test.mjs \
            streaming.test.mjs streams-cross.test.mjs cli.test.mjs) || rc=$?
    local p f k
    p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" 2>/dev/null | tail -n1)
    f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" 2>/dev/null | tail -n1)
    k=$(sed -n 's/^# skipped \([0-9]*\)$/\1/p' "$tap" 2>/dev/null | tail -n1)
    record js "${p:-0}" "${f:-0}" "${k:-0}" "$rc" $((SECONDS - t0))
}

run_official() {
    local t0=$SECONDS rc=0 junit="$LOGS/official.xml"
    rm -f "$junit"
    (cd "$SDIST_DIR" &&
        WEBPUBSUBCLIENT_CONNECTION_STRING="$CONNECTION_STRING" \
            PYTHONPATH="$INTEROP/official_py/stubs:$INTEROP/official_py" \
            timeout "$SUITE_TIMEOUT_S" "$PY" -m pytest -p sdk_harness -q -rfE \
            -o asyncio_mode=auto -o asyncio_default_fixture_loop_scope=function \
            -W ignore::DeprecationWarning \
            --junitxml="$junit" tests/) || rc=$?
    read -r p f k < <(junit_counts "$junit")
    record official "$p" "$f" "$k" "$rc" $((SECONDS - t0))
}

for suite in $SUITES; do
    log "running suite: $suite"
    case "$suite" in
        python) run_python >&2 ;;
        js) run_js >&2 ;;
        official) run_official >&2 ;;
        *) log "unknown suite $suite"; record "$suite" 0 1 0 2 0 ;;
    esac
done

stop_emulator
if grep -qi 'panicked' "$EMU_ERR" 2>/dev/null; then
    log "the emulator panicked during the run (see ${EMU_ERR#"$ROOT"/})"
    total_failed=$((total_failed + 1))
    summary+=("emulator  panicked (counted as 1 failure)")
fi

echo
echo "interop summary (logs in ${LOGS#"$ROOT"/}, wall time $(($(date +%s) - started_at))s):"
for line in "${summary[@]}"; do echo "  $line"; done
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" = 0 ]
