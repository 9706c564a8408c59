# shellcheck shell=bash
# Shared by the telemetry measurement scripts (telemetry-cost.sh,
# telemetry-instructions.sh, telemetry-perf.sh, log-cost.sh); sourced from the
# repository root.

# prof_prepare NAME: the release build, and a fresh demo set in
# target/prof/NAME.sqlite3 with the static files collected, under production
# settings (exported for the servers the script starts).
prof_prepare() {
  cargo build --release -q -p napiatke-web --bin napiatke
  mkdir -p target/prof
  export DATABASE_URL=sqlite://target/prof/$1.sqlite3 NAPIATKE_ENV=production NAPIATKE_DEMO=1
  rm -f target/prof/"$1".sqlite3*
  target/release/napiatke demo >/dev/null 2>&1
  target/release/napiatke collectstatic >/dev/null 2>&1
}

# prof_wait PORT [TRIES]: until the server at 127.0.0.1:PORT answers /healthz (at
# most TRIES times 0.2 s, default 100; a server under valgrind needs more).
prof_wait() {
  for _ in $(seq 1 "${2:-100}"); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return; sleep 0.2; done
}

# prof_login PORT: logs in on the server at 127.0.0.1:PORT as EMAIL and PASSWORD
# (default the demo admin) and prints the session cookie's value.
prof_login() {
  local jar=target/prof/jar-$1 token
  rm -f "$jar"
  token=$(curl -s -c "$jar" -b "$jar" "http://127.0.0.1:$1/login" | sed -n 's/.*name="csrf_token" value="\([0-9a-f]*\)".*/\1/p' | head -n 1)
  curl -s -c "$jar" -b "$jar" -o /dev/null -d "csrf_token=$token&email=${EMAIL:-admin@napiatke.local}&password=${PASSWORD:-admin}&next=/dashboard/" "http://127.0.0.1:$1/login"
  awk '$6 == "napiatke_session" {print $7}' "$jar"
}
