#!/usr/bin/env python3
"""Cluster drill: N napiatke processes behind nginx, checked for what one process
must not keep to itself (issue 17). Run by `bash scripts/cluster.sh drill [N]`,
which starts the processes, nginx, the database and the Redis prefix exactly as
`cluster.sh N` does (with IMAGE_JOB_LEASE=3), then this script, then stops them all.

  session    a login made through process 1 works on every process (the dashboard
             answers 200, not a redirect to /login).
  attendance an attendance mark POSTed through process 1 shows at once on every
             process (the lesson page and the student list row, each warmed on every
             process first, so a stale in-process copy would show).
  photo      a room photo uploaded through one process becomes READY, and each of its
             variants (/media/...) is served 200 by every process.
  kill       one process SIGKILLed under load through nginx: at most one failed answer
             per client (those in flight at the kill), and only 200s from 1 s after
             it. The process is started again afterwards.
  resume     a photograph uploaded through process X, X SIGKILLed while the job is
             PROCESSING and started again (same command line): the image is claimed
             by one process once the lease runs out and becomes READY once, with one
             set of variants (the row's list, nothing else on disk, or in the
             bucket with MEDIA_STORAGE=s3), every variant served by every process.

With MEDIA_STORAGE=s3 (cluster.sh's MEDIA=s3) the processes share a bucket, not a
disk: each has a MEDIA_ROOT of its own (WORK/media-PORT, also when started again),
and the files of an image are the keys under MEDIA_S3_PREFIX/FOLDER/ in
MEDIA_S3_BUCKET at MEDIA_S3_ENDPOINT, listed with the processes' credentials.

Each check prints ok/FAIL with its figures; the exit status is 1 if any failed.
Python's standard library, psql and the processes' own environment (inherited from
cluster.sh):

    python3 scripts/cluster_drill.py --bin BIN --work target/cluster --pids "PID1 PID2 ..."
"""

import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cores  # noqa: E402  (its admin login)
from loadgen import Load, png, summary  # noqa: E402

NGINX = 8400
DATABASE = "napiatke_cluster"
RESUME_WITHIN = 50  # seconds from the kill to READY, at most
SETTLE = 2.0  # seconds watched after READY

S3 = os.environ.get("MEDIA_STORAGE") == "s3"

failures = []


def check(ok, what):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


def port(i):
    """Process i's port (1-based), as cluster.sh binds them."""
    return NGINX + i


# ---------------------------------------------------------------- HTTP and SQL

def request(p, method, path, cookie=None, body=None, headers=None, timeout=30):
    """(status, headers as a dict with lower-case names, body text); one connection."""
    h = dict(headers or {})
    if cookie:
        h["Cookie"] = cookie
    c = http.client.HTTPConnection("127.0.0.1", p, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data.decode(errors="replace")
    finally:
        c.close()


def get(p, path, cookie=None):
    return request(p, "GET", path, cookie)


def post_form(p, path, cookie, form):
    body = "&".join(f"{k}={v}" for k, v in form.items())
    return request(p, "POST", path, cookie, body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "Sec-Fetch-Site": "same-origin"})


def upload(p, cookie, path, data, filename):
    boundary = "drillboundary7f3a"
    kind = "image/jpeg" if filename.endswith(".jpg") else "image/png"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {kind}\r\n\r\n").encode() + data \
        + f"\r\n--{boundary}--\r\n".encode()
    return request(p, "POST", path, cookie, body, {
        "Sec-Fetch-Site": "same-origin", "HX-Request": "true",
        "Content-Type": f"multipart/form-data; boundary={boundary}"}, timeout=120)


def sql(query):
    r = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DATABASE,
                        "-XAtq", "-c", query], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"psql: {r.stderr.strip()}")
    return r.stdout.strip()


def image_row(image_id):
    """The images row: status, updated_at, lease_owner, error, variants (a list)."""
    out = sql("SELECT row_to_json(t) FROM (SELECT status, updated_at::text AS updated, "
              "lease_owner, error, variants FROM images WHERE id = %d) t" % image_id)
    if not out:
        return None
    row = json.loads(out)
    row["variants"] = json.loads(row["variants"] or "[]")
    return row


# ---------------------------------------------------------------- the processes

class Cluster:
    """The processes cluster.sh started (by pid), and those this drill starts again
    (same command line and environment); those are written to WORK/drill.pids so
    cluster.sh's clean-up stops them too, and stopped by `stop`."""

    def __init__(self, args):
        self.bin, self.work = args.bin, args.work
        self.pids = [int(p) for p in args.pids.split()]
        self.restarted = []

    def __len__(self):
        return len(self.pids)

    def index_of(self, pid):
        return self.pids.index(pid) + 1 if pid in self.pids else None

    def kill(self, i):
        pid = self.pids[i - 1]
        os.kill(pid, signal.SIGKILL)
        # Gone for good (a zombie at most: its port free) before the caller goes on.
        while True:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                        return
            except (FileNotFoundError, ProcessLookupError):  # reaped, or while read
                return
            time.sleep(0.01)

    def restart(self, i):
        """Process i started again as cluster.sh starts it; seconds until /healthz answers."""
        env = dict(os.environ, BIND=f"127.0.0.1:{port(i)}")
        if S3:  # its own MEDIA_ROOT, as cluster.sh gives it
            env["MEDIA_ROOT"] = os.path.join(self.work, f"media-{port(i)}")
        log = open(os.path.join(self.work, f"app-{i}.log"), "a")
        start = time.time()
        proc = subprocess.Popen([self.bin, "serve"], env=env, stdout=log, stderr=log)
        self.restarted.append(proc)
        self.pids[i - 1] = proc.pid
        with open(os.path.join(self.work, "drill.pids"), "a") as f:
            f.write(f"{proc.pid}\n")
        while time.time() - start < 60:
            if proc.poll() is not None:
                raise SystemExit(f"process {i} exited at its restart: see {self.work}/app-{i}.log")
            try:
                if get(port(i), "/healthz")[0] == 200:
                    return time.time() - start
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"process {i} did not answer /healthz after its restart")

    def stop(self):
        for p in self.restarted:
            if p.poll() is None:
                p.terminate()
        for p in self.restarted:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# ---------------------------------------------------------------- the checks

def drill_session(cluster, cookie):
    print("\n## A session made through process 1, used on every process")
    answers = {}
    for i in range(1, len(cluster) + 1):
        status, headers, _ = get(port(i), "/dashboard/", cookie)
        answers[i] = f"{status}" + (f" -> {headers.get('location')}" if status in (302, 303) else "")
    print("  /dashboard/: " + ", ".join(f"process {i} {a}" for i, a in answers.items()))
    check(all(a == "200" for a in answers.values()), "the dashboard answers 200 on every process")


def lesson_rows(body):
    """{student id: (name, mark)} from a lesson page."""
    rows = {}
    for tr in re.findall(r'<tr><td class="person">.*?</tr>', body, re.S):
        sid = re.search(r'name="student_id" value="(\d+)"', tr)
        mark = re.search(r'<td class="mark">(.*?)</td>', tr, re.S)
        cell = re.search(r'<td class="person">(.*?)</td>', tr, re.S)
        if sid and mark and cell:
            initials = re.sub(r'<span class="avatar initials"[^>]*>.*?</span>', "", cell.group(1), flags=re.S)
            name = re.sub(r"<[^>]+>", "", initials).strip()
            rows[sid.group(1)] = (name, re.sub(r"<[^>]+>", "", mark.group(1)).strip())
    return rows


def student_rate(body, name):
    m = re.search(r"<tr><td>" + re.escape(name) + r"</td>.*?<td class=\"rate\">([^<]*)</td>", body, re.S)
    return m.group(1) if m else None


def drill_attendance(cluster, cookie):
    print("\n## An attendance mark through process 1, read at once through every process")
    n = len(cluster)
    _, _, lessons = get(port(1), "/lessons/", cookie)

    # The student's row on the student list is found by name, and the demo set
    # repeats names (two students are called Maja Jaworska): take a student whose
    # name is on one row only.
    def search_for(name):
        return f"/students/?q={urllib.parse.quote(name.split()[-1])}"

    def rows_named(name):
        body = get(port(1), search_for(name), cookie)[2]
        return len(re.findall(r"<tr><td>" + re.escape(name) + r"</td>", body))

    lesson, student, name, mark = None, None, None, None
    for lid in dict.fromkeys(re.findall(r'href="/lessons/(\d+)/"', lessons)):
        status, _, body = get(port(1), f"/lessons/{lid}/", cookie)
        rows = lesson_rows(body) if status == 200 else {}
        found = next(((s, r) for s, r in rows.items()
                      if re.fullmatch(r"[\w ]+", r[0]) and rows_named(r[0]) == 1), None)
        if found:
            lesson, (student, (name, mark)) = lid, found
            break
    if not lesson:
        check(False, "a lesson with a student to mark whose name is on one row of the student list")
        return
    page = f"/lessons/{lesson}/"
    search = search_for(name)
    print(f"  lesson {lesson}, student {student} ({name}), marked {mark!r} before")
    # Warm every process: the second read of each page is its cached copy.
    warm = []
    for i in range(1, n + 1):
        for path in (page, search):
            get(port(i), path, cookie)
            warm.append(get(port(i), path, cookie)[1].get("x-cache", "-"))
    print(f"  warmed {page} and {search} on {n} processes (X-Cache of the second reads: "
          f"{', '.join(sorted(set(warm)))})")
    marks = ["ABSENT", "PRESENT", "LATE"] if mark == "present" else ["PRESENT", "ABSENT", "LATE"]
    stale = []
    rate_before = student_rate(get(port(1), search, cookie)[2], name)
    for new in marks:
        t = time.time()
        status, headers, _ = post_form(port(1), f"{page}attendance", cookie,
                                       {"student_id": student, "status": new})
        post_ms = (time.time() - t) * 1000
        if status != 303:
            check(False, f"the mark {new} through process 1 answers 303 (got {status})")
            return
        # The other processes first, process 1 last.
        seen, rates, caches = [], [], []
        for i in list(range(2, n + 1)) + [1]:
            _, headers, body = get(port(i), page, cookie)
            seen.append(lesson_rows(body).get(student, ("", "?"))[1])
            caches.append(headers.get("x-cache", "-"))
            rates.append(student_rate(get(port(i), search, cookie)[2], name))
        after_ms = (time.time() - t) * 1000
        print(f"  {new:<7} POST {status} in {post_ms:.0f} ms; within {after_ms:.0f} ms processes "
              f"{list(range(2, n + 1)) + [1]} show: mark {seen} (X-Cache {'/'.join(caches)}), "
              f"rate {rates} (was {rate_before})")
        if any(s != new.lower() for s in seen):
            stale.append(f"{new}: lesson page shows {seen}")
        # The student's attendance rate: the same on every process, and moved by the
        # second mark (present <-> absent, the lesson's mark count unchanged).
        if len(set(rates)) != 1 or rates[0] is None:
            stale.append(f"{new}: student row rates differ {rates}")
        elif new == marks[1] and rates[0] == rate_before:
            stale.append(f"{new}: the rate did not move ({rates[0]})")
        rate_before = rates[0]
    check(not stale, "every process shows each new mark right after the POST"
          + ("" if not stale else ": " + "; ".join(stale)))


def wait_ready(image_id, seconds):
    """Polls the row until READY or FAILED (the first phase, WebP and JPEG, recorded;
    AVIF follows in the same job). Returns (row, seconds to READY or None)."""
    start = time.time()
    row = image_row(image_id)
    while time.time() - start < seconds:
        if row["status"] == "READY":
            return row, time.time() - start
        if row["status"] == "FAILED":
            break
        time.sleep(0.1)
        row = image_row(image_id)
    return row, None


def served_everywhere(cluster, variants):
    """{process: [statuses]} for every variant URL straight to every process."""
    out = {}
    for i in range(1, len(cluster) + 1):
        out[i] = [get(port(i), "/media/" + v["path"])[0]
                  for v in variants]
    return out


def room_ids(cookie):
    body = get(port(1), "/rooms/", cookie)[2]
    return list(dict.fromkeys(int(r) for r in re.findall(r'/rooms/(\d+)/photo', body)))


def uploaded_id(status, body):
    m = re.search(r'/images/(\d+)/', body)
    return int(m.group(1)) if status == 202 and m else None


def variant_figures(variants):
    kinds = {}
    for v in variants:
        kinds[v.get("format")] = kinds.get(v.get("format"), 0) + 1
    return ", ".join(f"{k} {c}" for k, c in sorted(kinds.items()))


def drill_photo(cluster, cookie, rooms):
    n = len(cluster)
    via = n
    print(f"\n## A room photo uploaded through process {via}, served by every process")
    for i in range(1, n + 1):  # each process's copy of the page: no photo yet
        get(port(i), "/rooms/", cookie)
    t = time.time()
    status, _, body = upload(port(via), cookie, f"/rooms/{rooms[0]}/photo", png(640, 480, 17), "p.png")
    image_id = uploaded_id(status, body)
    print(f"  upload to room {rooms[0]}: {status} in {(time.time() - t) * 1000:.0f} ms, image {image_id}")
    if image_id is None:
        check(False, f"the upload answers 202 with the image's status fragment (got {status})")
        return
    row, ready_at = wait_ready(image_id, 30)
    print(f"  READY after {ready_at if ready_at is None else round(ready_at, 1)} s; "
          f"variants: {variant_figures(row['variants'])}")
    check(row["status"] == "READY" and row["variants"], f"the image becomes READY (is {row['status']}"
          + (f": {row['error']}" if row["error"] else "") + ")")
    if row["status"] != "READY":
        return
    # The room's card on every process shows the variants (the invalidation follows
    # the row's write by a moment).
    room_re = re.compile(r'<div class="room-photo" id="room-%d-photo">(.*?)</div>' % rooms[0], re.S)
    t_ready, shown = time.time(), {}
    while len(shown) < n and time.time() - t_ready < 2.0:
        for i in range(1, n + 1):
            if i not in shown:
                card = room_re.search(get(port(i), "/rooms/", cookie)[2])
                if card and "/media/" + row["variants"][0]["path"] in card.group(1) \
                        and "image-pending" not in card.group(1):
                    shown[i] = time.time() - t_ready
        time.sleep(0.05)
    print("  /rooms/ shows the photo: " + ", ".join(
        f"process {i} " + (f"{shown[i] * 1000:.0f} ms after READY was read" if i in shown else "no")
        for i in range(1, n + 1)))
    check(len(shown) == n, "the rooms page of every process shows the ready photo within 2 s")
    served = served_everywhere(cluster, row["variants"])
    print("  /media/ answers: " + "; ".join(f"process {i}: {summary([(0, 0, s) for s in st])}"
                                            for i, st in served.items()))
    check(all(s == 200 for st in served.values() for s in st),
          f"each of its {len(row['variants'])} variants is served 200 by every process")


def drill_kill(cluster, cookie, clients=6):
    victim = len(cluster)
    print(f"\n## Process {victim} SIGKILLed under load through nginx ({clients} clients)")
    pages = ["/lessons/", "/dashboard/", "/lessons/?page=2", "/rooms/"]
    with Load(cookie, lambda: random.choice(pages), clients=clients, port=NGINX) as load:
        time.sleep(1.5)
        t_kill = load.now()
        cluster.kill(victim)
        time.sleep(3.0)
        t_end = load.now()
    before = load.between(0, t_kill)
    during = load.between(t_kill - 1.0, t_kill + 1.0)
    late = load.between(t_kill + 1.0, t_end)
    failed = [r for r in load.results if r[2] != 200]
    print(f"  requests: {len(load.results)} ({len(before) / t_kill:.0f}/s before the kill); "
          f"around the kill (±1 s): {summary(during)}; from 1 s after: {summary(late)}")
    print(f"  slowest answer around the kill: {max([r[1] for r in during] or [0]) * 1000:.0f} ms; "
          f"non-200: {len(failed)}" + (f" at {[round(r[0] - t_kill, 2) for r in failed]} s from the kill"
                                       if failed else ""))
    check(len(failed) <= clients, f"at most one failure per client ({len(failed)} <= {clients})")
    check(late and all(r[2] == 200 for r in late), f"only 200s from 1 s after the kill ({len(late)} answers)")
    took = cluster.restart(victim)
    print(f"  process {victim} started again (answering after {took:.1f} s)")


def owner_pid(owner):
    m = re.match(r".*:(\d+):\d+$", owner or "")
    return int(m.group(1)) if m else None


def media_files(media, variants):
    """Files in the folders the variants are in (the image's own), and temporary files."""
    folders = {os.path.dirname(v["path"]) for v in variants}
    files = set()
    for d in folders:
        for f in os.listdir(os.path.join(media, d)):
            files.add(os.path.join(d, f))
    return files


def s3_get(bucket, query):
    """GET /BUCKET?QUERY from MEDIA_S3_ENDPOINT (path style), signed (AWS Signature
    Version 4) with MEDIA_S3_ACCESS_KEY_ID and MEDIA_S3_SECRET_ACCESS_KEY; the body."""
    endpoint = urllib.parse.urlsplit(os.environ["MEDIA_S3_ENDPOINT"].rstrip("/"))
    region = os.environ.get("MEDIA_S3_REGION") or "us-east-1"
    key_id, secret = os.environ["MEDIA_S3_ACCESS_KEY_ID"], os.environ["MEDIA_S3_SECRET_ACCESS_KEY"]
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    path = f"{endpoint.path}/{urllib.parse.quote(bucket, safe='')}"
    qs = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                  for k, v in sorted(query.items()))
    empty = hashlib.sha256(b"").hexdigest()
    headers = {"host": endpoint.netloc, "x-amz-content-sha256": empty, "x-amz-date": stamp}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(["GET", path, qs, "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                           signed, empty])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")
    del headers["host"]
    url = f"{endpoint.scheme}://{endpoint.netloc}{path}?{qs}"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        return r.read()


def bucket_files(variants):
    """media_files for MEDIA_STORAGE=s3: the keys under PREFIX/FOLDER/ of every folder
    the variants are in, less the prefix (ListObjectsV2, page by page)."""
    bucket = os.environ["MEDIA_S3_BUCKET"]
    prefix = os.environ.get("MEDIA_S3_PREFIX", "").strip("/")
    prefix = prefix + "/" if prefix else ""
    files = set()
    for d in {os.path.dirname(v["path"]) for v in variants}:
        token = None
        while True:
            query = {"list-type": "2", "prefix": f"{prefix}{d}/"}
            if token:
                query["continuation-token"] = token
            root = ET.fromstring(s3_get(bucket, query))
            ns = {"s3": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {}
            q = (lambda t: f"s3:{t}") if ns else (lambda t: t)
            for key in root.iterfind(f"{q('Contents')}/{q('Key')}", ns):
                files.add(key.text[len(prefix):])
            token = root.findtext(q("NextContinuationToken"), None, ns)
            if root.findtext(q("IsTruncated"), "false", ns) != "true" or not token:
                break
    return files


def drill_resume(cluster, cookie, rooms, photo):
    x = 2
    print(f"\n## An image job cut off: process {x} SIGKILLed while it is PROCESSING, started again")
    # Large enough to be PROCESSING when its process is killed, small enough that
    # the debug build finishes it in seconds (a 2000x1500 one took 33 s in CI).
    data = open(photo, "rb").read() if photo else png(1280, 860, 5)
    name = os.path.basename(photo) if photo else "noise.png"
    t = time.time()
    status, _, body = upload(port(x), cookie, f"/rooms/{rooms[1 % len(rooms)]}/photo", data, name)
    image_id = uploaded_id(status, body)
    print(f"  {name} ({len(data) / 1e6:.1f} MB) to room {rooms[1 % len(rooms)]} through process {x}: "
          f"{status} in {(time.time() - t):.1f} s, image {image_id}")
    if image_id is None:
        check(False, f"the upload answers 202 (got {status})")
        return
    # Into the job (decoding done, encoding under way), then killed.
    time.sleep(0.5)
    row = image_row(image_id)
    killed_pid = cluster.pids[x - 1]
    cluster.kill(x)
    t_kill = time.time()
    after_kill = image_row(image_id)
    print(f"  killed process {x} (pid {killed_pid}) {t_kill - t:.1f} s after the upload began; "
          f"the row: {after_kill['status']}, lease held by pid {owner_pid(after_kill['lease_owner'])}")
    check(row["status"] == "PROCESSING" and after_kill["status"] == "PROCESSING"
          and owner_pid(after_kill["lease_owner"]) == killed_pid,
          "the job was PROCESSING under process X's lease when X was killed")
    if after_kill["status"] != "PROCESSING":
        return
    took = cluster.restart(x)
    print(f"  process {x} started again (pid {cluster.pids[x - 1]}, answering after {took:.1f} s)")
    # Who claims it, when, and how often the row is written from now on: until READY,
    # then SETTLE seconds more (a second claim or run would write it again; the AVIF
    # phase of the one run may write it once more).
    owners, statuses, writes = [], [], []
    claimed_at, ready_at = None, None
    while time.time() - t_kill < (RESUME_WITHIN if ready_at is None else ready_at + SETTLE):
        row = image_row(image_id)
        if row["lease_owner"] != after_kill["lease_owner"] and row["lease_owner"] not in owners:
            owners.append(row["lease_owner"])
            claimed_at = claimed_at or time.time() - t_kill
        if not statuses or statuses[-1] != row["status"]:
            statuses.append(row["status"])
        if row["status"] != "PROCESSING" and row["updated"] not in writes:
            writes.append(row["updated"])
        if row["status"] == "FAILED":
            break
        if row["status"] == "READY" and ready_at is None:
            ready_at = time.time() - t_kill
        time.sleep(0.1)
    who = [f"process {cluster.index_of(owner_pid(o))} (pid {owner_pid(o)})" for o in owners]
    print(f"  claimed by {', '.join(who) or 'nobody'}"
          + (f" {claimed_at:.1f} s after the kill" if claimed_at else "")
          + f"; statuses {' -> '.join(['PROCESSING'] + statuses if statuses[:1] != ['PROCESSING'] else statuses)}"
          + (f"; READY {ready_at:.1f} s after the kill" if ready_at else "")
          + f"; row written {len(writes)} times by {SETTLE:.0f} s after")
    check(row["status"] == "READY", f"the image becomes READY (is {row['status']}"
          + (f": {row['error']}" if row["error"] else "") + ")")
    if row["status"] != "READY":
        return
    check(len(owners) == 1, f"claimed once, by one process ({len(owners)} claims)")
    check(statuses.count("READY") <= 1 and "FAILED" not in statuses and len(writes) <= 2,
          "READY once: one run's phase writes, never PROCESSING again")
    variants = row["variants"]
    paths = [v["path"] for v in variants]
    shapes = [(v.get("format"), v.get("kind"), v.get("width"), v.get("height")) for v in variants]
    where = "in the bucket" if S3 else "on disk"
    on_disk = bucket_files(variants) if S3 else \
        media_files(os.environ.get("MEDIA_ROOT", os.path.join(cluster.work, "media")), variants)
    temporary = sorted(f for f in on_disk if ".tmp" in os.path.basename(f))
    # A format the row does not list yet (AVIF) may still be being made.
    recorded = {os.path.splitext(p)[1] for p in paths}
    later = sorted(f for f in on_disk - set(temporary) if os.path.splitext(f)[1] not in recorded)
    extra = sorted(on_disk - set(paths) - set(temporary) - set(later))
    missing = sorted(set(paths) - on_disk)
    print(f"  variants: {variant_figures(variants)}; files beside them {where}: {len(on_disk)} "
          f"({len(extra)} of the row's formats not in it, {len(missing)} missing; "
          f"{len(later)} of a phase still running, {len(temporary)} temporary)")
    for f in extra[:5] + temporary[:5]:
        print(f"    {f}")
    check(variants and len(set(paths)) == len(paths) and len(set(shapes)) == len(shapes),
          "one set of variants in the row (no name or size twice)")
    check(not extra and not missing, f"the files {where} are the row's variants, no other set")
    served = served_everywhere(cluster, variants)
    print("  /media/ answers: " + "; ".join(f"process {i}: {summary([(0, 0, s) for s in st])}"
                                            for i, st in served.items()))
    check(all(s == 200 for st in served.values() for s in st),
          f"each of its {len(variants)} variants is served 200 by every process")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="the binary cluster.sh runs")
    ap.add_argument("--work", required=True, help="cluster.sh's folder (target/cluster)")
    ap.add_argument("--pids", required=True, help="the processes' pids, process 1 first")
    ap.add_argument("--photo", default=None, help="the photograph for the resume check "
                    "(default: a 1280x860 PNG of noise made here, the same every run)")
    args = ap.parse_args()
    photo = args.photo
    cluster = Cluster(args)
    # Stopped by cluster.sh's clean-up or anyone: the processes started here go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    try:
        cookie = cores.login(port(1))
        rooms = room_ids(cookie)
        print(f"cluster drill: {len(cluster)} processes (ports {port(1)}-{port(len(cluster))}) behind "
              f"nginx :{NGINX}, IMAGE_JOB_LEASE={os.environ.get('IMAGE_JOB_LEASE', '60')} s, media "
              + (f"in s3://{os.environ['MEDIA_S3_BUCKET']}/{os.environ.get('MEDIA_S3_PREFIX', '')} "
                 f"(each process's own MEDIA_ROOT under {cluster.work}/media-PORT)" if S3
                 else f"under {os.environ.get('MEDIA_ROOT')}"))
        for drill in (lambda: drill_session(cluster, cookie),
                      lambda: drill_attendance(cluster, cookie),
                      lambda: drill_photo(cluster, cookie, rooms),
                      lambda: drill_kill(cluster, cookie),
                      lambda: drill_resume(cluster, cookie, rooms, photo)):
            t = time.time()
            drill()
            print(f"  ({time.time() - t:.1f} s)")
    except KeyboardInterrupt:
        print("\ninterrupted")
        sys.exit(130)
    finally:
        cluster.stop()
    print(f"\ndrill checks took {time.time() - started:.0f} s")
    print(f"{len(failures)} checks failed" if failures else "all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
