#!/usr/bin/env bash
# The `package` stage: builds every artifact users install and tests each one as they use it.
#
#   C library (cargo-c)  the build commands written in examples/c/quickstart.c, run as written,
#                        and the program they build, against a wps-emulator
#   Python               scripts/build-wheel.sh (manylinux wheel + sdist); the wheel installed
#                        into a fresh venv whose PATH has no cargo, the Python tests run against
#                        it; the sdist built with cargo by pip
#   official suite       azure-messaging-webpubsubclient 1.1.0's own tests against the installed
#                        wheel through tests/interop/ours_py/wps_shim.py (results in
#                        build/pkg/official-suite.md)
#   Debian               scripts/build-debs.sh; dpkg -i, a C program built with pkg-config
#                        against the installed packages, run against the packaged wps-emulator,
#                        dpkg -r
#   Rust crates          cargo package (with its build of the packaged sources) and cargo
#                        publish --dry-run for webpubsub-client and webpubsub-emulator;
#                        cargo doc --no-deps with RUSTDOCFLAGS=-D warnings
# Writes the artifact sizes to build/pkg/sizes.md. Prints "N passed, M failed" last.
# Environment: PKG_SKIP="python official debian crates" skips parts; KEEP_TMP=1 keeps the
# temporary directory.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
out=$repo/build/pkg
mkdir -p "$out"
tmp=$(mktemp -d /tmp/wps-pkg-tests.XXXXXX)
skip=" ${PKG_SKIP:-} "

passed=0 failed=0 failed_names=()
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); failed_names+=("$1"); echo "FAIL $1${2:+: $2}"; }
check() {  # NAME COMMAND...
  local name=$1; shift
  local t0=$SECONDS
  if "$@" >"$tmp/last.log" 2>&1; then
    pass "$name ($((SECONDS - t0)) s)"
    if [ "${VERBOSE:-0}" = 1 ]; then sed 's/^/    /' "$tmp/last.log" | tail -25; fi
  else
    fail "$name ($((SECONDS - t0)) s)"; sed 's/^/    /' "$tmp/last.log" | tail -40
  fi
}
emulators=()
debs_installed=0
cleanup() {
  local pid
  for pid in "${emulators[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  if [ "$debs_installed" = 1 ]; then dpkg -r libwebpubsub-client-dev libwebpubsub-client0 wps-emulator >/dev/null 2>&1; fi
  rm -f "$repo/quickstart"
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "package-tests: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
finish() {
  [ ${#failed_names[@]} -eq 0 ] || echo "failed: ${failed_names[*]}"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
  exit $?
}

# start_emulator BINARY VAR: starts it on a free port, puts its connection string into VAR.
start_emulator() {
  local bin=$1 var=$2 log=$tmp/emulator-$RANDOM
  "$bin" --port 0 >"$log.out" 2>"$log.err" &
  emulators+=($!)
  local pid=$! i line
  for i in $(seq 1 100); do
    line=$(head -n 1 "$log.out" 2>/dev/null)
    case "$line" in Endpoint=*\;) printf -v "$var" '%s' "$line"; return 0 ;; esac
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$bin did not print its connection string"; cat "$log.err"; return 1
}
mint() {  # CONNSTR HUB USER -> client access URL with join/send roles
  WPS_TEST_CONNSTR=$1 python3 tests/c/wps_tool.py url "$2" --user "$3" \
    --role webpubsub.joinLeaveGroup --role webpubsub.sendToGroup
}
size_of() { stat -c %s "$1"; }
sizes=()
record_size() { sizes+=("| $1 | $(size_of "$2") |"); }

echo "package-tests: building wps-emulator (release)" >&2
if ! cargo build --release -p webpubsub-emulator >"$tmp/emulator-build.log" 2>&1; then
  fail "build wps-emulator"; tail -30 "$tmp/emulator-build.log"; finish
fi
conn=""
if start_emulator target/release/wps-emulator conn; then pass "wps-emulator started"; else fail "wps-emulator started"; finish; fi

# --- 1. C library through cargo-c: the documented commands, as written ------------------------
quickstart_documented() {
  local commands url
  commands=$(sed -n '/from the repository root/,/\.\/quickstart /p' examples/c/quickstart.c | sed -n 's/^ \*   //p')
  [ "$(grep -c . <<<"$commands")" -ge 4 ] || { echo "no build commands found in quickstart.c"; return 1; }
  url=$(mint "$conn" Hub1 quickstart-user) || return 1
  # The last line runs ./quickstart with a placeholder URL: run it with a real one.
  commands=$(sed "s|^\./quickstart \".*\"\$|./quickstart \"\$WPS_QUICKSTART_URL\"|" <<<"$commands")
  echo "$commands"
  (cd "$repo" && WPS_QUICKSTART_URL=$url bash -euo pipefail -c "$commands") | tee "$tmp/quickstart.out"
  grep -qx "received message from group group1: hello world" "$tmp/quickstart.out" &&
  readelf -d "$repo/quickstart" | grep "NEEDED.*libwebpubsub_client.so.0" >/dev/null
}
check "examples/c/quickstart.c: its build commands run as written (cargo cinstall, pkg-config) and the program runs" \
  quickstart_documented
prefix=$repo/build/wps
installed_c_library() {
  local so=$prefix/lib/libwebpubsub_client.so
  readelf -d "$so.0" | grep "SONAME.*\[libwebpubsub_client.so.0\]" &&
  [ -f "$prefix/lib/libwebpubsub_client.a" ] && [ -f "$prefix/include/webpubsub_client.h" ] &&
  cmp "$prefix/include/webpubsub_client.h" include/webpubsub_client.h &&
  PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --exists webpubsub_client
}
check "cargo cinstall layout: SONAME libwebpubsub_client.so.0, links, .a, committed header, .pc" installed_c_library
if [ -f "$prefix/lib/libwebpubsub_client.so.0" ]; then
  real=$(readlink -f "$prefix/lib/libwebpubsub_client.so.0")
  record_size "libwebpubsub_client.so (release, unstripped: debug = 1)" "$real"
  strip --strip-unneeded -o "$tmp/stripped.so" "$real" && record_size "libwebpubsub_client.so (release, stripped)" "$tmp/stripped.so"
  record_size "libwebpubsub_client.a (release)" "$prefix/lib/libwebpubsub_client.a"
  strip --strip-debug -o "$tmp/stripped.a" "$prefix/lib/libwebpubsub_client.a" &&
    record_size "libwebpubsub_client.a (release, debug info stripped)" "$tmp/stripped.a"
fi

# --- 2. Python: manylinux wheel and sdist --------------------------------------------------------
dist=$out/dist
venv=$out/wheel-venv-test
no_cargo_path() {  # PATH without any directory that holds cargo
  local d result=""
  IFS=: read -ra dirs <<<"$PATH"
  for d in "${dirs[@]}"; do
    [ -n "$d" ] && [ ! -x "$d/cargo" ] && result="${result:+$result:}$d"
  done
  echo "$venv/bin:$result"
}
if [[ "$skip" != *" python "* ]]; then
  check "scripts/build-wheel.sh: manylinux wheel and sdist" bash scripts/build-wheel.sh --out "$dist"
  wheel=$(ls "$dist"/webpubsub_client-*-manylinux*.whl 2>/dev/null | head -n 1)
  sdist_file=$(ls "$dist"/webpubsub_client-*.tar.gz 2>/dev/null | head -n 1)
  wheel_contents() {
    [ -n "$wheel" ] || { echo "no manylinux wheel in $dist"; return 1; }
    python3 - "$wheel" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = set(z.namelist())
need = {"webpubsub_client/_lib/libwebpubsub_client.so", "webpubsub_client/py.typed"}
missing = need - names
meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
for field in ("License-Expression: MIT", "Classifier: Typing :: Typed", "Project-URL: Source", "Requires-Python"):
    if field not in meta:
        missing.add("METADATA " + field)
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
    missing.add("LICENSE")
print(sys.argv[1].rsplit("/", 1)[-1], "missing:", sorted(missing) or "nothing")
sys.exit(1 if missing else 0)
PY
  }
  check "wheel: manylinux tag, the library, py.typed, LICENSE, metadata" wheel_contents
  [ -z "$wheel" ] || record_size "$(basename "$wheel")" "$wheel"
  [ -z "$sdist_file" ] || record_size "$(basename "$sdist_file")" "$sdist_file"

  wheel_in_fresh_venv() {
    rm -rf "$venv" && python3 -m venv "$venv" &&
    "$venv/bin/pip" install -q --disable-pip-version-check "$wheel" \
      pytest pytest-asyncio pytest-timeout aiohttp python-dotenv azure-core \
      azure-messaging-webpubsubservice==1.3.0 || return 1
    local path; path=$(no_cargo_path)
    if PATH=$path command -v cargo; then echo "cargo still on PATH"; return 1; fi
    local where
    where=$(cd "$tmp" && env -u WPS_LIBRARY_PATH PATH="$path" "$venv/bin/python" -c \
      'import webpubsub_client._loader as l, webpubsub_client as w; print(w.__file__); print(l.candidate_paths()[0])')
    echo "$where"
    grep -q "^$venv/" <<<"$where" || { echo "webpubsub_client does not come from the venv"; return 1; }
    (cd "$tmp" && env -u WPS_LIBRARY_PATH PATH="$path" WPS_EMULATOR="$repo/target/release/wps-emulator" \
      "$venv/bin/python" -m pytest -q -p no:cacheprovider "$repo/bindings/python/tests")
  }
  if [ -n "$wheel" ]; then
    check "wheel in a fresh venv, PATH without cargo: the Python tests" wheel_in_fresh_venv
    grep -E "^[0-9]+ passed|[0-9]+ (passed|failed)" "$tmp/last.log" | tail -n 1 | sed 's/^/    pytest: /'
  fi
  sdist_builds() {
    # The crate in native/ is built by cargo with this checkout's target directory, so its
    # dependencies come from the release build (`cargo package` below builds the packaged
    # sources on their own).
    rm -rf "$tmp/sdist-wheel"
    CARGO_TARGET_DIR=$repo/target "$venv/bin/pip" wheel -q --disable-pip-version-check --no-deps \
      -w "$tmp/sdist-wheel" "$sdist_file" &&
    python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); z.getinfo("webpubsub_client/_lib/libwebpubsub_client.so"); print("ok", sys.argv[1])' \
      "$(ls "$tmp"/sdist-wheel/*.whl)"
  }
  if [ -n "$sdist_file" ] && [ -x "$venv/bin/pip" ]; then check "sdist builds with cargo (pip wheel)" sdist_builds; fi
fi

# --- 3. the official Python suite against the wheel ---------------------------------------------
official_dir=$repo/build/interop/sdist/azure-messaging-webpubsubclient-1.1.0
official_suite() {
  if [ ! -f "$official_dir/tests/conftest.py" ]; then
    mkdir -p "$repo/build/interop/sdist" &&
    "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
      azure-messaging-webpubsubclient==1.1.0 -d "$repo/build/interop/sdist" &&
    tar -xzf "$repo/build/interop/sdist/azure-messaging-webpubsubclient-1.1.0.tar.gz" -C "$repo/build/interop/sdist" || return 1
  fi
  if "$venv/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("azure.messaging.webpubsubclient") is None)' 2>/dev/null; then
    echo "the official client is installed in the venv: the shim must be what the suite imports"; return 1
  fi
  # The tests run from a copy: the sdist's own folder holds the official client's sources
  # (azure/...), which must not be importable here.
  local rc=0 run=$tmp/official
  rm -rf "$run" && mkdir -p "$run" && cp -r "$official_dir/tests" "$run/" || return 1
  (cd "$run" && env -u WPS_LIBRARY_PATH PATH="$(no_cargo_path)" \
    WEBPUBSUBCLIENT_CONNECTION_STRING="$conn" \
    PYTHONPATH="$repo/tests/interop/official_py/stubs:$repo/tests/interop/ours_py" \
    timeout 600 "$venv/bin/python" -m pytest -p wps_shim -p no:cacheprovider -q -rfE \
      -o asyncio_mode=auto -o asyncio_default_fixture_loop_scope=function -W ignore::DeprecationWarning \
      --junitxml="$out/official-suite.xml" tests/) || rc=$?
  python3 - "$out/official-suite.xml" "$out/official-suite.md" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
rows, counts = [], {}
for case in root.iter("testcase"):
    result = "passed"
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            result = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
    counts[result] = counts.get(result, 0) + 1
    rows.append(f"| `{case.get('classname')}::{case.get('name')}` | {result} |")
with open(sys.argv[2], "w") as f:
    f.write("# azure-messaging-webpubsubclient 1.1.0 tests against webpubsub_client\n\n")
    f.write(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + " (tests/test_unit.py deselected: the official client's internal message classes)\n\n")
    f.write("| test | result |\n|---|---|\n" + "\n".join(rows) + "\n")
print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
PY
  return $rc
}
if [[ "$skip" != *" official "* ]] && [ -x "$venv/bin/python" ]; then
  check "official azure-messaging-webpubsubclient 1.1.0 suite against the wheel (import shim)" official_suite
  grep -v '^| `' "$out/official-suite.md" 2>/dev/null | sed -n '3p' | sed 's/^/    /'
fi

# --- 4. Debian packages ------------------------------------------------------------------------------
debs=$out/debs
if [[ "$skip" != *" debian "* ]] && command -v dpkg-deb >/dev/null; then
  check "scripts/build-debs.sh: libwebpubsub-client0, libwebpubsub-client-dev, wps-emulator" bash scripts/build-debs.sh --out "$debs"
  for f in "$debs"/*.deb; do [ -f "$f" ] && record_size "$(basename "$f")" "$f"; done
  debs_in_use() {
    if dpkg -s libwebpubsub-client0 >/dev/null 2>&1 || dpkg -s wps-emulator >/dev/null 2>&1; then
      echo "the packages are already installed on this machine; not touching them"; return 1
    fi
    dpkg -i "$debs"/libwebpubsub-client0_*.deb "$debs"/libwebpubsub-client-dev_*.deb "$debs"/wps-emulator_*.deb || return 1
    debs_installed=1
    [ -x /usr/bin/wps-emulator ] || { echo "no /usr/bin/wps-emulator"; return 1; }
    # The consumer: the quickstart, built the way its comment gives for an installed package.
    cp examples/c/quickstart.c "$tmp/"
    (cd "$tmp" && env -u PKG_CONFIG_PATH sh -c 'cc quickstart.c $(pkg-config --cflags --libs webpubsub_client) -o quickstart') || return 1
    ldd "$tmp/quickstart" | grep -E "libwebpubsub_client.so.0 => (/usr)?/lib/$(gcc -print-multiarch)/" || return 1
    local pconn="" url
    start_emulator /usr/bin/wps-emulator pconn || return 1
    url=$(mint "$pconn" Hub1 deb-user) || return 1
    env -u LD_LIBRARY_PATH "$tmp/quickstart" "$url" | tee "$tmp/deb-quickstart.out"
    grep -qx "received message from group group1: hello world" "$tmp/deb-quickstart.out" || return 1
    # CMake finds the package too.
    mkdir -p "$tmp/cmake-consumer" &&
    printf 'cmake_minimum_required(VERSION 3.16)\nproject(c C)\nfind_package(webpubsub_client 0.1 REQUIRED)\nadd_executable(q %s)\ntarget_link_libraries(q PRIVATE webpubsub_client::webpubsub_client)\n' \
      "$tmp/quickstart.c" >"$tmp/cmake-consumer/CMakeLists.txt" &&
    cmake -S "$tmp/cmake-consumer" -B "$tmp/cmake-consumer/build" >/dev/null && cmake --build "$tmp/cmake-consumer/build" >/dev/null || return 1
    dpkg -r libwebpubsub-client-dev libwebpubsub-client0 wps-emulator || return 1
    debs_installed=0
    [ ! -e /usr/include/webpubsub_client.h ] && ! ldconfig -p | grep libwebpubsub_client
  }
  if ls "$debs"/*.deb >/dev/null 2>&1; then
    check "dpkg -i; quickstart built with pkg-config (and CMake) against them, run against the packaged emulator; dpkg -r" debs_in_use
  fi
fi

# --- 5. Rust crates ------------------------------------------------------------------------------------
if [[ "$skip" != *" crates "* ]]; then
  crates_package() {
    local extra=()
    # A clean checkout (CI) needs nothing more; a working tree with changes needs --allow-dirty.
    if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then extra=(--allow-dirty); echo "working tree has changes: --allow-dirty"; fi
    cargo package "${extra[@]}" -p webpubsub-client -p webpubsub-emulator
  }
  check "cargo package webpubsub-client webpubsub-emulator (builds the packaged sources)" crates_package
  for f in target/package/webpubsub-client-*.crate target/package/webpubsub-emulator-*.crate; do
    [ -f "$f" ] && record_size "$(basename "$f")" "$f"
  done
  publish_dry_run() {
    local extra=() p
    if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then extra=(--allow-dirty); fi
    for p in webpubsub-client webpubsub-emulator; do
      cargo publish --dry-run --no-verify "${extra[@]}" -p "$p" || return 1
    done
  }
  check "cargo publish --dry-run (webpubsub-client, webpubsub-emulator)" publish_dry_run
  rust_quickstart() {  # the crate's example, as its README runs it
    local url; url=$(mint "$conn" Hub1 rust-quickstart) || return 1
    cargo run -q -p webpubsub-client --example quickstart -- "$url" | tee "$tmp/rust-quickstart.out" &&
    grep -qx "received from group group1: hello world" "$tmp/rust-quickstart.out"
  }
  check "examples/quickstart.rs (the crate's README example) against the emulator" rust_quickstart
  docs_clean() {
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p webpubsub-client -p webpubsub-emulator
  }
  check "cargo doc --no-deps, RUSTDOCFLAGS=-D warnings" docs_clean
fi

# --- sizes ----------------------------------------------------------------------------------------------
{
  echo "# Artifact sizes"; echo
  echo "| artifact | bytes |"; echo "|---|---|"
  printf '%s\n' "${sizes[@]}"
} >"$out/sizes.md"
sed 's/^/    /' "$out/sizes.md"
finish
