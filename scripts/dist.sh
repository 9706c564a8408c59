#!/usr/bin/env bash
# The build to ship: target/dist/napiatke, the release binary without debug info, and
# target/dist/napiatke.debug, its DWARF, which the binary names (.gnu_debuglink): kept
# beside it, a panic's backtrace shows files and lines; without it, function names.
# The binary carries its migrations, templates and static files: ship it alone.
#   bash scripts/dist.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v objcopy >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq binutils >/dev/null; }
cargo build --release -p napiatke-web --bin napiatke
mkdir -p target/dist
cp target/release/napiatke target/dist/napiatke
cd target/dist
objcopy --only-keep-debug napiatke napiatke.debug
objcopy --strip-debug --add-gnu-debuglink=napiatke.debug napiatke
ls -la napiatke napiatke.debug
