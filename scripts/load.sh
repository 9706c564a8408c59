#!/usr/bin/env bash
# Load run for every page (the benchmark behind docs/performance.md): release build,
# standard demo set, logged in as admin, wrk with 32 connections on loopback.
#
#   bash scripts/load.sh sqlite            # SQLite file under target/load/
#   bash scripts/load.sh postgres          # database napiatke_load on 127.0.0.1
#   DURATION=10s CONNECTIONS=32 bash scripts/load.sh sqlite
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${1:-sqlite}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}
port=${PORT:-8199}
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
bash scripts/deps.sh
cargo build --release -q -p napiatke-web --bin napiatke
bin=target/release/napiatke
mkdir -p target/load
case "$engine" in
  sqlite) url="sqlite://target/load/load.sqlite3"; rm -f target/load/load.sqlite3*;;
  postgres)
    bash scripts/ensure-postgres.sh
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS napiatke_load WITH (FORCE)" >/dev/null 2>&1
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE napiatke_load" >/dev/null
    # Data in RAM or on SSD: random reads are not 4x sequential ones (operations.md).
    psql -h 127.0.0.1 -U postgres -qc "ALTER DATABASE napiatke_load SET random_page_cost = 1.1" >/dev/null
    url="postgres://postgres:postgres@127.0.0.1:5432/napiatke_load";;
  *) echo "usage: $0 sqlite|postgres" >&2; exit 2;;
esac
export DATABASE_URL=$url BIND=127.0.0.1:$port NAPIATKE_ENV=production EXPOSE_QUERY_COUNT=true RUST_LOG=error
"$bin" demo >/dev/null
"$bin" serve >target/load/serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
jar=target/load/cookies
rm -f "$jar"
token=$(curl -s -c "$jar" -b "$jar" "http://127.0.0.1:$port/login" | sed -n 's/.*name="csrf_token" value="\([0-9a-f]*\)".*/\1/p' | head -n 1)
curl -s -c "$jar" -b "$jar" -o /dev/null -d "csrf_token=$token&email=admin@napiatke.local&password=admin&next=/dashboard/" "http://127.0.0.1:$port/login"
session=$(awk '$6 == "napiatke_session" {print $7}' "$jar")
[ -n "$session" ] || { echo "login failed" >&2; exit 1; }
week=$(date -u -d "last monday" +%F 2>/dev/null || date -u +%F)
printf '| page | requests/s | p50 | p99 | statements |\n|---|---|---|---|---|\n'
for page in /dashboard/ /lessons/ "/lessons/?page=200" /lessons/100/ "/calendar/?start=$week" /students/ "/students/?q=kow" /healthz; do
  q=$(curl -s -D - -o /dev/null -H "Cookie: napiatke_session=$session" "http://127.0.0.1:$port$page" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-query-count"{print $2}')
  out=$(wrk -t2 -c"$connections" -d"$duration" --latency -H "Cookie: napiatke_session=$session" "http://127.0.0.1:$port$page")
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '| %s | %s | %s | %s | %s |%s\n' "$page" "$rps" "$p50" "$p99" "${q:-?}" "${non2xx:+ non-2xx: $non2xx}"
done
