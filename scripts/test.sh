#!/usr/bin/env bash
# Runs the whole test suite on SQLite and PostgreSQL against a real Redis and a real
# S3-compatible server, installing and starting PostgreSQL, Redis and moto if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/ensure-postgres.sh
bash scripts/ensure-redis.sh
# The S3 test server is installed (from PyPI, a minute on a fresh machine) while the
# tests compile.
bash scripts/ensure-s3.sh & s3=$!
export NAPIATKE_TEST_REDIS_URL="${NAPIATKE_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
export NAPIATKE_TEST_PG_URL="${NAPIATKE_TEST_PG_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-run
else
  cargo test --workspace --lib --bins --tests --no-run
fi
wait "$s3"
export NAPIATKE_TEST_S3_URL="${NAPIATKE_TEST_S3_URL:-http://127.0.0.1:9390}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --lib --bins --tests --no-fail-fast
fi
# nextest does not run doctests: the examples in the API docs are tests too.
cargo test --workspace --doc --quiet
# Every kind of response through REDbot, the HTTP linter.
bash scripts/http-lint.sh
# The user flows in Debian's headless Chromium, with JavaScript and without.
bash scripts/browser-tests.sh
