#!/usr/bin/env bash
# Two servers side by side on one SQLite standard set, same release binary, each with
# its own extra environment, measured alternately on cached pages (docs/performance.md):
#   A="RUST_LOG=warn" B="RUST_LOG=warn OTEL_EXPORTER_OTLP_ENDPOINT=http://10.255.255.1:4318" \
#     bash scripts/telemetry-cost.sh
# A_BIN and B_BIN (default the release build) compare two builds, e.g. the last
# commit's binary copied aside against the working tree's:
#   A_BIN=target/prof/napiatke-head A="" B="" bash scripts/telemetry-cost.sh
# ROUNDS (3) rounds of DURATION (5s) per page; PAGES overrides the page list;
# RESTART=1 starts both servers anew each round (recommended: see start). PIN=1
# puts both servers on CPU 1 and wrk (one thread) on CPU 0, so wrk and the server do
# not take each other's time: the ratio is then the server's CPU per request.
# HALT_POLL=NS (root, a guest with cpuidle-haltpoll) has idle vCPUs poll NS
# nanoseconds before halting while the script runs, and restores the setting at
# exit: on this VM a response that wakes wrk's halted vCPU costs the server a trip
# through the hypervisor, a cost a client on another machine does not put on it
# (docs/performance.md, "Telemetry cost").
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
. scripts/prof-lib.sh
prof_prepare cost
a=${A-RUST_LOG=warn} b=${B?set B to the second server\'s environment}
a_bin=${A_BIN:-target/release/napiatke} b_bin=${B_BIN:-target/release/napiatke}
rounds=${ROUNDS:-3} duration=${DURATION:-5s}
# shellcheck disable=SC2086 # A and B are lists of NAME=value words
server_cpu=() client_cpu=() threads=2
if [ "${PIN:-0}" = 1 ]; then server_cpu=(taskset -c 1) client_cpu=(taskset -c 0) threads=1; fi
p1='' p2=''
: >target/prof/a.log
[ -n "${B_LOG:-}" ] || : >target/prof/b.log
# Both servers started (their sessions in s1 and s2): once, or with RESTART=1 anew
# each round, so that neither side keeps a lucky or unlucky process (its memory
# layout, its pages) for every round; an A/A run showed one pair of processes
# favoured by 5 % throughout.
start() {
  # shellcheck disable=SC2086 # A and B are lists of NAME=value words
  env -u RUST_LOG $a BIND=127.0.0.1:8401 "${server_cpu[@]}" "$a_bin" serve >> target/prof/a.log 2>&1 & p1=$!
  # shellcheck disable=SC2086
  env -u RUST_LOG $b BIND=127.0.0.1:8402 "${server_cpu[@]}" "$b_bin" serve >> "${B_LOG:-target/prof/b.log}" 2>&1 & p2=$!
  prof_wait 8401; prof_wait 8402
  s1=$(prof_login 8401); s2=$(prof_login 8402)
}
stop() {
  [ -z "$p1" ] || { kill $p1 $p2 2>/dev/null || true; wait $p1 $p2 2>/dev/null || true; }
  p1='' p2=''
}
halt_poll=/sys/module/haltpoll/parameters/guest_halt_poll_ns halt_poll_was=''
finish() {
  stop
  [ -z "$halt_poll_was" ] || echo "$halt_poll_was" >"$halt_poll"
}
trap finish EXIT
if [ -n "${HALT_POLL:-}" ]; then
  halt_poll_was=$(cat "$halt_poll")
  echo "$HALT_POLL" >"$halt_poll"
  echo "idle vCPUs poll $(cat "$halt_poll") ns before halting (was $halt_poll_was)"
fi
# CPU ticks (user + system, every thread) the server process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# wrk on `url` as `session` for `duration`, from the client's CPU.
load() { # session duration url
  "${client_cpu[@]}" wrk -t"$threads" -c32 -d"$2" -H "Cookie: napiatke_session=$1" -H "Accept-Encoding: br" "$3"
}
# One wrk run: "req/s requests ticks" (ticks the server used during the run).
measure() { # pid session url
  local t0 out
  t0=$(ticks "$1")
  out=$(load "$2" "$duration" "$3")
  echo "$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out") $(awk '/requests in/ {print $1}' <<<"$out") $(( $(ticks "$1") - t0 ))"
}
hz=$(getconf CLK_TCK)
echo "A: $a_bin $a"; echo "B: $b_bin $b"
echo "(req/s, and the server's CPU per request in microseconds, user + system, all threads)"
read -r -a pages <<<"${PAGES:-/lessons/100/ /dashboard/ /lessons/?page=3}"
: >target/prof/cost-rounds
for page in "${pages[@]}"; do
  for r in $(seq 1 "$rounds"); do
    if [ -z "$p1" ] || [ "${RESTART:-0}" = 1 ]; then
      stop; start
      # The page cached and the connections' first costs paid, on both sides.
      load "$s1" 1s "http://127.0.0.1:8401$page" >/dev/null
      load "$s2" 1s "http://127.0.0.1:8402$page" >/dev/null
    fi
    # A then B in odd rounds, B then A in even ones: whatever favours the first
    # (or second) run of a pair falls on each side equally.
    if [ $((r % 2)) = 1 ]; then
      read -r xr xn xt <<<"$(measure $p1 "$s1" "http://127.0.0.1:8401$page")"
      read -r yr yn yt <<<"$(measure $p2 "$s2" "http://127.0.0.1:8402$page")"
    else
      read -r yr yn yt <<<"$(measure $p2 "$s2" "http://127.0.0.1:8402$page")"
      read -r xr xn xt <<<"$(measure $p1 "$s1" "http://127.0.0.1:8401$page")"
    fi
    awk -v page="$page" -v r="$r" -v xr="$xr" -v xn="$xn" -v xt="$xt" -v yr="$yr" -v yn="$yn" -v yt="$yt" -v hz="$hz" 'BEGIN {
      xc = xt / hz * 1e6 / xn; yc = yt / hz * 1e6 / yn
      printf "%s round %s: A %d req/s %.1f us, B %d req/s %.1f us, B/A req/s %.3f, CPU %.3f\n", page, r, xr, xc, yr, yc, yr / xr, yc / xc }' | tee -a target/prof/cost-rounds
  done
done
# Medians per page: one round's ratio swings by several per cent on this machine.
python3 - <<'PY'
import collections, re, statistics
by = collections.defaultdict(lambda: ([], []))
for line in open("target/prof/cost-rounds"):
    m = re.match(r"(\S+) round \d+: .*B/A req/s ([\d.]+), CPU ([\d.]+)", line)
    if m:
        by[m[1]][0].append(float(m[2])); by[m[1]][1].append(float(m[3]))
for page, (rps, cpu) in by.items():
    q = lambda xs: statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0], xs[0], xs[0]]
    print(f"{page}: median of {len(rps)}: B/A req/s {statistics.median(rps):.3f} (quartiles {q(rps)[0]:.3f}-{q(rps)[2]:.3f}), "
          f"CPU per request {statistics.median(cpu):.3f} ({q(cpu)[0]:.3f}-{q(cpu)[2]:.3f})")
PY
echo "A wrote $(wc -l < target/prof/a.log) lines, B $( [ -f "${B_LOG:-target/prof/b.log}" ] && wc -l < "${B_LOG:-target/prof/b.log}" || echo "(to ${B_LOG})")"
