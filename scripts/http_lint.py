#!/usr/bin/env python3
"""REDbot (Mark Nottingham's HTTP linter, PyPI `redbot`, used as a library) over every
kind of response napiatke sends: pages logged out and logged in as an admin, htmx
fragments, static files, an uploaded photo's variants, the CSV export, errors, HEAD,
and form posts (a failed and a good login, an attendance mark as a page and as htmx).

    python3 scripts/http_lint.py http://127.0.0.1:PORT

Every note of severity warning or worse must have a written reason in REASONS below,
or the run fails. Run by scripts/http-lint.sh, which starts the server.
"""

import html
import json
import http.client
import re
import struct
import subprocess
import sys
import time
import urllib.parse
import zlib
from configparser import ConfigParser

import thor
from httplint.note import levels
from redbot.resource import HttpResource

# Notes of severity warning or worse that are expected: (note class, path pattern,
# why). Anything else of that severity fails the run.
REASONS = [
    (
        "CONTENT_TYPE_MISMATCH",
        r"^/media/.*\.avif$",
        "sniffpy (REDbot's content sniffer, 1.0) does not know AVIF: it reads the file's "
        "`ftypavif` box as application/octet-stream. The file is AVIF: main() checks that "
        "every .avif served begins with an ftyp box of brand avif.",
    ),
]

BASE = sys.argv[-1].rstrip("/") if sys.argv[1] != "--one" else ""


def png(width: int = 96, height: int = 64) -> bytes:
    """A small gradient PNG, made here so the script needs no image library."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 128)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class Browser:
    """Logs in through the real form and keeps the cookies (by hand: production's are
    Secure, which a cookie jar would not send over plain HTTP to loopback)."""

    def __init__(self) -> None:
        self.cookies: dict = {}
        parts = urllib.parse.urlsplit(BASE)
        self.host, self.port = parts.hostname, parts.port

    def request(self, method: str, path: str, body: bytes = b"", headers: dict = None) -> tuple:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = self.cookie()
        if method == "POST":
            sent["Origin"] = BASE
        conn.request(method, path, body=body or None, headers=sent)
        res = conn.getresponse()
        data = res.read()
        for value in res.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        conn.close()
        if res.status >= 400:
            raise SystemExit(f"{method} {path}: {res.status} {data[:300]!r}")
        return res.status, data.decode("utf-8", "replace")

    def get(self, path: str) -> str:
        return self.request("GET", path)[1]

    def login(self, email: str, password: str) -> None:
        page = self.get("/login")
        m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
        if not m:
            raise SystemExit("no CSRF token on the login page")
        data = urllib.parse.urlencode(
            {"csrf_token": m.group(1), "email": email, "password": password, "next": "/dashboard/"}
        ).encode()
        status, _ = self.request(
            "POST", "/login", data, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        if status != 303:
            raise SystemExit(f"login answered {status}, not 303")

    def cookie(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def upload_room_photo(self, room: int, page: str) -> None:
        m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
        token = m.group(1) if m else ""
        boundary = "lintboundary"
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"room.png\"\r\n"
            "Content-Type: image/png\r\n\r\n"
        ).encode() + png() + f"\r\n--{boundary}--\r\n".encode()
        self.request(
            "POST",
            f"/rooms/{room}/photo",
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )


def lint_one(url: str, headers: list, method: str = "GET", body: str = "") -> tuple:
    """REDbot's notes (and sub-notes) on one request: (status, [(level, name, summary)])."""
    config = ConfigParser()
    config.read_dict({"redbot": {"enable_local_access": "True"}})
    resource = HttpResource(config["redbot"])
    resource.set_request(url, method=method, headers=headers, content=body.encode())

    @thor.events.on(resource)
    def check_done() -> None:
        thor.stop()

    resource.check()
    thor.run()
    found = []

    def walk(notes) -> None:
        for note in notes:
            found.append((note.level.value, type(note).__name__, str(note.summary)))
            walk(getattr(note, "subnotes", []))

    walk(resource.response.notes)
    if resource.fetch_error is not None:
        found.append(("bad", "FetchError", repr(resource.fetch_error)))
    return resource.response.status_code, found


def lint(url: str, headers: list, method: str = "GET", body: str = "") -> tuple:
    """lint_one in a process of its own: thor's loop and connection pool are per
    process, and reusing them across resources lost responses."""
    out = subprocess.run(
        [sys.executable, __file__, "--one", url, json.dumps(headers), method, body],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        return None, [("bad", "LintCrashed", out.stderr[-500:])]
    status, notes = json.loads(out.stdout)
    return status, [tuple(n) for n in notes]


def main() -> int:
    anonymous = Browser()
    login_page = anonymous.get("/login")
    admin = Browser()
    admin.login("admin@napiatke.local", "admin")
    rooms = admin.get("/rooms/")
    admin.upload_room_photo(1, rooms)
    # Wait for the photo's variants (the worker pool makes them after the answer).
    deadline = time.time() + 60
    while time.time() < deadline:
        rooms = admin.get("/rooms/")
        if "/media/" in rooms and "Processing" not in rooms:
            break
        time.sleep(0.5)
    media = sorted(set(re.findall(r'(/media/[^" ,]+)', html.unescape(rooms))))
    if not media:
        raise SystemExit("the uploaded photo's variants never appeared on /rooms/")
    statics = sorted(set(re.findall(r'(/static/[^" ]+)', login_page)))
    lessons = admin.get("/lessons/")
    lesson = re.search(r'href="(/lessons/\d+/)"', lessons).group(1)
    images = sorted(set(re.findall(r'(/images/\d+/)', rooms)))

    cookie = [("Cookie", admin.cookie())]
    hx = cookie + [("HX-Request", "true")]
    requests = (
        [(p, []) for p in ["/login", "/healthz", "/", "/dashboard/", "/no-such-page/", "/lessons"]]
        + [(p, []) for p in statics]
        + [
            (p, cookie)
            for p in [
                "/dashboard/",
                "/lessons/",
                "/lessons/?page=2",
                "/lessons/?status=COMPLETED",
                lesson,
                "/lessons/export.csv",
                "/calendar/",
                "/students/",
                "/students/?q=a",
                "/rooms/",
                "/profile/",
                "/admin/cache-stats/",
                "/metrics",
            ]
            + images
        ]
        + [(p, hx) for p in ["/lessons/?page=2", "/students/?q=ko", "/calendar/", "/lessons/?status=SCHEDULED"]]
        + [(p, []) for p in media[:6]]
    )
    # Form posts: a failed and a good login (the login form's CSRF cookie and token),
    # and an attendance mark as a page and as htmx.
    visitor = Browser()
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', visitor.get("/login")).group(1)
    form = [("Cookie", visitor.cookie()), ("Origin", BASE),
            ("Content-Type", "application/x-www-form-urlencoded")]
    login = lambda password: urllib.parse.urlencode(  # noqa: E731
        {"csrf_token": token, "email": "admin@napiatke.local", "password": password, "next": "/dashboard/"}
    )
    student = re.search(r'name="student_id" value="(\d+)"', admin.get(lesson)).group(1)
    mark = urllib.parse.urlencode({"student_id": student, "status": "PRESENT"})
    posting = cookie + [("Origin", BASE), ("Content-Type", "application/x-www-form-urlencoded")]
    posts = [
        ("POST", "/login", form, login("wrong password")),
        ("POST", "/login", form, login("admin")),
        ("POST", f"{lesson}attendance", posting, mark),
        ("POST", f"{lesson}attendance", posting + [("HX-Request", "true")], mark),
    ]
    requests = [("GET", p, h, "") for (p, h) in requests] + [
        (m, p, h, "") for (m, p, h) in [
        ("HEAD", "/login", []),
        ("HEAD", "/healthz", []),
        ("HEAD", "/dashboard/", cookie),
        ("HEAD", statics[0], []),
        ("HEAD", media[0], []),
    ]] + posts
    failures = 0
    for path in media:
        if path.endswith(".avif"):
            conn = http.client.HTTPConnection(admin.host, admin.port, timeout=30)
            conn.request("GET", path)
            head = conn.getresponse().read()[:12]
            conn.close()
            if head[4:12] != b"ftypavif":
                print(f"{path} is not AVIF: begins {head!r}")
                failures += 1
    for method, path, headers, body in requests:
        status, notes = lint(BASE + path, headers, method, body)
        label = f"{method} {path}{' (htmx)' if ('HX-Request', 'true') in headers else ''}{' (admin)' if ('Cookie', admin.cookie()) in headers else ''}"
        print(f"{status} {label}")
        for level, name, summary in notes:
            if level in (levels.WARN.value, levels.BAD.value):
                reason = next(
                    (why for (n, pattern, why) in REASONS if n == name and re.search(pattern, path)),
                    None,
                )
                mark = "  ok: " + reason if reason else "  FAIL"
                if not reason:
                    failures += 1
                print(f"    [{level}] {name}: {summary}\n    {mark}")
    print(f"{len(requests)} responses checked, {failures} notes without a reason")
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        one = lint_one(sys.argv[2], [tuple(h) for h in json.loads(sys.argv[3])], sys.argv[4], sys.argv[5])
        print(json.dumps(one))
        sys.exit(0)
    sys.exit(main())
