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
# shellcheck source=scripts/demo-server.sh
. scripts/demo-server.sh
RUST_LOG=error serve_demo target/debug/napiatke target/http-lint tiny
"$venv/bin/python" scripts/http_lint.py "$base"
