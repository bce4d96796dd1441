#!/usr/bin/env bash
# CI smoke check of the benchmark harness: bench/run.sh --quick --tiny (one run, tiny counts).
# Fails when any implementation errors out (crash, timeout, no output); never asserts on a
# figure. Budget: under 3 minutes including the installs on a warm cargo cache.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
started=$(date +%s)
status=0
timeout 600 "$ROOT/bench/run.sh" --quick --tiny || status=$?
echo "bench smoke: exit $status after $(($(date +%s) - started)) s (results in build/bench/results-tiny)"
exit "$status"
