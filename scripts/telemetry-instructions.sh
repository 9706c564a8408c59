#!/usr/bin/env bash
# Telemetry's cost as instructions per request (docs/performance.md): the same release
# binary under callgrind, once per configuration, on a warm cached page. Counters are
# zeroed after a warm-up and dumped after N more requests, so start-up is not counted;
# every thread of the server is (the log writer's included, and whatever the
# background threads did meanwhile). Instructions, unlike
# req/s on this 2-core VM, do not move with the neighbours: the A/B ratio is exact for
# what it measures (user-space instructions; not cache misses, not the kernel's time
# for write(2), which the writer batches every 25 ms).
# Valgrind's CPU lacks SHA extensions (the session token's hash takes sha2's
# portable path, about 6,900 instructions) and counts each byte of a `rep stosb` or
# `rep movsb` as an instruction (actix-http zeroes 3 KB twice a request): the page's
# count is inflated by about 13,000, so telemetry's share of the real work is larger
# than the printed ratio says (docs/performance.md, "what the instruction counts hid").
#
#   bash scripts/telemetry-instructions.sh   # off, lines off, lines on (the default), + Sentry unreachable
#   N=2000 PAGES="/lessons/100/ /dashboard/" bash scripts/telemetry-instructions.sh
#   EMAIL=tutor1@napiatke.local PASSWORD=tutor bash scripts/telemetry-instructions.sh
#
# Each configuration is a list of NAME=value words (CONFIGS overrides, separated by
# ";"). Prints instructions per request per page and configuration, the ratio to the
# first configuration, and the share of the first configuration's instructions spent
# in telemetry code (tracing, tracing-subscriber, napiatke-telemetry, the span slab),
# by function, self cost.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
. scripts/prof-lib.sh
prof_prepare ir
n=${N:-1000}
read -r -a pages <<<"${PAGES:-/lessons/100/ /dashboard/ /lessons/?page=3}"
IFS=';' read -r -a configs <<<"${CONFIGS:-TELEMETRY=off;RUST_LOG=warn;LOG_FORMAT=json;LOG_FORMAT=json SENTRY_DSN=http://public@127.0.0.1:9/1}"
port=8431
# N keep-alive GETs of `page` with the session cookie (Python: one connection).
hit() { # port session page count
  python3 - "$@" <<'PY'
import http.client, sys
port, session, page, count = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
for _ in range(count):
    c.request("GET", page, headers={"Cookie": f"napiatke_session={session}", "Accept-Encoding": "br"})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{page}: {r.status}")
PY
}
results=target/prof/ir-results.txt
: >"$results"
i=0
for config in "${configs[@]}"; do
  i=$((i + 1))
  out=target/prof/callgrind.$i
  rm -f "$out".*
  # One worker, so the counters cover one event loop's work and the threads it uses.
  # shellcheck disable=SC2086 # a configuration is a list of NAME=value words
  env -u RUST_LOG $config WORKERS=1 BIND=127.0.0.1:$port valgrind --tool=callgrind \
    --callgrind-out-file="$out.%p" target/release/napiatke serve \
    >target/prof/ir-$i.log 2>&1 &
  pid=$!
  prof_wait $port 600
  session=$(prof_login $port)
  for page in "${pages[@]}"; do
    hit $port "$session" "$page" 50
    callgrind_control -z "$pid" >/dev/null
    hit $port "$session" "$page" "$n"
    rm -f "$out.$pid".*
    callgrind_control -d "$pid" >/dev/null
    # This server's latest dump ("$out.$pid.N"), once written: callgrind_control
    # returns before the file is there.
    dump=
    for _ in $(seq 1 300); do
      dump=$(ls -t "$out.$pid".* 2>/dev/null | head -n 1)
      [ -n "$dump" ] && [ -s "$dump" ] && break
      sleep 0.2
    done
    # awk reads to the end: exiting early would fail the pipe (SIGPIPE, pipefail).
    ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ && !ir {ir = $1; gsub(",", "", ir)} END {print ir}')
    echo "$i $page $ir $dump" >>"$results"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
echo "instructions per request ($n requests per page, after 50 to warm; release build, callgrind):"
for ((k = 1; k <= ${#configs[@]}; k++)); do echo "  config $k: ${configs[$((k - 1))]}"; done
for page in "${pages[@]}"; do
  awk -v page="$page" -v n="$n" '$2 == page { ir[$1] = $3 / n } END {
    printf "%s:", page
    for (k = 1; k in ir; k++) printf "  %d: %.0f (%.3f)", k, ir[k], ir[k] / ir[1]
    printf "\n" }' "$results"
done
echo "telemetry code's own instructions in config 1 (self cost, share of the page's total):"
for page in "${pages[@]}"; do
  dump=$(awk -v page="$page" '$1 == 1 && $2 == page {print $4}' "$results")
  callgrind_annotate --auto=no --threshold=100 "$dump" 2>/dev/null | awk -v page="$page" '
    /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
    /^ *[0-9,]+ .*(tracing|napiatke_telemetry|sharded_slab)/ { v = $1; gsub(",", "", v); tel += v }
    END { printf "%s: %.1f %%\n", page, 100 * tel / total }'
done
