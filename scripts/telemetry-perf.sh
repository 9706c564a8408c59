#!/usr/bin/env bash
# Where telemetry's time goes, by symbol, kernel included (docs/performance.md,
# "where the time goes"): the release build pinned to CPU 1, wrk on CPU 0, perf's
# cpu-clock sampled at 4999 Hz during 4 s of load, once per configuration; then the
# server's microseconds per request by part (kernel, telemetry code, the rest of the
# binary, libc, vDSO) and the symbols whose time per request grew most, B against A.
#
#   bash scripts/telemetry-perf.sh                       # /lessons/100/, admin
#   PAGE=/lessons/ EMAIL=tutor1@napiatke.local PASSWORD=tutor bash scripts/telemetry-perf.sh
#   A="TELEMETRY=off" B="LOG_FORMAT=json" TOP=40 ROUNDS=6 bash scripts/telemetry-perf.sh
# A_BIN and B_BIN (default the release build) compare two builds, as in
# telemetry-cost.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null; }
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
. scripts/prof-lib.sh
prof_prepare perf
page=${PAGE:-/lessons/100/} port=8421 rounds=${ROUNDS:-1}
# Each round starts both servers anew (B first in even rounds): one process can be
# several per cent faster or slower than another of the same build for its whole
# life (its memory layout), so a single pair says little; rounds add up.
rm -f target/prof/perf-*.data target/prof/perf-*.n
for r in $(seq 1 "$rounds"); do
  sides="a b"; [ $((r % 2)) = 0 ] && sides="b a"
  for side in $sides; do
    if [ $side = a ]; then config=${A-TELEMETRY=off} bin=${A_BIN:-target/release/napiatke}
    else config=${B-LOG_FORMAT=json} bin=${B_BIN:-target/release/napiatke}; fi
    # shellcheck disable=SC2086 # a configuration is a list of NAME=value words
    env -u RUST_LOG $config BIND=127.0.0.1:$port taskset -c 1 "$bin" serve >target/prof/perf-$side.log 2>&1 &
    pid=$!
    prof_wait $port
    session=$(prof_login $port)
    load() { taskset -c 0 wrk -t1 -c32 -d"$1" -H "Cookie: napiatke_session=$session" -H "Accept-Encoding: br" "http://127.0.0.1:$port$page"; }
    load 2s >/dev/null
    perf record -q -e cpu-clock -F 4999 -p "$pid" -o target/prof/perf-$side-$r.data 2>/dev/null &
    rec=$!
    out=$(load 4s)
    kill -INT $rec; wait $rec || true
    awk '/requests in/ {print $1}' <<<"$out" >target/prof/perf-$side-$r.n
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "round $r, $side: $config: $(cat target/prof/perf-$side-$r.n) requests"
  done
done
python3 - "${TOP:-25}" "$rounds" "${A_BIN:-target/release/napiatke}" "${B_BIN:-target/release/napiatke}" <<'PY'
import collections, os, re, subprocess, sys
top, rounds = int(sys.argv[1]), int(sys.argv[2])
# Two builds have two file names: each side's binary is "napiatke", so that the same
# symbol is compared across them.
binaries = {os.path.basename(b) for b in sys.argv[3:5]}
us = 1e6 / 4999  # one sample, microseconds
def load(side):
    # Samples of every round over requests of every round.
    samples, n = collections.Counter(), 0
    for r in range(1, rounds + 1):
        n += int(open(f"target/prof/perf-{side}-{r}.n").read())
        out = subprocess.run(["perf", "report", "-i", f"target/prof/perf-{side}-{r}.data", "--no-children",
                              "-n", "--sort", "dso,sym", "--stdio", "-F", "sample,dso,sym"],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split(None, 2)
            if line.startswith("#") or len(parts) < 3 or not parts[0].isdigit():
                continue
            dso = "napiatke" if parts[1] in binaries else parts[1]
            samples[(dso, parts[2].strip())] += int(parts[0])
    return collections.Counter({k: v * us * 1000 / n for k, v in samples.items()})  # ns per request
a, b = load("a"), load("b")
telemetry = re.compile(r"telemetry|tracing|sharded_slab|itoa|HeaderValue::from_shared|Accounting|metrics|sentry")
def part(key):
    dso, sym = key
    if "kernel" in dso: return "kernel"
    if telemetry.search(sym): return "telemetry code"
    return dso
parts_a, parts_b = collections.Counter(), collections.Counter()
for k, v in a.items(): parts_a[part(k)] += v
for k, v in b.items(): parts_b[part(k)] += v
print(f"ns per request: A {sum(a.values()):.0f}, B {sum(b.values()):.0f} ({sum(b.values()) / sum(a.values()):.3f})")
for p in sorted(set(parts_a) | set(parts_b), key=lambda p: parts_a[p] - parts_b[p]):
    print(f"  {p:16s} A {parts_a[p]:7.0f}  B {parts_b[p]:7.0f}  B-A {parts_b[p] - parts_a[p]:+6.0f}")
print("symbols whose time per request grew most (ns, B-A, A):")
rows = sorted(((b[k] - a[k], a[k], k) for k in set(a) | set(b)), reverse=True)
for d, was, (dso, sym) in rows[:top]:
    print(f"  {d:+6.0f} {was:7.0f}  {sym[:110]}")
PY
