#!/usr/bin/env bash
# Makes sure an S3-compatible server answers for the tests of media on object storage
# (MEDIA_STORAGE=s3): moto's server (PyPI `moto[server]`, an S3 API over HTTP that
# keeps objects in memory), installed in a virtualenv of its own under
# target/s3-venv and started on 127.0.0.1:9390 unless something answers there.
# NAPIATKE_TEST_S3_URL overrides the address (a MinIO or Garage of your own); each
# test makes a bucket of its own, so one server serves them all, in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${NAPIATKE_TEST_S3_URL:-}" ]; then
  exit 0
fi
port=9390
ready() { curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; }
if ! command -v curl >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null
fi
ready && exit 0
venv=target/s3-venv
if [ ! -x "$venv/bin/moto_server" ]; then
  echo "installing moto (S3 test server) into $venv ..." >&2
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1 \
      || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.*'
fi
# Its own session, so it outlives this script (as the tests' Redis does).
setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >/tmp/napiatke-test-s3.log 2>&1 < /dev/null &
for _ in $(seq 1 100); do ready && break; sleep 0.1; done
ready || { echo "moto_server did not start on 127.0.0.1:$port (see /tmp/napiatke-test-s3.log)" >&2; exit 1; }
