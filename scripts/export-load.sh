#!/usr/bin/env bash
# The CSV export measured (docs/performance.md): time to first byte, total, bytes and
# peak RSS of the server over three exports as admin. Run after
# `SCALE=large bash scripts/load.sh sqlite`, which leaves the large set in
# target/load/load.sqlite3; BIN and DATABASE_URL override the binary and database.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release/napiatke}
export DATABASE_URL=${DATABASE_URL:-sqlite://target/load/load.sqlite3} NAPIATKE_ENV=production NAPIATKE_DEMO=1 RUST_LOG=warn
BIND=127.0.0.1:8310 "$bin" serve > target/load/export-serve.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf -o /dev/null http://127.0.0.1:8310/healthz && break; sleep 0.2; done
jar=target/load/export-jar; rm -f $jar
token=$(curl -s -c $jar -b $jar http://127.0.0.1:8310/login | sed -n 's/.*name="csrf_token" value="\([0-9a-f]*\)".*/\1/p' | head -n 1)
curl -s -c $jar -b $jar -o /dev/null -H "Sec-Fetch-Site: same-origin" -d "csrf_token=$token&email=admin@napiatke.local&password=admin&next=/dashboard/" http://127.0.0.1:8310/login
s=$(awk '$6 == "napiatke_session" {print $7}' $jar)
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
curl -s -o /dev/null -H "Cookie: napiatke_session=$s" http://127.0.0.1:8310/dashboard/
echo "RSS before: $(rss) kB"
for run in 1 2 3; do
  peak=0
  ( while kill -0 $pid 2>/dev/null; do awk '/VmRSS/ {print $2}' /proc/$pid/status; sleep 0.02; done ) > target/load/rss-samples &
  sampler=$!
  out=$(curl -s -o target/load/export.csv -w '%{time_starttransfer} %{time_total} %{size_download}' -H "Cookie: napiatke_session=$s" http://127.0.0.1:8310/lessons/export.csv)
  kill $sampler; wait $sampler 2>/dev/null || true
  peak=$(sort -n target/load/rss-samples | tail -n 1)
  echo "run $run: first byte, total (s), bytes: $out; rows: $(($(wc -l < target/load/export.csv) - 1)); peak RSS during: $peak kB"
done
echo "RSS after: $(rss) kB"
head -3 target/load/export.csv
