#!/usr/bin/env python3
"""Failure drills: what users meet when a part breaks under load, measured.

Everything runs on loopback against parts of its own (a PostgreSQL cluster, a Redis
and a napiatke server on free ports, the machine's shared ones untouched):

  redis    Redis killed under load, then started again: no 5xx while it is gone;
           how long until the app uses it again (its first command to the new one).
  postgres PostgreSQL stopped under load, then started: which answers came while it
           was down (503 with Retry-After, or pages served from Redis), and failures
           after it is back (at most one per pooled connection).
  pool     every pooled connection held by statements stuck on a lock: answers are
           503s within the bounds (statement timeout, checkout timeout), threads stay
           flat, and the app recovers once the lock goes.
  media    MEDIA_ROOT on a small tmpfs filled by uploads: 507 (never 500), nothing
           half-written, pages still served (needs root to mount; skipped otherwise).
  slow     clients sending a form body or their headers one byte a second: cut off
           (408 or closed) within the timeouts while other users are served.

Each drill prints its figures and the checks it made; the exit status is 1 if any
check failed. --short (what .ci/run runs) uses shorter phases.

    python3 scripts/drills.py [--short] [--bin target/debug/napiatke] [--only redis,pool]

The server is started with CACHE_L1_BYTES=0, so every page goes to Redis or the
database (an in-process hit would hide both outages), DATABASE_POOL_SIZE=4,
DATABASE_QUEUE=8, DATABASE_STATEMENT_TIMEOUT=1000 and FORM_BODY_TIMEOUT=2000 to keep the drills short.
"""

import argparse
import glob
import http.client
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cores  # noqa: E402  (its admin login)
from loadgen import Load as _Load, png, quantile, summary  # noqa: E402

PG_PORT = 5439
REDIS_PORT = 6391
APP_PORT = 8391
POOL = 4
QUEUE = 8
STATEMENT_TIMEOUT_MS = 1000
FORM_TIMEOUT_MS = 2000

failures = []


def check(ok, what):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


# ---------------------------------------------------------------- parts of our own

class Parts:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="napiatke-drills-")
        os.chmod(self.work, 0o755)
        self.procs = []
        self.pg_bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        self.root = os.geteuid() == 0
        self.media = os.path.join(self.work, "media")
        self.mounted = False
        self.redis = None
        self.app = None

    def as_postgres(self, cmd):
        return (["runuser", "-u", "postgres", "--"] + cmd) if self.root else cmd

    def pg_ctl(self, action, *extra):
        data = os.path.join(self.work, "pg")
        cmd = [f"{self.pg_bin}/pg_ctl", "-D", data, "-w", "-t", "30", action, *extra]
        subprocess.run(self.as_postgres(cmd), check=True, stdout=subprocess.DEVNULL)

    def start_postgres(self):
        data = os.path.join(self.work, "pg")
        os.makedirs(data)
        if self.root:
            shutil.chown(data, "postgres")
        subprocess.run(self.as_postgres([f"{self.pg_bin}/initdb", "-D", data, "-U", "postgres",
                                         "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"]),
                       check=True, stdout=subprocess.DEVNULL)
        self.pg_start()

    def pg_start(self):
        log = os.path.join(self.work, "pg", "log")
        self.pg_ctl("start", "-l", log, "-o",
                    f"-p {PG_PORT} -k {os.path.join(self.work, 'pg')} "
                    "-c listen_addresses=127.0.0.1 -c fsync=off")

    def start_redis(self):
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if self.redis_cli("ping").strip() == "PONG":
                return
            time.sleep(0.05)
        raise SystemExit("drill Redis did not start")

    def redis_cli(self, *cmd):
        r = subprocess.run(["redis-cli", "-p", str(REDIS_PORT), *cmd],
                           capture_output=True, text=True)
        return r.stdout

    def mount_media(self):
        os.makedirs(self.media, exist_ok=True)
        if not self.root:
            return False
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", self.media],
                           capture_output=True)
        self.mounted = r.returncode == 0
        return self.mounted

    def start_app(self):
        env = dict(os.environ)
        for k in ("RUST_LOG", "REDIS_URL", "DATABASE_URL", "STATIC_ROOT"):
            env.pop(k, None)
        env.update({
            "BIND": f"127.0.0.1:{APP_PORT}",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{PG_PORT}/postgres",
            "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
            "CACHE_PREFIX": f"drill{os.getpid()}",
            "CACHE_L1_BYTES": "0",
            "MEDIA_ROOT": self.media,
            "MEDIA_KEEP_FREE": "0",
            "IMAGE_USER_QUEUE": "100",
            "IMAGE_WORKERS": "2",
            "IMAGE_QUEUE": "100",
            "DATABASE_POOL_SIZE": str(POOL),
            "DATABASE_QUEUE": str(QUEUE),
            "DATABASE_STATEMENT_TIMEOUT": str(STATEMENT_TIMEOUT_MS),
            "FORM_BODY_TIMEOUT": str(FORM_TIMEOUT_MS),
            "IMAGE_GC_INTERVAL": "0",
            "RUST_LOG": os.environ.get("DRILL_LOG", "error"),
        })
        log = open(os.path.join(self.work, "app.log"), "w")
        self.app = subprocess.Popen([self.args.bin, "serve"], env=env, stdout=log, stderr=log)
        end = time.time() + 180
        while time.time() < end:
            if self.app.poll() is not None:
                raise SystemExit(f"napiatke exited: see {self.work}/app.log")
            try:
                c = http.client.HTTPConnection("127.0.0.1", APP_PORT, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("napiatke did not answer /healthz")

    def threads(self):
        try:
            return len(os.listdir(f"/proc/{self.app.pid}/task"))
        except (FileNotFoundError, AttributeError):
            return 0

    def stop(self):
        for p in (self.app, self.redis):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        try:
            self.pg_ctl("stop", "-m", "immediate")
        except (subprocess.CalledProcessError, FileNotFoundError):
            pass
        if self.mounted:
            subprocess.run(["umount", self.media], capture_output=True)
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)


# ---------------------------------------------------------------- HTTP

def login():
    return cores.login(APP_PORT)


def searches():
    # A new query each time: a cache miss, so the database answers it.
    return f"/students/?q={random.choice('abcdefghijklmnoprstuwz')}{random.randint(0, 999)}"


def mixed():
    return random.choice(["/lessons/", "/rooms/", searches()])


def Load(cookie, paths, clients=8):
    return _Load(cookie, paths, clients=clients, port=APP_PORT)


# ---------------------------------------------------------------- the drills

def drill_redis(parts, cookie, short):
    print("\n## Redis killed under load, then started again")
    down, up, end = (1.5, 3.0, 9.0) if short else (3.0, 10.0, 20.0)
    with Load(cookie, mixed) as load:
        time.sleep(down)
        parts.redis.kill()
        parts.redis.wait()
        t_down = load.now()
        time.sleep(up - down)
        parts.start_redis()
        t_up = load.now()
        reused = None
        while load.now() < end:
            stats = parts.redis_cli("info", "commandstats")
            if re.search(r"cmdstat_(get|mget|set|setex|psetex|del|publish|eval|evalsha)\b", stats):
                reused = load.now() - t_up
                break
            time.sleep(0.05)
        time.sleep(max(0.0, end - load.now()))
    during = load.between(t_down, t_up)
    print(f"  requests: {len(load.results)}; while Redis was down ({t_up - t_down:.1f} s): "
          f"{summary(during)}")
    print(f"  p50 / max latency while down: {quantile([r[1] for r in during], 0.5) * 1000:.0f} / "
          f"{max([r[1] for r in during] or [0]) * 1000:.0f} ms")
    print("  first command to the new Redis: "
          + (f"{reused:.2f} s after it started" if reused is not None else "none"))
    check(all(r[2] < 500 and r[2] != 0 for r in load.results), "no 5xx and no connection error")
    check(reused is not None and reused <= 5.0, "Redis used again within 5 s of its return")


def drill_postgres(parts, cookie, short):
    print("\n## PostgreSQL stopped under load, then started again")
    down_for = 2.0 if short else 6.0
    with Load(cookie, mixed) as load:
        time.sleep(1.5)
        t_stop = load.now()
        parts.pg_ctl("stop", "-m", "fast")
        t_down = load.now()
        time.sleep(down_for)
        parts.pg_start()
        t_up = load.now()
        time.sleep(3.0 if short else 6.0)
        t_end = load.now()
    during = load.between(t_stop, t_up)
    after = load.between(t_up, t_end)
    late = load.between(t_up + 1.0, t_end)
    unavailable = [r for r in load.results if r[2] == 503]
    print(f"  stop took {t_down - t_stop:.1f} s, down {t_up - t_down:.1f} s")
    print(f"  while stopping and down: {summary(during)}")
    print(f"  after it was back: {summary(after)}")
    print(f"  503 answers: {len(unavailable)}, with Retry-After: "
          f"{sum(1 for r in unavailable if r[3])}")
    check(all(r[2] not in (0, 500, 502, 504) for r in load.results),
          "no 500 and no connection error: the database's absence is a 503")
    check(all(r[3] for r in unavailable), "every 503 has Retry-After")
    failed_after = [r for r in after if r[2] != 200]
    check(len(failed_after) <= POOL,
          f"at most one failure per pooled connection after the return ({len(failed_after)} <= {POOL})")
    check(late and all(r[2] == 200 for r in late), "only 200s from 1 s after the return")


def drill_pool(parts, cookie, short):
    print("\n## Every pooled connection stuck on a lock")
    held = 3.0 if short else 8.0
    threads_before = parts.threads()
    most_threads = threads_before
    with Load(cookie, searches, clients=16) as load:
        time.sleep(1.0)
        t_lock = load.now()
        psql = subprocess.Popen(
            [f"{parts.pg_bin}/psql", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres",
             "-q", "-c", f"BEGIN; LOCK TABLE student_search IN ACCESS EXCLUSIVE MODE; "
                         f"SELECT pg_sleep({held}); COMMIT;"],
            stdout=subprocess.DEVNULL)
        while psql.poll() is None:
            most_threads = max(most_threads, parts.threads())
            time.sleep(0.1)
        t_free = load.now()
        # Sixteen clients are more than POOL + QUEUE: with the database as the
        # bottleneck some would find the queue full even with nothing stuck (refused
        # at once, by design). Recovery is judged on a load the queue holds.
        load.active = POOL + QUEUE
        time.sleep(3.0)
        t_end = load.now()
    # By when they ended: the requests stuck at the start began just before.
    during = [r for r in load.results if t_lock <= r[0] + r[1] < t_free + 0.5]
    late = load.between(t_free + 1.5, t_end)
    slowest = max([r[1] for r in during] or [0])
    refused = [r for r in during if r[2] == 503]
    queue_full = [r for r in refused if "already waiting" in r[4]]
    print(f"  lock held {t_free - t_lock:.1f} s; answers that ended meanwhile: {summary(during)}")
    print(f"  503 latency p50 {quantile([r[1] for r in refused], 0.5) * 1000:.0f} ms, "
          f"slowest answer {slowest * 1000:.0f} ms")
    print(f"  server threads: {threads_before} before, at most {most_threads} during")
    print(f"  after the lock ({POOL + QUEUE} clients): {summary(load.between(t_free, t_end))}")
    check(all(r[2] in (200, 503) for r in during), "only 200 (waited) or 503 while stuck")
    print(f"  503s while stuck: {len(queue_full)} with the queue full (p50 "
          f"{quantile([r[1] for r in queue_full], 0.5) * 1000:.0f} ms), "
          f"{len(refused) - len(queue_full)} cut off or timed out")
    check(len(refused) > 0 and all(r[3] for r in refused), "the statements cut off: 503s with Retry-After")
    check(len(queue_full) > 0, f"clients beyond POOL + QUEUE ({POOL + QUEUE}) refused at once")
    check(slowest <= STATEMENT_TIMEOUT_MS / 1000 + 5.0 + 1.0,
          "no answer waited past the statement timeout plus the checkout timeout")
    check(most_threads <= threads_before + 4, "no pile-up of threads")
    for r in late:
        if r[2] != 200:
            print(f"  late {r[2]} at {r[0] - t_free:.2f} s after the lock, {r[1] * 1000:.0f} ms: {r[4]}")
    check(late and all(r[2] == 200 for r in late), "only 200s from 1.5 s after the lock went")


def upload(cookie, path, data):
    boundary = "drillboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"p.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + data \
        + f"\r\n--{boundary}--\r\n".encode()
    c = http.client.HTTPConnection("127.0.0.1", APP_PORT, timeout=60)
    c.request("POST", path, body=body, headers={
        "Cookie": cookie, "Sec-Fetch-Site": "same-origin", "HX-Request": "true",
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    r = c.getresponse()
    return r.status, r.read().decode(errors="replace")


def drill_media(parts, cookie, short):
    print("\n## MEDIA_ROOT full (a 2 MB tmpfs)")
    if not parts.mounted:
        print("  skipped: mounting a tmpfs needs root")
        return
    statuses = []
    message = ""
    for i in range(12 if short else 30):
        status, body = upload(cookie, f"/rooms/{1 + i % 5}/photo", png(400, 300, i))
        statuses.append(status)
        if status == 507:
            message = re.sub(r"<[^>]+>", " ", body)
            message = re.search(r"There is no room[^.]*\.", message)
            if statuses.count(507) >= 2:
                break
        time.sleep(0.3)
    leftovers = [f for _, _, fs in os.walk(parts.media) for f in fs if ".tmp-" in f]
    page = http.client.HTTPConnection("127.0.0.1", APP_PORT, timeout=10)
    page.request("GET", "/rooms/", headers={"Cookie": cookie})
    rooms = page.getresponse().status
    print(f"  uploads: {statuses}")
    print(f"  message: {message.group(0) if message else '(none)'}")
    print(f"  temporary files left: {len(leftovers)}; /rooms/ answers {rooms}")
    check(507 in statuses, "a full disk answers 507")
    check(all(s in (202, 507) for s in statuses), "no 500 on the way")
    check(not leftovers, "nothing half-written")
    check(rooms == 200, "pages still served")


def trickle(request, body_bytes, limit):
    """Sends `request`, then `body_bytes` one a second; returns (seconds until the
    server answered or closed, the status line or None)."""
    s = socket.create_connection(("127.0.0.1", APP_PORT), timeout=limit)
    start = time.time()
    s.sendall(request)
    try:
        for b in body_bytes:
            s.settimeout(1.0)
            try:
                data = s.recv(4096)
                return time.time() - start, (data.split(b"\r\n", 1)[0].decode() or None)
            except socket.timeout:
                pass
            if time.time() - start > limit:
                return time.time() - start, "still open"
            s.sendall(bytes([b]))
        s.settimeout(limit)
        data = s.recv(4096)
        return time.time() - start, (data.split(b"\r\n", 1)[0].decode() or None)
    except OSError:
        return time.time() - start, None
    finally:
        s.close()


def drill_slow(parts, cookie, short):
    print("\n## Clients sending one byte a second")
    n = 10 if short else 100
    results = []

    def body_trickler():
        results.append(("body", *trickle(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: same-origin\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60\r\n\r\n",
            b"email=a" * 10, 30)))

    def header_trickler():
        results.append(("headers", *trickle(b"GET /login HTTP/1.1\r\n",
                                            b"X-Slow: " + b"a" * 40, 30)))

    with Load(cookie, lambda: "/rooms/", clients=2) as load:
        time.sleep(0.5)
        t0 = load.now()
        ts = [threading.Thread(target=body_trickler if i % 2 == 0 else header_trickler)
              for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(40)
        t1 = load.now()
    during = load.between(t0, t1)
    for kind in ("body", "headers"):
        rows = [r for r in results if r[0] == kind]
        secs = [r[1] for r in rows]
        answers = sorted({str(r[2]) for r in rows})
        print(f"  {len(rows)} slow {kind}: cut off after {min(secs or [0]):.1f}-{max(secs or [0]):.1f} s"
              f" ({', '.join(answers)})")
    print(f"  other users meanwhile: {summary(during)}, p99 "
          f"{quantile([r[1] for r in during], 0.99) * 1000:.0f} ms")
    body = [r for r in results if r[0] == "body"]
    check(all(r[1] <= FORM_TIMEOUT_MS / 1000 + 2 for r in body) and
          all(r[2] and "408" in r[2] for r in body), "a trickled form body gets 408 within the form timeout")
    check(all(r[1] <= 10 for r in results if r[0] == "headers"),
          "trickled headers are cut off within 10 s")
    check(during and all(r[2] == 200 for r in during), "other users served meanwhile")


DRILLS = {"redis": drill_redis, "postgres": drill_postgres, "pool": drill_pool,
          "media": drill_media, "slow": drill_slow}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", action="store_true", help="shorter phases (CI)")
    ap.add_argument("--bin", default="target/debug/napiatke")
    ap.add_argument("--only", default=",".join(DRILLS), help="comma-separated drills")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = ap.parse_args()
    parts = Parts(args)
    try:
        started = time.time()
        parts.start_postgres()
        parts.start_redis()
        parts.mount_media()
        parts.start_app()
        cookie = login()
        print(f"drills against {args.bin} (PostgreSQL :{PG_PORT}, Redis :{REDIS_PORT}, "
              f"app :{APP_PORT}); set up in {time.time() - started:.1f} s")
        for name in args.only.split(","):
            DRILLS[name](parts, cookie, args.short)
    finally:
        parts.stop()
    print(f"\n{len(failures)} checks failed" if failures else "\nall checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
