#!/usr/bin/env bash
# Chaos suite: publishers and subscribers (C ABI and Python package, reliable JSON and
# protobuf; some publishers with the offline queue) through wps-fault-proxy in front of
# wps-emulator, under a seeded schedule of network and service faults (service restarts
# included); an oracle checks delivery, order, duplicates, session-lost signals, completions
# and resources (tests/chaos/chaos.py documents what). The report goes to build/chaos-report.md.
#
#   scripts/chaos.sh [--minutes N] [--seed S] [--no-build]
#
# Defaults: the CI form (2 minutes, a fixed seed). The seed is printed; the same seed replays
# the same fault schedule. --no-build skips the cargo build (for a tree built already).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. tests/chaos/build.sh

chaos_args "--minutes --seed" "$@"
out=$repo/build/chaos
chaos_build "$build" "$out" chaos_client

echo "--- python package (venv build/python-venv)"
venv=${WPS_PY_VENV:-$repo/build/python-venv}
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
fi
WPS_SKIP_CARGO=1 "$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
  ./bindings/python

exec python3 tests/chaos/chaos.py --bin "$repo/target/release" --c-client "$out/chaos_client" \
  --python "$venv/bin/python" --out "$out" --report "$repo/build/chaos-report.md" "${args[@]}"
