#!/usr/bin/env python3
"""Does minifying napiatke's HTML pay once it is compressed? (issue 12, item 6)

Fetches each page (identity) from a running server as a logged-in admin, then compares
brotli-6 bytes (what napiatke stores) with and without minify-html (the Rust library's
Python binding, PyPI `minify-html`; pre, textarea, script and style are left alone by
its settings here). Prints a Markdown table for docs/performance.md.

    pip install minify-html brotli
    BASE=http://127.0.0.1:8300 python3 scripts/minify_pays.py
"""
import os
import re
import urllib.error
import urllib.request

import brotli
import minify_html

BASE = os.environ.get("BASE", "http://127.0.0.1:8300")
PAGES = [
    ("/dashboard/", False), ("/lessons/", False), ("/lessons/?page=3", True),
    ("/lessons/?page=200", False), ("/lessons/100/", False), ("/calendar/", False),
    ("/students/", False), ("/students/?q=kow", True),
]

class Keep(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 303 after login carries the session cookie: read it here


web = urllib.request.build_opener(Keep)


def cookie(res, name):
    for value in res.headers.get_all("Set-Cookie") or []:
        if value.startswith(name + "="):
            return value.split(";", 1)[0]
    raise SystemExit(f"no {name} cookie")


# Cookies by hand: production cookies are Secure, which a cookie jar keeps off http.
form = web.open(BASE + "/login")
login_cookie = cookie(form, "napiatke_csrf")
token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form.read().decode()).group(1)
body = f"csrf_token={token}&email=admin@napiatke.local&password=admin&next=/dashboard/"
try:
    res = web.open(urllib.request.Request(
        BASE + "/login", data=body.encode(),
        headers={"Sec-Fetch-Site": "same-origin", "Cookie": login_cookie}))
except urllib.error.HTTPError as e:  # the 303, not followed
    res = e
session = cookie(res, "napiatke_session")

print("| page | HTML bytes | minified | brotli 6 | minified, brotli 6 | saved after compression |")
print("|---|---:|---:|---:|---:|---:|")
for path, hx in PAGES:
    headers = {"Accept-Encoding": "identity", "Cookie": session}
    if hx:
        headers.update({"HX-Request": "true", "HX-Target": "rows"})
    html = web.open(urllib.request.Request(BASE + path, headers=headers)).read()
    # Its defaults: spec-compliant output; closing tags and the html/head tags kept.
    mini = minify_html.minify(
        html.decode(), keep_closing_tags=True, keep_html_and_head_opening_tags=True,
        minify_css=False, minify_js=False,
    ).encode()
    br, mbr = len(brotli.compress(html, quality=6)), len(brotli.compress(mini, quality=6))
    name = ("hx:" if hx else "") + path
    print(f"| {name} | {len(html):,} | {len(mini):,} | {br:,} | {mbr:,} | {100 * (br - mbr) / br:.1f} % |")
