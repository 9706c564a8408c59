#!/usr/bin/env bash
# Load run for every page (the benchmark behind docs/performance.md): release build,
# standard demo set, logged in as admin, wrk on loopback. Three servers side by side
# in one run, each page measured on all three before the next page:
#   uncached  CACHE_L1_BYTES=0, no REDIS_URL: every read goes to the database
#   l1        the in-process cache alone (REDIS_URL unset: the embedded default)
#   l1+redis  moka plus Redis (127.0.0.1:6379, a prefix of its own)
# then each cached server's hit rate over the run, from /admin/cache-stats/.
#
#   bash scripts/load.sh sqlite            # SQLite file under target/load/
#   bash scripts/load.sh postgres          # database napiatke_load on 127.0.0.1
#   DURATION=10s CONNECTIONS=32 bash scripts/load.sh sqlite
#
# Before/after a change, side by side in one run: BEFORE=path/to/old/napiatke runs
# two L1+Redis servers instead (that binary, then this tree's), each with a Redis
# prefix of its own, and the last column is after / before. BIN replaces this tree's
# build; PAGES (space-separated) replaces the page list; ROUNDS=n measures every page
# n times on each server, alternating, and reports the median req/s.
#   BEFORE=/tmp/napiatke-old PAGES="/students/ /students/?page=2" ROUNDS=3 \
#     DURATION=20s bash scripts/load.sh sqlite
# SCALE=large measures on the large demo set (10x the data) instead. STOCK=1 keeps
# PostgreSQL's stock settings (no random_page_cost = 1.1). ENCODING sets
# the Accept-Encoding every request sends (default br). A page written hx:PATH is the
# htmx request for PATH (HX-Request and HX-Target: rows). BARE=1 adds, per page, actix
# alone sending the same bytes (apps/web/examples/bare.rs) and the last server's share.
# Columns: req/s (p50, p99, statements of a repeated request, bytes on the wire).
# COLD=1 adds the first request after a write that changes the page (lesson lists).
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${1:-sqlite}
duration=${DURATION:-8s}
connections=${CONNECTIONS:-32}
base_port=${PORT:-8199}
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
bash scripts/deps.sh
bash scripts/ensure-redis.sh
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p napiatke-web --bin napiatke
fi
bin=${BIN:-target/release/napiatke}
before=${BEFORE:-}
rounds=${ROUNDS:-1}
mkdir -p target/load
case "$engine" in
  sqlite) url="sqlite://target/load/load.sqlite3"; rm -f target/load/load.sqlite3*;;
  postgres)
    bash scripts/ensure-postgres.sh
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS napiatke_load WITH (FORCE)" >/dev/null 2>&1
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE napiatke_load" >/dev/null
    # Data in RAM or on SSD: random reads are not 4x sequential ones (operations.md).
    # STOCK=1 leaves PostgreSQL's settings as installed, as a new user would.
    if [ -z "${STOCK:-}" ]; then
      psql -h 127.0.0.1 -U postgres -qc "ALTER DATABASE napiatke_load SET random_page_cost = 1.1" >/dev/null
    fi
    url="postgres://postgres:postgres@127.0.0.1:5432/napiatke_load";;
  *) echo "usage: $0 sqlite|postgres" >&2; exit 2;;
esac
# Warnings (throttled) go to target/load/serve-N.log: a run is explained by them.
export DATABASE_URL=$url NAPIATKE_ENV=production NAPIATKE_DEMO=1 EXPOSE_QUERY_COUNT=true RUST_LOG=warn
# SCALE=large loads the large demo set (10x) instead of the standard one.
if [ "${SCALE:-standard}" = standard ]; then "$bin" demo >/dev/null; else "$bin" seed --scale "$SCALE" --force >/dev/null; fi
"$bin" collectstatic >/dev/null
prefix="napiatke-load-$$"
redis=redis://127.0.0.1:6379/0
if [ -n "$before" ]; then
  names=("before L1+Redis" "after L1+Redis")
  servers=("$before|REDIS_URL=$redis CACHE_PREFIX=$prefix-0" "$bin|REDIS_URL=$redis CACHE_PREFIX=$prefix-1")
else
  names=(uncached L1 L1+Redis)
  servers=("$bin|CACHE_L1_BYTES=0" "$bin|" "$bin|REDIS_URL=$redis CACHE_PREFIX=$prefix-2")
fi
n=${#servers[@]}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; redis-cli --scan --pattern "$prefix-*" | xargs -r redis-cli del >/dev/null' EXIT
for i in $(seq 0 $((n - 1))); do
  port=$((base_port + i))
  IFS='|' read -r server_bin server_env <<<"${servers[$i]}"
  # shellcheck disable=SC2086 # server_env is a list of NAME=value words
  env BIND=127.0.0.1:$port $server_env "$server_bin" serve >target/load/serve-$i.log 2>&1 &
  pids+=($!)
done
sessions=()
for i in $(seq 0 $((n - 1))); do
  port=$((base_port + i))
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
  jar=target/load/cookies-$i
  rm -f "$jar"
  token=$(curl -s -c "$jar" -b "$jar" "http://127.0.0.1:$port/login" | sed -n 's/.*name="csrf_token" value="\([0-9a-f]*\)".*/\1/p' | head -n 1)
  curl -s -c "$jar" -b "$jar" -o /dev/null -d "csrf_token=$token&email=admin@napiatke.local&password=admin&next=/dashboard/" "http://127.0.0.1:$port/login"
  s=$(awk '$6 == "napiatke_session" {print $7}' "$jar")
  [ -n "$s" ] || { echo "login failed on ${names[$i]}" >&2; exit 1; }
  sessions+=("$s")
done
week=$(date -u -d "last monday" +%F 2>/dev/null || date -u +%F)
# Page entries: a path, or hx:PATH for the htmx request (HX-Request, HX-Target: rows).
# Every request sends Accept-Encoding: $ENCODING (default br; "identity" for none).
encoding=${ENCODING:-br}
request_headers() { # session page -> curl/wrk -H arguments, one per line
  printf '%s\n' "Cookie: napiatke_session=$1" "Accept-Encoding: $encoding"
  case "$2" in hx:*) printf '%s\n' "HX-Request: true" "HX-Target: rows";; esac
}
measure() { # port session page -> "rps p50 p99 statements(second request) bytes-on-the-wire"
  local q out path=${3#hx:} size args=()
  while IFS= read -r h; do args+=(-H "$h"); done < <(request_headers "$2" "$3")
  curl -s -o /dev/null "${args[@]}" "http://127.0.0.1:$1$path"
  q=$(curl -s -D - -o /dev/null "${args[@]}" "http://127.0.0.1:$1$path" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-query-count"{print $2}')
  size=$(curl -s -o /dev/null -w '%{size_download}' "${args[@]}" "http://127.0.0.1:$1$path")
  out=$(wrk -t2 -c"$connections" -d"$duration" --latency "${args[@]}" "http://127.0.0.1:$1$path")
  if grep -q Non-2xx <<<"$out"; then echo "non-2xx answers on $3" >&2; exit 1; fi
  printf '%s %s %s %s %s\n' "$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" "${q:-?}" "$size"
}
read -r -a pages <<<"${PAGES:-/dashboard/ /lessons/ /lessons/?page=3 hx:/lessons/?page=3 /lessons/?page=200 hx:/lessons/?page=200 /lessons/?page=3&status=COMPLETED hx:/lessons/?page=3&status=COMPLETED /lessons/100/ /calendar/?start=$week /students/ /students/?page=2 hx:/students/?page=2 /students/?q=kow hx:/students/?q=kow /healthz}"
median() { tr ' ' '\n' | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
header="| page |" rule="|---|"
for name in "${names[@]}"; do header+=" $name req/s (p50, p99, statements, bytes) |"; rule+="---|"; done
if [ -n "$before" ]; then header+=" after / before |"; rule+="---|"
else for name in "${names[@]:1}"; do header+=" $name / uncached |"; rule+="---|"; done; fi
# BARE=1: for each page, actix alone sending the same bytes (examples/bare.rs) with the
# same request headers, and the last server's share of it.
if [ -n "${BARE:-}" ]; then
  cargo build --release -q -p napiatke-web --example bare
  header+=" bare actix, same bytes req/s | last / bare |"; rule+="---|---|"
fi
# COLD=1: for each lesson-list page, the median time of the first request after a
# write that changes it (an attendance mark, alternating PRESENT/ABSENT, in a lesson
# the page shows), over 15 writes, on the last server.
cold() { # port session page -> "median ms" (or "-" when the page shows no lesson)
  local body lesson student times=() args=() t
  while IFS= read -r h; do args+=(-H "$h"); done < <(request_headers "$2" "$3")
  body=$(curl -s --compressed "${args[@]}" "http://127.0.0.1:$1${3#hx:}")
  lesson=$(grep -o 'href="/lessons/[0-9]*/"' <<<"$body" | head -n 1 | tr -dc 0-9)
  [ -n "$lesson" ] || { echo "-"; return; }
  student=$(curl -s --compressed -H "Cookie: napiatke_session=$2" "http://127.0.0.1:$1/lessons/$lesson/" | grep -o 'name="student_id" value="[0-9]*"' | head -n 1 | tr -dc 0-9)
  [ -n "$student" ] || { echo "-"; return; }
  for i in $(seq 1 15); do
    mark=PRESENT; [ $((i % 2)) = 0 ] && mark=ABSENT
    curl -s -o /dev/null -H "Cookie: napiatke_session=$2" -H "Sec-Fetch-Site: same-origin" \
      -d "student_id=$student&status=$mark" "http://127.0.0.1:$1/lessons/$lesson/attendance"
    t=$(curl -s -o /dev/null -w '%{time_total}' "${args[@]}" "http://127.0.0.1:$1${3#hx:}")
    times+=("$(awk -v t="$t" 'BEGIN{printf "%d", t * 1000000}')")
  done
  awk -v us="$(printf '%s\n' "${times[@]}" | median)" 'BEGIN{printf "%.2f ms", us / 1000}'
}
[ -n "${COLD:-}" ] && { header+=" cold after a write (median of 15) |"; rule+="---|"; }
[ "$rounds" -gt 1 ] && header="${header//req\/s (/median req\/s of $rounds (}"
printf '%s\n%s\n' "$header" "$rule"
bare_port=$((base_port + 50))
for page in "${pages[@]}"; do
  declare -A runs=() p50s=() p99s=() stmts=() sizes=()
  for _ in $(seq 1 "$rounds"); do
    for i in $(seq 0 $((n - 1))); do
      read -r r p50 p99 q size < <(measure $((base_port + i)) "${sessions[$i]}" "$page")
      runs[$i]="${runs[$i]:-} $r"; p50s[$i]=$p50; p99s[$i]=$p99; stmts[$i]=$q; sizes[$i]=$size
    done
  done
  row="| $page |" rps=()
  for i in $(seq 0 $((n - 1))); do
    m=$(median <<<"${runs[$i]# }")
    rps+=("$m"); row+=" $m (${p50s[$i]}, ${p99s[$i]}, ${stmts[$i]}, ${sizes[$i]}) |"
  done
  for i in $(seq 1 $((n - 1))); do
    row+=" $(awk -v a="${rps[$i]}" -v b="${rps[0]}" 'BEGIN{printf "%.2f", a/b}')x |"
  done
  if [ -n "${BARE:-}" ]; then
    last=$((n - 1)) args=()
    while IFS= read -r h; do args+=(-H "$h"); done < <(request_headers "${sessions[$last]}" "$page")
    body=target/load/bare-body
    coding=$(curl -s -D - -o "$body" "${args[@]}" "http://127.0.0.1:$((base_port + last))${page#hx:}" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-encoding"{print $2}')
    env BIND=127.0.0.1:$bare_port ${coding:+CONTENT_ENCODING=$coding} target/release/examples/bare "$body" >target/load/bare.log 2>&1 &
    bare_pid=$!
    for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$bare_port/" && break; sleep 0.1; done
    b=$(wrk -t2 -c"$connections" -d"$duration" "${args[@]}" "http://127.0.0.1:$bare_port/" | awk '/Requests\/sec/ {printf "%.0f", $2}')
    kill "$bare_pid"; wait "$bare_pid" 2>/dev/null || true
    row+=" $b | $(awk -v a="${rps[$last]}" -v b="$b" 'BEGIN{printf "%.0f%%", 100 * a / b}') |"
  fi
  if [ -n "${COLD:-}" ]; then
    row+=" $(cold $((base_port + n - 1)) "${sessions[$((n - 1))]}" "$page") |"
  fi
  printf '%s\n' "$row"
  unset runs p50s p99s stmts sizes
done
for i in $(seq 0 $((n - 1))); do
  [ "${names[$i]}" = uncached ] && continue
  page=$(curl -s -H "Cookie: napiatke_session=${sessions[$i]}" "http://127.0.0.1:$((base_port + i))/admin/cache-stats/")
  rate=$(sed -n 's/.*id="overall-rate">\([^<]*\)<.*/\1/p' <<<"$page" | head -n 1)
  l1=$(sed -n 's/.*id="l1-rate">\([^<]*\)<.*/\1/p' <<<"$page" | head -n 1)
  counts=$(sed -n 's/.*<p>\([0-9]* of [0-9]* lookups\) since.*/\1/p' <<<"$page" | head -n 1)
  reconnects=$(sed -n 's/.*id="reconnects">\([0-9]*\)<.*/\1/p' <<<"$page" | head -n 1)
  resets=$(sed -n 's/.*id="l1-resets">\([0-9]*\)<.*/\1/p' <<<"$page" | head -n 1)
  extra=""
  [ -n "$reconnects" ] && extra="; listener reconnects $reconnects, L1 emptied $resets times"
  echo "${names[$i]}: hit rate over the run $rate ($counts; L1 alone $l1$extra)"
done
