# Sourced by scripts/chaos.sh and scripts/soak.sh (from the repository root):
#   chaos_args "OPTION..." "$@"
# sets `build` (0 after --no-build, else 1) and the array `args` (each listed option with its
# value, passed on to the orchestrator); anything else prints the usage and exits with 2.
#   chaos_build BUILD OUT PROGRAM...
# runs the release cargo build of the library, the emulator and the fault proxy unless BUILD is
# 0, and compiles each tests/chaos/PROGRAM.c against the .so (the C tests' flags) into OUT.
chaos_build() {
  local build=$1 out=$2 prog
  shift 2
  if [ "$build" = 1 ]; then
    echo "--- cargo build --release -p webpubsub-client -p webpubsub-emulator -p wps-fault-proxy"
    cargo build --release -p webpubsub-client -p webpubsub-emulator -p wps-fault-proxy
  fi
  mkdir -p "$out/lib"
  # The .so carries the SONAME libwebpubsub_client.so.0; give the loader that name.
  ln -sf "$PWD/target/release/libwebpubsub_client.so" "$out/lib/libwebpubsub_client.so"
  ln -sf "$PWD/target/release/libwebpubsub_client.so" "$out/lib/libwebpubsub_client.so.0"
  for prog in "$@"; do
    echo "--- build tests/chaos/$prog.c"
    gcc -std=c11 -Wall -Wextra -Werror -g -O1 -I include "tests/chaos/$prog.c" -o "$out/$prog" \
      -L "$out/lib" -lwebpubsub_client -lpthread -Wl,-rpath,"$out/lib"
  done
  # Descriptors: the emulator and a 1,000-client process need several thousand.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

chaos_args() {
  local options=$1 usage
  shift
  usage="usage: $0 $(printf '[%s N] ' $options)[--no-build]"
  args=()
  build=1
  while [ $# -gt 0 ]; do
    if [ "$1" = --no-build ]; then
      build=0; shift
    elif [[ " $options " == *" $1 "* ]] && [ $# -ge 2 ]; then
      args+=("$1" "$2"); shift 2
    else
      echo "$usage" >&2; exit 2
    fi
  done
}
