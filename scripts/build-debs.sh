#!/usr/bin/env bash
# Builds the Debian packages with dpkg-deb from a cargo-c staging prefix (scripts/install.sh
# --prefix /usr --destdir STAGE):
#   libwebpubsub-client0_V_ARCH.deb     /usr/lib/MULTIARCH/libwebpubsub_client.so.0 (and .so.V)
#   libwebpubsub-client-dev_V_ARCH.deb  headers (C, C++17 wrapper), the .so link, the .a,
#                                       webpubsub_client.pc and the CMake package
#   wps-emulator_V_ARCH.deb             /usr/bin/wps-emulator
# Usage: scripts/build-debs.sh [--out DIR]   (default build/debs)
# Libraries and the emulator are stripped; the Debian revision is 1.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
out=$repo/build/debs
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    *) echo "build-debs.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v dpkg-deb >/dev/null || { echo "build-debs.sh: dpkg-deb is required (Debian/Ubuntu)" >&2; exit 1; }

arch=$(dpkg --print-architecture)
multiarch=$(gcc -print-multiarch 2>/dev/null || true)
[ -n "$multiarch" ] || multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
version=$(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "webpubsub-client"))')
emu_version=$(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "webpubsub-emulator"))')
major=${version%%.*}
deb_version=$version-1
maintainer="webpubsub-client maintainers <webpubsub-client@example.invalid>"
homepage=$(sed -n 's/^repository = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

mkdir -p "$out"; out=$(cd "$out" && pwd)
work=$out/work
rm -rf "$work" "$out"/*.deb
stage=$work/stage
bash scripts/install.sh --prefix /usr --libdir "lib/$multiarch" --destdir "$stage" --strip
cargo build --release -p webpubsub-emulator

# The glibc and libgcc versions the binaries need (the highest GLIBC_x.y symbol version).
glibc_min() { objdump -T "$@" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1; }

copyright() {  # DIR PACKAGE
  install -d "$1/usr/share/doc/$2"
  { echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: webpubsub-client"
    echo "Source: $homepage"
    echo
    echo "Files: *"
    echo "License: MIT"
    sed 's/^$/./; s/^/ /' LICENSE
  } >"$1/usr/share/doc/$2/copyright"
}

control() {  # DIR PACKAGE VERSION SECTION DEPENDS DESCRIPTION [EXTRA...]
  local dir=$1 pkg=$2 ver=$3 section=$4 depends=$5 description=$6
  shift 6
  install -d "$dir/DEBIAN"
  {
    echo "Package: $pkg"
    echo "Version: $ver"
    echo "Architecture: $arch"
    echo "Maintainer: $maintainer"
    echo "Section: $section"
    echo "Priority: optional"
    echo "Homepage: $homepage"
    [ -z "$depends" ] || echo "Depends: $depends"
    for line in "$@"; do echo "$line"; done
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$dir" | cut -f1)"
    echo "Description: $description"
  } >"$dir/DEBIAN/control"
}

lib=$stage/usr/lib/$multiarch
realso=libwebpubsub_client.so.$version
glibc=$(glibc_min "$lib/$realso")
runtime_deps="libc6 (>= $glibc), libgcc-s1"

# libwebpubsub-client0: the shared library and its SONAME link.
p=$work/libwebpubsub-client$major
install -d "$p/usr/lib/$multiarch"
cp -a "$lib/$realso" "$lib/libwebpubsub_client.so.$major" "$p/usr/lib/$multiarch/"
copyright "$p" "libwebpubsub-client$major"
control "$p" "libwebpubsub-client$major" "$deb_version" libs "$runtime_deps" \
  "Azure Web PubSub client library (C ABI)
 A native Azure Web PubSub client: connects with client access URLs, joins groups,
 sends to groups and events, recovers reliable connections without loss. This package
 holds the shared library." "Multi-Arch: same"
echo "libwebpubsub_client $major libwebpubsub-client$major (>= $version)" >"$p/DEBIAN/shlibs"
echo "activate-noawait ldconfig" >"$p/DEBIAN/triggers"

# libwebpubsub-client-dev: headers, development link, static library, pkg-config, CMake.
p=$work/libwebpubsub-client-dev
install -d "$p/usr/lib/$multiarch"
cp -a "$stage/usr/include" "$p/usr/"
cp -a "$lib/libwebpubsub_client.so" "$lib/libwebpubsub_client.a" "$lib/pkgconfig" "$lib/cmake" "$p/usr/lib/$multiarch/"
copyright "$p" libwebpubsub-client-dev
install -m 0644 bindings/cpp/README.md "$p/usr/share/doc/libwebpubsub-client-dev/README-cpp.md"
control "$p" libwebpubsub-client-dev "$deb_version" libdevel \
  "libwebpubsub-client$major (= $deb_version)" \
  "Azure Web PubSub client library (C ABI) - development files
 Header webpubsub_client.h, the header-only C++17 wrapper webpubsub_client.hpp, the static
 library, the pkg-config file webpubsub_client.pc and the CMake package
 (find_package(webpubsub_client))." "Multi-Arch: same"

# wps-emulator: the local Web PubSub service.
p=$work/wps-emulator
install -d "$p/usr/bin"
install -m 0755 target/release/wps-emulator "$p/usr/bin/wps-emulator"
strip --strip-unneeded "$p/usr/bin/wps-emulator"
copyright "$p" wps-emulator
install -m 0644 emulator/README.md "$p/usr/share/doc/wps-emulator/README.md"
control "$p" wps-emulator "$emu_version-1" net "libc6 (>= $(glibc_min "$p/usr/bin/wps-emulator")), libgcc-s1" \
  "local Azure Web PubSub service emulator
 wps-emulator serves the client and server surfaces of Azure Web PubSub on the local
 machine (WebSocket subprotocols, REST data plane, upstream events, fault injection), so
 clients can be developed and tested without an Azure account."

for p in "$work/libwebpubsub-client$major" "$work/libwebpubsub-client-dev" "$work/wps-emulator"; do
  dpkg-deb --root-owner-group --build "$p" "$out" >/dev/null
done
rm -rf "$work"
ls -l "$out"/*.deb
