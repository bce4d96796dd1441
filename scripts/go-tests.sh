#!/usr/bin/env bash
# Go module (bindings/go): gofmt, vet, `go test -race` against a wps-emulator started by the
# tests, the same tests under -asan with a LeakSanitizer check of the C heap after every
# client is closed, and the example program against its own emulator.
#
#   scripts/go-tests.sh              build what is missing (release library and emulator), run
#   scripts/go-tests.sh --no-build   use target/release as it is
#
# cgo finds the header and library through CGO_CFLAGS / CGO_LDFLAGS set here; the library's
# SONAME (libwebpubsub_client.so.0) is linked into build/go/lib, which the binaries' rpath names.
# No module is downloaded: the package uses the standard library only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

command -v go >/dev/null || { echo "go-tests: the go toolchain is missing (scripts/setup.sh installs golang-go)" >&2; exit 2; }
if [ "${1:-}" != "--no-build" ]; then
  cargo build --release --lib -p webpubsub-client >&2
  cargo build --release -p webpubsub-emulator >&2
fi
lib="$ROOT/build/go/lib"
mkdir -p "$lib"
ln -sf "$ROOT/target/release/libwebpubsub_client.so" "$lib/libwebpubsub_client.so"
ln -sf "$ROOT/target/release/libwebpubsub_client.so" "$lib/libwebpubsub_client.so.0"

export CGO_ENABLED=1
export CGO_CFLAGS="-I$ROOT/include"
export CGO_LDFLAGS="-L$lib -Wl,-rpath,$lib"
export GOPROXY=off GOTOOLCHAIN=local GOFLAGS=
export GOCACHE="${GOCACHE:-$ROOT/build/go/cache}"
export WPS_EMULATOR_BIN="$ROOT/target/release/wps-emulator"

cd bindings/go
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then echo "go-tests: not gofmt-formatted: $unformatted" >&2; exit 1; fi
go vet ./...
go test -race -count=1 ./...
# Again under AddressSanitizer: after every client is closed, LeakSanitizer checks that no C
# memory became unreachable (TestMain; WPS_GO_LEAK_SELFTEST=1 leaks on purpose to show it works).
mkdir -p "$ROOT/build/go"
asan_log="$ROOT/build/go/asan.log"
if ! go test -asan -count=1 -v . >"$asan_log" 2>&1; then
  grep -v '^\[' "$asan_log" | tail -n 60 >&2
  echo "go-tests: the -asan run failed (log: ${asan_log#"$ROOT"/})" >&2
  exit 1
fi
grep -q '^LeakSanitizer: no C memory leaked' "$asan_log" || { echo "go-tests: no leak check ran under -asan" >&2; exit 1; }
echo "go-tests: -asan: $(grep -c '^--- PASS' "$asan_log") tests passed; LeakSanitizer: no C memory leaked"

# The example against an emulator of its own.
out="$ROOT/build/go/example"
mkdir -p "$out"
"$WPS_EMULATOR_BIN" --host 127.0.0.1 --port 0 >"$out/emulator.out" 2>"$out/emulator.err" &
emu=$!
trap 'kill $emu 2>/dev/null || true' EXIT
cs=""
for _ in $(seq 1 300); do
  if [ -s "$out/emulator.out" ] && head -n1 "$out/emulator.out" | grep -q ';$'; then cs=$(head -n1 "$out/emulator.out"); break; fi
  kill -0 $emu 2>/dev/null || break
  sleep 0.1
done
[ -n "$cs" ] || { echo "go-tests: the emulator did not start" >&2; cat "$out/emulator.err" >&2; exit 1; }
WPS_CONNECTION_STRING="$cs" timeout 60 go run ./examples/chat | tee "$out/output.txt"
grep -q "^received .*hello from Go" "$out/output.txt"
echo "go-tests: ok"
