#!/usr/bin/env bash
# Failure drills (scripts/drills.py, its docstring says what each does and checks):
# Redis killed and PostgreSQL restarted under load, the pool held by stuck
# statements, MEDIA_ROOT full, clients trickling bytes. Loopback only, on parts of
# their own (the machine's PostgreSQL and Redis are never touched). Installs what is
# missing; builds the binary when NAPIATKE_BIN (default target/debug/napiatke) is
# absent. `--short` is what .ci/run runs; without it the phases are longer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-redis.sh
bash scripts/ensure-postgres.sh
if ! command -v python3 >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 >/dev/null
fi
bin=${NAPIATKE_BIN:-target/debug/napiatke}
[ -x "$bin" ] || cargo build --bin napiatke
exec python3 scripts/drills.py --bin "$bin" "$@"
