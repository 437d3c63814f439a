"""Edited copies of a photo, the way near-duplicates arise in a catalog (re-encoding, resizing, cropping,
mirroring, small rotations, colour changes, overlays, borders), for tests and for the dedup benchmark.

Example::

    copy = apply_edit(image, "crop", random.Random(0))     # PIL in, PIL out
    EDITS.keys()                                             # every single edit; pairs are "a+b"
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageEnhance, ImageOps


def jpeg(im: Image.Image, rng: random.Random) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="JPEG", quality=rng.randint(30, 60))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def downscale(im: Image.Image, rng: random.Random) -> Image.Image:
    f = rng.uniform(0.3, 0.6)
    return im.resize((max(16, round(im.width * f)), max(16, round(im.height * f))), Image.BILINEAR)


def crop(im: Image.Image, rng: random.Random) -> Image.Image:
    """Keep 70-90% of the area, at a random place."""
    side = rng.uniform(0.70, 0.90) ** 0.5
    w, h = round(im.width * side), round(im.height * side)
    x, y = rng.randint(0, im.width - w), rng.randint(0, im.height - h)
    return im.crop((x, y, x + w, y + h))


def mirror(im: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.mirror(im)


def rotate(im: Image.Image, rng: random.Random) -> Image.Image:
    angle = rng.uniform(5, 20) * rng.choice((-1, 1))
    return im.rotate(angle, resample=Image.BILINEAR, expand=False, fillcolor=(255, 255, 255))


def colour(im: Image.Image, rng: random.Random) -> Image.Image:
    im = ImageEnhance.Color(im).enhance(rng.uniform(0.5, 1.6))
    im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.7, 1.3))
    return ImageEnhance.Contrast(im).enhance(rng.uniform(0.7, 1.3))


def greyscale(im: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.grayscale(im).convert("RGB")


def text(im: Image.Image, rng: random.Random) -> Image.Image:
    im = im.copy()
    draw = ImageDraw.Draw(im)
    size = max(10, im.height // 12)
    try:
        from PIL import ImageFont
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        font = None
    y = rng.randint(0, max(0, im.height - 2 * size))
    draw.text((rng.randint(0, im.width // 4), y), rng.choice(("SALE -30%", "www.shop.example", "NEW!", "@seller")),
              fill=rng.choice(((255, 255, 255), (255, 0, 0), (0, 0, 0))), font=font)
    return im


def border(im: Image.Image, rng: random.Random) -> Image.Image:
    pad = round(min(im.size) * rng.uniform(0.03, 0.10))
    return ImageOps.expand(im, border=pad, fill=rng.choice(((255, 255, 255), (0, 0, 0), (200, 200, 200))))


def letterbox(im: Image.Image, rng: random.Random) -> Image.Image:
    """A phone screenshot: the photo centred on a tall dark canvas with a status bar."""
    w = im.width
    canvas = Image.new("RGB", (w, round(w * rng.uniform(1.8, 2.2))), (18, 18, 18))
    canvas.paste(im, (0, (canvas.height - im.height) // 2))
    ImageDraw.Draw(canvas).rectangle([0, 0, w, max(8, canvas.height // 30)], fill=(40, 40, 40))
    return canvas


EDITS = {f.__name__: f for f in (jpeg, downscale, crop, mirror, rotate, colour, greyscale, text, border, letterbox)}


def apply_edit(im: Image.Image, name: str, rng: random.Random) -> Image.Image:
    """Apply one edit, or a chain ``"a+b"`` left to right."""
    for part in name.split("+"):
        if part not in EDITS:
            raise ValueError(f"unknown edit {part!r}; known: {sorted(EDITS)}")
        im = EDITS[part](im.convert("RGB"), rng)
    return im
