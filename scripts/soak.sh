#!/usr/bin/env bash
# Soak: 1,000 clients in one process (tests/chaos/soak_client.c) through wps-fault-proxy in
# front of wps-emulator, with churn, group joins, acked traffic, periodic reset-all and latency
# windows; samples threads, fds and RSS and reports the RSS slope (tests/chaos/soak.py
# documents the limits). The report goes to build/soak-report.md.
#
#   scripts/soak.sh [--minutes N] [--clients N] [--no-build]
#
# Default: the CI form, 3 minutes. --no-build skips the cargo build.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. tests/chaos/build.sh

chaos_args "--minutes --clients" "$@"
out=$repo/build/soak
chaos_build "$build" "$out" soak_client
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
  echo "soak: RLIMIT_NOFILE is $(ulimit -n); 1,000 clients need at least 4096" >&2
  exit 1
fi

exec python3 tests/chaos/soak.py --bin "$repo/target/release" --soak-client "$out/soak_client" --out "$out" \
  --report "$repo/build/soak-report.md" "${args[@]}"
