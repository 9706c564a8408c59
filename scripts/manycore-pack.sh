#!/usr/bin/env bash
# Packs into .dev/ (ignored by git) what a scaling run on a many-core machine needs
# (../shared/MANYCORE.md): the stripped, gzipped binaries, wrk, the shared libraries
# they load that a bare Ubuntu lacks, and with PG=1 this machine's PostgreSQL (its
# server, initdb, libraries, share files and the time zones it reads). The run
# itself is scripts/manycore-run.sh, there.
#
#   bash scripts/manycore-pack.sh after=target/release/napiatke before=/tmp/napiatke-old
#   PG=1 bash scripts/manycore-pack.sh after=target/release/napiatke
#
# Each NAME=PATH becomes .dev/NAME.gz; apps/web/examples/bare.rs is built and packed
# as bare.gz. Everything must stay under the 64 MiB a run carries.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: $0 NAME=PATH..." >&2; exit 2; }
grep -qx '/.dev/' .git/info/exclude 2>/dev/null || echo /.dev/ >>.git/info/exclude
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p napiatke-web --example bare
rm -rf .dev && mkdir -p .dev/lib
bins=(target/release/examples/bare "$(command -v wrk)")
for spec in "$@" bare=target/release/examples/bare; do
  name=${spec%%=*} path=${spec#*=}
  objcopy --strip-debug "$path" ".dev/$name" && gzip -f ".dev/$name"
  bins+=("$path")
done
cp "$(command -v wrk)" .dev/
# The libraries every Ubuntu has stay behind; the rest travel.
libs() { ldd "$@" | awk '/=>/ {print $3}' | sort -u |
  grep -vE 'libc\.so|libm\.so|libgcc_s|ld-linux|libpthread|libresolv|libdl|librt' || true; }
libs "${bins[@]}" | xargs -r -I{} cp -L {} .dev/lib/
if [ -n "${PG:-}" ]; then
  v=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
  stage=$(mktemp -d)
  mkdir -p "$stage/pg/usr/lib/postgresql/$v/bin" "$stage/pg/usr/lib/postgresql/$v/lib" \
    "$stage/pg/usr/share/postgresql" "$stage/pg/libs" "$stage/pg/zoneinfo/Europe" "$stage/pg/zoneinfo/Etc"
  # Relative to bin/, PostgreSQL finds lib/ and share/ where Debian put them.
  cp /usr/lib/postgresql/"$v"/bin/{postgres,initdb,pg_ctl} "$stage/pg/usr/lib/postgresql/$v/bin/"
  cp /usr/lib/postgresql/"$v"/lib/{plpgsql.so,dict_snowball.so,pg_trgm.so} "$stage/pg/usr/lib/postgresql/$v/lib/"
  cp -r /usr/share/postgresql/"$v" "$stage/pg/usr/share/postgresql/"
  rm -rf "$stage/pg/usr/share/postgresql/$v/man" "$stage/pg/usr/share/postgresql/$v/extension"
  mkdir -p "$stage/pg/usr/share/postgresql/$v/extension"
  cp /usr/share/postgresql/"$v"/extension/{plpgsql,pg_trgm}* "$stage/pg/usr/share/postgresql/$v/extension/"
  libs /usr/lib/postgresql/"$v"/bin/{postgres,initdb} /usr/lib/postgresql/"$v"/lib/dict_snowball.so |
    xargs -r -I{} cp -L {} "$stage/pg/libs/"
  cp /usr/share/zoneinfo/UTC "$stage/pg/zoneinfo/"
  cp /usr/share/zoneinfo/Etc/UTC "$stage/pg/zoneinfo/Etc/"
  cp /usr/share/zoneinfo/Europe/Warsaw "$stage/pg/zoneinfo/Europe/"
  tar -C "$stage" -cJf .dev/pg.tar.xz pg
  rm -rf "$stage"
fi
du -sh .dev
