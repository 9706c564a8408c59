#!/usr/bin/env bash
# Issue 15's login flood: CONNS (1000) concurrent failed logins (wrong passwords for
# distinct accounts, all from 127.0.0.1) for DURATION (20s) against a release build on
# the standard demo set, while /healthz is measured alongside (4 connections, on the
# main port and then on METRICS_BIND's listener, which has a worker of its own) and a
# correct login is timed from another address (127.0.0.2). Prints the server's peak
# RSS, /healthz latency percentiles and how long the correct login took.
#   bash scripts/login-flood.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p napiatke-web --bin napiatke
mkdir -p target/prof
conns=${CONNS:-1000} duration=${DURATION:-20s}
export DATABASE_URL=sqlite://target/prof/flood.sqlite3 NAPIATKE_ENV=production NAPIATKE_DEMO=1 RUST_LOG=warn
[ -f target/prof/flood.sqlite3 ] || target/release/napiatke demo >/dev/null
target/release/napiatke collectstatic >/dev/null
ulimit -n 65536 2>/dev/null || true
BIND=127.0.0.1:8700 METRICS_BIND=127.0.0.1:8701 target/release/napiatke serve > target/prof/flood.log 2>&1 & pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8700/healthz >/dev/null && break; sleep 0.2; done
jar=target/prof/flood-jar; rm -f $jar
token=$(curl -s -c $jar -b $jar http://127.0.0.1:8700/login | sed -n 's/.*name="csrf_token" value="\([0-9a-f]*\)".*/\1/p' | head -n 1)
cookie=$(awk '$6 == "napiatke_csrf" {print $7}' $jar)
cat > target/prof/flood.lua <<EOF
counter = 0
request = function()
  counter = counter + 1
  local body = "csrf_token=$token&email=flood" .. counter .. "%40example.com&password=wrong-password"
  return wrk.format("POST", "/login", {["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = "napiatke_csrf=$cookie", ["Sec-Fetch-Site"] = "same-origin"}, body)
end
response = function(status) codes[status] = (codes[status] or 0) + 1 end
codes = {}
done = function() end
EOF
rss_peak() { awk '/VmHWM/ {print $2/1024 " MB"}' /proc/$pid/status; }
echo "before: RSS $(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$pid/status)"
wrk -t2 -c"$conns" -d"$duration" --timeout 30s -s target/prof/flood.lua http://127.0.0.1:8700/login > target/prof/flood-wrk.txt 2>&1 &
flood=$!
sleep 2
wrk -t1 -c4 -d8s --latency http://127.0.0.1:8700/healthz > target/prof/flood-health.txt 2>&1
# The same probe on METRICS_BIND's listener, which has a worker of its own.
wrk -t1 -c4 -d6s --latency http://127.0.0.1:8701/healthz > target/prof/flood-admin-health.txt 2>&1
# A correct login from another address while the flood runs.
ljar=target/prof/flood-login; rm -f $ljar
ltoken=$(curl -s --interface 127.0.0.2 -c $ljar -b $ljar http://127.0.0.1:8700/login | sed -n 's/.*name="csrf_token" value="\([0-9a-f]*\)".*/\1/p' | head -n 1)
login=$(curl -s --interface 127.0.0.2 -c $ljar -b $ljar -o /dev/null -w "%{http_code} in %{time_total} s" \
  -H "Sec-Fetch-Site: same-origin" -d "csrf_token=$ltoken&email=admin@napiatke.local&password=admin" http://127.0.0.1:8700/login)
wait $flood
echo "flood: $(grep -E 'Requests/sec|requests in' target/prof/flood-wrk.txt | tr -s ' ' | tr '\n' ' ')"
grep -E "Non-2xx|Socket errors" target/prof/flood-wrk.txt || true
echo "failures that reached argon2 (logged): $(grep -c 'login failed' target/prof/flood.log)"
echo "healthz during flood: $(grep -E '^ +(50|90|99)%' target/prof/flood-health.txt | tr -s ' ' | tr '\n' ' ')"
echo "healthz on METRICS_BIND during flood: $(grep -E '^ +(50|90|99)%' target/prof/flood-admin-health.txt | tr -s ' ' | tr '\n' ' ')"
echo "correct login from 127.0.0.2 during flood: $login"
echo "peak RSS: $(rss_peak)"
