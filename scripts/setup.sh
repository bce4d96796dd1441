#!/usr/bin/env bash
# Installs what building and testing webpubsub-client needs on a fresh Debian machine.
# Idempotent and quick when everything is already there.
set -euo pipefail

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v g++ >/dev/null || need_apt+=(g++)
command -v make >/dev/null || need_apt+=(make)
command -v curl >/dev/null || need_apt+=(curl)
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v go >/dev/null || need_apt+=(golang-go)
command -v openssl >/dev/null || need_apt+=(openssl)
# Real proxies for the proxy tests (tests/proxy_kinds.rs): SOCKS5 and HTTP CONNECT.
command -v microsocks >/dev/null || need_apt+=(microsocks)
command -v tinyproxy >/dev/null || need_apt+=(tinyproxy)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v python3 >/dev/null || need_apt+=(python3 python3-venv python3-pip)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then need_apt+=(python3-venv); fi

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: a Rust toolchain (cargo) is required; install it with rustup" >&2
  exit 1
fi
if command -v rustup >/dev/null; then
  for comp in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$comp" || rustup component add "$comp"
  done
fi

# cargo-c: `cargo cbuild` / `cargo cinstall` build and install the C library (scripts/install.sh).
if ! command -v cargo-cinstall >/dev/null; then
  echo "setup: installing cargo-c (cargo install cargo-c --locked)" >&2
  cargo install cargo-c --locked
fi
