#!/usr/bin/env python3
"""Scaling with cores: req/s, latency, server CPU per request and threads, per page,
with the server pinned to one core set and then another (taskset), wrk pinned apart.

Runs the same way on the 2-core development machine and on a many-core one (the
device machine, ../shared/MANYCORE.md): Python's standard library, taskset and wrk.
Several binaries (NAME=PATH, say a build before a change and one after; settings of
their own may follow: "NAME=PATH CACHE_L1_BYTES=0") are measured in one run,
alternating per page, so ratios compare like with like.

    python3 scripts/cores.py --bin before=/tmp/napiatke-old --bin after=target/release/napiatke \\
        --cores 0 --cores 0-1 --wrk-cores 0-1 --connections 8 --connections 256 \\
        --database-url sqlite://target/cores/db.sqlite3 --duration 4

The database must hold the demo set (`napiatke demo`); each server is started with
production settings and a login as admin. Prints one markdown table: for each page,
binary, core set and connection count: req/s, p50, p99, p99/p50, server CPU per
request (utime + stime from /proc/PID/stat over the run, divided by the requests
wrk counted), and the most threads the server had (/proc/PID/task, sampled).
--bare PATH adds actix alone answering a fixed 12 KB body (apps/web/examples/bare.rs).
"""

import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces: fields count from after its ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


def wait_up(port, path="/healthz", seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing answers on port {port}")


def login(port):
    """The admin's session cookie (production cookies are Secure: sent by hand)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/login")
    r = c.getresponse()
    body = r.read().decode()
    cookies = [h.split(";", 1)[0] for k, h in r.getheaders() if k.lower() == "set-cookie"]
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', body).group(1)
    form = f"csrf_token={token}&email=admin%40napiatke.local&password=admin&next=%2Fdashboard%2F"
    c.request("POST", "/login", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": "; ".join(cookies),
        "Sec-Fetch-Site": "same-origin",
    })
    r = c.getresponse()
    r.read()
    for k, h in r.getheaders():
        if k.lower() == "set-cookie" and h.startswith("napiatke_session="):
            return h.split(";", 1)[0]
    raise SystemExit(f"login failed on port {port}: {r.status}")


def stylesheet(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/login")
    m = re.search(r'href="(/static/[^"]+\.css)"', c.getresponse().read().decode())
    return m.group(1) if m else None


def get_status(port, path, headers):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    r.read()
    return r.status


def millis(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def wrk(args, port, path, headers, connections, duration):
    cmd = ["taskset", "-c", args.wrk_cores, args.wrk, f"-t{args.threads}",
           f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "30s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    # Overload answered 503 is behaviour to report, not a reason to stop.
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = millis(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = millis(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    errors = errors.group(1) if errors else ""
    if refused:
        errors = f"{refused.group(1)} non-2xx {errors}".strip()
    return requests, p50, p99, errors


class Server:
    def __init__(self, name, cmd, env, cores, port, log):
        self.name, self.port = name, port
        self.proc = subprocess.Popen(["taskset", "-c", cores] + cmd, env=env,
                                     stdout=log, stderr=subprocess.STDOUT)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def settle(pids, seconds=60):
    """Waits until the servers are idle: a run's requests still queued when wrk stops
    are worked off after it, on the cores the next run measures."""
    end = time.time() + seconds
    while time.time() < end:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(0.3)
        if sum(cpu_seconds(p) for p in pids) - before < 0.01:
            return


def measure(args, server, path, headers, connections, everyone):
    """req/s, p50, p99, CPU ms per request, most threads, socket errors."""
    pid = server.proc.pid
    # Warm: caches, the pool's connections, the blocking threads; few connections, so
    # little is left queued when it stops.
    wrk(args, server.port, path, headers, min(connections, 8), 1)
    settle(everyone)
    most, done = [threads(pid)], threading.Event()

    def sample():
        while not done.wait(0.1):
            most.append(threads(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        before, t0 = cpu_seconds(pid), time.time()
        requests, p50, p99, errors = wrk(args, server.port, path, headers, connections,
                                         args.duration)
        elapsed, cpu = time.time() - t0, cpu_seconds(pid) - before
    finally:
        done.set()
        sampler.join()
    return {
        "rps": requests / elapsed, "p50": p50, "p99": p99,
        "cpu_ms": 1000.0 * cpu / max(requests, 1), "threads": max(most),
        "busy": cpu / elapsed, "errors": errors,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", action="append", required=True,
                   help="NAME=PATH [VAR=value...], repeatable: a build and its own settings")
    p.add_argument("--bare", help="apps/web/examples/bare.rs built")
    p.add_argument("--cores", action="append", required=True, help="taskset list for the server")
    p.add_argument("--wrk-cores", required=True)
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--connections", type=int, action="append")
    p.add_argument("--duration", type=int, default=4)
    p.add_argument("--database-url", required=True)
    p.add_argument("--env", action="append", default=[], help="NAME=value for every server")
    p.add_argument("--page", action="append", help="paths (default: the issue's list)")
    p.add_argument("--port", type=int, default=8300)
    p.add_argument("--log-dir", default=tempfile.gettempdir())
    args = p.parse_args()
    connections = args.connections or [256]
    binaries = []
    for spec in args.bin:
        name, rest = spec.split("=", 1)
        path, *extra = rest.split()
        binaries.append((name, path, dict(e.split("=", 1) for e in extra)))
    rows = []
    print(f"| page | build | server cores | -c | req/s | p50 ms | p99 ms | p99/p50 "
          f"| CPU ms/req | cores busy | threads |", flush=True)
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    port = args.port
    base_env = dict(os.environ)
    base_env.update({"DATABASE_URL": args.database_url, "NAPIATKE_ENV": "production",
                     "NAPIATKE_DEMO": "1", "RUST_LOG": "warn"})
    base_env.update(e.split("=", 1) for e in args.env)
    # Seeded once, before any server starts (two starting on an empty file would race).
    subprocess.run([binaries[0][1], "demo"], env=dict(base_env, **binaries[0][2]), check=True, stdout=subprocess.DEVNULL)
    for cores in args.cores:
        servers = []
        for name, path, extra in binaries:
            env = dict(base_env, BIND=f"127.0.0.1:{port}", **extra)
            log = open(os.path.join(args.log_dir, f"cores-{name}-{cores}.log"), "w")
            servers.append(Server(name, [path, "serve"], env, cores, port, log))
            port += 1
        bare = None
        if args.bare:
            body = os.path.join(args.log_dir, "bare-12k")
            with open(body, "wb") as f:
                f.write(b"<p>napiatke</p>\n" * 768)
            env = dict(os.environ, BIND=f"127.0.0.1:{port}")
            bare = Server("bare actix", [args.bare, body], env, cores, port,
                          open(os.path.join(args.log_dir, "cores-bare.log"), "w"))
            port += 1
        try:
            sessions = {}
            for s in servers:
                wait_up(s.port)
                sessions[s.name] = login(s.port)
            pages = args.page or [
                "STYLESHEET", "/lessons/100/", "/dashboard/", "/healthz",
                "/students/?page=2", "/lessons/?page=3", "/students/?q=kow",
            ]
            if bare:
                wait_up(bare.port, "/")
                for c in connections:
                    m = measure(args, bare, "/", {"Accept-Encoding": "br"}, c, [bare.proc.pid])
                    rows.append(("bare actix, 12 KB", "-", cores, c, m))
                    print_row(rows[-1])
            for page in pages:
                for c in connections:
                    for s in servers:
                        path = stylesheet(s.port) if page == "STYLESHEET" else page
                        headers = {"Cookie": sessions[s.name], "Accept-Encoding": "br"}
                        status = get_status(s.port, path, headers)
                        if status != 200:
                            raise SystemExit(f"{s.name} answers {path} with {status}")
                        m = measure(args, s, path, headers, c, [x.proc.pid for x in servers])
                        rows.append((page if page != "STYLESHEET" else "/static/ stylesheet",
                                     s.name, cores, c, m))
                        print_row(rows[-1])
        finally:
            for s in servers + ([bare] if bare else []):
                s.stop()
    summary(rows, args.cores, connections)


def print_row(row):
    page, name, cores, c, m = row
    print(f"| {page} | {name} | {cores} | {c} | {m['rps']:,.0f} | {m['p50']:.2f} | "
          f"{m['p99']:.2f} | {m['p99'] / m['p50'] if m['p50'] else float('nan'):.1f} | {m['cpu_ms']:.3f} | {m['busy']:.2f} "
          f"| {m['threads']} |" + (f" {m['errors']}" if m["errors"] else ""), flush=True)


def summary(rows, core_sets, connections):
    """Last core set over the first, at the most connections: req/s and CPU per request."""
    if len(core_sets) < 2:
        return
    first, last, c = core_sets[0], core_sets[-1], max(connections)
    found = {(r[0], r[1], r[2], r[3]): r[4] for r in rows}
    print(f"\n| page | build | req/s {last} / {first} | CPU per request {last} / {first} "
          f"| p99/p50 at {last} |")
    print("|---|---|---:|---:|---:|")
    for page, name in dict.fromkeys((r[0], r[1]) for r in rows):
        a, b = found.get((page, name, first, c)), found.get((page, name, last, c))
        if a and b and a["rps"] and b["rps"]:
            print(f"| {page} | {name} | {b['rps'] / a['rps']:.2f}x | "
                  f"{b['cpu_ms'] / a['cpu_ms']:.2f}x | {b['p99'] / b['p50']:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
