#!/usr/bin/env bash
# Two servers side by side on one SQLite standard set, same release binary, each with
# its own extra environment, measured alternately on cached pages (docs/performance.md):
#   A="RUST_LOG=warn" B="RUST_LOG=warn OTEL_EXPORTER_OTLP_ENDPOINT=http://10.255.255.1:4318" \
#     bash scripts/telemetry-cost.sh
# ROUNDS (3) rounds of DURATION (5s) per page; PAGES overrides the page list.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p napiatke-web --bin napiatke
mkdir -p target/prof
a=${A:-RUST_LOG=warn} b=${B:?set B to the second server\'s environment}
rounds=${ROUNDS:-3} duration=${DURATION:-5s}
export DATABASE_URL=sqlite://target/prof/cost.sqlite3 NAPIATKE_ENV=production NAPIATKE_DEMO=1
rm -f target/prof/cost.sqlite3*
target/release/napiatke demo >/dev/null 2>&1
target/release/napiatke collectstatic >/dev/null 2>&1
# shellcheck disable=SC2086 # A and B are lists of NAME=value words
env -u RUST_LOG $a BIND=127.0.0.1:8401 target/release/napiatke serve > target/prof/a.log 2>&1 & p1=$!
# shellcheck disable=SC2086
env -u RUST_LOG $b BIND=127.0.0.1:8402 target/release/napiatke serve > target/prof/b.log 2>&1 & p2=$!
trap 'kill $p1 $p2' EXIT
for port in 8401 8402; do for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.2; done; done
login() { local jar=target/prof/jar-$1 token; rm -f "$jar"
  token=$(curl -s -c "$jar" -b "$jar" "http://127.0.0.1:$1/login" | sed -n 's/.*name="csrf_token" value="\([0-9a-f]*\)".*/\1/p' | head -n 1)
  curl -s -c "$jar" -b "$jar" -o /dev/null -d "csrf_token=$token&email=admin@napiatke.local&password=admin&next=/dashboard/" "http://127.0.0.1:$1/login"
  awk '$6 == "napiatke_session" {print $7}' "$jar"; }
s1=$(login 8401); s2=$(login 8402)
rps() { wrk -t2 -c32 -d"$duration" -H "Cookie: napiatke_session=$1" -H "Accept-Encoding: br" "$2" | awk '/Requests\/sec/ {printf "%.0f", $2}'; }
echo "A: $a"; echo "B: $b"
read -r -a pages <<<"${PAGES:-/lessons/100/ /dashboard/ /lessons/?page=3}"
for page in "${pages[@]}"; do
  for r in $(seq 1 "$rounds"); do
    x=$(rps "$s1" "http://127.0.0.1:8401$page"); y=$(rps "$s2" "http://127.0.0.1:8402$page")
    echo "$page round $r: A $x, B $y, B/A $(awk -v a="$x" -v b="$y" 'BEGIN{printf "%.3f", b/a}')"
  done
done
echo "A wrote $(wc -l < target/prof/a.log) lines, B $(wc -l < target/prof/b.log)"
