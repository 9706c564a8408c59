#!/usr/bin/env bash
# napiatke's pages driven in Debian's headless Chromium by playwright-core (pinned in
# tests/browser/package-lock.json): the user flows with JavaScript and the same flows
# through plain links and forms without it, at phone and desktop widths; every test
# fails on a console error (CSP violations included), an uncaught exception, a failed
# request or a 4xx/5xx response it did not ask for. Part of the README's test command.
# Installs chromium, Node.js and npm with apt when missing.
#   bash scripts/browser-tests.sh            # build, seed, serve, test
#   SHOTS=dir bash scripts/browser-tests.sh  # also keep a screenshot per page and width
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/demo-server.sh
. scripts/demo-server.sh
ensure_browser_tools
(cd tests/browser && { [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --silent; })
# The test profile over the workspace: what the test step already built.
cargo build -q --profile test --workspace --bins
# Production settings, as a user meets them (strict CSP, secure cookies: Chromium keeps
# Secure cookies of http://127.0.0.1, a trustworthy origin). Tiny demo set: 240 lessons
# (five pages), 24 students.
dir=target/browser-tests
RUST_LOG=warn LOG_FORMAT=human serve_demo target/debug/napiatke "$dir" tiny
status=0
NAPIATKE_URL="$base" CHROMIUM="$(command -v chromium)" \
  node --test --test-concurrency=1 tests/browser/ || status=$?
if [ $status -ne 0 ]; then
  echo "--- server log (last 40 lines) ---" >&2
  tail -40 "$dir/server.log" >&2
fi
exit $status
