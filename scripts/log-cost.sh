#!/usr/bin/env bash
# Cost of the request log line (docs/performance.md): same release binary, same data,
# RUST_LOG=warn (lines off) against the production default (one JSON line per
# request, to a file), two servers side by side, alternating, 3 rounds of 5 s.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
. scripts/prof-lib.sh
prof_prepare l
RUST_LOG=warn BIND=127.0.0.1:8401 target/release/napiatke serve > target/prof/off.log 2>&1 & p1=$!
env -u RUST_LOG BIND=127.0.0.1:8402 target/release/napiatke serve > target/prof/on.log 2>&1 & p2=$!
trap 'kill $p1 $p2' EXIT
prof_wait 8401; prof_wait 8402
s1=$(prof_login 8401); s2=$(prof_login 8402)
for page in /lessons/100/ /dashboard/ "/lessons/?page=3"; do
  for r in 1 2 3; do
    a=$(wrk -t2 -c32 -d5s -H "Cookie: napiatke_session=$s1" -H "Accept-Encoding: br" "http://127.0.0.1:8401$page" | awk '/Requests\/sec/ {printf "%.0f", $2}')
    b=$(wrk -t2 -c32 -d5s -H "Cookie: napiatke_session=$s2" -H "Accept-Encoding: br" "http://127.0.0.1:8402$page" | awk '/Requests\/sec/ {printf "%.0f", $2}')
    echo "$page round $r: log off $a, log on $b, on/off $(awk -v a=$a -v b=$b 'BEGIN{printf "%.3f", b/a}')"
  done
done
echo "lines written: $(wc -l < target/prof/on.log)"; tail -n 1 target/prof/on.log
