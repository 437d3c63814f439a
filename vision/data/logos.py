"""Synthetic logo-detection data from real brand marks.

Brand marks come from ``simple-icons-pack`` (single-path monochrome SVGs with a brand colour), rendered by resvg
and pasted onto photos. The pieces are plain functions so the brand-recognition data (queries = logos in the wild)
reuses exactly the same rendering and compositing as the detector data::

    brands = list_brands()
    splits = split_brands(brands, seed=0)                     # {"train": [slug, ...], "val": [...], "test": [...]}
    rgba = render_logo(brands[0], 128)                        # HxWx4 uint8, tight to the visible mark
    image, boxes = composite_logos(photo, [(rgba, 0)], np.random.default_rng(0))
    summary = write_yolo_dataset("out/logos", "photos/train", train_images=1000, val_images=200)

Licences: simple-icons itself is CC0, but a few hundred brands carry their own ``license`` (CC-BY, CC-BY-SA,
GPL, even CC-BY-NC) or point to trademark ``guidelines``; both are kept on :class:`Brand` and the licences of the
brands a dataset used are written into its ``brands.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Sequence

# albumentations checks PyPI for a newer version at import time; we run offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import resvg_py  # noqa: E402
import simple_icons_pack  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

from vision.data.io import ImageLoadError, list_images, load_image  # noqa: E402

__all__ = [
    "LOGO_VARIANTS",
    "MODES",
    "SCALE_RANGE",
    "Brand",
    "LogoDatasetSummary",
    "LogoDatasetWarning",
    "LogoRenderError",
    "LogoStyle",
    "composite_logos",
    "find_images",
    "list_brands",
    "random_logo_style",
    "random_resized_background",
    "render_logo",
    "split_brands",
    "write_yolo_dataset",
]

Color = tuple[int, int, int]

SPLITS: tuple[str, ...] = ("train", "val", "test")
MODES: tuple[str, ...] = ("agnostic", "per_brand")
LOGO_VARIANTS: tuple[str, ...] = ("brand", "black", "white", "random", "plate")
_VARIANT_WEIGHTS = (0.4, 0.15, 0.15, 0.15, 0.15)
SCALE_RANGE: tuple[float, float] = (0.04, 0.35)   # logo's longer side as a fraction of the image's shorter side

_PLATE_PADDING = 0.18        # plate margin around the mark, as a fraction of the plate's longer side
_PLATE_CORNER = 0.25         # corner radius as a fraction of the plate's shorter side
_MIN_RENDER_SIDE = 64        # smaller logos are rendered at this size and scaled down
_MAX_CANVAS = 4096           # resvg canvas bound when zooming in on a mark that fills little of its viewBox
_JPEG_QUALITY = 90


# ---------------------------------------------------------------------------------------------------------------
# brands
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Brand:
    """One brand mark: ``svg`` is the SVG text, ``hex`` the brand colour as ``RRGGBB``.

    ``license`` is ``None`` for the CC0 majority; ``guidelines`` is the URL of the brand's trademark rules, if any.
    """

    slug: str
    title: str
    hex: str
    svg: str
    license: str | None = None
    guidelines: str | None = None
    source: str | None = None

    @property
    def rgb(self) -> Color:
        return _hex_to_rgb(self.hex)


def list_brands() -> list[Brand]:
    """Every brand in the installed ``simple-icons-pack``, sorted by slug."""
    # the package has no listing function: each icon is a module constant named SI_<SLUG>
    icons = (getattr(simple_icons_pack, name) for name in simple_icons_pack.__all__ if name.startswith("SI_"))
    brands = [Brand(slug=icon.slug, title=icon.title, hex=icon.hex, svg=icon.svg, license=icon.license,
                    guidelines=icon.guidelines, source=icon.source) for icon in icons]
    return sorted(brands, key=lambda b: b.slug)


def split_brands(brands: Iterable[Brand | str], fractions: Sequence[float] = (0.7, 0.15, 0.15),
                 seed: int = 0) -> dict[str, list[str]]:
    """Disjoint ``train``/``val``/``test`` lists of slugs (each sorted) covering every brand.

    Each slug goes to a split by a hash of ``(seed, slug)`` alone, so adding brands to the catalogue never moves
    an existing brand to another split; the price is that the sizes only approach ``fractions`` for many brands.
    """
    fractions = _check_fractions(fractions)
    bounds = np.cumsum(fractions)
    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    for slug in sorted({b.slug if isinstance(b, Brand) else str(b) for b in brands}):
        index = int(np.searchsorted(bounds, _unit_hash(seed, "split", slug), side="right"))
        splits[SPLITS[min(index, len(SPLITS) - 1)]].append(slug)
    return splits


# ---------------------------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------------------------

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
    box = _mask_box(rgba[..., 3] > 0)
    if box is None:
        raise LogoRenderError(name, "renders no visible pixels")
    x1, y1, x2, y2 = box
    return rgba[y1:y2, x1:x2]


def _resize_longer_side(rgba: np.ndarray, size: int) -> np.ndarray:
    h, w = rgba.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    premultiplied = cv2.resize(_premultiply(rgba), (new_w, new_h), interpolation=interpolation)
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


def _hex_to_rgb(value: str) -> Color:
    text = value.lstrip("#")
    if len(text) != 6:
        raise ValueError(f"brand colour must be RRGGBB hex, got {value!r}")
    try:
        return tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        raise ValueError(f"brand colour must be RRGGBB hex, got {value!r}") from None


# ---------------------------------------------------------------------------------------------------------------
# compositing
# ---------------------------------------------------------------------------------------------------------------

def composite_logos(background: np.ndarray, logos: Sequence[tuple[np.ndarray, int]], rng: np.random.Generator, *,
                    scale_range: tuple[float, float] = SCALE_RANGE, max_iou: float = 0.3,
                    max_containment: float = 0.5, occlusion_prob: float = 0.2, outside_fraction: float = 0.15,
                    geometric_aug: bool = True, photometric_aug: bool = True, image_aug: bool = True,
                    max_tries: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Paste RGBA ``logos`` (each with its class id) onto an ``HxWx3`` uint8 ``background``.

    Each logo is scaled so its longer side is a log-uniform fraction ``scale_range`` of the image's shorter side,
    then (``photometric_aug``) colour-jittered and sometimes blurred, and (``geometric_aug``) rotated up to 30
    degrees, sheared and perspective-warped. A placement is retried while it overlaps an already placed logo with
    IoU > ``max_iou``, or covers more than ``max_containment`` of the smaller box (IoU alone lets a small logo hide
    inside a big one); a logo that finds no place after ``max_tries`` is left out. Up to ``outside_fraction`` of a
    logo may fall outside the image. With ``occlusion_prob`` a rectangle of background texture is drawn over part
    of a logo. ``image_aug`` then adds JPEG artefacts, Gaussian noise and slight blur to the whole image.

    Returns ``(image, boxes)``: the ``HxWx3`` uint8 image and an ``Nx5`` int64 array ``[class, x1, y1, x2, y2]``
    of pixel edges (``x2``/``y2`` exclusive) around each logo's pixels that stay visible (alpha > 0 after the
    geometric transform, not covered by a later logo or an occluder, inside the image), one row per logo that
    shows at all, in pasting order.
    """
    if background.ndim != 3 or background.shape[2] != 3 or background.dtype != np.uint8:
        raise ValueError(f"background must be HxWx3 uint8, got {background.shape} {background.dtype}")
    height, width = background.shape[:2]
    canvas = background.astype(np.float32) / 255.0
    # which logo each pixel shows (-1: background); boxes come from it, so occlusion is reflected in the labels
    owner = np.full((height, width), -1, np.int32)
    placed: list[tuple[int, tuple[int, int, int, int]]] = []   # (class id, pasted box clipped to the image)
    low, high = np.log(scale_range[0]), np.log(scale_range[1])

    for rgba, class_id in logos:
        side = max(2, round(float(np.exp(rng.uniform(low, high))) * min(height, width)))
        layer = _augment_logo(rgba, side, rng, geometric=geometric_aug, photometric=photometric_aug)
        box = _mask_box(layer[..., 3] > 0)
        if box is None:
            continue
        x1, y1, x2, y2 = box
        layer = layer[y1:y2, x1:x2]
        position = _find_place(layer.shape[:2], [b for _, b in placed], (height, width), rng, max_iou=max_iou,
                               max_containment=max_containment, outside_fraction=outside_fraction,
                               max_tries=max_tries)
        if position is None:
            continue
        pasted = _paste(canvas, owner, layer, position, index=len(placed))
        placed.append((int(class_id), pasted))

    if occlusion_prob > 0:
        for _, box in placed:
            if rng.random() < occlusion_prob:
                _occlude(canvas, owner, background, box, rng)

    rows = []
    for index, (class_id, (x1, y1, x2, y2)) in enumerate(placed):
        visible = _mask_box(owner[y1:y2, x1:x2] == index)
        if visible is not None:
            vx1, vy1, vx2, vy2 = visible
            rows.append((class_id, x1 + vx1, y1 + vy1, x1 + vx2, y1 + vy2))

    image = np.rint(np.clip(canvas * 255.0, 0, 255)).astype(np.uint8)
    if image_aug:
        image = _degrade_image(image, rng)
    boxes = np.asarray(rows, np.int64).reshape(-1, 5)
    return image, boxes


def _augment_logo(rgba: np.ndarray, side: int, rng: np.random.Generator, *, geometric: bool,
                  photometric: bool) -> np.ndarray:
    """Scaled and augmented logo as premultiplied float32 RGBA in [0, 1]."""
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"logo must be HxWx4 uint8, got {rgba.shape} {rgba.dtype}")
    if photometric:
        jitter = A.Compose([A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.4, hue=0.04, p=0.8)],
                           seed=_albumentations_seed(rng))
        rgba = np.concatenate([jitter(image=np.ascontiguousarray(rgba[..., :3]))["image"], rgba[..., 3:]], axis=2)
    h, w = rgba.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # premultiplied, so interpolation never mixes in the colour of transparent pixels
    layer = cv2.resize(_premultiply(rgba), size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    steps = []
    if geometric:
        steps += [A.Affine(rotate=(-30, 30), shear=(-8, 8), fit_output=True, border_mode=cv2.BORDER_CONSTANT,
                           fill=0, p=0.7),
                  A.Perspective(scale=(0.02, 0.08), keep_size=False, fit_output=True,
                                border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.5)]
    if photometric:
        steps.append(A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.0), p=0.25))
    if steps:
        layer = A.Compose(steps, seed=_albumentations_seed(rng))(image=layer)["image"]
    layer = np.clip(layer, 0.0, 1.0)
    # float resampling and blur leave alpha tails far below one 8-bit step; without this they would widen the
    # boxes, since "visible" means alpha > 0 once the logo is stored as 8 bits
    layer[layer[..., 3] < 0.5 / 255] = 0.0
    return layer


def _find_place(shape: tuple[int, int], boxes: list[tuple[int, int, int, int]], image_shape: tuple[int, int],
                rng: np.random.Generator, *, max_iou: float, max_containment: float, outside_fraction: float,
                max_tries: int) -> tuple[int, int] | None:
    h, w = shape
    height, width = image_shape
    lo_x, hi_x = -int(outside_fraction * w), width - w + int(outside_fraction * w)
    lo_y, hi_y = -int(outside_fraction * h), height - h + int(outside_fraction * h)
    if hi_x < lo_x or hi_y < lo_y:
        return None
    for _ in range(max_tries):
        x, y = int(rng.integers(lo_x, hi_x + 1)), int(rng.integers(lo_y, hi_y + 1))
        box = _clip_box((x, y, x + w, y + h), width, height)
        if box is None:
            continue
        if all(_iou(box, other) <= max_iou and _containment(box, other) <= max_containment for other in boxes):
            return x, y
    return None


def _paste(canvas: np.ndarray, owner: np.ndarray, layer: np.ndarray, position: tuple[int, int],
           index: int) -> tuple[int, int, int, int]:
    """Alpha-blend premultiplied ``layer`` at ``position`` (may stick out of the image); returns the clipped box."""
    height, width = canvas.shape[:2]
    x, y = position
    h, w = layer.shape[:2]
    x1, y1, x2, y2 = _clip_box((x, y, x + w, y + h), width, height)
    part = layer[y1 - y:y2 - y, x1 - x:x2 - x]
    alpha = part[..., 3:4]
    region = canvas[y1:y2, x1:x2]
    region[:] = part[..., :3] + region * (1.0 - alpha)
    owner[y1:y2, x1:x2][alpha[..., 0] > 0] = index
    return x1, y1, x2, y2


def _occlude(canvas: np.ndarray, owner: np.ndarray, background: np.ndarray, box: tuple[int, int, int, int],
             rng: np.random.Generator) -> None:
    """Cover 20-50% of each side of ``box`` with a patch of background texture taken from elsewhere."""
    height, width = canvas.shape[:2]
    x1, y1, x2, y2 = box
    w = max(1, round((x2 - x1) * rng.uniform(0.2, 0.5)))
    h = max(1, round((y2 - y1) * rng.uniform(0.2, 0.5)))
    x = int(rng.integers(max(0, x1 - w // 2), max(1, min(width - w, x2 - w // 2) + 1)))
    y = int(rng.integers(max(0, y1 - h // 2), max(1, min(height - h, y2 - h // 2) + 1)))
    w, h = min(w, width - x), min(h, height - y)
    src_x, src_y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    canvas[y:y + h, x:x + w] = background[src_y:src_y + h, src_x:src_x + w] / 255.0
    owner[y:y + h, x:x + w] = -1


def _degrade_image(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # none of these move pixels, so the boxes stay exact
    degrade = A.Compose([
        A.GaussNoise(std_range=(0.01, 0.04), p=0.3),
        A.GaussianBlur(blur_limit=(3, 3), sigma_limit=(0.3, 0.8), p=0.2),
        A.ImageCompression(quality_range=(40, 95), p=0.5),
    ], seed=_albumentations_seed(rng))
    return degrade(image=image)["image"]


def random_resized_background(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size x size`` random-resized crop (30-100% of the area) of an ``HxWx3`` photo."""
    crop = A.Compose([A.RandomResizedCrop(size=(size, size), scale=(0.3, 1.0), ratio=(3 / 4, 4 / 3),
                                          interpolation=cv2.INTER_AREA)], seed=_albumentations_seed(rng))
    return np.ascontiguousarray(crop(image=image)["image"])


def _albumentations_seed(rng: np.random.Generator) -> int:
    # albumentations keeps its own generators; seeding each pipeline from ours keeps one seed in charge
    return int(rng.integers(0, 2**31 - 1))


def _premultiply(rgba: np.ndarray) -> np.ndarray:
    out = rgba.astype(np.float32) / 255.0
    out[..., :3] *= out[..., 3:4]
    return out


def _unpremultiply(premultiplied: np.ndarray) -> np.ndarray:
    alpha = premultiplied[..., 3:4]
    rgb = np.divide(premultiplied[..., :3], alpha, out=np.zeros_like(premultiplied[..., :3]), where=alpha > 0)
    out = np.concatenate([rgb, alpha], axis=2)
    return np.rint(np.clip(out * 255.0, 0, 255)).astype(np.uint8)


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x1, y1, x2, y2)`` pixel edges around the true pixels of ``mask``, or ``None`` when there are none."""
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    if cols.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _clip_box(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int] | None:
    x1, y1, x2, y2 = max(0, box[0]), max(0, box[1]), min(width, box[2]), min(height, box[3])
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def _intersection(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    inter = _intersection(a, b)
    return inter / (_area(a) + _area(b) - inter)


def _containment(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    return _intersection(a, b) / min(_area(a), _area(b))


# ---------------------------------------------------------------------------------------------------------------
# YOLO dataset
# ---------------------------------------------------------------------------------------------------------------

class LogoDatasetWarning(UserWarning):
    """An input (brand SVG or background photo) was skipped while building a dataset."""


@dataclass
class LogoDatasetSummary:
    """What :func:`write_yolo_dataset` wrote, per image split.

    ``brands_available`` counts the brands an image split could draw, ``brands_used`` those that ended up visible
    in at least one image; ``skipped_*`` list ``(slug or path, reason)``.
    """

    out_dir: Path
    mode: str
    names: dict[int, str]
    images: dict[str, int] = field(default_factory=dict)
    background_only: dict[str, int] = field(default_factory=dict)
    logos_pasted: dict[str, int] = field(default_factory=dict)
    brands_available: dict[str, int] = field(default_factory=dict)
    brands_used: dict[str, int] = field(default_factory=dict)
    skipped_svgs: list[tuple[str, str]] = field(default_factory=list)
    skipped_backgrounds: list[tuple[str, str]] = field(default_factory=list)


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively, by extension), sorted so runs are reproducible."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"background folder {root} does not exist")
    return list_images(root)


def write_yolo_dataset(out_dir: str | os.PathLike, backgrounds: str | os.PathLike, *,
                       val_backgrounds: str | os.PathLike | None = None, train_images: int = 1000,
                       val_images: int = 200, imgsz: int = 416, mode: str = "agnostic",
                       brands: Sequence[Brand] | None = None, max_brands: int | None = None,
                       logos_per_image: tuple[int, int] = (1, 4), seed: int = 0,
                       split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
                       background_only_fraction: float = 0.05, overwrite: bool = False,
                       progress: Callable[..., Iterable] | None = None) -> LogoDatasetSummary:
    """Write an ultralytics YOLO detection dataset of brand logos pasted on photos under ``out_dir``.

    Layout: ``images/{train,val}/*.jpg``, ``labels/{train,val}/*.txt`` (``class cx cy w h``, normalised),
    ``data.yaml`` and ``brands.json`` (the brand split, the brands used, licences and every generation parameter).

    Brands (default: all of :func:`list_brands`) are split by :func:`split_brands` with ``seed``. In ``agnostic``
    mode (one class, ``logo``) train images only show train-split brands and val images only val-split brands, so
    val measures unseen brands and test brands stay unseen for later work. In ``per_brand`` mode the classes are the
    train-split brands and both image splits show them (a closed-set detector needs its classes in val too).
    ``max_brands`` caps the brands drawn from each split used (a seeded choice). Backgrounds are every image under
    ``backgrounds`` (``val_backgrounds`` for val, if given), random-resized-cropped to ``imgsz x imgsz``; about
    ``background_only_fraction`` of the images get no logo and an empty label file.

    Output depends only on the arguments: the same seed gives byte-identical files. Broken SVGs and unreadable
    backgrounds are skipped with a :class:`LogoDatasetWarning` and listed in the returned summary.
    ``progress`` wraps the per-image loop, e.g. ``tqdm``; it is called as ``progress(iterable, total=n, desc=split)``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    low, high = logos_per_image
    if not 1 <= low <= high:
        raise ValueError(f"logos_per_image must be (low, high) with 1 <= low <= high, got {logos_per_image}")
    if imgsz < 32:
        raise ValueError(f"imgsz must be >= 32, got {imgsz}")
    if max_brands is not None and max_brands < 1:
        raise ValueError(f"max_brands must be >= 1, got {max_brands}")
    if train_images < 0 or val_images < 0:
        raise ValueError("train_images and val_images must be >= 0")
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)

    catalogue = list(brands) if brands is not None else list_brands()
    by_slug = {b.slug: b for b in catalogue}
    split = split_brands(catalogue, split_fractions, seed)
    summary = LogoDatasetSummary(out_dir=out, mode=mode, names={})
    if mode == "agnostic":
        pools = {name: _pick_brands(split[name], by_slug, seed, max_brands, summary) for name in ("train", "val")}
        summary.names = {0: "logo"}
    else:
        classes = sorted(_pick_brands(split["train"], by_slug, seed, max_brands, summary))
        pools = {"train": classes, "val": classes}
        summary.names = dict(enumerate(classes))
    class_ids = {slug: i for i, slug in enumerate(summary.names.values())} if mode == "per_brand" else None

    background_dirs = {"train": backgrounds, "val": val_backgrounds if val_backgrounds is not None else backgrounds}
    counts = {"train": train_images, "val": val_images}
    used: dict[str, set[str]] = {"train": set(), "val": set()}
    render_side = math.ceil(SCALE_RANGE[1] * imgsz)   # the compositor then only ever scales renders down
    wrap = progress or (lambda iterable, **_: iterable)
    for split_index, split_name in enumerate(("train", "val")):
        n_images = counts[split_name]
        summary.images[split_name] = summary.background_only[split_name] = summary.logos_pasted[split_name] = 0
        summary.brands_available[split_name] = len(pools[split_name])
        (out / "images" / split_name).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split_name).mkdir(parents=True, exist_ok=True)
        if n_images == 0:
            continue
        if not pools[split_name]:
            raise ValueError(f"no usable brands in the {split_name!r} brand split ({len(catalogue)} brands given); "
                             "pass more brands or use mode='per_brand'")
        photos = find_images(background_dirs[split_name])
        for index in wrap(range(n_images), total=n_images, desc=split_name):
            # one generator per image: any image can be regenerated alone, and a change to one leaves the rest
            rng = np.random.default_rng([seed, split_index, index])
            photo = _load_background(photos, rng, imgsz, summary, background_dirs[split_name])
            drawn: list[Brand] = []
            logos: list[tuple[np.ndarray, int]] = []
            if rng.random() >= background_only_fraction:
                count = min(int(rng.integers(low, high + 1)), len(pools[split_name]))
                for slug in rng.choice(pools[split_name], size=count, replace=False):
                    brand = by_slug[str(slug)]
                    style = random_logo_style(brand, rng)
                    try:
                        rgba = render_logo(brand, render_side, color=style.color, background=style.background)
                    except LogoRenderError as e:  # it rendered when checked, at another size: rare
                        _skip_svg(summary, e)
                        pools[split_name].remove(brand.slug)
                        continue
                    # the compositor's class id is the index into `drawn`, so each box maps back to its brand
                    logos.append((rgba, len(drawn)))
                    drawn.append(brand)
            # background-only images are degraded too, or "clean image" would tell the detector "no logo"
            image, boxes = composite_logos(photo, logos, rng)
            for row in boxes:
                used[split_name].add(drawn[row[0]].slug)
                row[0] = class_ids[drawn[row[0]].slug] if class_ids is not None else 0
            stem = f"{split_name}_{index:06d}"
            Image.fromarray(image).save(out / "images" / split_name / f"{stem}.jpg", quality=_JPEG_QUALITY)
            (out / "labels" / split_name / f"{stem}.txt").write_text(_yolo_lines(boxes, imgsz, imgsz))
            summary.images[split_name] += 1
            summary.logos_pasted[split_name] += len(boxes)
            summary.background_only[split_name] += int(len(boxes) == 0)
        summary.brands_used[split_name] = len(used[split_name])

    _write_metadata(out, summary, split, pools, used, by_slug, dict(
        seed=seed, mode=mode, imgsz=imgsz, train_images=train_images, val_images=val_images,
        max_brands=max_brands, logos_per_image=[low, high], split_fractions=list(split_fractions),
        background_only_fraction=background_only_fraction,
        backgrounds=str(backgrounds), val_backgrounds=None if val_backgrounds is None else str(val_backgrounds)))
    return summary


def _pick_brands(slugs: list[str], by_slug: dict[str, Brand], seed: int, max_brands: int | None,
                 summary: LogoDatasetSummary) -> list[str]:
    """Up to ``max_brands`` renderable brands of ``slugs`` in a seeded order; broken SVGs are skipped and recorded.

    Checking before generation keeps the class list free of brands that cannot be drawn.
    """
    chosen = []
    for slug in sorted(slugs, key=lambda s: _unit_hash(seed, "pick", s)):
        if max_brands is not None and len(chosen) == max_brands:
            break
        try:
            # parse and draw once, small: a full render_logo would cost seconds over the whole catalogue
            name, svg, _ = _svg_source(by_slug[slug])
            _crop_to_alpha(_rasterize(svg, 24, name), name)
        except LogoRenderError as e:
            _skip_svg(summary, e)
            continue
        chosen.append(slug)
    return chosen


def _skip_svg(summary: LogoDatasetSummary, error: LogoRenderError) -> None:
    warnings.warn(f"skipping brand {error.name!r}: {error.reason}", LogoDatasetWarning, stacklevel=3)
    summary.skipped_svgs.append((error.name, error.reason))


def _load_background(photos: list[Path], rng: np.random.Generator, imgsz: int, summary: LogoDatasetSummary,
                     folder) -> np.ndarray:
    """A random readable photo from ``photos``, cropped to ``imgsz``; unreadable ones are dropped from the list."""
    while photos:
        index = int(rng.integers(len(photos)))
        try:
            image = load_image(photos[index], draft_size=imgsz)
        except ImageLoadError as e:
            warnings.warn(f"skipping background {e.path}: {e.reason}", LogoDatasetWarning, stacklevel=3)
            summary.skipped_backgrounds.append((e.path, e.reason))
            del photos[index]
            continue
        return random_resized_background(image, imgsz, rng)
    raise ValueError(f"no readable background images under {folder}")


def _yolo_lines(boxes: np.ndarray, width: int, height: int) -> str:
    lines = []
    for class_id, x1, y1, x2, y2 in boxes.tolist():
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        lines.append(f"{class_id} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n")
    return "".join(lines)


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    ours = [out / "images", out / "labels", out / "data.yaml", out / "brands.json"]
    existing = [p for p in ours if p.exists()]
    if existing and not overwrite:
        # stale images from a bigger earlier run would silently join the new dataset
        raise FileExistsError(f"{out} already holds a dataset ({', '.join(p.name for p in existing)}); "
                              "pass overwrite=True (--overwrite) to replace it")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _write_metadata(out: Path, summary: LogoDatasetSummary, split: dict[str, list[str]],
                    pools: dict[str, list[str]], used: dict[str, set[str]], by_slug: dict[str, Brand],
                    parameters: dict) -> None:
    # ultralytics resolves a relative `path` against its own datasets folder, not this file: write it absolute
    data = {"path": str(out.resolve()), "train": "images/train", "val": "images/val", "names": summary.names}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    available = sorted(set(pools["train"]) | set(pools["val"]))
    record = {
        "generator": "vision.data.logos.write_yolo_dataset",
        "packages": {name: _package_version(name) for name in ("simple-icons-pack", "resvg-py", "albumentations")},
        "parameters": parameters,
        "split": split,
        "available": {name: sorted(pools[name]) for name in ("train", "val")},   # what each image split drew from
        "used": {name: sorted(used[name]) for name in ("train", "val")},         # visible in at least one image
        "names": {str(k): v for k, v in summary.names.items()},
        "titles": {slug: by_slug[slug].title for slug in available},
        "licenses": {slug: by_slug[slug].license for slug in available if by_slug[slug].license},
        "counts": {"images": summary.images, "background_only": summary.background_only,
                   "logos_pasted": summary.logos_pasted},
        "skipped_svgs": [list(s) for s in summary.skipped_svgs],
        "skipped_backgrounds": [list(s) for s in summary.skipped_backgrounds],
    }
    (out / "brands.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    values = np.asarray(fractions, np.float64)
    if values.shape != (len(SPLITS),) or (values < 0).any() or not math.isclose(values.sum(), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be {len(SPLITS)} non-negative numbers summing to 1 "
                         f"(train, val, test), got {tuple(fractions)}")
    return values


def _unit_hash(seed: int, purpose: str, slug: str) -> float:
    """A number in [0, 1) fixed by ``(seed, purpose, slug)``; unlike ``hash()`` it is the same in every process."""
    digest = hashlib.sha256(f"{seed}/{purpose}/{slug}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
