# Sourced by the scripts that test or measure a running napiatke (http-lint.sh,
# browser-tests.sh, lighthouse.sh): a demo school in production mode on a free
# loopback port, and the browser tools.

# Installs Debian's chromium, Node.js and npm (and curl) when missing.
ensure_browser_tools() {
  local need=()
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-dejavu-core >/dev/null
  fi
}

# serve_demo BIN DIR SCALE: a fresh SQLite database and media folder under DIR (emptied
# first), migrated and seeded at SCALE, served by BIN in production mode on a free
# loopback port until the calling script exits. Sets `base` (http://127.0.0.1:PORT)
# and `server_pid`; RUST_LOG and any other settings come from the caller's
# environment. Exits with the server's log when it does not come up.
serve_demo() {
  local bin=$1 dir=$2 scale=$3 port
  rm -rf "$dir" && mkdir -p "$dir"
  export DATABASE_URL="sqlite://$dir/db.sqlite3" NAPIATKE_ENV=production NAPIATKE_DEMO=1 \
    MEDIA_ROOT="$dir/media"
  "$bin" migrate >/dev/null
  "$bin" seed --scale "$scale" >/dev/null
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  base="http://127.0.0.1:$port"
  BIND="127.0.0.1:$port" "$bin" serve >"$dir/server.log" 2>&1 &
  server_pid=$!
  # shellcheck disable=SC2064 # the pid is meant to be fixed now
  trap "kill $server_pid 2>/dev/null || true" EXIT
  for _ in $(seq 1 150); do
    curl -sf "$base/healthz" >/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "napiatke did not start:" >&2
  cat "$dir/server.log" >&2
  exit 1
}

# log_in_admin: the admin's session cookie value on $base.
log_in_admin() {
  local jar token
  jar=$(mktemp)
  token=$(curl -s -c "$jar" -b "$jar" "$base/login" | sed -n 's/.*name="csrf_token" value="\([0-9a-f]*\)".*/\1/p' | head -n 1)
  curl -s -c "$jar" -b "$jar" -o /dev/null -d "csrf_token=$token&email=admin@napiatke.local&password=admin&next=/dashboard/" "$base/login"
  awk '$6 == "napiatke_session" {print $7}' "$jar"
  rm -f "$jar"
}
