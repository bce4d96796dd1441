#!/usr/bin/env bash
# Builds libwebpubsub_client and installs it for C and C++ consumers.
#
# Usage: scripts/install.sh --prefix DIR [--profile release|release-small] [--libdir lib]
#                           [--strip] [--no-build]
#
# Installs (DIR = prefix, LIB = DIR/lib by default):
#   DIR/include/webpubsub_client.h              C header (generated, from include/)
#   DIR/include/webpubsub_client.hpp            C++17 header-only wrapper (bindings/cpp/include/)
#   LIB/libwebpubsub_client.so.X.Y.Z            shared library, SONAME libwebpubsub_client.so.X
#   LIB/libwebpubsub_client.so.X -> .so.X.Y.Z   runtime link (the SONAME)
#   LIB/libwebpubsub_client.so   -> .so.X       development link (what -lwebpubsub_client finds)
#   LIB/libwebpubsub_client.a                   static library
#   LIB/pkgconfig/webpubsub_client.pc           pkg-config file (Libs.private for static links)
#   LIB/cmake/webpubsub_client/                 CMake package: webpubsub_client::webpubsub_client (shared)
#                                               and webpubsub_client::webpubsub_client_static
#   DIR/share/doc/webpubsub_client/             LICENSE, C++ wrapper README
#
# The SONAME is the major version (libwebpubsub_client.so.0 for 0.x). If the built shared
# library carries no SONAME (or another one), the installed copy gets it with patchelf.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=""
profile=release
libdir_rel=lib
strip_lib=0
build=1

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --profile) [ $# -ge 2 ] || die "--profile needs a name"; profile=$2; shift 2 ;;
    --profile=*) profile=${1#--profile=}; shift ;;
    --libdir) [ $# -ge 2 ] || die "--libdir needs a path relative to the prefix"; libdir_rel=$2; shift 2 ;;
    --libdir=*) libdir_rel=${1#--libdir=}; shift ;;
    --strip) strip_lib=1; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

[ -n "$prefix" ] || { usage >&2; die "--prefix DIR is required"; }
case "$libdir_rel" in /*|*..*) die "--libdir must be a relative path below the prefix (e.g. lib or lib64)" ;; esac
case "$profile" in release|release-small) ;; *) die "--profile must be release or release-small" ;; esac
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
libdir="$prefix/$libdir_rel"

# Version from Cargo.toml's [package] section (the root crate).
version=$(awk '
  /^\[/ { in_pkg = ($0 == "[package]") }
  in_pkg && /^version[ \t]*=/ { gsub(/.*=[ \t]*"|".*/, ""); print; exit }' "$repo/Cargo.toml")
[[ "$version" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || die "cannot read the version from Cargo.toml (got '$version')"
v_major=${BASH_REMATCH[1]}; v_minor=${BASH_REMATCH[2]}
soname="libwebpubsub_client.so.$v_major"
realname="libwebpubsub_client.so.$version"

if [ "$build" = 1 ]; then
  echo "install.sh: cargo build --profile $profile -p webpubsub-client" >&2
  (cd "$repo" && cargo build --profile "$profile" -p webpubsub-client)
fi

target_dir=${CARGO_TARGET_DIR:-$repo/target}
out="$target_dir/$profile"
so="$out/libwebpubsub_client.so"
a="$out/libwebpubsub_client.a"
header="$repo/include/webpubsub_client.h"
hpp="$repo/bindings/cpp/include/webpubsub_client.hpp"
for f in "$so" "$a" "$header" "$hpp"; do
  [ -f "$f" ] || die "missing $f (build first, or drop --no-build)"
done

# The system libraries a static link needs; rustc reports them with --print native-static-libs.
# This is the Linux (glibc) set, checked by scripts/cpp-tests.sh with a real static link.
libs_private=${WPS_LIBS_PRIVATE:-"-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"}
cmake_libs=""
for flag in $libs_private; do
  case "$flag" in
    -lpthread) lib="Threads::Threads" ;;
    -l*) lib=${flag#-l} ;;
    *) lib=$flag ;;
  esac
  cmake_libs="${cmake_libs:+$cmake_libs;}$lib"
done

# Path from LIB/cmake/webpubsub_client back to the prefix.
depth=$(( $(awk -F/ '{ n = 0; for (i = 1; i <= NF; i++) if ($i != "" && $i != ".") n++; print n }' <<<"$libdir_rel") + 2 ))
cmake_prefix_rel=$(printf '../%.0s' $(seq "$depth")); cmake_prefix_rel=${cmake_prefix_rel%/}

sizeof_void_p=$(getconf LONG_BIT 2>/dev/null || echo 64); sizeof_void_p=$(( sizeof_void_p / 8 ))

render() {  # render TEMPLATE OUTPUT
  sed -e "s|@PREFIX@|$prefix|g" \
      -e "s|@LIBDIR@|$libdir|g" \
      -e "s|@LIBDIR_REL@|$libdir_rel|g" \
      -e "s|@CMAKE_PREFIX_REL@|$cmake_prefix_rel|g" \
      -e "s|@VERSION@|$version|g" \
      -e "s|@VERSION_MAJOR@|$v_major|g" \
      -e "s|@VERSION_MINOR@|$v_minor|g" \
      -e "s|@SOVERSION@|$v_major|g" \
      -e "s|@LIBS_PRIVATE@|$libs_private|g" \
      -e "s|@CMAKE_LINK_LIBS@|$cmake_libs|g" \
      -e "s|@SIZEOF_VOID_P@|$sizeof_void_p|g" \
      "$1" > "$2.tmp"
  mv "$2.tmp" "$2"
}

install -d "$prefix/include" "$libdir" "$libdir/pkgconfig" "$libdir/cmake/webpubsub_client" \
  "$prefix/share/doc/webpubsub_client"

install -m 0644 "$header" "$prefix/include/webpubsub_client.h"
install -m 0644 "$hpp" "$prefix/include/webpubsub_client.hpp"

install -m 0755 "$so" "$libdir/$realname.tmp"
if [ "$strip_lib" = 1 ]; then strip --strip-unneeded "$libdir/$realname.tmp"; fi
current_soname=$(readelf -d "$libdir/$realname.tmp" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [ "$current_soname" != "$soname" ]; then
  command -v patchelf >/dev/null || die "the built library has SONAME '${current_soname:-none}', not $soname, and patchelf is missing (apt-get install patchelf)"
  echo "install.sh: setting SONAME $soname with patchelf (built library has '${current_soname:-none}')" >&2
  patchelf --set-soname "$soname" "$libdir/$realname.tmp"
fi
mv -f "$libdir/$realname.tmp" "$libdir/$realname"
ln -sfn "$realname" "$libdir/$soname"
ln -sfn "$soname" "$libdir/libwebpubsub_client.so"

install -m 0644 "$a" "$libdir/libwebpubsub_client.a.tmp"
if [ "$strip_lib" = 1 ]; then strip --strip-debug "$libdir/libwebpubsub_client.a.tmp"; fi
mv -f "$libdir/libwebpubsub_client.a.tmp" "$libdir/libwebpubsub_client.a"

render "$repo/pkgconfig/webpubsub_client.pc.in" "$libdir/pkgconfig/webpubsub_client.pc"
render "$repo/cmake/webpubsub_clientConfig.cmake.in" "$libdir/cmake/webpubsub_client/webpubsub_clientConfig.cmake"
render "$repo/cmake/webpubsub_clientConfigVersion.cmake.in" \
  "$libdir/cmake/webpubsub_client/webpubsub_clientConfigVersion.cmake"

install -m 0644 "$repo/LICENSE" "$prefix/share/doc/webpubsub_client/LICENSE"
if [ -f "$repo/bindings/cpp/README.md" ]; then
  install -m 0644 "$repo/bindings/cpp/README.md" "$prefix/share/doc/webpubsub_client/README-cpp.md"
fi

echo "install.sh: installed webpubsub_client $version ($profile) into $prefix"
echo "  PKG_CONFIG_PATH=$libdir/pkgconfig   CMAKE_PREFIX_PATH=$prefix"
