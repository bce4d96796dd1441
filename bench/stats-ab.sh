#!/usr/bin/env bash
# Statistics A/B: the C ABI's fire-and-forget (64 B), acked blocking and acked pipelined phases
# of scenario `msg`, in rounds of three arms (scenario `stats` of bench/c/bench.c): no extra
# thread, a thread that only wakes at ~1 kHz, and a thread calling wps_client_get_stats on both
# clients at ~1 kHz; against one wps-emulator on its own core (as bench/run.sh), the client
# process on the other. Prints one JSON line per figure: the median msg/s of each phase per arm
# (`*_no_thread`, `*_wake_1khz`, `*_stats_1khz`) and the ratios `*_ratio_stats_vs_none` and
# `*_ratio_stats_vs_wake` (1.0 = no cost). See BENCHMARKS.md.
#
#   bench/stats-ab.sh [key=value ...]   e.g. rounds=9 ff_count=50000 pipe_count=20000
#
# Needs the release build (cargo build --release -p webpubsub-client -p webpubsub-emulator).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/build/bench"
mkdir -p "$OUT/lib"
ln -sf "$ROOT/target/release/libwebpubsub_client.so" "$OUT/lib/libwebpubsub_client.so.0"
cc -O2 -Wall -Wextra -Werror -std=c11 -I"$ROOT/include" "$ROOT/bench/c/bench.c" -o "$OUT/wps-bench-c" \
    -L"$ROOT/target/release" -lwebpubsub_client -Wl,-rpath,"$OUT/lib" -lpthread
pin_emu=() pin_client=()
if [ "$(nproc)" -gt 1 ] && command -v taskset >/dev/null; then
    pin_emu=(taskset -c 1) pin_client=(taskset -c 0)
fi
exec 3< <(exec "${pin_emu[@]}" "$ROOT/target/release/wps-emulator" --port 0 2>"$OUT/stats-ab-emulator.log")
emu_pid=$!
trap 'kill $emu_pid 2>/dev/null; wait 2>/dev/null' EXIT
read -r -t 20 -u 3 connstr || { echo "the emulator did not start" >&2; exit 1; }
export WPS_TEST_CONNSTR=$connstr
url=$(python3 "$ROOT/tests/c/wps_tool.py" url bench --user bench --role webpubsub.joinLeaveGroup \
    --role webpubsub.sendToGroup)
BENCH_URL=$url "${pin_client[@]}" "$OUT/wps-bench-c" c stats "$@"
