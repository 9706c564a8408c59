#!/usr/bin/env bash
# Asserts the DESIGN.md arrows: each crate's napiatke-* dependencies are within what
# its layer may use, and only the HTTP layers pull in actix-web, only db pulls diesel.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
allowed() {
  case "$1" in
    napiatke-domain) echo "" ;;
    napiatke-db) echo "napiatke-domain" ;;
    napiatke-cache|napiatke-images|napiatke-assets|napiatke-telemetry) echo "" ;;
    napiatke-services) echo "napiatke-domain napiatke-db napiatke-cache napiatke-images" ;;
    napiatke-htmx) echo "napiatke-cache napiatke-assets" ;;
    napiatke-web|napiatke-benches) echo "*" ;;
    *) echo "?" ;;
  esac
}
for manifest in crates/*/Cargo.toml apps/*/Cargo.toml; do
  crate=$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n 1)
  ok=$(allowed "$crate")
  if [ "$ok" = "?" ]; then echo "layers: $crate is not in DESIGN.md's table" >&2; fail=1; continue; fi
  [ "$ok" = "*" ] && continue
  deps=$(cargo tree -p "$crate" -e normal --depth 1 --prefix none 2>/dev/null | tail -n +2 | awk '{print $1}' | grep '^napiatke-' || true)
  for d in $deps; do
    case " $ok " in *" $d "*) ;; *) echo "layers: $crate must not depend on $d" >&2; fail=1 ;; esac
  done
  tree=$(cargo tree -p "$crate" -e normal --prefix none 2>/dev/null | awk '{print $1}' | sort -u)
  if [ "$crate" != napiatke-htmx ] && grep -qx 'actix-web' <<<"$tree"; then
    echo "layers: $crate depends on actix-web (only apps/web and htmx may)" >&2; fail=1
  fi
  if [ "$crate" != napiatke-db ] && [ "$crate" != napiatke-services ] && grep -qx 'diesel' <<<"$tree"; then
    echo "layers: $crate depends on diesel (only db, and services through it, may)" >&2; fail=1
  fi
done
[ $fail -eq 0 ] && echo "layers: ok"
exit $fail
