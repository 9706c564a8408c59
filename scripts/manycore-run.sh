#!/usr/bin/env bash
# The scaling run on a many-core machine, from the repository root, over what
# scripts/manycore-pack.sh put in .dev/ (../shared/MANYCORE.md). Every packed build
# is measured side by side by scripts/cores.py: the server pinned to SERVER_CORES
# (default "0-1 0-7"), wrk to WRK_CORES; with .dev/pg.tar.xz, PostgreSQL too, pinned
# to PG_CORES, with wrk on PG_WRK_CORES. Tables go to $OUT (or /tmp/manycore).
#
#   bash scripts/manycore-run.sh                     # on the device machine
#   SERVER_CORES="0 0-1" WRK_CORES=0-1 PG_CORES=0-1 PG_WRK_CORES=0-1 PG_PORT=5433 \
#     WRK_THREADS=2 bash scripts/manycore-run.sh     # rehearsal on a 2-core machine
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/manycore}
logs=/tmp/manycore-logs
mkdir -p "$out" "$logs"
root=$PWD
# Unpacked outside the tree, so a rehearsal leaves .dev as packed.
rm -rf /tmp/manycore-bin && mkdir -p /tmp/manycore-bin && cp -r .dev/lib .dev/wrk /tmp/manycore-bin/
cd /tmp/manycore-bin
export LD_LIBRARY_PATH=$PWD/lib
cached=() uncached=()
for g in "$root"/.dev/*.gz; do
  n=$(basename "$g" .gz)
  gunzip -c "$g" >"$n" && chmod +x "$n"
  [ "$n" = bare ] && continue
  cached+=(--bin "$n=$PWD/$n")
  uncached+=(--bin "$n=$PWD/$n CACHE_L1_BYTES=0")
done
chmod +x wrk
{ nproc; grep -m1 'model name' /proc/cpuinfo; free -g | head -n 2; } >"$out/machine.txt"
cores=()
for c in ${SERVER_CORES:-0-1 0-7}; do cores+=(--cores "$c"); done
common=(--wrk "$PWD/wrk" --connections "${CONNECTIONS:-256}" --duration "${DURATION:-4}" --log-dir "$logs")
sqlite=(--database-url sqlite:///tmp/manycore-db/db.sqlite3 --wrk-cores "${WRK_CORES:-8-15}"
  --threads "${WRK_THREADS:-8}")
db_pages=()
# (Not the dashboard: uncached it is seconds of aggregates, a page built for the cache.)
for p in "/students/?page=2" "/lessons/?page=3" "/students/?q=kow"; do db_pages+=(--page "$p"); done
rm -rf /tmp/manycore-db
if [ -z "${SKIP_SQLITE:-}" ]; then
# Answered from memory (the in-process cache, as deployed), beside actix alone.
python3 "$root/scripts/cores.py" "${cached[@]}" --bare "$PWD/bare" "${cores[@]}" "${common[@]}" \
  "${sqlite[@]}" --page STYLESHEET --page /lessons/100/ --page /dashboard/ --page /healthz \
  | tee "$out/sqlite-memory.md"
# Every read from the database (CACHE_L1_BYTES=0): the path this measures.
python3 "$root/scripts/cores.py" "${uncached[@]}" "${cores[@]}" "${common[@]}" "${sqlite[@]}" \
  "${db_pages[@]}" --port 8350 | tee "$out/sqlite-db.md"
fi
[ -f "$root/.dev/pg.tar.xz" ] || exit 0
# PostgreSQL refuses to run as root: a user of its own, a data directory in /tmp.
pkill -f /tmp/pg/usr/lib/postgresql/ 2>/dev/null && sleep 1
rm -rf /tmp/pg /tmp/pgdata && tar -C /tmp -xJf "$root/.dev/pg.tar.xz" && chmod -R a+rX /tmp/pg
id pgrun >/dev/null 2>&1 || useradd -M -s /bin/sh pgrun
[ -e /usr/share/zoneinfo/UTC ] || { mkdir -p /usr/share/zoneinfo && cp -r /tmp/pg/zoneinfo/. /usr/share/zoneinfo/; }
bin=$(echo /tmp/pg/usr/lib/postgresql/*/bin)
port=${PG_PORT:-5432}
mkdir -p /tmp/pgdata && chown pgrun /tmp/pgdata && chmod 700 /tmp/pgdata
pg() { runuser -u pgrun -- env LD_LIBRARY_PATH=/tmp/pg/libs LC_ALL=C "$@"; }
pg "$bin/initdb" -D /tmp/pgdata -U postgres -A trust --no-sync -E UTF8 --locale=C >"$logs/initdb.log" 2>&1
# Stock settings but for room for both servers' pools.
pg taskset -c "${PG_CORES:-8-13}" "$bin/postgres" -D /tmp/pgdata -p "$port" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories=/tmp -c max_connections=200 >"$logs/postgres.log" 2>&1 &
trap 'pg "$bin/pg_ctl" -D /tmp/pgdata stop -m immediate >/dev/null 2>&1 || true' EXIT
python3 - "$port" <<'EOF'
import socket, sys, time
for _ in range(300):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close(); break
    except OSError:
        time.sleep(0.1)
EOF
sleep 1
python3 "$root/scripts/cores.py" "${uncached[@]}" "${cores[@]}" "${common[@]}" \
  --page /healthz "${db_pages[@]}" \
  --wrk-cores "${PG_WRK_CORES:-14-15}" --threads 2 --port 8400 \
  --database-url "postgres://postgres@127.0.0.1:$port/postgres" | tee "$out/postgres.md"
