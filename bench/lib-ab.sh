#!/usr/bin/env bash
# A/B of two builds of the C library on scenario `msg` of bench/c/bench.c: the same bench
# program, run against library A and library B in alternating order for ROUNDS rounds, against
# one wps-emulator pinned to CPU 0 (the clients run on CPU 1). Prints every round and the
# medians of acked_seq, acked_pipe, ff_64 and rtt_p99.
#
#   bench/lib-ab.sh DIR_A DIR_B [ROUNDS] [key=value ...]
#
# DIR_A and DIR_B each hold a libwebpubsub_client.so (e.g. copies of target/release from two
# commits). Needs target/release/wps-emulator (cargo build --release -p webpubsub-emulator).
set -euo pipefail
cd "$(dirname "$0")/.."
a=$1 b=$2 rounds=${3:-5}
shift $(( $# < 3 ? $# : 3 ))
work=$(mktemp -d)
trap 'kill $emu 2>/dev/null; rm -rf "$work"' EXIT
for d in "$a" "$b"; do ln -sf "$(realpath "$d")/libwebpubsub_client.so" "$d/libwebpubsub_client.so.0" 2>/dev/null || true; done
gcc -O2 -std=gnu11 -I include bench/c/bench.c -o "$work/bench" -L "$a" -lwebpubsub_client -lpthread -lm
taskset -c 0 target/release/wps-emulator --port 0 >"$work/emu.out" 2>&1 &
emu=$!
for _ in $(seq 100); do grep -q 'Endpoint=' "$work/emu.out" && break; sleep 0.05; done
export WPS_TEST_CONNSTR=$(grep -o 'Endpoint=[^ ]*' "$work/emu.out" | head -1)
params=(ff_count=50000 ack_count=2000 pipe_count=50000 rtt_count=500 ff4k_count=1000 "$@")
for r in $(seq "$rounds"); do
  for side in A B; do
    dir=$a; [ "$side" = B ] && dir=$b
    url=$(python3 tests/c/wps_tool.py url abhub --role webpubsub.joinLeaveGroup --role webpubsub.sendToGroup)
    BENCH_URL="$url" LD_LIBRARY_PATH="$dir" taskset -c 1 "$work/bench" c msg "${params[@]}" 2>/dev/null |
      python3 -c '
import json, sys
for line in sys.stdin:
    try: d = json.loads(line)
    except ValueError: continue
    if d.get("metric") in ("ff_64", "acked_seq", "acked_pipe", "rtt_p99"):
        print(sys.argv[1], sys.argv[2], d["metric"], d["value"])' "$side" "$r"
  done
done | tee "$work/rounds.txt"
python3 - "$work/rounds.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for metric in ("ff_64", "acked_seq", "acked_pipe", "rtt_p99"):
    med = {s: statistics.median(float(v) for side, _, m, v in rows if side == s and m == metric) for s in "AB"}
    print(f"median {metric}: A {med['A']:.1f}  B {med['B']:.1f}  B/A {med['B'] / med['A']:.2f}")
PY
