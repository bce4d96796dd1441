#!/usr/bin/env bash
# Install layout, pkg-config and CMake consumers, C/C++ examples and C++ wrapper tests.
#
# Installs the library into build/wps (scripts/install.sh: cargo cinstall + CMake files; the
# same prefix as examples/c/quickstart.c, so cargo-c reuses its build), checks the installed
# files, the SONAME and the exported symbols, builds the C examples (examples/gateway) and the
# C++ examples (examples/cpp) out of tree against the prefix - with CMake find_package and with
# pkg-config, each linked shared and static - runs them against a wps-emulator started here,
# and builds and runs the C++ wrapper tests (bindings/cpp/tests) with AddressSanitizer and
# with -fno-exceptions. Prints "N passed, M failed" last; exits non-zero on any failure.
#
# Environment: KEEP_TMP=1 keeps the temporary directory; VERBOSE=1 shows the output of passing
# checks too; GATEWAY_CLIENTS / GATEWAY_MESSAGES size the gateway runs (default 20 x 5);
# CHECK_NATIVE_LIBS=1 also compares Libs.private with rustc's --print native-static-libs (the
# static links below test it in any case; this rebuilds the crate once more); CHECK_SIZE=1
# builds the release-small profile and checks the stripped .so against WPS_SIZE_BUDGET
# (bytes, default 4 MiB).
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

passed=0
failed=0
failed_names=()
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); failed_names+=("$1"); echo "FAIL $1${2:+: $2}"; }
finish() {
  [ ${#failed_names[@]} -eq 0 ] || echo "failed: ${failed_names[*]}"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
  exit $?
}
# check NAME COMMAND...: runs the command, records the outcome.
# (Pipelines below end in `grep ... >/dev/null`, not `grep -q`: with pipefail, grep -q exiting
# early makes the writer die of SIGPIPE and the pipeline fail.)
check() {
  local name=$1; shift
  if "$@" >"$tmp/last.log" 2>&1; then
    pass "$name"
    if [ "${VERBOSE:-0}" = 1 ]; then sed 's/^/    /' "$tmp/last.log" | tail -25; fi
  else
    fail "$name"; sed 's/^/    /' "$tmp/last.log" | tail -25
  fi
}

# --- tools ------------------------------------------------------------------------------
need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v g++ >/dev/null || need_apt+=(g++)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v readelf >/dev/null || need_apt+=(binutils)
command -v python3 >/dev/null || need_apt+=(python3)
command -v make >/dev/null || need_apt+=(make)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "cpp-tests: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null; } ||
    { echo "cpp-tests: apt-get install ${need_apt[*]} failed"; echo "0 passed, 1 failed"; exit 1; }
fi

tmp=$(mktemp -d /tmp/wps-cpp-tests.XXXXXX)
emulator_pid=""
cleanup() {
  if [ -n "$emulator_pid" ]; then kill "$emulator_pid" 2>/dev/null; wait "$emulator_pid" 2>/dev/null; fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "cpp-tests: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

prefix=$repo/build/wps
rm -rf "$prefix"  # only what this run installs (cargo-c keeps its build in target/)
version=$(awk '/^\[/ { p = ($0 == "[package]") } p && /^version[ \t]*=/ { gsub(/.*=[ \t]*"|".*/, ""); print; exit }' Cargo.toml)
major=${version%%.*}

# --- build and install ---------------------------------------------------------------------
echo "cpp-tests: building wps-emulator and installing into $prefix" >&2
if ! cargo build --release -p webpubsub-emulator >"$tmp/emulator-build.log" 2>&1; then
  fail "build wps-emulator"; tail -30 "$tmp/emulator-build.log"; finish
fi
pass "build wps-emulator"
if ! bash scripts/install.sh --prefix "$prefix" >"$tmp/install.log" 2>&1; then
  fail "scripts/install.sh --prefix"; tail -30 "$tmp/install.log"; finish
fi
pass "scripts/install.sh --prefix"

lib=$prefix/lib
installed_files() {
  local f
  for f in include/webpubsub_client.h include/webpubsub_client.hpp "lib/libwebpubsub_client.so.$version" \
           lib/libwebpubsub_client.a lib/pkgconfig/webpubsub_client.pc \
           lib/cmake/webpubsub_client/webpubsub_clientConfig.cmake \
           lib/cmake/webpubsub_client/webpubsub_clientConfigVersion.cmake; do
    [ -f "$prefix/$f" ] || { echo "missing $f"; return 1; }
  done
  [ "$(readlink "$lib/libwebpubsub_client.so.$major")" = "libwebpubsub_client.so.$version" ] || { echo "bad SONAME link"; return 1; }
  [ "$(readlink -f "$lib/libwebpubsub_client.so")" = "$(readlink -f "$lib/libwebpubsub_client.so.$version")" ] || { echo "bad dev link"; return 1; }
}
check "installed layout" installed_files

soname_is_set() {
  local so
  so=$(readelf -d "$lib/libwebpubsub_client.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
  echo "SONAME: ${so:-none}"
  [ "$so" = "libwebpubsub_client.so.$major" ]
}
check "SONAME is libwebpubsub_client.so.$major" soname_is_set

built_soname() {  # plain `cargo build` (build.rs) sets the same SONAME as cargo-c
  readelf -d target/release/libwebpubsub_client.so | grep "SONAME.*libwebpubsub_client.so.$major" >/dev/null
}
if [ -f target/release/libwebpubsub_client.so ]; then check "cargo build sets the SONAME too" built_soname; fi

only_wps_symbols() {
  # Defined dynamic symbols must all be wps_*; linker-generated markers are ignored.
  local others
  others=$(nm -D --defined-only "$lib/libwebpubsub_client.so.$version" | awk '{ print $NF }' |
    grep -v -E '^(wps_|_init$|_fini$|_edata$|_end$|__bss_start$|_DYNAMIC$|_GLOBAL_OFFSET_TABLE_$)' || true)
  local count
  count=$(nm -D --defined-only "$lib/libwebpubsub_client.so.$version" | grep -c ' wps_' || true)
  echo "exported wps_* functions: $count"
  [ "$count" -gt 0 ] || return 1
  if [ -n "$others" ]; then echo "exported symbols outside wps_*:"; echo "$others" | head -20; return 1; fi
}
check "shared library exports only wps_* symbols" only_wps_symbols

export PKG_CONFIG_PATH=$lib/pkgconfig
pkgconfig_metadata() {
  [ "$(pkg-config --modversion webpubsub_client)" = "$version" ] &&
  pkg-config --cflags webpubsub_client | grep -- "-I$prefix/include" >/dev/null &&
  pkg-config --static --libs webpubsub_client | grep -- "-lpthread" >/dev/null
}
check "pkg-config metadata" pkgconfig_metadata

cmake_version_check() {  # a CMake project asking for version $1; succeeds iff the package accepts it
  local d=$tmp/vcheck-$1
  mkdir -p "$d/src"
  printf 'cmake_minimum_required(VERSION 3.16)\nproject(vcheck C)\nfind_package(webpubsub_client %s REQUIRED)\n' "$1" >"$d/src/CMakeLists.txt"
  cmake -S "$d/src" -B "$d/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1
}
cmake_versions() {
  local minor=${version%.*}
  cmake_version_check "$minor" && cmake_version_check "$version" || { echo "find_package($minor / $version) failed"; return 1; }
  ! cmake_version_check "$((major + 1)).0" || { echo "find_package($((major + 1)).0) was accepted"; return 1; }
  if [ "$major" = 0 ]; then
    ! cmake_version_check "0.$(( ${minor#*.} + 1 ))" || { echo "a newer 0.x minor was accepted"; return 1; }
  fi
}
check "CMake package version check (same major.minor before 1.0)" cmake_versions

relocated_cmake_package() {  # the CMake package derives its paths from its own location
  local moved=$tmp/moved-prefix
  cp -a "$prefix" "$moved" &&
  cmake -S "$repo/examples/gateway" -B "$tmp/build-relocated" -DCMAKE_PREFIX_PATH="$moved" &&
  cmake --build "$tmp/build-relocated" -j 2 --target chat &&
  ldd "$tmp/build-relocated/chat" | grep "$moved/lib/libwebpubsub_client.so.$major" >/dev/null
}
check "CMake package is relocatable" relocated_cmake_package

native_static_libs() {  # opt-in: rebuilds the crate once with --print native-static-libs
  local printed
  printed=$(cargo rustc --release -p webpubsub-client --crate-type staticlib -- --print native-static-libs 2>&1 |
    sed -n 's/.*native-static-libs: //p' | tail -n 1)
  echo "rustc: $printed"; grep "^Libs.private" "$lib/pkgconfig/webpubsub_client.pc"
  [ -n "$printed" ] && grep -qxF "Libs.private: $printed" "$lib/pkgconfig/webpubsub_client.pc"
}
if [ "${CHECK_NATIVE_LIBS:-0}" = 1 ]; then check "Libs.private equals rustc --print native-static-libs" native_static_libs; fi

size_budget() {  # opt-in: the size-optimised library must stay under the budget
  local budget=${WPS_SIZE_BUDGET:-4194304} so=target/release-small/libwebpubsub_client.so size
  cargo build --profile release-small -p webpubsub-client || return 1
  size=$(stat -c %s "$so")
  echo "release-small libwebpubsub_client.so: $size bytes (budget $budget)"
  [ "$size" -le "$budget" ]
}
if [ "${CHECK_SIZE:-0}" = 1 ]; then check "release-small shared library within the size budget" size_budget; fi

header_compiles() {
  echo '#include <webpubsub_client.hpp>' > "$tmp/hpp_check.cpp"
  g++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$prefix/include" "$tmp/hpp_check.cpp" &&
  g++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -fno-exceptions -fsyntax-only -I"$prefix/include" "$tmp/hpp_check.cpp" &&
  g++ -std=c++20 -Wall -Wextra -Werror -fsyntax-only -I"$prefix/include" "$tmp/hpp_check.cpp" &&
  g++ -std=c++17 -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast -Werror \
    -fsyntax-only -I"$prefix/include" "$tmp/hpp_check.cpp" || return 1
  if command -v clang++ >/dev/null; then
    clang++ -std=c++17 -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror -fsyntax-only \
      -I"$prefix/include" "$tmp/hpp_check.cpp" &&
    clang++ -std=c++17 -Wall -Wextra -Werror -fno-exceptions -fsyntax-only -I"$prefix/include" "$tmp/hpp_check.cpp"
  else
    echo "note: clang++ not installed; only g++ checked"
  fi
}
check "webpubsub_client.hpp compiles (g++ and clang++; C++17, C++20, -fno-exceptions; strict warnings)" header_compiles

# --- emulator ------------------------------------------------------------------------------
start_emulator() {
  target/release/wps-emulator --port 0 >"$tmp/emulator.out" 2>"$tmp/emulator.err" &
  emulator_pid=$!
  local i
  for i in $(seq 1 100); do  # up to 10 s for the first line
    conn=$(head -n 1 "$tmp/emulator.out" 2>/dev/null)
    case "$conn" in Endpoint=*\;) return 0 ;; esac
    kill -0 "$emulator_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "wps-emulator did not print its connection string"; cat "$tmp/emulator.err"; return 1
}
conn=""
if start_emulator; then pass "wps-emulator started"; else fail "wps-emulator started"; finish; fi
mint() { python3 bindings/cpp/tests/mint_url.py "$conn" "$@"; }
roles=(--role webpubsub.joinLeaveGroup --role webpubsub.sendToGroup)

# --- examples --------------------------------------------------------------------------------
clients=${GATEWAY_CLIENTS:-20}
messages=${GATEWAY_MESSAGES:-5}

build_cmake() {  # DIR SRC STATIC(ON|OFF)
  cmake -S "$2" -B "$1" -DCMAKE_PREFIX_PATH="$prefix" -DWPS_LINK_STATIC="$3" -DCMAKE_BUILD_TYPE=Release &&
  cmake --build "$1" -j 2
}
build_make() {  # DIR SRC STATIC(0|1)
  mkdir -p "$1" && make -C "$1" -f "$2/Makefile" STATIC="$3"
}
linked_as() {  # BINARY shared|static
  if [ "$2" = shared ]; then
    readelf -d "$1" | grep "NEEDED.*libwebpubsub_client.so.$major" >/dev/null &&
    ldd "$1" | grep "$lib/libwebpubsub_client.so.$major" >/dev/null
  else
    ! readelf -d "$1" | grep "NEEDED.*libwebpubsub_client" >/dev/null && nm "$1" | grep " T wps_client_new$" >/dev/null
  fi
}
run_chat() {  # BINARY TAG
  local user="chat-$2" out
  local url; url=$(mint webchat --user "$user" "${roles[@]}") || return 1
  out=$(printf 'hello from %s\nsecond line\n' "$2" | timeout 60 "$1" "$url" "room-$2" 2>"$tmp/chat-$2.err")
  local rc=$?
  echo "$out"; cat "$tmp/chat-$2.err"
  [ $rc -eq 0 ] || { echo "exit status $rc"; return 1; }
  grep -q "^connected: connection .*, user $user\$" <<<"$out" &&
  grep -qx "\[room-$2\] $user: hello from $2" <<<"$out" &&
  grep -qx "\[room-$2\] $user: second line" <<<"$out"
}
run_gateway() {  # BINARY TAG
  local url; url=$(mint gateway --user "gateway-$2" "${roles[@]}") || return 1
  local out; out=$(timeout 120 "$1" "$url" "gw-$2" "$clients" "$messages" 90 2>"$tmp/gateway-$2.err")
  local rc=$?
  echo "$out"; tail -5 "$tmp/gateway-$2.err"
  [ $rc -eq 0 ] || { echo "exit status $rc"; return 1; }
  local expected=$((clients * clients * messages))
  grep -q "^gateway: connected $clients/$clients" <<<"$out" &&
  grep -qx "gateway: joined $clients/$clients" <<<"$out" &&
  grep -qx "gateway: received $expected/$expected group messages" <<<"$out" &&
  grep -qx "gateway: stopped $clients/$clients" <<<"$out" &&
  grep -qx "gateway: ok" <<<"$out"
}

for lang in c cpp; do
  if [ $lang = c ]; then src=$repo/examples/gateway; suffix=""; else src=$repo/examples/cpp; suffix=_cpp; fi
  for tool in cmake pkgconfig; do
    for link in shared static; do
      tag=$lang-$tool-$link
      dir=$tmp/build-$tag
      if [ $tool = cmake ]; then
        flag=OFF; [ $link = static ] && flag=ON
        check "$tag: build examples out of tree" build_cmake "$dir" "$src" "$flag"
      else
        flag=0; [ $link = static ] && flag=1
        check "$tag: build examples out of tree" build_make "$dir" "$src" "$flag"
      fi
      [ -x "$dir/chat$suffix" ] && [ -x "$dir/gateway$suffix" ] || continue
      check "$tag: linked $link" linked_as "$dir/chat$suffix" "$link"
      check "$tag: chat receives its own group messages" run_chat "$dir/chat$suffix" "$tag"
      check "$tag: gateway $clients clients x $messages messages in one poll loop" run_gateway "$dir/gateway$suffix" "$tag"
      grep -h "process threads" "$tmp/last.log" | sed 's/^/    /'
    done
  done
done

# The C examples under valgrind memcheck (release library, no sanitizer): no invalid accesses,
# nothing definitely lost. Known runtime noise is suppressed with the C tests' file.
vg_supp=()
[ -f "$repo/tests/c/valgrind.supp" ] && vg_supp=(--suppressions="$repo/tests/c/valgrind.supp")
valgrind_chat() {
  local bin=$tmp/build-c-pkgconfig-shared/chat
  local url; url=$(mint webchat --user chat-valgrind "${roles[@]}") || return 1
  printf 'under valgrind\n' | timeout 180 valgrind -q "${vg_supp[@]}" --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite "$bin" "$url" room-valgrind
}
valgrind_gateway() {
  local bin=$tmp/build-c-pkgconfig-shared/gateway
  local url; url=$(mint gateway --user gateway-valgrind "${roles[@]}") || return 1
  timeout 300 valgrind -q "${vg_supp[@]}" --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite "$bin" "$url" gw-valgrind 5 3 120
}
if command -v valgrind >/dev/null && [ -x "$tmp/build-c-pkgconfig-shared/chat" ]; then
  check "c chat under valgrind memcheck" valgrind_chat
  check "c gateway (5 clients) under valgrind memcheck" valgrind_gateway
else
  echo "note: valgrind not installed; skipping the memcheck runs"
fi

# --- C++ wrapper tests -------------------------------------------------------------------------
export WPS_TEST_URL WPS_TEST_URL_NOROLES WPS_TEST_CONNSTR WPS_TEST_TOOL
# For the fault API (recovery and session-lost handlers).
WPS_TEST_CONNSTR=$conn
WPS_TEST_TOOL=$repo/tests/c/wps_tool.py
WPS_TEST_URL=$(mint cpptests --user cpp-tester "${roles[@]}")
WPS_TEST_URL_NOROLES=$(mint cpptests --user cpp-noroles)
tests_src=$repo/bindings/cpp/tests
cxx_flags=(-std=c++17 -g -O1 -Wall -Wextra -Werror -I"$prefix/include" -I"$tests_src" -pthread)

build_asan_tests() {
  g++ "${cxx_flags[@]}" -fsanitize=address,undefined -fno-omit-frame-pointer \
    -o "$tmp/wrapper_tests" "$tests_src/wrapper_tests.cpp" \
    -L"$lib" -lwebpubsub_client -Wl,-rpath,"$lib" &&
  nm "$tmp/wrapper_tests" | grep __asan_init >/dev/null
}
check "wrapper tests build with AddressSanitizer" build_asan_tests
if [ -x "$tmp/wrapper_tests" ]; then
  # Leak checking is off: the library's process-wide runtime lives until exit by design.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    timeout 300 "$tmp/wrapper_tests" >"$tmp/wrapper_tests.out" 2>&1
  rc=$?
  sed 's/^/    /' "$tmp/wrapper_tests.out"
  summary=$(tail -n 1 "$tmp/wrapper_tests.out")
  if [ $rc -eq 0 ] && [[ "$summary" =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then
    pass "wrapper tests under ASan/UBSan ($summary)"
  else
    fail "wrapper tests under ASan/UBSan" "exit $rc, $summary"
  fi
fi

build_stream_tests() {
  g++ "${cxx_flags[@]}" -fsanitize=address,undefined -fno-omit-frame-pointer \
    -o "$tmp/stream_tests" "$tests_src/stream_tests.cpp" \
    -L"$lib" -lwebpubsub_client -Wl,-rpath,"$lib"
}
check "stream and group-state tests build with AddressSanitizer" build_stream_tests
if [ -x "$tmp/stream_tests" ]; then
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    timeout 300 "$tmp/stream_tests" >"$tmp/stream_tests.out" 2>&1
  rc=$?
  sed 's/^/    /' "$tmp/stream_tests.out"
  summary=$(tail -n 1 "$tmp/stream_tests.out")
  if [ $rc -eq 0 ] && [[ "$summary" =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then
    pass "stream and group-state tests under ASan/UBSan ($summary)"
  else
    fail "stream and group-state tests under ASan/UBSan" "exit $rc, $summary"
  fi
fi

build_noexcept_tests() {
  g++ "${cxx_flags[@]}" -fno-exceptions -o "$tmp/no_exceptions" "$tests_src/no_exceptions.cpp" \
    -L"$lib" -lwebpubsub_client -Wl,-rpath,"$lib"
}
check "wrapper builds with -fno-exceptions" build_noexcept_tests
if [ -x "$tmp/no_exceptions" ]; then
  timeout 120 "$tmp/no_exceptions" >"$tmp/no_exceptions.out" 2>&1
  rc=$?
  sed 's/^/    /' "$tmp/no_exceptions.out"
  summary=$(tail -n 1 "$tmp/no_exceptions.out")
  if [ $rc -eq 0 ] && [[ "$summary" =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then
    pass "-fno-exceptions tests ($summary)"
  else
    fail "-fno-exceptions tests" "exit $rc, $summary"
  fi
fi

finish
