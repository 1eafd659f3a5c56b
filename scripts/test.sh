#!/usr/bin/env bash
# Runs the whole test suite. On a fresh Debian machine it first installs what
# is missing: MariaDB (the tests start their own throwaway mariadbd servers;
# they never use a server that is already running) and a C compiler.
#
# The tests need root for one thing: mounting a small tmpfs to fill a disk.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]; }

packages=()
have mariadbd || packages+=(mariadb-server)
have mariadb-install-db || packages+=(mariadb-server)
have mariadb || packages+=(mariadb-client)
have cc || packages+=(gcc libc6-dev)
have mount || packages+=(mount)
have python3 || packages+=(python3)
have openssl || packages+=(openssl)
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: missing ${packages[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "scripts/test.sh: installing ${packages[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || {
  echo "scripts/test.sh: cargo not found; install Rust (rustup) first" >&2
  exit 1
}

cargo test --locked "$@"
