#!/usr/bin/env bash
# Chaos suite: publishers and subscribers (C ABI and Python package, reliable JSON and
# protobuf) through wps-fault-proxy in front of wps-emulator, under a seeded schedule of
# network and service faults; an oracle checks delivery, order, duplicates, completions and
# resources (tests/chaos/chaos.py documents what). The report goes to build/chaos-report.md.
#
#   scripts/chaos.sh [--minutes N] [--seed S] [--no-build]
#
# Defaults: the CI form (2 minutes, a fixed seed). The seed is printed; the same seed replays
# the same fault schedule. --no-build skips the cargo build (for a tree built already).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

args=()
build=1
while [ $# -gt 0 ]; do
  case $1 in
    --minutes|--seed) args+=("$1" "$2"); shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "usage: scripts/chaos.sh [--minutes N] [--seed S] [--no-build]" >&2; exit 2 ;;
  esac
done

if [ "$build" = 1 ]; then
  echo "--- cargo build --release -p webpubsub-client -p webpubsub-emulator -p wps-fault-proxy"
  cargo build --release -p webpubsub-client -p webpubsub-emulator -p wps-fault-proxy
fi
bin=$repo/target/release
out=$repo/build/chaos
mkdir -p "$out/lib"
# The .so carries the SONAME libwebpubsub_client.so.0; give the loader that name.
ln -sf "$bin/libwebpubsub_client.so" "$out/lib/libwebpubsub_client.so"
ln -sf "$bin/libwebpubsub_client.so" "$out/lib/libwebpubsub_client.so.0"

echo "--- build tests/chaos/chaos_client.c"
gcc -std=c11 -Wall -Wextra -Werror -g -O1 -I include tests/chaos/chaos_client.c -o "$out/chaos_client" \
  -L "$out/lib" -lwebpubsub_client -lpthread -Wl,-rpath,"$out/lib"

echo "--- python package (venv build/python-venv)"
venv=${WPS_PY_VENV:-$repo/build/python-venv}
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
fi
WPS_SKIP_CARGO=1 "$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
  ./bindings/python

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 tests/chaos/chaos.py --bin "$bin" --c-client "$out/chaos_client" --python "$venv/bin/python" \
  --out "$out" --report "$repo/build/chaos-report.md" "${args[@]}"
