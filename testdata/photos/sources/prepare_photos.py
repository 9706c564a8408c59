#!/usr/bin/env python3
"""Rebuild the photographs in testdata/photos/ from their upstream packages.

Not run by the build or the tests; kept to document exactly how each file was made.

Inputs (unpacked, not installed):
  apt-get download lomiri-wallpapers-16.04   (Debian 12, version 20.04.0-2)
  dpkg-deb -x lomiri-wallpapers-16.04_*.deb  $LOMIRI
  pip download --no-deps scikit-image==0.26.0 ; unzip the wheel into $SKIMAGE_WHEEL

Usage: LOMIRI=... SKIMAGE_WHEEL=... python3 prepare_photos.py OUTDIR
Needs Pillow and jpegtran (libjpeg-turbo-progs).
"""
import os, subprocess, sys
from PIL import Image

MAX_W = 2560
LIMIT = 1_500_000

lom = os.path.join(os.environ["LOMIRI"], "usr/share/backgrounds")
sk = os.path.join(os.environ["SKIMAGE_WHEEL"], "skimage/data")
out = sys.argv[1]

def reencode(src, dst, width=None):
    """Decode, Lanczos-downscale to `width` (or MAX_W if wider), save JPEG q92 without metadata."""
    im = Image.open(src).convert("RGB")
    w = width or min(im.width, MAX_W)
    if im.width > w:
        im = im.resize((w, round(im.height * w / im.width)), Image.LANCZOS)
    im.save(dst, "JPEG", quality=92, optimize=True)  # no exif/icc/xmp passed -> none written
    return im.size

def lossless_strip(src, dst):
    """Same pixels as the source JPEG; drop all metadata markers (EXIF/XMP/ICC/comments)."""
    subprocess.run(["jpegtran", "-copy", "none", "-optimize", "-outfile", dst, src], check=True)

jobs = [
    # (output, source, how, width)
    ("foliage.jpg",   f"{lom}/life_by_Aitzol_Berasategi.jpg",          "reencode", 1920),
    ("landscape.jpg", f"{lom}/picosdeeuropa_by_Aitzol_Berasategi.jpg", "reencode", 1920),
    ("dusk.jpg",      f"{lom}/sunset_by_Aitzol_Berasategi.jpg",        "reencode", 2560),
    ("night.jpg",     f"{sk}/hubble_deep_field.jpg",                   "lossless", None),
    ("portrait.jpg",  f"{sk}/astronaut.png",                           "reencode", None),
]
for name, src, how, width in jobs:
    dst = os.path.join(out, name)
    if how == "lossless":
        lossless_strip(src, dst)
    else:
        reencode(src, dst, width)
    size = os.path.getsize(dst)
    print(f"{name}: {Image.open(dst).size} {size} bytes")
    assert size <= LIMIT, name
