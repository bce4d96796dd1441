#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of the client and the emulator (cargo fuzz, libFuzzer,
# AddressSanitizer). Each target starts from the seeds checked in under fuzz/corpus/<target>
# (copied, so runs never change them) and runs for a bounded time; a crash, a leak, a timeout or
# a disagreement between two decoders fails the run and leaves the input in
# fuzz/artifacts/<target>/, to be turned into a regression test.
#
#   scripts/fuzz.sh                    every target, 20 s each (what CI runs)
#   scripts/fuzz.sh --seconds 600      a longer run
#   scripts/fuzz.sh json_downstream    one target
#
# The machines have the stable toolchain only: cargo fuzz needs nightly flags (sanitizers), which
# RUSTC_BOOTSTRAP=1 allows on stable. cargo-fuzz is installed once (cargo install) and reused.
# Prints one line per target (executions, findings) and "N passed, M failed" last.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=20
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done

export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (once)"
  cargo install cargo-fuzz --locked --version 0.13.2 || { echo "0 passed, 1 failed"; exit 1; }
fi
cd fuzz
if ! cargo fuzz build -O >build.log 2>&1; then
  tail -30 build.log
  echo "0 passed, 1 failed"
  exit 1
fi
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0; failed=0
report=$root/build/fuzz-report.md
mkdir -p "$root/build"
echo "| target | executions | seconds | corpus | findings |" >"$report"
echo "|---|---:|---:|---:|---:|" >>"$report"
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "artifacts/$t"
  cp corpus/"$t"/* "$work/$t"/ 2>/dev/null || true
  log=$work/$t.log
  # -timeout: one input taking longer is a hang; -rss_limit_mb bounds memory per input.
  cargo fuzz run -O "$t" "$work/$t" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  corpus=$(ls "$work/$t" | wc -l)
  findings=$(ls "artifacts/$t" 2>/dev/null | wc -l)
  echo "| $t | ${execs:-0} | $seconds | $corpus | $findings |" >>"$report"
  if [ "$rc" -eq 0 ] && [ "$findings" -eq 0 ]; then
    echo "fuzz $t: ${execs:-0} executions in ${seconds} s, corpus $corpus, no findings"
    passed=$((passed + 1))
  else
    echo "fuzz $t: FAILED (exit $rc, findings in fuzz/artifacts/$t):"
    grep -E 'ERROR|panicked|SUMMARY|Test unit written' "$log" | head -10
    failed=$((failed + 1))
  fi
done
echo "report: $report"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
