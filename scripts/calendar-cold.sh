#!/usr/bin/env bash
# The calendar week on the large demo set, first request after start (data loaded and
# rendered: streamed day by day from CALENDAR_STREAM_FROM lessons) and the second
# (stored), for BEFORE (an older binary) and this tree's, alternating, 3 rounds each
# (docs/performance.md).  BEFORE=/tmp/napiatke-old bash scripts/calendar-cold.sh
set -euo pipefail
cd "$(dirname "$0")/.."
before=${BEFORE:?set BEFORE to a napiatke binary to compare with}
cargo build --release -q -p napiatke-web --bin napiatke
mkdir -p target/prof
export DATABASE_URL=sqlite://target/prof/large.sqlite3 NAPIATKE_ENV=production NAPIATKE_DEMO=1 RUST_LOG=warn
[ -f target/prof/large.sqlite3 ] || target/release/napiatke seed --scale large --force >/dev/null
week=$(date -u -d "last monday" +%F)
for bin in "$before" target/release/napiatke "$before" target/release/napiatke "$before" target/release/napiatke; do
  BIND=127.0.0.1:8600 $bin serve > /dev/null 2>&1 & pid=$!
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8600/healthz >/dev/null && break; sleep 0.1; done
  jar=target/prof/jar-cold; rm -f $jar
  token=$(curl -s -c "$jar" -b "$jar" "http://127.0.0.1:8600/login" | sed -n 's/.*name="csrf_token" value="\([0-9a-f]*\)".*/\1/p' | head -n 1)
  curl -s -c "$jar" -b "$jar" -o /dev/null -d "csrf_token=$token&email=admin@napiatke.local&password=admin&next=/dashboard/" "http://127.0.0.1:8600/login"
  s=$(awk '$6 == "napiatke_session" {print $7}' "$jar")
  first=$(curl -s -o /dev/null -w "ttfb %{time_starttransfer} total %{time_total} bytes %{size_download}" -H "Cookie: napiatke_session=$s" -H "Accept-Encoding: br" "http://127.0.0.1:8600/calendar/?start=$week")
  sleep 0.5
  second=$(curl -s -o /dev/null -w "ttfb %{time_starttransfer} bytes %{size_download}" -H "Cookie: napiatke_session=$s" -H "Accept-Encoding: br" "http://127.0.0.1:8600/calendar/?start=$week")
  echo "$bin first: $first | second: $second"
  kill $pid; wait $pid 2>/dev/null || true
done
