#!/usr/bin/env bash
# Profiles behind the findings in BENCHMARKS.md (run bench/run.sh --quick first: it builds everything).
# perf needs hardware counters (`perf stat -e instructions true`); where they are missing (VMs),
# valgrind is used:
#   callgrind  C bench, msg scenario (5,000 fire-and-forget 64 B)      -> c_ff.callgrind
#   massif     C bench, idle scenario (201 clients)                     -> c_idle.massif
#   strace -c  C / Rust / raw, 20,000 fire-and-forget 64 B              -> strace_<impl>.txt
#   callgrind  wps-emulator while the raw client runs the msg scenario  -> emulator.callgrind
# Output in build/bench/profile/; read with callgrind_annotate [--inclusive=yes] / ms_print.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/build/bench/profile"
TOOLS="$ROOT/bench/tools"
mkdir -p "$OUT"
cd "$OUT"
for tool in valgrind strace taskset; do
    command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool/taskset/util-linux}" >&2
done

emulator_pid=""
stop_emulator() { [ -z "$emulator_pid" ] || kill "$emulator_pid" 2>/dev/null || true; emulator_pid=""; }
trap stop_emulator EXIT
start_emulator() { # [wrapper...]
    : >"$OUT/emulator.out"
    "$@" "$ROOT/target/release/wps-emulator" --port 0 >"$OUT/emulator.out" 2>"$OUT/emulator.err" &
    emulator_pid=$!
    for _ in $(seq 1 300); do
        grep -q '^Endpoint=' "$OUT/emulator.out" && break
        sleep 0.1
    done
    CS=$(head -n1 "$OUT/emulator.out")
    export WPS_CONNECTION_STRING="$CS"
}
with_hub() { # hub cmd...
    local hub=$1
    shift
    BENCH_URL=$(python3 -c "import sys; sys.path.insert(0, '$TOOLS'); import emulator; print(emulator.client_access_url('$CS', '$hub'))") \
        BENCH_DROP_CMD="python3 $TOOLS/emu_drop.py $hub" "$@"
}

C="$ROOT/build/bench/wps-bench-c"
R="$ROOT/target/release/wps-bench"
FF="ff_count=20000 ff4k_count=10 ack_count=10 pipe_count=10 rtt_count=10"

start_emulator taskset -c 1
with_hub p1 valgrind -q --tool=callgrind --callgrind-out-file=c_ff.callgrind \
    "$C" c msg ff_count=5000 ff4k_count=10 ack_count=10 pipe_count=10 rtt_count=10
with_hub p2 valgrind -q --tool=massif --massif-out-file=c_idle.massif "$C" c idle steps=1,201
with_hub p3 strace -f -c -o strace_c.txt "$C" c msg $FF
with_hub p4 strace -f -c -o strace_rust.txt "$R" rust msg $FF
with_hub p5 strace -f -c -o strace_raw.txt "$R" raw msg $FF
stop_emulator

start_emulator valgrind -q --tool=callgrind --callgrind-out-file="$OUT/emulator.callgrind"
with_hub p6 "$R" raw msg ff_count=20000 ff4k_count=2000 ack_count=2000 pipe_count=5000 rtt_count=1000
callgrind_control -d "$emulator_pid" >/dev/null
stop_emulator
echo "profiles in ${OUT#"$ROOT"/}: $(ls "$OUT" | tr '\n' ' ')"
