#!/usr/bin/env bash
# Regenerates include/webpubsub_client.h from src/ffi with cbindgen (pinned 0.29.4, a build
# dependency behind the `gen-header` feature), then checks it compiles as C99 and C++ and
# exports only wps_*/WPS_* names.
#   scripts/gen-header.sh          regenerate
#   scripts/gen-header.sh --check  fail if the committed header is out of date
set -euo pipefail
cd "$(dirname "$0")/.."

out=include/webpubsub_client.h
mode=${1:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The build script writes the header where WPS_HEADER_OUT points. Touching build.rs makes it
# run even when nothing else changed.
touch build.rs
WPS_HEADER_OUT="$tmp/webpubsub_client.h" cargo check -q -p webpubsub-client --features gen-header
[ -s "$tmp/webpubsub_client.h" ] || { echo "gen-header: no header generated" >&2; exit 1; }

# Only wps_*/WPS_* functions may be declared.
exported=$(grep -vE '^\s*(/\*|\*)' "$tmp/webpubsub_client.h" \
  | grep -oE '\b[A-Za-z_][A-Za-z0-9_]*\s*\(' | tr -d ' (' | sort -u \
  | grep -vE '^(wps_.*|WPS_.*|defined|sizeof|__attribute__|void)$' || true)
# Macros, typedefs and structs are WPS_* / wps_* too.
macros=$(grep -oE '^#define [A-Za-z_][A-Za-z0-9_]*' "$tmp/webpubsub_client.h" | awk '{print $2}' | grep -v '^WPS_' || true)
types=$( (grep -E '^typedef .*\(\*' "$tmp/webpubsub_client.h" | sed -E 's/.*\(\*([A-Za-z_][A-Za-z0-9_]*)\).*/\1/'
          grep -E '^typedef [^(]*;$' "$tmp/webpubsub_client.h" | sed -E 's/.* ([A-Za-z_][A-Za-z0-9_]*);$/\1/'
          grep -E '^(typedef )?struct [A-Za-z_]' "$tmp/webpubsub_client.h" | awk '{print ($1 == "typedef") ? $3 : $2}'
          grep -E '^\} [A-Za-z_][A-Za-z0-9_]*;' "$tmp/webpubsub_client.h" | sed -E 's/^\} ([A-Za-z_0-9]*);/\1/') \
  | grep -v '^wps_' || true)
if [ -n "$exported$macros$types" ]; then
  echo "gen-header: non-wps names in the header: $exported $macros $types" >&2
  exit 1
fi

# Header compiles as strict C99 and as C++.
printf '#include "webpubsub_client.h"\nint main(void){return wps_version_number() == WPS_VERSION_NUMBER ? 0 : 1;}\n' > "$tmp/c.c"
gcc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -I "$tmp" "$tmp/c.c"
g++ -x c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only -I "$tmp" "$tmp/c.c"

if [ "$mode" = "--check" ]; then
  if ! cmp -s "$tmp/webpubsub_client.h" "$out"; then
    diff -u "$out" "$tmp/webpubsub_client.h" | head -40 >&2 || true
    echo "gen-header: $out is out of date; run scripts/gen-header.sh" >&2
    exit 1
  fi
  echo "gen-header: $out is up to date"
else
  mkdir -p include
  cp "$tmp/webpubsub_client.h" "$out"
  echo "gen-header: wrote $out"
fi
