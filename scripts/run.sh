#!/usr/bin/env bash
# Builds napiatke and runs it on its embedded defaults (SQLite under ./data), seeding
# the standard demo set on first start; prints the URL and the demo logins.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
exec cargo run --release --quiet -p napiatke-web --bin napiatke -- "$@"
