"""Brand marks as images: SVG -> tight RGBA with resvg, logo colour styles, canonical gallery renders.

Example::

    rgba = render_logo(brand, 128)                            # HxWx4 uint8, tight to the visible mark
    style = random_logo_style(brand, np.random.default_rng(0))
    gallery_image = canonical_logo(brand, 96)                 # 96x96x3, the mark centred on a plain canvas
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np
import resvg_py
from PIL import Image

from vision.synth.catalog import Brand, Color, list_brands
from vision.synth.record import LogoDatasetWarning

__all__ = ["LOGO_VARIANTS", "RENDER_COLORS", "LogoRenderError", "LogoStyle", "canonical_logo", "check_renderable",
           "is_monochrome", "mask_box", "parse_render_colors", "premultiply", "random_logo_style", "render_color",
           "render_logo", "simple_icons_renders"]

LOGO_VARIANTS: tuple[str, ...] = ("brand", "black", "white", "random", "plate")
_VARIANT_WEIGHTS = (0.4, 0.15, 0.15, 0.15, 0.15)

_PLATE_PADDING = 0.18        # plate margin around the mark, as a fraction of the plate's longer side
_PLATE_CORNER = 0.25         # corner radius as a fraction of the plate's shorter side
_MIN_RENDER_SIDE = 64        # smaller logos are rendered at this size and scaled down
_MAX_CANVAS = 4096           # resvg canvas bound when zooming in on a mark that fills little of its viewBox
_LIGHT_LUMA = 0.8            # brand colours lighter than this are drawn on a dark canvas in the canonical render
_DARK_CANVAS = (32, 32, 32)


class LogoRenderError(ValueError):
    """An SVG that resvg cannot parse or that draws nothing; ``.name`` is the brand slug or file, ``.reason`` why."""

    def __init__(self, name: str, reason: str):
        self.name = str(name)
        self.reason = reason
        super().__init__(f"{self.name}: {reason}")

    def __reduce__(self):
        return (self.__class__, (self.name, self.reason))


@dataclass(frozen=True)
class LogoStyle:
    """How to colour one rendered logo; pass ``color`` and ``background`` on to :func:`render_logo`."""

    variant: str
    color: Color | None
    background: Color | None


def random_logo_style(brand: Brand, rng: np.random.Generator) -> LogoStyle:
    """Pick one of :data:`LOGO_VARIANTS`: brand colour, black, white, a random colour, or cut out of a brand plate."""
    variant = LOGO_VARIANTS[int(rng.choice(len(LOGO_VARIANTS), p=_VARIANT_WEIGHTS))]
    if variant == "plate":
        return LogoStyle(variant, None, brand.rgb)
    color = {"brand": brand.rgb, "black": (0, 0, 0), "white": (255, 255, 255)}.get(variant)
    if color is None:
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    return LogoStyle(variant, color, None)


def render_logo(logo: Brand | str | os.PathLike, size: int, color: Color | None = None,
                background: Color | None = None) -> np.ndarray:
    """Render ``logo`` as an ``HxWx4`` uint8 RGBA array whose longer side is ``size``, cropped to its visible pixels.

    ``logo`` is a :class:`Brand`, SVG text, or the path of an ``.svg`` file. ``color`` fills the mark (default: the
    brand colour; for plain SVGs, the SVG's own colours). With ``background`` the mark sits on a rounded plate of that
    colour and is cut out of it (transparent, so the photo shows through) unless ``color`` is also given, in which
    case it is painted in ``color`` on the plate. Raises :class:`LogoRenderError` naming the brand or file.

    Example::

        render_logo(brand, 96)                                 # brand colour
        render_logo(brand, 96, color=(255, 255, 255))          # white mark
        render_logo(brand, 96, background=brand.rgb)           # mark cut out of a brand-coloured plate
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    name, svg, own_color = _svg_source(logo)
    if background is None:
        mark = _render_tight(svg, size, name)
        fill = color if color is not None else own_color
        return _recolored(mark, fill) if fill is not None else mark

    pad = round(size * _PLATE_PADDING)
    mark = _render_tight(svg, max(1, size - 2 * pad), name)
    height, width = mark.shape[0] + 2 * pad, mark.shape[1] + 2 * pad
    plate = _plate_alpha(height, width, name)
    mark_alpha = np.zeros((height, width), np.float32)
    mark_alpha[pad:pad + mark.shape[0], pad:pad + mark.shape[1]] = mark[..., 3] / 255.0
    out = np.empty((height, width, 4), np.float32)
    if color is None:
        out[..., :3] = background
        alpha = plate * (1.0 - mark_alpha)
    else:
        out[..., :3] = (np.asarray(color, np.float32) * mark_alpha[..., None]
                        + np.asarray(background, np.float32) * (1.0 - mark_alpha[..., None]))
        alpha = plate
    out[..., 3] = alpha * 255.0
    return np.rint(out).astype(np.uint8)


def _svg_source(logo: Brand | str | os.PathLike) -> tuple[str, str, Color | None]:
    """``(name for errors, svg text, default fill colour)``."""
    if isinstance(logo, Brand):
        try:
            color = logo.rgb
        except ValueError as e:
            raise LogoRenderError(logo.slug, str(e)) from None
        return logo.slug, logo.svg, color
    if isinstance(logo, str) and logo.lstrip().startswith("<"):
        return "<svg text>", logo, None
    if isinstance(logo, (str, os.PathLike)):
        path = os.fspath(logo)
        try:
            return path, Path(path).read_text(encoding="utf-8"), None
        except (OSError, UnicodeDecodeError) as e:
            raise LogoRenderError(path, f"cannot read SVG file ({e})") from None
    raise TypeError(f"expected a Brand, SVG text or an .svg path, got {type(logo).__name__}")


def _render_tight(svg: str, size: int, name: str) -> np.ndarray:
    # small sizes render larger and scale down: thin strokes would vanish from a tiny canvas
    side = max(size, _MIN_RENDER_SIDE)
    crop = _crop_to_alpha(_rasterize(svg, side, name), name)
    longest = max(crop.shape[:2])
    if longest < size - 1:
        # the mark fills only part of its viewBox: render larger rather than upsampling, so edges stay sharp
        side = min(_MAX_CANVAS, math.ceil(side * size / longest))
        crop = _crop_to_alpha(_rasterize(svg, side, name), name)
    if max(crop.shape[:2]) != size:  # larger render, rounding, or capped by _MAX_CANVAS
        crop = _resize_longer_side(crop, size)
    return crop


def _rasterize(svg: str, side: int, name: str) -> np.ndarray:
    """RGBA render that fits in ``side x side`` (aspect kept)."""
    try:
        png = resvg_py.svg_to_bytes(svg_string=svg, width=side, height=side, skip_system_fonts=True)
    except Exception as e:  # noqa: BLE001 - resvg reports every parse problem as a bare ValueError
        raise LogoRenderError(name, f"resvg cannot render it: {e}") from None
    except BaseException as e:
        # a Rust panic inside resvg surfaces as pyo3's PanicException, which derives from BaseException
        if type(e).__name__ != "PanicException":
            raise
        raise LogoRenderError(name, f"resvg panicked: {e}") from None
    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("RGBA"))


def _crop_to_alpha(rgba: np.ndarray, name: str) -> np.ndarray:
    box = mask_box(rgba[..., 3] > 0)
    if box is None:
        raise LogoRenderError(name, "renders no visible pixels")
    x1, y1, x2, y2 = box
    return rgba[y1:y2, x1:x2]


def _resize_longer_side(rgba: np.ndarray, size: int) -> np.ndarray:
    h, w = rgba.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    premultiplied = cv2.resize(premultiply(rgba), (new_w, new_h), interpolation=interpolation)
    return _unpremultiply(premultiplied)


def _recolored(rgba: np.ndarray, color: Color) -> np.ndarray:
    # simple-icons marks are single-fill, so colouring the silhouette is the same as substituting the SVG's fill
    # (and works whatever fill attributes an SVG carries). Transparent pixels get the colour too, so later
    # resampling never bleeds a black fringe into the edge.
    out = np.empty_like(rgba)
    out[..., :3] = color
    out[..., 3] = rgba[..., 3]
    return out


def _plate_alpha(height: int, width: int, name: str) -> np.ndarray:
    radius = _PLATE_CORNER * min(height, width)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}"><rect width="{width}" height="{height}" rx="{radius:.2f}" '
           f'fill="#fff"/></svg>')
    plate = _rasterize(svg, max(height, width), name)
    if plate.shape[:2] != (height, width):
        plate = cv2.resize(plate, (width, height), interpolation=cv2.INTER_LINEAR)
    return plate[..., 3].astype(np.float32) / 255.0


def check_renderable(logo: Brand | str | os.PathLike, side: int = 24) -> None:
    """Raise :class:`LogoRenderError` unless ``logo`` parses and draws something at ``side`` pixels.

    One small draw: checking a whole catalogue this way costs far less than :func:`render_logo` on each brand.
    """
    name, svg, _ = _svg_source(logo)
    _crop_to_alpha(_rasterize(svg, side, name), name)


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """``HxWx4`` uint8 RGBA -> float32 in [0, 1] with colour times alpha, so resampling never mixes in the colour
    of transparent pixels."""
    out = rgba.astype(np.float32) / 255.0
    out[..., :3] *= out[..., 3:4]
    return out


def _unpremultiply(premultiplied: np.ndarray) -> np.ndarray:
    alpha = premultiplied[..., 3:4]
    rgb = np.divide(premultiplied[..., :3], alpha, out=np.zeros_like(premultiplied[..., :3]), where=alpha > 0)
    out = np.concatenate([rgb, alpha], axis=2)
    return np.rint(np.clip(out * 255.0, 0, 255)).astype(np.uint8)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x1, y1, x2, y2)`` pixel edges around the true pixels of ``mask``, or ``None`` when there are none."""
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    if cols.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


# ---------------------------------------------------------------------------------------------------------------
# canonical (gallery) renders
# ---------------------------------------------------------------------------------------------------------------

def canonical_logo(logo: Brand | str, size: int, color: Color | None = None,
                   margin: float = 0.1) -> np.ndarray:
    """The clean gallery image of ``logo``: its mark centred on a square canvas, ``size x size`` ``HxWx3`` uint8.

    A :class:`Brand` is drawn in its brand colour by default; SVG text (another artwork style, e.g.
    :func:`vision.synth.styles.icon_svg`) in its own colours, or all in ``color`` when given. The canvas is white,
    or dark grey when the mark is light, so the mark always shows.
    """
    rgba = render_logo(logo, max(1, round(size * (1 - 2 * margin))), color=color)
    if isinstance(logo, Brand):
        fill = np.asarray(color if color is not None else logo.rgb, np.float32) / 255
    else:   # several colours: judge by the mark's mean colour, weighted by opacity
        weights = rgba[..., 3:4].astype(np.float32)
        fill = (rgba[..., :3] * weights).sum((0, 1)) / max(float(weights.sum()), 1.0) / 255
    luma = float(fill @ np.array([0.299, 0.587, 0.114], np.float32))
    return paste_centered(rgba, size, _DARK_CANVAS if luma > _LIGHT_LUMA else (255, 255, 255))


def paste_centered(rgba: np.ndarray, size: int, ground) -> np.ndarray:
    """An ``HxWx4`` render alpha-composited at the centre of a ``size`` x ``size`` RGB canvas of colour ``ground``."""
    canvas = np.empty((size, size, 3), np.float32)
    canvas[:] = ground
    h, w = rgba.shape[:2]
    top, left = (size - h) // 2, (size - w) // 2
    alpha = rgba[..., 3:4].astype(np.float32) / 255
    region = canvas[top:top + h, left:left + w]
    region[:] = rgba[..., :3] * alpha + region * (1 - alpha)
    return np.rint(canvas).astype(np.uint8)


def is_monochrome(rgba: np.ndarray, tolerance: float = 24.0) -> bool:
    """Whether the visible pixels of an ``HxWx4`` render are all one colour (within ``tolerance`` per channel).

    Single-colour marks (simple-icons, ``currentColor`` icon sets) can be recoloured like a brand's mark; a
    full-colour mark keeps its own colours.
    """
    opaque = rgba[..., :3][rgba[..., 3] >= 128].astype(np.float32)
    if len(opaque) == 0:
        return True
    return bool((np.abs(opaque - np.median(opaque, axis=0)) <= tolerance).mean() > 0.97)


RENDER_COLORS: dict[str, Color | None] = {"brand": None, "black": (0, 0, 0),
                                                        "white": (255, 255, 255)}


def render_color(name: str) -> Color | None:
    """A render colour by name: ``brand`` (the brand's own, ``None``), ``black``, ``white`` or ``#rrggbb``."""
    if name in RENDER_COLORS:
        return RENDER_COLORS[name]
    text = name[1:] if name.startswith("#") else name
    if len(text) == 6 and all(c in "0123456789abcdefABCDEF" for c in text):
        return tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))
    raise ValueError(f"render colour {name!r}: use brand, black, white or #rrggbb")


def parse_render_colors(text: str) -> tuple[str, ...]:
    """``"brand,black,white"`` -> ``("brand", "black", "white")``, each checked by :func:`render_color`."""
    colors = tuple(c.strip() for c in text.split(",") if c.strip())
    if not colors:
        raise ValueError(f"no render colour in {text!r}; use e.g. brand,black,white")
    for color in colors:
        render_color(color)
    return colors


def simple_icons_renders(size: int, brands: Sequence[str] | None = None, colors: Sequence[str] = ("brand",),
                         progress: Callable[..., Iterable] | None = None) -> dict[str, list[np.ndarray]]:
    """``{slug: [canonical_logo per colour]}`` for every simple-icons brand (or the listed slugs), gallery images.

    A brand the renderer cannot draw is skipped with a :class:`LogoDatasetWarning` naming it and why.
    """
    fills = [render_color(c) for c in colors]
    wanted = None if brands is None else set(brands)
    catalogue = [b for b in list_brands() if wanted is None or b.slug in wanted]
    images: dict[str, list[np.ndarray]] = {}
    for brand in progress(catalogue, desc="render", unit="brand") if progress else catalogue:
        try:
            images[brand.slug] = [canonical_logo(brand, size, color=fill) for fill in fills]
        except LogoRenderError as e:
            warnings.warn(f"skipping brand {e.name!r}: {e.reason}", LogoDatasetWarning, stacklevel=2)
    return images
