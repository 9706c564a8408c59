#!/usr/bin/env bash
# N napiatke processes behind nginx (Debian's, upstream keepalive) on one PostgreSQL
# and one Redis, loopback only (issue 17):
#
#   bash scripts/cluster.sh 3          # start 3, print the URL, stop them all on Ctrl-C
#   bash scripts/cluster.sh bench 3    # req/s through nginx with 1, 2, 3 processes
#   bash scripts/cluster.sh drill [3]  # start N (default 3), run scripts/cluster_drill.py, stop
#
# The processes share the database napiatke_cluster (the standard demo set, made
# afresh), Redis 127.0.0.1:6379 under a prefix of their own and one MEDIA_ROOT
# (target/cluster/media; or one bucket, MEDIA=s3 below); they run in production
# with NAPIATKE_DEMO=1, so the demo logins work. They take turns collecting replaced images and claim each other's
# unfinished image jobs by lease (docs/operations.md, "Images"). bench measures each page with wrk through nginx (and once straight to
# one process, to show what the balancer costs), with the share of the machine's CPU
# that was busy, logged in as admin. BIN replaces the release build; DURATION,
# CONNECTIONS and PAGES tune the run. drill starts the cluster the same way (with
# IMAGE_JOB_LEASE=3, so a cut-off image job is claimed within seconds) and checks,
# straight to each process and through nginx: a session made on one process works on
# all; an attendance mark through one shows at once on all; an uploaded photo's
# variants are served by all; a process SIGKILLed under load costs at most the
# requests in flight; an image job whose process was killed is finished once after
# its restart. Exit status 1 if a check failed; everything started is stopped.
#
#   MEDIA=s3 bash scripts/cluster.sh drill 3   # (any mode) media in an S3 bucket
#
# MEDIA=s3 (default MEDIA=local) keeps the media in a bucket instead: it starts moto's
# S3 server (scripts/ensure-s3.sh, 127.0.0.1:9390, or NAPIATKE_TEST_S3_URL's with
# MEDIA_S3_ACCESS_KEY_ID and MEDIA_S3_SECRET_ACCESS_KEY set for it; moto takes any),
# makes a fresh bucket napiatke-cluster-PID-RANDOM there (curl --aws-sigv4) and runs
# every process with MEDIA_STORAGE=s3 and MEDIA_S3_PREFIX=cluster (us-east-1),
# each with an empty MEDIA_ROOT of its own (target/cluster/media-PORT), so nothing is
# shared through the disk; the drill then compares the bucket's keys, not files, with
# an image's variants. The bucket and its objects are deleted at the end, unless
# KEEP_BUCKET=1 (moto keeps them in memory until it stops).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=serve
if [ "${1:-}" = bench ] || [ "${1:-}" = drill ]; then
  mode=$1
  shift
fi
if [ "$mode" = drill ]; then n=${1:-3}; else n=${1:-2}; fi
case "$n" in '' | *[!0-9]*) echo "usage: $0 [bench|drill] N" >&2; exit 2 ;; esac
[ "$mode" != drill ] || [ "$n" -ge 2 ] || { echo "drill needs 2 processes or more" >&2; exit 2; }
media=${MEDIA:-local}
case "$media" in local | s3) ;; *) echo "MEDIA is local or s3, not $media" >&2; exit 2 ;; esac
duration=${DURATION:-8s}
connections=${CONNECTIONS:-32}
pages=${PAGES:-/dashboard/ /lessons/ /students/?q=kow /rooms/}
need() { # command package
  command -v "$1" >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  }
}
need nginx nginx
[ "$mode" = drill ] || need wrk wrk
need curl curl
bash scripts/deps.sh
bash scripts/ensure-postgres.sh
bash scripts/ensure-redis.sh
[ "$media" != s3 ] || bash scripts/ensure-s3.sh
bin=${BIN:-target/release/napiatke}
[ -n "${BIN:-}" ] || cargo build --release -q -p napiatke-web --bin napiatke
nginx_bin=$(command -v nginx)

work=$PWD/target/cluster
rm -rf "$work"
mkdir -p "$work/tmp"
media_root() { # port -> that process's MEDIA_ROOT
  if [ "$media" = s3 ]; then echo "$work/media-$1"; else echo "$work/media"; fi
}
if [ "$media" = s3 ]; then
  # Only `demo` runs with this one; each process gets its own, empty (media_root).
  mkdir -p "$work/media-demo"
  for i in $(seq 1 "$n"); do mkdir -p "$(media_root $((8400 + i)))"; done
  s3_url=${NAPIATKE_TEST_S3_URL:-http://127.0.0.1:9390}
  s3_url=${s3_url%/}
  bucket=napiatke-cluster-$$-$RANDOM
  export MEDIA_STORAGE=s3 MEDIA_S3_BUCKET=$bucket MEDIA_S3_ENDPOINT=$s3_url MEDIA_S3_REGION=us-east-1 \
    MEDIA_S3_ACCESS_KEY_ID=${MEDIA_S3_ACCESS_KEY_ID:-test} \
    MEDIA_S3_SECRET_ACCESS_KEY=${MEDIA_S3_SECRET_ACCESS_KEY:-test} MEDIA_S3_PREFIX=cluster \
    MEDIA_ROOT=$work/media-demo
  s3() { # curl ARGS, signed with the processes' credentials
    curl -fsS --aws-sigv4 "aws:amz:$MEDIA_S3_REGION:s3" \
      --user "$MEDIA_S3_ACCESS_KEY_ID:$MEDIA_S3_SECRET_ACCESS_KEY" "$@"
  }
  s3 -o /dev/null -X PUT "$s3_url/$bucket" || { echo "could not make the bucket $bucket at $s3_url" >&2; exit 1; }
  media_where="s3://$bucket/cluster at $s3_url"
else
  mkdir -p "$work/media"
  export MEDIA_ROOT=$work/media
  media_where="MEDIA_ROOT $work/media"
fi
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS napiatke_cluster WITH (FORCE)" >/dev/null 2>&1
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE napiatke_cluster" >/dev/null
prefix=cluster-$$
export DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/napiatke_cluster \
  REDIS_URL=redis://127.0.0.1:6379/0 CACHE_PREFIX=$prefix \
  NAPIATKE_ENV=production NAPIATKE_DEMO=1 RUST_LOG=warn
"$bin" demo >"$work/demo.log" 2>&1
# The drill kills a process in the middle of an image job: another claims it once
# the lease runs out.
[ "$mode" != drill ] || export IMAGE_JOB_LEASE=${IMAGE_JOB_LEASE:-3}

pids=()
nginx_pid=
drill_pid=
cleanup() {
  # The drill first: it stops the processes it started again itself.
  [ -n "$drill_pid" ] && { kill "$drill_pid" 2>/dev/null; wait "$drill_pid" 2>/dev/null; } || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Processes the drill started again (its own children, normally stopped by it).
  if [ -f "$work/drill.pids" ]; then
    while read -r p; do
      kill "$p" 2>/dev/null || continue
      for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$p" 2>/dev/null || true
    done <"$work/drill.pids"
    rm -f "$work/drill.pids"
  fi
  redis-cli --scan --pattern "$prefix*" | xargs -r redis-cli del >/dev/null 2>&1 || true
  [ "$media" = s3 ] && [ "${KEEP_BUCKET:-}" != 1 ] && drop_bucket || true
}
drop_bucket() { # every object of the bucket (1,000 a listing), then the bucket
  local keys k
  for _ in $(seq 1 20); do
    keys=$(s3 "$s3_url/$bucket?list-type=2" | grep -o '<Key>[^<]*</Key>' | sed 's/<\/\?Key>//g') || break
    [ -n "$keys" ] || break
    while read -r k; do s3 -o /dev/null -X DELETE "$s3_url/$bucket/$k" || true; done <<<"$keys"
  done
  s3 -o /dev/null -X DELETE "$s3_url/$bucket" || echo "the bucket $bucket at $s3_url was not deleted" >&2
}
trap cleanup EXIT
# Ctrl-C or kill: stop there (the EXIT trap cleans up), not go on starting things.
trap 'exit 130' INT TERM

up() { # port
  for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0
    sleep 0.2
  done
  echo "nothing answers on port $1" >&2
  exit 1
}

for i in $(seq 1 "$n"); do
  BIND=127.0.0.1:$((8400 + i)) MEDIA_ROOT=$(media_root $((8400 + i))) "$bin" serve >"$work/app-$i.log" 2>&1 &
  pids+=($!)
done
for i in $(seq 1 "$n"); do up $((8400 + i)); done

balance() { # processes: nginx in front of the first N
  [ -n "$nginx_pid" ] && { kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; }
  {
    [ "$(id -u)" -eq 0 ] && echo "user root;"
    echo "worker_processes 1;"
    echo "pid $work/nginx.pid;"
    echo "error_log $work/nginx-error.log warn;"
    echo "daemon off;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "  access_log off;"
    for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $work/tmp/$t;"; done
    echo "  client_max_body_size 25m;"
    echo "  upstream napiatke {"
    for i in $(seq 1 "$1"); do echo "    server 127.0.0.1:$((8400 + i)) max_fails=1 fail_timeout=2s;"; done
    echo "    keepalive 64;"
    echo "  }"
    echo "  server {"
    echo "    listen 127.0.0.1:8400;"
    echo "    location / {"
    echo "      proxy_pass http://napiatke;"
    echo "      proxy_http_version 1.1;"
    echo "      proxy_set_header Connection \"\";"
    echo "      proxy_set_header Host \$http_host;"
    echo "      proxy_set_header X-Forwarded-For \$remote_addr;"
    echo "      proxy_set_header X-Forwarded-Proto \$scheme;"
    echo "      proxy_next_upstream error timeout http_502;"
    echo "      proxy_buffering on;"
    echo "    }"
    echo "  }"
    echo "}"
  } >"$work/nginx.conf"
  "$nginx_bin" -p "$work" -c "$work/nginx.conf" &
  nginx_pid=$!
  up 8400
}

login() { # port -> session cookie value
  local jar=$work/cookies token
  rm -f "$jar"
  token=$(curl -s -c "$jar" -b "$jar" "http://127.0.0.1:$1/login" | sed -n 's/.*name="csrf_token" value="\([0-9a-f]*\)".*/\1/p' | head -n 1)
  curl -s -c "$jar" -b "$jar" -o /dev/null -H "Sec-Fetch-Site: same-origin" \
    -d "csrf_token=$token&email=admin@napiatke.local&password=admin&next=/dashboard/" "http://127.0.0.1:$1/login"
  awk '$6 == "napiatke_session" {print $7}' "$jar"
}

busy() { # /proc/stat's busy and total jiffies, all cores
  awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat
}

measure() { # port session page -> "req/s p99 busy%"
  local before after out
  before=$(busy)
  out=$(wrk -t2 -c"$connections" -d"$duration" --latency -H "Cookie: napiatke_session=$2" \
    -H "Accept-Encoding: br" "http://127.0.0.1:$1$3")
  after=$(busy)
  local rps p99
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  read -r b0 t0 <<<"$before"
  read -r b1 t1 <<<"$after"
  # Anything but 2xx (a lost session answers 303) makes the figure meaningless.
  local refused
  refused=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  if [ -n "$refused" ]; then
    echo "$rps $p99,${refused}-non-2xx $(((b1 - b0) * 100 / (t1 - t0)))%"
  else
    echo "$rps $p99 $(((b1 - b0) * 100 / (t1 - t0)))%"
  fi
}

if [ "$mode" = drill ]; then
  balance "$n"
  echo "cluster drill: $bin, set up (demo set, $n processes, nginx; media: $media_where) in ${SECONDS} s"
  rc=0
  # In the background, so Ctrl-C or a kill reaches the trap at once.
  python3 scripts/cluster_drill.py --bin "$bin" --work "$work" --pids "${pids[*]}" &
  drill_pid=$!
  wait "$drill_pid" || rc=$?
  drill_pid=
  echo "cluster drill: ${SECONDS} s in all, set-up included"
  exit "$rc"
fi

if [ "$mode" = serve ]; then
  balance "$n"
  echo "napiatke x$n behind nginx: http://127.0.0.1:8400  (admin@napiatke.local / admin; media: $media_where; Ctrl-C stops)"
  wait "$nginx_pid"
  exit 0
fi

echo "cluster bench: $bin, $n processes, PostgreSQL napiatke_cluster (standard set), Redis, nginx 1 worker,"
echo "media: $media_where; wrk -t2 -c$connections -d$duration, $(nproc) cores shared by all; req/s, p99, CPU busy (all cores)"
echo
header="| page | straight to 1 |"
rule="|---|---:|"
for k in $(seq 1 "$n"); do
  header="$header nginx, $k |"
  rule="$rule---:|"
done
echo "$header"
echo "$rule"
session=$(login 8401)
declare -A cells
for page in $pages; do
  curl -s -o /dev/null -H "Cookie: napiatke_session=$session" "http://127.0.0.1:8401$page"
  read -r r p c <<<"$(measure 8401 "$session" "$page")"
  cells["$page,0"]="$r ($p, $c)"
done
for k in $(seq 1 "$n"); do
  balance "$k"
  for page in $pages; do
    # Warm every process's in-process cache for the page first.
    for _ in $(seq 1 $((k * 4))); do
      curl -s -o /dev/null -H "Cookie: napiatke_session=$session" "http://127.0.0.1:8400$page"
    done
    read -r r p c <<<"$(measure 8400 "$session" "$page")"
    cells["$page,$k"]="$r ($p, $c)"
  done
done
for page in $pages; do
  line="| \`$page\` | ${cells["$page,0"]} |"
  for k in $(seq 1 "$n"); do line="$line ${cells["$page,$k"]} |"; done
  echo "$line"
done
