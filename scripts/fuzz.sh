#!/usr/bin/env bash
# Runs every fuzz target (tests named fuzz_*, see crates/fuzzing) for SECONDS each
# (default 60) from random seeds, instead of the fixed seeds the test suite uses, and
# prints how many cases each ran. A failure prints its seed:
# `NAPIATKE_FUZZ_SEED=N cargo nextest run --workspace -E 'test(NAME)'` replays it; fix
# the bug and keep the input as a test. Targets: image decoding within limits,
# storage and variant names, /static/ paths and headers, htmx headers, query strings
# and forms, `next` after login, the cross-site check.
set -euo pipefail
cd "$(dirname "$0")/.."
export NAPIATKE_FUZZ_SECONDS=${1:-60}
mkdir -p target
log=target/fuzz.log
status=0
cargo nextest run --workspace --no-fail-fast --success-output final --failure-output final \
  -E 'test(/fuzz_/)' >"$log" 2>&1 || status=$?
grep -E 'fuzz .*cases from seed|FAIL|panicked|Summary' "$log" | sed 's/^ *//' || true
[ "$status" -eq 0 ] || echo "fuzzing failed: see $log" >&2
exit "$status"
