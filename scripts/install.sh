#!/usr/bin/env bash
# Installs libwebpubsub_client for C and C++ consumers: `cargo cinstall` (cargo-c) plus the
# CMake package files, which cargo-c does not make.
#
# Usage: scripts/install.sh --prefix DIR [--libdir lib] [--profile release|release-small]
#                           [--destdir STAGING] [--strip]
#
# cargo cinstall installs (LIB = DIR/lib by default):
#   DIR/include/webpubsub_client.h, webpubsub_client.hpp   C header, C++17 wrapper
#   LIB/libwebpubsub_client.so.X.Y.Z, .so.X (the SONAME), .so   shared library and its links
#   LIB/libwebpubsub_client.a                               static library
#   LIB/pkgconfig/webpubsub_client.pc                       pkg-config (Libs.private for static links)
# and this script adds:
#   LIB/cmake/webpubsub_client/                             CMake package (webpubsub_client::webpubsub_client,
#                                                           webpubsub_client::webpubsub_client_static)
#   DIR/share/doc/webpubsub_client/                         LICENSE, C++ wrapper README
# --destdir stages the installation under STAGING (as `make DESTDIR=`), for packaging.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
prefix="" libdir_rel=lib profile=release destdir="" strip_lib=0

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix|--libdir|--profile|--destdir) [ $# -ge 2 ] || die "$1 needs a value"; v=$2; opt=${1#--}; shift 2 ;;
    --prefix=*|--libdir=*|--profile=*|--destdir=*) v=${1#*=}; opt=${1%%=*}; opt=${opt#--}; shift ;;
    --strip) strip_lib=1; shift; continue ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  case "$opt" in prefix) prefix=$v ;; libdir) libdir_rel=$v ;; profile) profile=$v ;; destdir) destdir=$v ;; esac
done
[ -n "$prefix" ] || { usage >&2; die "--prefix DIR is required"; }
case "$libdir_rel" in /*|*..*) die "--libdir must be a relative path below the prefix (e.g. lib or lib64)" ;; esac
case "$profile" in release|release-small) ;; *) die "--profile must be release or release-small" ;; esac
if [ -z "$destdir" ]; then mkdir -p "$prefix"; prefix=$(cd "$prefix" && pwd); fi
case "$prefix" in /*) ;; *) die "--prefix must be absolute with --destdir" ;; esac
if [ -n "$destdir" ]; then mkdir -p "$destdir"; destdir=$(cd "$destdir" && pwd); fi
command -v cargo-cinstall >/dev/null || die "cargo-c is missing: cargo install cargo-c --locked (scripts/setup.sh does)"

(cd "$repo" && cargo cinstall --profile "$profile" -p webpubsub-client --prefix "$prefix" \
  --libdir "$prefix/$libdir_rel" ${destdir:+--destdir "$destdir"})

root=$destdir$prefix
libdir=$root/$libdir_rel
pc=$libdir/pkgconfig/webpubsub_client.pc
version=$(sed -n 's/^Version: //p' "$pc")
[[ "$version" =~ ^([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || die "no version in $pc"
v_major=${BASH_REMATCH[1]} v_minor=${BASH_REMATCH[2]}

if [ "$strip_lib" = 1 ]; then
  strip --strip-unneeded "$libdir/libwebpubsub_client.so.$version"
  strip --strip-debug "$libdir/libwebpubsub_client.a"
fi

# The CMake package: the static target links what the pkg-config file's Libs.private lists.
cmake_libs=""
for flag in $(sed -n 's/^Libs.private: //p' "$pc"); do
  case "$flag" in -lpthread) l="Threads::Threads" ;; -l*) l=${flag#-l} ;; *) l=$flag ;; esac
  cmake_libs="${cmake_libs:+$cmake_libs;}$l"
done
depth=$(( $(tr '/' '\n' <<<"$libdir_rel" | grep -c -v -e '^$' -e '^\.$') + 2 ))  # LIB/cmake/webpubsub_client -> prefix
cmake_prefix_rel=$(printf '../%.0s' $(seq "$depth")); cmake_prefix_rel=${cmake_prefix_rel%/}
cmake_dir=$libdir/cmake/webpubsub_client
install -d "$cmake_dir" "$root/share/doc/webpubsub_client"
for f in webpubsub_clientConfig webpubsub_clientConfigVersion; do
  sed -e "s|@LIBDIR_REL@|$libdir_rel|g" -e "s|@CMAKE_PREFIX_REL@|$cmake_prefix_rel|g" \
      -e "s|@VERSION@|$version|g" -e "s|@VERSION_MAJOR@|$v_major|g" -e "s|@VERSION_MINOR@|$v_minor|g" \
      -e "s|@SOVERSION@|$v_major|g" -e "s|@CMAKE_LINK_LIBS@|$cmake_libs|g" \
      -e "s|@SIZEOF_VOID_P@|$(( $(getconf LONG_BIT) / 8 ))|g" \
      "$repo/cmake/$f.cmake.in" >"$cmake_dir/$f.cmake"
done
install -m 0644 "$repo/LICENSE" "$root/share/doc/webpubsub_client/LICENSE"
install -m 0644 "$repo/bindings/cpp/README.md" "$root/share/doc/webpubsub_client/README-cpp.md"

echo "install.sh: installed webpubsub_client $version ($profile) into $root"
echo "  PKG_CONFIG_PATH=$libdir/pkgconfig   CMAKE_PREFIX_PATH=$root"
