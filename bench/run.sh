#!/usr/bin/env bash
# Benchmarks of this repository's clients next to the official Python and JS clients and a raw
# tokio-tungstenite client, all against one wps-emulator process (see BENCHMARKS.md).
#
#   bench/run.sh            full: 5 runs of every implementation; writes bench/results/
#                           (results.md, results.json, chart.png) and the table in BENCHMARKS.md
#   bench/run.sh --quick    1 run with small counts; writes build/bench/results-quick/
#   bench/run.sh --quick --tiny   tiny counts (CI smoke, scripts/bench-smoke.sh)
#   BENCH_IMPLS=c,official-js bench/run.sh --quick   a subset
#   BENCH_SCENARIOS=stream bench/run.sh   some scenarios only (writes build/bench/results-full-stream/)
#   BENCH_NO_WAN=1 bench/run.sh   without the WAN profile (msg and connect again through
#                           wps-fault-proxy with 20 and 80 ms added round trip, 100 Mbit/s)
#
# Scenarios: msg, idle, connect (plain JSON), reliable (json.reliable.webpubsub.azure.v1:
# fire-and-forget, acked pipelined, 1 -> N fan-out; delivered msg/s, loss, 1008 cut-offs),
# stream (group stream fragments/s, one publisher to one subscriber; C ABI, Rust API, official JS),
# and the WAN profile. Every program's CPU (user+sys) per message of its msg scenario is
# reported as cpu_us_per_msg, per fragment of its stream scenario as cpu_us_per_frag.
#
# Builds in release (cargo: webpubsub-client, webpubsub-emulator, wps-bench, wps-fault-proxy;
# gcc: the C bench),
# creates build/bench-venv (official Python SDKs) and bench/js/node_modules (official
# JS SDK) when missing or out of date. Exits non-zero when any implementation fails; never
# asserts on a figure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
VENV="$ROOT/build/bench-venv"
OUT="$ROOT/build/bench"
log() { printf '[bench] %s\n' "$*" >&2; }

driver_args=()
tiny=0
for arg in "$@"; do
    case "$arg" in
        --quick) driver_args+=("$arg") ;;
        --tiny) driver_args+=("$arg"); tiny=1 ;;
        -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
        *) log "unknown argument $arg (--quick, --tiny)"; exit 2 ;;
    esac
done
if [ -n "${BENCH_IMPLS:-}" ]; then driver_args+=(--impls "$BENCH_IMPLS"); fi
if [ -n "${BENCH_SCENARIOS:-}" ]; then driver_args+=(--scenarios "$BENCH_SCENARIOS"); fi

# ------------------------------------------------------------------ prerequisites
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
command -v cc >/dev/null || apt_install gcc libc6-dev
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi
command -v taskset >/dev/null || apt_install util-linux
command -v cargo >/dev/null || { log "cargo is required"; exit 2; }

# ------------------------------------------------------------------ build (release)
log "cargo build --release (webpubsub-client, webpubsub-emulator, wps-bench, wps-fault-proxy)"
(cd "$ROOT" && cargo build --release -q -p webpubsub-client -p webpubsub-emulator -p wps-bench -p wps-fault-proxy >&2)
# The library's SONAME is libwebpubsub_client.so.0; the C bench links against
# target/release/libwebpubsub_client.so and finds it at run time through this link.
mkdir -p "$OUT/lib"
ln -sf "$ROOT/target/release/libwebpubsub_client.so" "$OUT/lib/libwebpubsub_client.so.0"
log "cc bench/c/bench.c -> build/bench/wps-bench-c"
cc -O2 -Wall -Wextra -Werror -std=c11 -I"$ROOT/include" "$BENCH/c/bench.c" -o "$OUT/wps-bench-c" \
    -L"$ROOT/target/release" -lwebpubsub_client -Wl,-rpath,"$OUT/lib" -lpthread

# ------------------------------------------------------------------ python venv
want=$(sha256sum "$BENCH/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    log "creating build/bench-venv (official Python SDKs)"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$BENCH/requirements.txt" >&2
    echo "$want" >"$VENV/.requirements.sha256"
fi
chart_want=$(sha256sum "$BENCH/requirements-chart.txt" | cut -d' ' -f1)
if [ "$tiny" = 0 ] && [ "$(cat "$VENV/.chart.sha256" 2>/dev/null)" != "$chart_want" ]; then
    log "installing matplotlib into build/bench-venv (for the chart)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$BENCH/requirements-chart.txt" >&2
    echo "$chart_want" >"$VENV/.chart.sha256"
fi

# ------------------------------------------------------------------ node modules
js_want=$(sha256sum "$BENCH/js/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$BENCH/js/node_modules/.bench-lock.sha256" 2>/dev/null)" != "$js_want" ]; then
    log "installing the official JS SDK (npm ci in bench/js)"
    (cd "$BENCH/js" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$js_want" >"$BENCH/js/node_modules/.bench-lock.sha256"
fi

# ------------------------------------------------------------------ run
exec "$VENV/bin/python" "$BENCH/driver.py" "${driver_args[@]}"
