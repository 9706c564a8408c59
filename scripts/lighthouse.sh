#!/usr/bin/env bash
# Lighthouse (scripts/lighthouse/package-lock.json pins it) with Debian's Chromium on
# every page, logged in as the admin: the mobile preset with its default simulated
# throttling, the desktop preset, and the mobile preset with --throttling-method=devtools
# (real throttling, so the server's time counts too). RUNS runs each (default 3); the
# medians of performance, accessibility and best practices, LCP, FCP, CLS, TBT and the
# bytes transferred go to target/lighthouse/summary.md (the table in docs/performance.md).
#   bash scripts/lighthouse.sh                 # release build, standard demo set, SQLite
#   SCALE=tiny RUNS=1 PAGES="/dashboard/" bash scripts/lighthouse.sh
# Environment: BIN (default target/release/napiatke, built when missing), SCALE
# (standard), RUNS (3), PAGES (space-separated paths; "lesson" is the first lesson,
# "login" the login page logged out), CONFIGS (mobile desktop devtools).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/demo-server.sh
. scripts/demo-server.sh
ensure_browser_tools
(cd scripts/lighthouse && { [ -x node_modules/.bin/lighthouse ] || npm ci --no-audit --no-fund --silent; })
bin=${BIN:-target/release/napiatke}
[ -x "$bin" ] || cargo build --release --bin napiatke
runs=${RUNS:-3}
pages=${PAGES:-login /dashboard/ /lessons/ lesson /calendar/ /students/ /rooms/ /profile/ /admin/cache-stats/}
configs=${CONFIGS:-mobile desktop devtools}
dir=target/lighthouse
RUST_LOG=warn serve_demo "$bin" "$dir" "${SCALE:-standard}"
mkdir -p "$dir/reports"
session=$(log_in_admin)
[ -n "$session" ] || { echo "login failed" >&2; exit 1; }
lesson=$(curl -s --compressed -H "Cookie: napiatke_session=$session" "$base/lessons/" | grep -o 'href="/lessons/[0-9]*/"' | head -n 1 | cut -d'"' -f2)
export CHROME_PATH
CHROME_PATH=$(command -v chromium)
lh=scripts/lighthouse/node_modules/.bin/lighthouse
for p in $pages; do
  case $p in
    login) path=/login; headers='{}' ;;
    lesson) path=$lesson; headers="{\"Cookie\":\"napiatke_session=$session\"}" ;;
    *) path=$p; headers="{\"Cookie\":\"napiatke_session=$session\"}" ;;
  esac
  name=$(printf '%s' "$p" | tr -c 'a-z0-9-' '_')
  # Warm the server's caches: the figures are for pages as users meet them, after the
  # first visit since a change.
  curl -s -o /dev/null --compressed -H "Cookie: napiatke_session=$session" "$base$path"
  for c in $configs; do
    case $c in
      mobile) flags=() ;;
      desktop) flags=(--preset=desktop) ;;
      devtools) flags=(--throttling-method=devtools) ;;
      *) echo "unknown config $c" >&2; exit 2 ;;
    esac
    for r in $(seq 1 "$runs"); do
      # Lighthouse now and then loses the trace of a run (NO_NAVSTART): try again.
      for attempt in 1 2 3; do
        "$lh" "$base$path" "${flags[@]}" --quiet --output=json --output-path="$dir/reports/$name.$c.$r.json" \
          --only-categories=performance,accessibility,best-practices --extra-headers="$headers" \
          --chrome-flags="--headless=new --no-sandbox --disable-dev-shm-usage" && break
        [ "$attempt" -lt 3 ] || { echo "lighthouse failed on $p ($c) three times" >&2; exit 1; }
      done
    done
  done
done
node scripts/lighthouse/summary.mjs "$dir/reports" | tee "$dir/summary.md"
