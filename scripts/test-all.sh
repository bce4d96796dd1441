#!/usr/bin/env bash
# Runs every check and test of the project, as CI does. Sets up what it needs first.
# Usage: scripts/test-all.sh            (all stages)
#        STAGES="rust c" scripts/test-all.sh   (a subset)
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

ALL_STAGES="lint header rust c interop python cpp go package hostile fuzz chaos bench"
STAGES=${STAGES:-$ALL_STAGES}
passed=0; failed=0; failed_names=()
log_dir=build/test-logs; mkdir -p "$log_dir"

stage_lint()    { cargo fmt --all -- --check && cargo clippy --workspace --all-targets -- -D warnings; }
stage_header()  { bash scripts/gen-header.sh --check; }
stage_rust()    { cargo build --workspace --release && cargo test --workspace; }
stage_c()       { bash scripts/c-tests.sh; }
stage_interop() { bash scripts/interop.sh; }
stage_python()  { bash scripts/python-tests.sh; }
stage_cpp()     { bash scripts/cpp-tests.sh; }
stage_go()      { bash scripts/go-tests.sh; }
stage_package() { bash scripts/package-tests.sh; }
stage_hostile() { bash scripts/hostile.sh; }
stage_fuzz()    { bash scripts/fuzz.sh --seconds 20; }
stage_bench()   { bash scripts/bench-smoke.sh; }
stage_chaos()   { local rc=0; bash scripts/chaos.sh || rc=1; bash scripts/soak.sh --no-build || rc=1; return $rc; }

for s in $STAGES; do
  echo "=== stage $s ==="
  start=$(date +%s)
  if "stage_$s" 2>&1 | tee "$log_dir/$s.log"; then
    passed=$((passed + 1)); echo "=== stage $s: ok ($(( $(date +%s) - start )) s) ==="
  else
    failed=$((failed + 1)); failed_names+=("$s"); echo "=== stage $s: FAILED ($(( $(date +%s) - start )) s), log: $log_dir/$s.log ==="
  fi
done

[ $failed -eq 0 ] || echo "failed stages: ${failed_names[*]}"
echo "stages: $passed passed, $failed failed"
[ $failed -eq 0 ]
