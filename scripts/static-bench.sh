#!/usr/bin/env bash
# Static files: napiatke vs nginx gzip_static on the same collected 100 KB stylesheet,
# in one run (docs/performance.md). wrk -t2 -c64, alternating servers, loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10s}
rounds=${ROUNDS:-2}
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; fi
bash scripts/deps.sh
cargo build --release -q -p napiatke-web --bin napiatke
work=$PWD/target/static-bench
rm -rf "$work" && mkdir -p "$work/assets/css" "$work/nginx"
# A realistic ~100 KB stylesheet: many distinct rules, as a component library has.
python3 - "$work/assets/css/big.css" <<'PY'
import sys
rules = []
i = 0
while sum(len(r) for r in rules) < 100_000:
    rules.append(
        f".c-{i} > .item-{i % 37}:hover {{ margin: {i % 13}px {i % 7}px; padding: 0 {i % 5}rem; "
        f"color: #{(i * 2654435761) % 0xFFFFFF:06x}; border: 1px solid rgba({i % 255}, {i * 7 % 255}, {i * 13 % 255}, .{i % 9}); "
        f"transition: opacity {i % 400}ms ease-in-out; }}\n"
    )
    i += 1
open(sys.argv[1], "w").write("".join(rules))
PY
export ASSETS_DIR=$work/assets STATIC_ROOT=$work/root DATABASE_URL=sqlite://$work/db.sqlite3
export BIND=127.0.0.1:8280 NAPIATKE_ENV=production NAPIATKE_DEMO=1 RUST_LOG=error
target/release/napiatke collectstatic >/dev/null
hashed=$(python3 -c "import json,sys; print(json.load(open('$work/root/staticfiles.json'))['paths']['css/big.css'])")
target/release/napiatke demo >/dev/null
target/release/napiatke serve >"$work/serve.log" 2>&1 &
ours=$!
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  include /etc/nginx/mime.types;
  server {
    listen 127.0.0.1:8281;
    location /static/ { alias $work/root/; gzip_static on; expires max; add_header Cache-Control "public, immutable"; }
  }
}
NGINX
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"
trap 'kill $ours 2>/dev/null || true; nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -s stop 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:8280/healthz" >/dev/null && break; sleep 0.2; done
size() { curl -s -o /dev/null -w '%{size_download}' -H "Accept-Encoding: $2" "$1"; }
echo "identity $(stat -c %s "$work/root/$hashed") B, br $(size "http://127.0.0.1:8280/static/$hashed" br) B, gzip $(size "http://127.0.0.1:8280/static/$hashed" gzip) B (nginx gzip $(size "http://127.0.0.1:8281/static/$hashed" gzip) B)"
run() {
  out=$(wrk -t2 -c64 -d"$duration" --latency -H "Accept-Encoding: $3" "$2")
  printf '| %s | %s | %s | %s |\n' "$1" "$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")" "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
}
printf '| server, encoding | requests/s | p50 | p99 |\n|---|---|---|---|\n'
for _ in $(seq 1 "$rounds"); do
  run "napiatke, br" "http://127.0.0.1:8280/static/$hashed" br
  run "nginx gzip_static, gzip" "http://127.0.0.1:8281/static/$hashed" gzip
  run "napiatke, gzip" "http://127.0.0.1:8280/static/$hashed" gzip
done
