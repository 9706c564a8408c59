#!/usr/bin/env bash
# Asserts the DESIGN.md arrows: each crate's napiatke-* dependencies are within what
# its layer may use, and only the HTTP layers pull in actix-web, only db pulls diesel.
# apps/web names napiatke-db only to open the pool (rows, queries and migrations go
# through napiatke-services). A `cargo tree` that fails fails the check: an empty tree
# proves nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
tree_of() { # crate [cargo tree options...]
  local out
  if ! out=$(cargo tree -p "$@" -e normal --prefix none 2>&1); then
    echo "layers: cargo tree -p $1 failed:" >&2
    echo "$out" >&2
    exit 2
  fi
  [ -n "$out" ] || { echo "layers: cargo tree -p $1 printed nothing" >&2; exit 2; }
  printf '%s\n' "$out"
}
allowed() {
  case "$1" in
    napiatke-domain) echo "" ;;
    napiatke-db) echo "napiatke-domain" ;;
    napiatke-cache|napiatke-assets|napiatke-telemetry|napiatke-charts|napiatke-fuzzing|napiatke-avif-decode) echo "" ;;
    napiatke-images) echo "napiatke-domain napiatke-avif-decode" ;;
    napiatke-bucket) echo "napiatke-images" ;;
    napiatke-services) echo "napiatke-domain napiatke-db napiatke-cache napiatke-images napiatke-charts" ;;
    napiatke-htmx) echo "napiatke-cache napiatke-assets" ;;
    napiatke-toolbar) echo "napiatke-telemetry" ;;
    napiatke-web|napiatke-benches) echo "*" ;;
    *) echo "?" ;;
  esac
}
for manifest in crates/*/Cargo.toml apps/*/Cargo.toml; do
  crate=$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n 1)
  ok=$(allowed "$crate")
  if [ "$ok" = "?" ]; then echo "layers: $crate is not in DESIGN.md's table" >&2; fail=1; continue; fi
  [ "$ok" = "*" ] && continue
  direct=$(tree_of "$crate" --depth 1) || exit 2
  deps=$(tail -n +2 <<<"$direct" | awk '{print $1}' | grep '^napiatke-' || true)
  for d in $deps; do
    case " $ok " in *" $d "*) ;; *) echo "layers: $crate must not depend on $d" >&2; fail=1 ;; esac
  done
  tree=$(tree_of "$crate" | awk '{print $1}' | sort -u) || exit 2
  if [ "$crate" != napiatke-htmx ] && grep -qx 'actix-web' <<<"$tree"; then
    echo "layers: $crate depends on actix-web (only apps/web and htmx may)" >&2; fail=1
  fi
  if [ "$crate" != napiatke-db ] && [ "$crate" != napiatke-services ] && grep -qx 'diesel' <<<"$tree"; then
    echo "layers: $crate depends on diesel (only db, and services through it, may)" >&2; fail=1
  fi
done
# What apps/web may name from napiatke-db: the pool, its options, its URL, its error
# and its engine. Everything else belongs behind a use case.
db_uses=$(grep -rnoE 'napiatke_db::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_:]*)' apps/web/src || true)
while IFS= read -r use; do
  [ -n "$use" ] || continue
  names=${use#*napiatke_db::}
  names=${names//[\{\} ]/}
  for name in ${names//,/ }; do
    case "${name%%::*}" in
      Db|PoolOptions|DatabaseUrl|DbError|Engine) ;;
      *) echo "layers: apps/web names napiatke_db::$name (${use%%:napiatke_db*}); go through napiatke-services" >&2; fail=1 ;;
    esac
  done
done <<<"$db_uses"
[ $fail -eq 0 ] && echo "layers: ok"
exit $fail
