#!/usr/bin/env bash
# Images: our variants against libvips (`vips thumbnail`), cwebp and avifenc from
# Debian on the photographs in ../shared/testdata/photos, in one run: bytes, SSIM
# against a Lanczos3 resize of the original, ladder times; prints the Markdown of
# docs/performance.md ("Images"). Installs the tools when missing.
# RUNS=3 (timed runs, medians reported); arguments go to the program (--photos DIR,
# --work DIR to keep the outputs). Set CARGO_TARGET_DIR to build apart from others.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v vips >/dev/null 2>&1 || need+=(libvips-tools)
{ command -v cwebp && command -v webpmux; } >/dev/null 2>&1 || need+=(webp)
{ command -v avifenc && command -v avifdec; } >/dev/null 2>&1 || need+=(libavif-bin)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash scripts/deps.sh
cargo run --release -q -p napiatke-benches --bin image-compare -- --runs "${RUNS:-3}" "$@"
