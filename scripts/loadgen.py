"""What the drills (scripts/drills.py, scripts/cluster_drill.py) share: a load
generator (client threads on keep-alive connections, each answer recorded with its
timing) and uploads to make. Python's standard library only."""

import http.client
import random
import re
import struct
import threading
import time
import zlib


def quantile(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Load:
    """`clients` threads, each on its own keep-alive connection, asking for `paths`
    (a callable giving the next path) until stopped. Records (start, seconds, status,
    Retry-After, the error page's message for a 5xx); status 0 is a connection error."""

    def __init__(self, cookie, paths, clients=8, port=8000):
        self.cookie, self.paths, self.clients, self.port = cookie, paths, clients, port
        # Clients numbered from `active` on pause (lowered to fit a load to the
        # server's configured capacity).
        self.active = clients
        self.results = []
        self.lock = threading.Lock()
        self.running = False
        self.t0 = 0.0

    def _client(self, number):
        conn = None
        while self.running:
            if number >= self.active:
                time.sleep(0.02)
                continue
            path = self.paths()
            start = time.time()
            why = ""
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("GET", path, headers={"Cookie": self.cookie})
                r = conn.getresponse()
                body = r.read()
                status, retry = r.status, r.getheader("Retry-After")
                if status >= 500:
                    found = re.search(rb'class="error-message">([^<]*)<', body)
                    why = found.group(1).decode(errors="replace") if found else ""
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                status, retry, why = 0, None, "connection error"
                if conn:
                    conn.close()
                conn = None
                time.sleep(0.05)
            with self.lock:
                self.results.append((start - self.t0, time.time() - start, status, retry, why))

    def __enter__(self):
        self.running = True
        self.t0 = time.time()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                        for i in range(self.clients)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        for t in self.threads:
            t.join(35)

    def now(self):
        return time.time() - self.t0

    def between(self, a, b):
        return [r for r in self.results if a <= r[0] < b]


def summary(rows):
    counts = {}
    for r in rows:
        counts[r[2]] = counts.get(r[2], 0) + 1
    return ", ".join(f"{k or 'conn error'}: {v}" for k, v in sorted(counts.items())) or "none"


def png(w, h, seed):
    """A PNG of noise (slow to encode, the same for a seed)."""
    rng = random.Random(seed)
    raw = b"".join(b"\x00" + bytes(rng.getrandbits(8) for _ in range(w * 3)) for _ in range(h))

    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))
