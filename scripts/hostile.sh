#!/usr/bin/env bash
# The scripted hostile service against every binding: builds the release library, then runs
# tests/hostile/run.py (the service, the C / C-under-ASan / C++ / Python drivers, every case).
# Prints one PASS/FAIL line per (case, binding) and "N passed, M failed" last; writes the
# observed behaviour per case to build/hostile-report.md. Exits non-zero on any failure.
#
#   scripts/hostile.sh [--no-build] [run.py options: --cases a,b --bindings c,python --jobs N --repeat N]
set -uo pipefail
cd "$(dirname "$0")/.."

build=1
args=()
for a in "$@"; do
  case $a in
    --no-build) build=0 ;;
    *) args+=("$a") ;;
  esac
done

need_apt=()
command -v gcc >/dev/null || need_apt+=(gcc)
command -v g++ >/dev/null || need_apt+=(g++)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v python3 >/dev/null || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "hostile: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null; } ||
    { echo "hostile: apt-get install ${need_apt[*]} failed"; echo "0 passed, 1 failed"; exit 1; }
fi

if [ "$build" = 1 ]; then
  cargo build --release -p webpubsub-client || { echo "0 passed, 1 failed"; exit 1; }
fi
exec python3 tests/hostile/run.py "${args[@]}"
