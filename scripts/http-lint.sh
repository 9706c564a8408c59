#!/usr/bin/env bash
# REDbot over every kind of response napiatke sends (scripts/http_lint.py says which
# and lists the notes accepted, each with its reason), against the debug binary on a
# fresh SQLite demo set in production mode, on a free loopback port. Part of the
# README's test command. Installs python3 and REDbot (pinned, in a virtualenv under
# target/) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/redbot-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import redbot" 2>/dev/null; then
  if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "redbot==2.7.1"
fi
command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
# The test profile over the workspace: what the test step already built (a `-p` build
# unifies features differently and would rebuild much of the tree).
cargo build -q --profile test --workspace --bins
dir=target/http-lint
rm -rf "$dir" && mkdir -p "$dir"
export DATABASE_URL="sqlite://$dir/db.sqlite3" NAPIATKE_ENV=production NAPIATKE_DEMO=1 \
  MEDIA_ROOT="$dir/media" RUST_LOG=error
target/debug/napiatke migrate >/dev/null
target/debug/napiatke seed --scale tiny >/dev/null
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BIND="127.0.0.1:$port" target/debug/napiatke serve >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  kill -0 $pid 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  sleep 0.2
done
"$venv/bin/python" scripts/http_lint.py "http://127.0.0.1:$port"
