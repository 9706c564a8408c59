#!/usr/bin/env bash
# Images at equal perceived quality (issue 16): our variants, each encoded to the target
# SSIMULACRA2, against cwebp and cjpeg (libjpeg-turbo) at equal score, on the shared
# photographs and the repository's testdata/photos; prints the Markdown of
# docs/performance.md ("Images at equal perceived quality"). Installs the tools when
# missing. Arguments go to the program: --runs N, --target SCORE, --fixed (the fixed
# qualities of before), --only NAME, --photos DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v cwebp >/dev/null 2>&1 || need+=(webp)
command -v cjpeg >/dev/null 2>&1 || need+=(libjpeg-turbo-progs)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash scripts/deps.sh
cargo run --release -q -p napiatke-benches --bin image-quality -- "$@"
