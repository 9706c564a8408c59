#!/usr/bin/env bash
# Makes sure redis-server is installed (outage tests start their own on a free port)
# and a Redis answers on 127.0.0.1:6379, the tests' shared server
# (NAPIATKE_TEST_REDIS_URL overrides it). Installs and starts one when absent.
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "installing Redis ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
fi
if [ -n "${NAPIATKE_TEST_REDIS_URL:-}" ]; then
  exit 0
fi
ready() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
ready && exit 0
redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --dir /tmp --logfile /tmp/napiatke-test-redis.log >/dev/null
for _ in $(seq 1 50); do ready && break; sleep 0.1; done
ready || { echo "Redis did not start on 127.0.0.1:6379" >&2; exit 1; }
