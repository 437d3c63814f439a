"""Brand wordmarks: a brand's title set as text in openly licensed fonts, as one more artwork style.

Packaging prints brand names as much as brand marks, and no icon set draws a wordmark for most brands. This module
writes each brand's title (simple-icons' ``title``) in several fonts, weights and letter cases, in the brand colour
or black/white, on a transparent ground or a light/dark/brand-coloured plate, tight to the text::

    fonts = load_fonts()                                   # DejaVu + STIX (inside matplotlib), no download
    fonts = load_fonts("runs/fonts")                       # + the pinned @fontsource fonts (fetch_fonts once)
    marks = wordmark_variants(brand, fonts, 4, np.random.default_rng(0))   # [Wordmark(text, font, colours), ...]
    rgba = render_wordmark(marks[0], 128)                  # HxWx4 uint8, longer side 128, for compositing
    image = canonical_wordmark(gallery_wordmarks(brand, fonts)[0], 96)    # 96x96x3 gallery image
    wordmark_references(96, fonts=fonts)                   # {slug: [("wordmark:dejavu-sans-bold", image), ...]}
    lockup_references(96, fonts=fonts, count=2)            # symbol + title: [("lockup:dejavu-sans-bold-horizontal",
                                                           #   image), ("lockup:dejavu-sans-bold-stacked", image)]

A **lockup** is the brand's simple-icons symbol and its title set together, side by side (``horizontal``) or the
title under the symbol (``stacked``), the way packaging and the held-out devicon wordmarks often print a brand.

It is a **training** style (:data:`WORDMARK_STYLE`), never the held-out evaluation style
(:data:`vision.synth.styles.EVAL_STYLES`). Every font's licence is recorded on its :class:`FontFace` and in
the datasets that use it. A title that no font covers (e.g. a script none of them has) gets no wordmark.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vision.fileio import atomic_write_text
from vision.synth.catalog import Brand, Color, list_brands
from vision.synth.render import paste_centered
from vision.synth.styles import fetch_npm_tarball

__all__ = ["BUILTIN_FONTS", "CASES", "FONTSOURCE_FONTS", "LOCKUP_LAYOUTS", "LOCKUP_STYLE", "SCHEMES",
           "WORDMARK_STYLE", "FontFace", "FontError", "PinnedFont", "Wordmark", "canonical_lockup",
           "canonical_wordmark", "default_fonts_dir", "fetch_fonts", "gallery_wordmarks", "load_fonts",
           "lockup_references", "render_lockup", "render_wordmark", "wordmark_references", "wordmark_variants"]

WORDMARK_STYLE = "wordmark"
LOCKUP_STYLE = "lockup"
LOCKUP_LAYOUTS: tuple[str, ...] = ("horizontal", "stacked")
# lockup proportions, as fractions of the symbol's height: the title's height and the gap between the two
_LOCKUP_TEXT = {"horizontal": 0.55, "stacked": 0.35}
_LOCKUP_GAP = {"horizontal": 0.25, "stacked": 0.15}
CASES: tuple[str, ...] = ("as-written", "upper", "lower")
# (name, text colour, plate colour): None text colour = the brand colour; None plate = transparent ground
SCHEMES: tuple[tuple[str, str, str | None], ...] = (
    ("brand", "brand", None), ("black", "black", None), ("white", "white", None),
    ("brand-on-light", "brand", "light"), ("white-on-brand", "white", "brand"), ("white-on-dark", "white", "dark"),
    ("black-on-light", "black", "light"))
_SCHEME_WEIGHTS = (0.3, 0.15, 0.1, 0.15, 0.15, 0.1, 0.05)
_CASE_WEIGHTS = (0.6, 0.25, 0.15)
_NAMED: dict[str, Color] = {"black": (0, 0, 0), "white": (255, 255, 255), "light": (245, 245, 240),
                            "dark": (32, 32, 32)}
_PLATE_PADDING = 0.25      # plate margin around the text, as a fraction of the text height
_RENDER_PX = 96            # font size the text is drawn at before scaling to the requested size
_LIGHT_LUMA = 0.8          # as vision.synth.render.canonical_logo: light text goes on a dark canvas
_DARK_CANVAS = (32, 32, 32)


class FontError(ValueError):
    """A font that cannot be used: missing, unreadable, failing its checksum. Names the file and why."""


@dataclass(frozen=True)
class FontFace:
    """One font file: ``key`` names it in file names and records (``dejavu-sans-bold``), ``license`` its SPDX id."""

    key: str
    family: str
    weight: int
    italic: bool
    path: str
    license: str
    source: str                  # where it came from: "matplotlib <version>" or "@fontsource/<id>@<version>"
    codepoints: frozenset[int] = frozenset()

    def covers(self, text: str) -> bool:
        return all(ord(c) in self.codepoints or c.isspace() for c in text)

    def record(self) -> dict:
        return {"family": self.family, "weight": self.weight, "italic": self.italic, "license": self.license,
                "source": self.source, "file": Path(self.path).name}


@dataclass(frozen=True)
class Wordmark:
    """One wordmark to draw: ``text`` in ``font`` (its path and key), ``color`` on ``plate`` (``None``: transparent).

    Small and picklable (no glyph table), so dataset workers can take it."""

    text: str
    font_key: str
    font_path: str
    case: str
    scheme: str
    color: Color
    plate: Color | None

    @property
    def name(self) -> str:
        """``<font key>-<case>-<scheme>``: the icon part of dataset file names (``wordmark__<name>__clean_00.jpg``)."""
        return f"{self.font_key}-{self.case}-{self.scheme}"


# ---------------------------------------------------------------------------------------------------------------
# fonts
# ---------------------------------------------------------------------------------------------------------------

# (file in matplotlib/mpl-data/fonts/ttf, key, family, weight, italic); licences in LICENSE_DEJAVU / LICENSE_STIX there
BUILTIN_FONTS: tuple[tuple[str, str, str, int, bool], ...] = (
    ("DejaVuSans.ttf", "dejavu-sans", "DejaVu Sans", 400, False),
    ("DejaVuSans-Bold.ttf", "dejavu-sans-bold", "DejaVu Sans", 700, False),
    ("DejaVuSans-Oblique.ttf", "dejavu-sans-oblique", "DejaVu Sans", 400, True),
    ("DejaVuSans-BoldOblique.ttf", "dejavu-sans-bold-oblique", "DejaVu Sans", 700, True),
    ("DejaVuSerif.ttf", "dejavu-serif", "DejaVu Serif", 400, False),
    ("DejaVuSerif-Bold.ttf", "dejavu-serif-bold", "DejaVu Serif", 700, False),
    ("DejaVuSerif-Italic.ttf", "dejavu-serif-italic", "DejaVu Serif", 400, True),
    ("DejaVuSansMono-Bold.ttf", "dejavu-sans-mono-bold", "DejaVu Sans Mono", 700, False),
    ("STIXGeneral.ttf", "stix-general", "STIX General", 400, False),
    ("STIXGeneralBol.ttf", "stix-general-bold", "STIX General", 700, False),
    ("STIXGeneralItalic.ttf", "stix-general-italic", "STIX General", 400, True),
)
_BUILTIN_LICENSES = {"DejaVu": ("Bitstream-Vera AND LicenseRef-DejaVu-public-domain-changes", "LICENSE_DEJAVU"),
                     "STIX": ("LicenseRef-STIX-Font-License-2010", "LICENSE_STIX")}


@dataclass(frozen=True)
class PinnedFont:
    """One ``@fontsource/<id>`` release (version and npm ``dist.integrity``) and the faces taken from it."""

    id: str
    family: str
    version: str
    integrity: str
    license: str
    faces: tuple[tuple[int, bool], ...]     # (weight, italic)

    def file(self, weight: int, italic: bool) -> str:
        return f"{self.id}-latin-{weight}-{'italic' if italic else 'normal'}.woff"


# Openly licensed display and text faces unlike DejaVu: geometric, condensed, high-contrast serif, slab, script,
# all-caps display. Licences as each package states them (checked against its LICENSE file when fetched).
FONTSOURCE_FONTS: dict[str, PinnedFont] = {p.id: p for p in (
    PinnedFont("montserrat", "Montserrat", "5.3.0", "sha512-iQPDtZOnmM5ih4JBGaMSXisRap0ixb9bAUw2hDtY7EjVfaqiiNlKtVuJl"
               "9XclxUwtwMMHNcWXfQR6zI9x05+Tg==", "OFL-1.1", ((400, False), (800, False), (600, True))),
    PinnedFont("oswald", "Oswald", "5.3.0", "sha512-16r2aHActe0pH+9FLdk/74/YxXM7HpGak05kAzx3RvSToiJwGvyhv6GvckPz+YuZm"
               "vL1nxWbEop2jAXRcXYPRg==", "OFL-1.1", ((400, False), (700, False))),
    PinnedFont("playfair-display", "Playfair Display", "5.3.0", "sha512-uJSABalvdWc10fEPppQjQocamT21LEyRfzzWfRfqbkPz+"
               "sRv+kKpYDKyluBUskvJREkJTos9epj1WjQROGu99Q==", "OFL-1.1", ((400, False), (700, True))),
    PinnedFont("merriweather", "Merriweather", "5.3.0", "sha512-9LpPsNTYzRALj468Uj1K9Usl5eXk991L/kKmcpdWbTF1na9NfMyAX"
               "MgUABlMReViU1MYBz9kJ8jEzEOtX9qGDg==", "OFL-1.1", ((400, False), (900, False))),
    PinnedFont("roboto-slab", "Roboto Slab", "5.3.0", "sha512-nrl4sOt5OIoMV3VecGVOnNAADU/8vz6+CLtLr4cCAf106hVtSLCTObP"
               "N8Z2KdZ03U01UDvgIp3hsu2TX3jen6w==", "Apache-2.0", ((400, False), (700, False))),
    PinnedFont("bebas-neue", "Bebas Neue", "5.3.0", "sha512-nCxMEb9Bg9sjNWm9TIOsvHKDMLRUfEZPWpLgYu6m9KavZZVSA/WoHzI5w"
               "ROwqA+eNwEi/PNBAcB5Co7HA3S0Cw==", "OFL-1.1", ((400, False),)),
    PinnedFont("lobster", "Lobster", "5.3.0", "sha512-jt+RDk/8Sstl1Omhox62gTbvRSLbh06kn5BNfDFgf4rNuDPHF+19eWYFxzq5Fsdk"
               "albRJNtc5p5C3qE0+leNVg==", "OFL-1.1", ((400, False),)),
    PinnedFont("pacifico", "Pacifico", "5.3.0", "sha512-bWv0fHR1n36p7scRn+maaEaVeQCOq9yvfVfjyAeUzKrK4Y/3qiRAEj4hJgfxj/"
               "sjgZZGkeHyKPrbWdDaZtpCVw==", "OFL-1.1", ((400, False),)),
)}
_LICENSE_MARKERS = {"OFL-1.1": "SIL Open Font License", "Apache-2.0": "Apache License"}

# the gallery's wordmark references, most preferred first: plain faces a reader would call "the name, written"
_GALLERY_FONTS = ("dejavu-sans-bold", "dejavu-serif", "montserrat-800", "dejavu-sans", "oswald-700",
                  "roboto-slab-700", "merriweather-900")


def default_fonts_dir() -> Path:
    """``$VISION_HOME/fonts`` when ``VISION_HOME`` is set, else ``runs/fonts`` (relative to the working folder)."""
    home = os.environ.get("VISION_HOME")
    return Path(home).expanduser() / "fonts" if home else Path("runs") / "fonts"


def fetch_fonts(out_dir: str | os.PathLike | None = None, ids: Sequence[str] | None = None, *,
                overwrite: bool = False, timeout: float = 60.0) -> dict[str, dict]:
    """Download the pinned ``@fontsource`` releases (default: all of :data:`FONTSOURCE_FONTS`) into ``out_dir``.

    Each lands as ``out_dir/<id>/`` with the chosen faces' latin ``.woff`` files, ``LICENSE``, ``package.json``
    and ``source.json`` (version, tarball, the integrity it was verified against, the licence). The tarball is
    checked against the pinned sha512 before anything is written; only those files are read out of it. A font
    already there at the pinned version is kept unless ``overwrite``. Returns ``{id: source record}``.
    """
    out = Path(out_dir) if out_dir is not None else default_fonts_dir()
    chosen = list(ids) if ids is not None else list(FONTSOURCE_FONTS)
    unknown = [i for i in chosen if i not in FONTSOURCE_FONTS]
    if unknown:
        raise FontError(f"font(s) {unknown} are not pinned; choose from {', '.join(FONTSOURCE_FONTS)}")
    sources = {}
    for font_id in chosen:
        pinned = FONTSOURCE_FONTS[font_id]
        folder = out / font_id
        source_file = folder / "source.json"
        if not overwrite and source_file.is_file():
            existing = json.loads(source_file.read_text())
            if existing.get("integrity") == pinned.integrity and all(
                    (folder / pinned.file(*face)).is_file() for face in pinned.faces):
                sources[font_id] = existing
                continue
        tarball, data = fetch_npm_tarball(f"@fontsource/{font_id}", pinned.version, pinned.integrity, timeout)
        names = [pinned.file(*face) for face in pinned.faces]
        members = _read_members(data, ["LICENSE", "package.json"] + [f"files/{n}" for n in names], tarball)
        license_text = members["LICENSE"].decode("utf-8", errors="replace")
        if _LICENSE_MARKERS[pinned.license] not in license_text:
            raise FontError(f"{tarball}: LICENSE does not state {pinned.license} "
                            f"({_LICENSE_MARKERS[pinned.license]!r} not found)")
        source = {"package": f"@fontsource/{font_id}", "family": pinned.family, "version": pinned.version,
                  "tarball": tarball, "integrity": pinned.integrity, "license": pinned.license, "files": names}
        folder.mkdir(parents=True, exist_ok=True)
        for member, content in members.items():
            target = folder / Path(member).name
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(content)
            os.replace(tmp, target)
        atomic_write_text(source_file, json.dumps(source, indent=1) + "\n")
        sources[font_id] = source
    return sources


def _read_members(data: bytes, members: Sequence[str], name: str) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in members:
            try:
                info = tar.getmember(f"package/{member}")
            except KeyError:
                raise FontError(f"{name}: no package/{member} in the package") from None
            handle = tar.extractfile(info) if info.isfile() else None
            if handle is None:
                raise FontError(f"{name}: package/{member} is not a regular file")
            out[member] = handle.read()
    return out


def load_fonts(folder: str | os.PathLike | None = None, *, builtin: bool = True) -> list[FontFace]:
    """The wordmark fonts: matplotlib's DejaVu and STIX faces (``builtin``), plus the ``@fontsource`` fonts fetched
    into ``folder`` by :func:`fetch_fonts` (every pinned font whose folder is there; ``source.json`` names the
    licence). Each face's character map is read so :meth:`FontFace.covers` can tell which titles it can set."""
    faces = []
    if builtin:
        import matplotlib

        ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        for file, key, family, weight, italic in BUILTIN_FONTS:
            licence, licence_file = _BUILTIN_LICENSES[family.split()[0]]
            if not (ttf / licence_file).is_file():
                raise FontError(f"{ttf / licence_file} is missing: the licence of {family} must ship with it")
            faces.append(_face(ttf / file, key, family, weight, italic, licence,
                               f"matplotlib {matplotlib.__version__} ({licence_file})"))
    if folder is not None:
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"font folder {root} does not exist; fetch the fonts, from a checkout: "
                                    f"`python tools/fetch_fonts.py --out {root}`")
        for font_id, pinned in FONTSOURCE_FONTS.items():
            source_file = root / font_id / "source.json"
            if not source_file.is_file():
                continue
            try:
                source = json.loads(source_file.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise FontError(f"{source_file}: cannot read ({e})") from None
            if source.get("integrity") != pinned.integrity:
                raise FontError(f"{source_file}: not the pinned release {pinned.version} of @fontsource/{font_id}; "
                                "fetch again with --overwrite")
            for weight, italic in pinned.faces:
                key = f"{font_id}-{weight}{'-italic' if italic else ''}"
                faces.append(_face(root / font_id / pinned.file(weight, italic), key, pinned.family, weight, italic,
                                   pinned.license, f"@fontsource/{font_id}@{pinned.version}"))
    return faces


def _face(path: Path, key: str, family: str, weight: int, italic: bool, licence: str, source: str) -> FontFace:
    from fontTools.ttLib import TTFont, TTLibError

    if not path.is_file():
        raise FontError(f"font file {path} is missing")
    try:
        with TTFont(str(path), lazy=True) as font:
            codepoints = frozenset(font.getBestCmap() or ())
    except (TTLibError, OSError, KeyError, AssertionError) as e:
        raise FontError(f"{path}: not a readable font ({e})") from None
    if not codepoints:
        raise FontError(f"{path}: the font maps no characters")
    return FontFace(key, family, weight, italic, str(path), licence, source, codepoints)


# ---------------------------------------------------------------------------------------------------------------
# choosing wordmarks
# ---------------------------------------------------------------------------------------------------------------

def _cased(title: str, case: str) -> str:
    if case == "upper":
        return title.upper()
    if case == "lower":
        return title.lower()
    if case == "as-written":
        return title
    raise ValueError(f"unknown case {case!r}; choose from {CASES}")


def _scheme_colors(brand: Brand, scheme: str) -> tuple[Color, Color | None]:
    for name, text, plate in SCHEMES:
        if name == scheme:
            def color(which: str) -> Color:
                return brand.rgb if which == "brand" else _NAMED[which]
            return color(text), color(plate) if plate else None
    raise ValueError(f"unknown colour scheme {scheme!r}; choose from {[s[0] for s in SCHEMES]}")


def _wordmark(brand: Brand, font: FontFace, case: str, scheme: str) -> Wordmark | None:
    text = " ".join(_cased(brand.title, case).split())
    if not text or not font.covers(text):
        return None
    color, plate = _scheme_colors(brand, scheme)
    return Wordmark(text, font.key, font.path, case, scheme, color, plate)


def wordmark_variants(brand: Brand, fonts: Sequence[FontFace], count: int,
                      rng: np.random.Generator) -> list[Wordmark]:
    """Up to ``count`` wordmarks of ``brand`` for training: distinct fonts (drawn at random among those that set
    its title), a letter case (as written, upper, lower) and a colour scheme (:data:`SCHEMES`) each. Fewer when
    fewer fonts cover the title; none when no font does."""
    order = rng.permutation(len(fonts))
    out = []
    for i in order:
        if len(out) == count:
            break
        case = CASES[int(rng.choice(len(CASES), p=_CASE_WEIGHTS))]
        scheme = SCHEMES[int(rng.choice(len(SCHEMES), p=_SCHEME_WEIGHTS))][0]
        mark = _wordmark(brand, fonts[int(i)], case, scheme)
        if mark is None and case != "as-written":     # e.g. a capital the font lacks: try the title as written
            mark = _wordmark(brand, fonts[int(i)], "as-written", scheme)
        if mark is not None:
            out.append(mark)
    return out


def gallery_wordmarks(brand: Brand, fonts: Sequence[FontFace], count: int = 2) -> list[Wordmark]:
    """The brand's wordmark references for a gallery: its title as written, in the brand colour, in up to ``count``
    fonts (DejaVu Sans Bold, DejaVu Serif, Montserrat ExtraBold, DejaVu Sans, Oswald Bold, Roboto Slab Bold,
    Merriweather Black, then the rest, as loaded; the ``@fontsource`` ones where fetched), the same every time."""
    by_key = {f.key: f for f in fonts}
    ordered = [by_key[k] for k in _GALLERY_FONTS if k in by_key] + [f for f in fonts if f.key not in _GALLERY_FONTS]
    out = []
    for font in ordered:
        if len(out) == count:
            break
        mark = _wordmark(brand, font, "as-written", "brand")
        if mark is not None:
            out.append(mark)
    return out


# ---------------------------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------------------------

def _text_mask(mark: Wordmark, px: int) -> np.ndarray:
    """The text's coverage (``HxW`` float32 in [0, 1]) at font size ``px``, tight to its inked pixels."""
    try:
        font = ImageFont.truetype(mark.font_path, px)
    except OSError as e:
        raise FontError(f"{mark.font_path}: cannot load ({e})") from None
    x1, y1, x2, y2 = font.getbbox(mark.text)
    pad = px // 4   # italics and swashes ink a little outside the advance box
    canvas = Image.new("L", (x2 - x1 + 2 * pad, y2 - y1 + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - x1, pad - y1), mark.text, font=font, fill=255)
    mask = np.asarray(canvas, np.float32) / 255.0
    rows, cols = np.flatnonzero(mask.max(axis=1) > 0), np.flatnonzero(mask.max(axis=0) > 0)
    if rows.size == 0:
        raise FontError(f"{mark.font_key}: {mark.text!r} renders no visible pixels")
    return mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def render_wordmark(mark: Wordmark, size: int) -> np.ndarray:
    """``mark`` as an ``HxWx4`` uint8 RGBA array whose longer side is ``size``: the text tight to its ink on a
    transparent ground, or on an opaque plate with a margin of a quarter of the text height around it."""
    if size < 4:
        raise ValueError(f"size must be >= 4, got {size}")
    mask = _text_mask(mark, _RENDER_PX)
    if mark.plate is not None:
        pad = max(1, round(_PLATE_PADDING * mask.shape[0]))
        mask = np.pad(mask, pad)
    h, w = mask.shape
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    mask = cv2.resize(mask, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.empty((*mask.shape, 4), np.float32)
    if mark.plate is None:
        out[..., :3] = mark.color          # colour everywhere: later resampling never bleeds a fringe
        out[..., 3] = mask * 255.0
    else:
        m = mask[..., None]
        out[..., :3] = np.asarray(mark.color, np.float32) * m + np.asarray(mark.plate, np.float32) * (1 - m)
        out[..., 3] = 255.0
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def canonical_wordmark(mark: Wordmark, size: int, margin: float = 0.1) -> np.ndarray:
    """The clean image of ``mark``: centred on a square ``size x size`` ``HxWx3`` uint8 canvas, as
    :func:`vision.synth.render.canonical_logo` draws marks. The canvas is the plate colour when the mark has a
    plate, else white, or dark grey when the text is light."""
    rgba = render_wordmark(mark, max(4, round(size * (1 - 2 * margin))))
    return paste_centered(rgba, size, mark.plate if mark.plate is not None else _ground(mark.color))


def _ground(color: Color) -> Color:
    """The canvas a transparent-ground mark of ``color`` is shown on: white, or dark grey when the mark is light."""
    luma = float(np.asarray(color, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255
    return _DARK_CANVAS if luma > _LIGHT_LUMA else (255, 255, 255)


def render_lockup(brand: Brand, mark: Wordmark, size: int, layout: str = "horizontal") -> np.ndarray:
    """The brand's simple-icons symbol and ``mark`` (its title; drawn in ``mark.color``, on a transparent ground) as
    one ``HxWx4`` uint8 RGBA lockup whose longer side is ``size``: the title right of the symbol, centred on it
    (``horizontal``), or under it (``stacked``). Raises :class:`vision.synth.render.LogoRenderError` when the
    symbol cannot be drawn."""
    from vision.synth.render import render_logo

    if layout not in LOCKUP_LAYOUTS:
        raise ValueError(f"unknown lockup layout {layout!r}; choose from {LOCKUP_LAYOUTS}")
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    side = _RENDER_PX * 2
    symbol = render_logo(brand, side, color=mark.color).astype(np.float32)
    # the symbol's height sets the proportions, whatever its own aspect ratio
    height = symbol.shape[0]
    text = _text_mask(mark, _RENDER_PX)
    text_h = max(2, round(_LOCKUP_TEXT[layout] * height))
    text = cv2.resize(text, (max(1, round(text.shape[1] * text_h / text.shape[0])), text_h),
                      interpolation=cv2.INTER_AREA)
    gap = round(_LOCKUP_GAP[layout] * height)
    if layout == "horizontal":
        h, w = max(height, text_h), symbol.shape[1] + gap + text.shape[1]
        alpha = np.zeros((h, w), np.float32)
        top = (h - height) // 2
        alpha[top:top + height, :symbol.shape[1]] = symbol[..., 3] / 255
        top = (h - text_h) // 2
        alpha[top:top + text_h, symbol.shape[1] + gap:] = np.maximum(alpha[top:top + text_h, symbol.shape[1] + gap:],
                                                                     text)
    else:
        h, w = height + gap + text_h, max(symbol.shape[1], text.shape[1])
        alpha = np.zeros((h, w), np.float32)
        left = (w - symbol.shape[1]) // 2
        alpha[:height, left:left + symbol.shape[1]] = symbol[..., 3] / 255
        left = (w - text.shape[1]) // 2
        alpha[height + gap:, left:left + text.shape[1]] = text
    scale = size / max(h, w)
    alpha = cv2.resize(alpha, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.empty((*alpha.shape, 4), np.float32)
    out[..., :3] = mark.color          # colour everywhere: later resampling never bleeds a fringe
    out[..., 3] = alpha * 255.0
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def canonical_lockup(brand: Brand, mark: Wordmark, size: int, layout: str = "horizontal",
                     margin: float = 0.1) -> np.ndarray:
    """The clean gallery image of a lockup (:func:`render_lockup`), centred on a square ``size x size`` ``HxWx3``
    uint8 canvas as :func:`canonical_wordmark` draws wordmarks."""
    rgba = render_lockup(brand, mark, max(8, round(size * (1 - 2 * margin))), layout)
    return paste_centered(rgba, size, _ground(mark.color))


def _colored(brand: Brand, marks: Sequence[Wordmark], colors: Sequence[str]) -> list[list[Wordmark]]:
    """Per mark, one copy per render colour (``brand``, ``black``, ``white`` or ``#rrggbb``), on no plate."""
    from vision.synth.render import render_color

    fills = [render_color(c) or brand.rgb for c in colors]
    return [[replace(m, color=fill, plate=None) for fill in fills] for m in marks]


def _references(kind: str, size: int, brands: Iterable[str] | None, fonts: Sequence[FontFace] | None, count: int,
                colors: Sequence[str], progress: Callable[..., Iterable] | None
                ) -> dict[str, list[tuple[str, np.ndarray]]]:
    from vision.synth.render import LogoRenderError

    fonts = list(fonts) if fonts is not None else load_fonts()
    wanted = None if brands is None else set(brands)
    catalogue = [b for b in list_brands() if wanted is None or b.slug in wanted]
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    for brand in progress(catalogue, desc=f"{kind}s", unit="brand") if progress else catalogue:
        if kind == WORDMARK_STYLE:
            marks = gallery_wordmarks(brand, fonts, count)
            drawn = [(f"{kind}:{m.font_key}", [canonical_wordmark(c, size) for c in copies])
                     for m, copies in zip(marks, _colored(brand, marks, colors))]
        else:   # a lockup per (font, layout): both layouts of the first font, then of the next
            marks = gallery_wordmarks(brand, fonts, -(-count // len(LOCKUP_LAYOUTS)))
            pairs = [(i, layout) for i in range(len(marks)) for layout in LOCKUP_LAYOUTS][:count]
            copies = _colored(brand, marks, colors)
            try:
                drawn = [(f"{kind}:{marks[i].font_key}-{layout}",
                          [canonical_lockup(brand, c, size, layout) for c in copies[i]]) for i, layout in pairs]
            except LogoRenderError:
                drawn = []
        refs = [(name, image) for name, images in drawn for image in images]
        if refs:
            out[brand.slug] = refs
    return out


def wordmark_references(size: int, brands: Iterable[str] | None = None, fonts: Sequence[FontFace] | None = None,
                        count: int = 2, progress: Callable[..., Iterable] | None = None,
                        colors: Sequence[str] = ("brand",)) -> dict[str, list[tuple[str, np.ndarray]]]:
    """``{slug: [("wordmark:<font key>", image), ...]}``: gallery references of every simple-icons brand (or the
    listed slugs), :func:`gallery_wordmarks` drawn by :func:`canonical_wordmark` once per render colour in
    ``colors`` (``brand``, ``black``, ``white``, ``#rrggbb``: one name, several images, as a gallery merges a
    symbol's colour renders); the shape of ``vision.brands.building.style_renders`` so a gallery builder adds them
    the same way. ``fonts`` default to :func:`load_fonts` (the built-in faces). Brands no font covers are left
    out."""
    return _references(WORDMARK_STYLE, size, brands, fonts, count, colors, progress)


def lockup_references(size: int, brands: Iterable[str] | None = None, fonts: Sequence[FontFace] | None = None,
                      count: int = 2, progress: Callable[..., Iterable] | None = None,
                      colors: Sequence[str] = ("brand",)) -> dict[str, list[tuple[str, np.ndarray]]]:
    """``{slug: [("lockup:<font key>-<layout>", image), ...]}``: ``count`` lockups per brand (symbol and title,
    :func:`canonical_lockup`; both :data:`LOCKUP_LAYOUTS` of the first :func:`gallery_wordmarks` font, then of the
    next), once per render colour, as :func:`wordmark_references`. Brands whose symbol does not render or whose
    title no font covers are left out."""
    return _references(LOCKUP_STYLE, size, brands, fonts, count, colors, progress)
