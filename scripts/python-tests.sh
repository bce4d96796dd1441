#!/usr/bin/env bash
# Python binding: builds the native library and the emulator, installs the webpubsub_client
# package into a venv under build/, builds a wheel and checks its tag, then runs the pytest
# suite (bindings/python/tests) against the installed package and a wps-emulator.
#
# Environment: PYTHON (default python3), PYTEST_ARGS (extra pytest arguments, e.g. "-k aio"),
# WPS_PY_VENV (default build/python-venv).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
python=${PYTHON:-python3}
venv=${WPS_PY_VENV:-$repo/build/python-venv}

step() { echo "--- $*"; }

step "venv $venv"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
vpy="$venv/bin/python"
"$vpy" -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
"$vpy" -m pip install -q --disable-pip-version-check \
  pytest pytest-asyncio pytest-timeout aiohttp mypy ruff \
  azure-messaging-webpubsubservice==1.3.0 azure-messaging-webpubsubclient==1.1.0

step "cargo build --release -p webpubsub-client -p webpubsub-emulator"
cargo build --release -p webpubsub-client -p webpubsub-emulator

step "pip install ./bindings/python"
WPS_SKIP_CARGO=1 "$vpy" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps ./bindings/python
installed=$(cd /tmp && "$vpy" -c "import webpubsub_client, os; print(os.path.dirname(webpubsub_client.__file__))")
case "$installed" in
  "$venv"/*) echo "installed at $installed" ;;
  *) echo "webpubsub_client resolves to $installed, not the venv" >&2; exit 1 ;;
esac
test -f "$installed/_lib/libwebpubsub_client.so" || { echo "native library not inside the installed package" >&2; exit 1; }
(cd /tmp && "$vpy" -m webpubsub_client --version)

step "pip wheel ./bindings/python"
wheel_dir="$repo/build/python-wheel"
rm -rf "$wheel_dir"
WPS_SKIP_CARGO=1 "$vpy" -m pip wheel -q --disable-pip-version-check --no-deps -w "$wheel_dir" ./bindings/python
wheel=$(ls "$wheel_dir"/*.whl)
echo "built $(basename "$wheel")"
case "$(basename "$wheel")" in
  webpubsub_client-*-py3-none-linux_*.whl|webpubsub_client-*-py3-none-manylinux*.whl) ;;
  *) echo "unexpected wheel tag: $(basename "$wheel")" >&2; exit 1 ;;
esac
"$vpy" - "$wheel" <<'PY' || { echo "the wheel lacks the native library" >&2; exit 1; }
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
sys.exit(0 if "webpubsub_client/_lib/libwebpubsub_client.so" in names else 1)
PY

step "type check and lint (mypy, ruff)"
cd "$repo/bindings/python"
"$venv/bin/mypy" --ignore-missing-imports webpubsub_client
"$venv/bin/ruff" check --line-length 120 --select E,F,W,B webpubsub_client bench setup.py

step "pytest"
# shellcheck disable=SC2086
"$venv/bin/pytest" -p no:cacheprovider -q ${PYTEST_ARGS:-} tests
