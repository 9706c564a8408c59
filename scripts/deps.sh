#!/usr/bin/env bash
# Installs what building napiatke needs beyond the Rust toolchain, only when missing:
# a C compiler (bundled SQLite), libpq and pkg-config (diesel's PostgreSQL driver),
# nasm (rav1e's x86 assembly: AVIF encoding about twice as fast).
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
[ -e /usr/include/postgresql/libpq-fe.h ] || need+=(libpq-dev)
command -v nasm >/dev/null 2>&1 || need+=(nasm)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
