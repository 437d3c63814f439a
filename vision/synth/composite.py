"""Logos pasted onto photos with exact boxes: scale, perspective, colour, occlusion, degradation; "wild" crops.

The detector data (:mod:`vision.synth.yolo`) and the brand queries (:mod:`vision.synth.brand_dataset`) share this
compositing, so logos in the wild look alike in both::

    image, boxes = composite_logos(photo, [(render_logo(brand, 128), 0)], np.random.default_rng(0))
    image, boxes = composite_logos(photo, logos, rng, print_conditions=PRINT_CONDITIONS)   # as printed on packs
    crop = wild_logo_crop(brand, photo, np.random.default_rng(0), size=96)   # square crop around the pasted logo

:class:`PrintConditions` are what a mark printed on real packaging goes through: wrapped around a curved pack
(cylindrical warp with shading), glare, faded low-contrast print, very small size, defocus or motion blur, and a
price sticker or other texture over part of it. Each is a seeded numpy/albumentations op; boxes are always taken
from the pixels that stay visible, so they stay exact whatever the conditions do.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Sequence

# albumentations checks PyPI for a newer version at import time; we run offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from vision.crops import square_crop  # noqa: E402
from vision.synth.catalog import Brand  # noqa: E402
from vision.synth.render import mask_box, premultiply, random_logo_style, render_logo  # noqa: E402

__all__ = ["PRINT_CONDITIONS", "SCALE_RANGE", "SMALL_SCALE_RANGE", "PrintConditions", "composite_logos",
           "cylindrical_warp", "random_resized_background", "wild_logo_crop"]

SCALE_RANGE: tuple[float, float] = (0.04, 0.35)   # logo's longer side as a fraction of the image's shorter side
SMALL_SCALE_RANGE: tuple[float, float] = (0.025, 0.06)   # the "very small" print condition, same unit


@dataclass(frozen=True)
class PrintConditions:
    """Per-logo probabilities of the conditions a mark printed on real packaging shows (each drawn independently).

    ``curved``: wrapped around a cylinder (bottle, can, jar) of 0.6-1.6 rad of arc, shaded towards its edges, seen
    slightly from above or below. ``glare``: a specular highlight over part of the mark. ``low_contrast``: faded
    print, the mark at 30-65% opacity. ``small``: the longer side drawn from :data:`SMALL_SCALE_RANGE`. ``blur``:
    defocus or motion blur of the mark. ``sticker``: a price label (plain paper with print lines) over 20-50% of
    each side of the mark, on top of the compositor's own texture occlusion.
    """

    curved: float = 0.3
    glare: float = 0.25
    low_contrast: float = 0.2
    small: float = 0.15
    blur: float = 0.25
    sticker: float = 0.15

    def __post_init__(self):
        for name, value in vars(self).items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"PrintConditions.{name} must be a probability in [0, 1], got {value}")


PRINT_CONDITIONS = PrintConditions()


def composite_logos(background: np.ndarray, logos: Sequence[tuple[np.ndarray, int]], rng: np.random.Generator, *,
                    scale_range: tuple[float, float] = SCALE_RANGE, max_iou: float = 0.3,
                    max_containment: float = 0.5, occlusion_prob: float = 0.2, outside_fraction: float = 0.15,
                    geometric_aug: bool = True, photometric_aug: bool = True, image_aug: bool = True,
                    print_conditions: PrintConditions | None = None,
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
    conditions: list[frozenset[str]] = []   # print conditions of each placed logo

    for rgba, class_id in logos:
        drawn = _draw_conditions(print_conditions, rng)
        lo, hi = np.log(SMALL_SCALE_RANGE) if "small" in drawn else (low, high)
        side = max(2, round(float(np.exp(rng.uniform(lo, hi))) * min(height, width)))
        layer = _augment_logo(rgba, side, rng, geometric=geometric_aug, photometric=photometric_aug,
                              conditions=drawn)
        box = mask_box(layer[..., 3] > 0)
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
        conditions.append(drawn)

    if occlusion_prob > 0:
        for _, box in placed:
            if rng.random() < occlusion_prob:
                _occlude(canvas, owner, background, box, rng)
    for (_, box), drawn in zip(placed, conditions):
        if "sticker" in drawn:
            _stick_label(canvas, owner, box, rng)
        if "glare" in drawn:   # light on the surface: over whatever covers the mark, owners unchanged
            _glare(canvas, box, rng)

    rows = []
    for index, (class_id, (x1, y1, x2, y2)) in enumerate(placed):
        visible = mask_box(owner[y1:y2, x1:x2] == index)
        if visible is not None:
            vx1, vy1, vx2, vy2 = visible
            rows.append((class_id, x1 + vx1, y1 + vy1, x1 + vx2, y1 + vy2))

    image = np.rint(np.clip(canvas * 255.0, 0, 255)).astype(np.uint8)
    if image_aug:
        image = _degrade_image(image, rng)
    boxes = np.asarray(rows, np.int64).reshape(-1, 5)
    return image, boxes


def _draw_conditions(print_conditions: PrintConditions | None, rng: np.random.Generator) -> frozenset[str]:
    # nothing drawn without print conditions, so the generator's stream (and older datasets) stay as they were
    if print_conditions is None:
        return frozenset()
    return frozenset(name for name, p in vars(print_conditions).items() if rng.random() < p)


def _augment_logo(rgba: np.ndarray, side: int, rng: np.random.Generator, *, geometric: bool,
                  photometric: bool, conditions: frozenset[str] = frozenset()) -> np.ndarray:
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
    layer = cv2.resize(premultiply(rgba), size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if "curved" in conditions:   # printed on the pack first, then the pack is turned in the photo
        layer = cylindrical_warp(layer, arc=float(rng.uniform(0.6, 1.6)), tilt=float(rng.uniform(-0.3, 0.3)))
    steps = []
    if geometric:
        steps += [A.Affine(rotate=(-30, 30), shear=(-8, 8), fit_output=True, border_mode=cv2.BORDER_CONSTANT,
                           fill=0, p=0.7),
                  A.Perspective(scale=(0.02, 0.08), keep_size=False, fit_output=True,
                                border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.5)]
    if photometric:
        steps.append(A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.0), p=0.25))
    if "blur" in conditions:
        # out of focus or moving, in proportion to the mark: a fixed kernel would erase a small one
        limit = max(3, min(15, side // 8) | 1)
        steps.append(A.OneOf([A.GaussianBlur(blur_limit=(3, limit), sigma_limit=(0.8, max(1.0, limit / 3))),
                              A.MotionBlur(blur_limit=(3, limit))], p=1.0))
    if steps:
        layer = A.Compose(steps, seed=_albumentations_seed(rng))(image=layer)["image"]
    layer = np.clip(layer, 0.0, 1.0)
    if "blur" in conditions:
        # a strong blur spreads faint tails far out; where the mark is under a tenth opaque nobody sees it,
        # and a box drawn around the tails would be loose
        layer[layer[..., 3] < 0.1] = 0.0
    if "low_contrast" in conditions:   # faded ink: premultiplied, so scaling all four channels lowers opacity
        layer *= float(rng.uniform(0.3, 0.65))
    # float resampling and blur leave alpha tails far below one 8-bit step; without this they would widen the
    # boxes, since "visible" means alpha > 0 once the logo is stored as 8 bits
    layer[layer[..., 3] < 0.5 / 255] = 0.0
    return layer


def cylindrical_warp(layer: np.ndarray, arc: float, tilt: float = 0.0, shading: float = 0.35) -> np.ndarray:
    """``layer`` (``HxWxC`` float, premultiplied if RGBA) as printed around a vertical cylinder, seen head-on.

    The mark spans ``arc`` radians of the cylinder: columns crowd towards its edges (x = R sin(s / R) for arc
    length s), horizontal lines bow by ``tilt`` (the camera slightly above, > 0, or below, < 0), and the colour
    channels darken by up to ``shading`` towards the edges as the surface turns from the light. Pixels outside
    the mark stay zero, so a box taken from alpha afterwards is exact.
    """
    if not 0.0 < arc < math.pi:
        raise ValueError(f"arc must be in (0, pi) radians, got {arc}")
    h, w = layer.shape[:2]
    radius, half = w / arc, arc / 2
    out_w = max(1, math.ceil(2 * radius * math.sin(half)))
    sag = tilt * radius * (1 - math.cos(half))   # vertical offset of the mark's edges relative to its centre
    out_h = h + math.ceil(abs(sag))
    u = (np.arange(out_w, dtype=np.float32) + 0.5 - out_w / 2) / radius
    theta = np.arcsin(np.clip(u, -1.0, 1.0))
    offset = tilt * radius * (1 - np.cos(theta)) - min(0.0, sag)
    map_x = np.broadcast_to(radius * theta + w / 2 - 0.5, (out_h, out_w)).astype(np.float32)
    map_y = (np.arange(out_h, dtype=np.float32)[:, None] - offset[None, :]).astype(np.float32)
    warped = cv2.remap(np.ascontiguousarray(layer, np.float32), map_x, map_y, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if warped.ndim == 2:
        warped = warped[..., None]
    shade = (1.0 - shading * (theta / half) ** 2).astype(np.float32)
    colour = min(3, warped.shape[2])
    warped[..., :colour] *= shade[None, :, None]
    return warped.reshape(out_h, out_w, *layer.shape[2:])


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


def _patch_over(box: tuple[int, int, int, int], width: int, height: int,
                rng: np.random.Generator) -> tuple[int, int, int, int]:
    """``x, y, w, h`` of a patch 20-50% of each side of ``box``, centred near its edge, clipped to the image."""
    x1, y1, x2, y2 = box
    w = max(1, round((x2 - x1) * rng.uniform(0.2, 0.5)))
    h = max(1, round((y2 - y1) * rng.uniform(0.2, 0.5)))
    x = int(rng.integers(max(0, x1 - w // 2), max(1, min(width - w, x2 - w // 2) + 1)))
    y = int(rng.integers(max(0, y1 - h // 2), max(1, min(height - h, y2 - h // 2) + 1)))
    return x, y, min(w, width - x), min(h, height - y)


def _occlude(canvas: np.ndarray, owner: np.ndarray, background: np.ndarray, box: tuple[int, int, int, int],
             rng: np.random.Generator) -> None:
    """Cover 20-50% of each side of ``box`` with a patch of background texture taken from elsewhere."""
    height, width = canvas.shape[:2]
    x, y, w, h = _patch_over(box, width, height, rng)
    src_x, src_y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    canvas[y:y + h, x:x + w] = background[src_y:src_y + h, src_x:src_x + w] / 255.0
    owner[y:y + h, x:x + w] = -1


def _stick_label(canvas: np.ndarray, owner: np.ndarray, box: tuple[int, int, int, int],
                 rng: np.random.Generator) -> None:
    """A price label (light paper, a few dark print lines) over 20-50% of each side of ``box``."""
    height, width = canvas.shape[:2]
    x, y, w, h = _patch_over(box, width, height, rng)
    label = np.empty((h, w, 3), np.float32)
    label[:] = rng.uniform([0.85, 0.8, 0.55], [1.0, 1.0, 1.0])   # white, cream or yellow paper
    for _ in range(int(rng.integers(1, 4))):
        row, thick = int(rng.integers(0, h)), max(1, h // 10)
        label[row:row + thick, int(w * rng.uniform(0, 0.3)):int(w * rng.uniform(0.6, 1.0))] = rng.uniform(0, 0.3)
    canvas[y:y + h, x:x + w] = label
    owner[y:y + h, x:x + w] = -1


def _glare(canvas: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    """A specular highlight: a rotated elliptical Gaussian towards white, centred on ``box``'s area."""
    height, width = canvas.shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    cx, cy = rng.uniform(x1, x2), rng.uniform(y1, y2)
    sx, sy = max(1.0, bw * rng.uniform(0.1, 0.4)), max(1.0, bh * rng.uniform(0.1, 0.4))
    angle, strength = rng.uniform(0, math.pi), rng.uniform(0.5, 0.95)
    # the highlight fades within three sigmas; computing it on the box grown by that much avoids a hard edge
    reach = 3 * max(sx, sy)
    gx1, gy1 = max(0, int(cx - reach)), max(0, int(cy - reach))
    gx2, gy2 = min(width, int(cx + reach) + 1), min(height, int(cy + reach) + 1)
    yy, xx = np.mgrid[gy1:gy2, gx1:gx2].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    light = strength * np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    region = canvas[gy1:gy2, gx1:gx2]
    region += light[..., None] * (1.0 - region)


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


def wild_logo_crop(brand: Brand | np.ndarray, background: np.ndarray, rng: np.random.Generator, size: int,
                   scale_range: tuple[float, float] = (0.2, 0.6), margin_range: tuple[float, float] = (0.05, 0.3),
                   print_conditions: PrintConditions | None = PRINT_CONDITIONS,
                   mark_style: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None
                   ) -> np.ndarray | None:
    """``brand`` composited once onto ``background`` (perspective, colour, blur, occlusion, JPEG and the
    ``print_conditions``), cut out with :func:`square_crop` and resized to ``size``; ``None`` when the logo found
    no place. A :class:`Brand` is rendered in a random simple-icons colour style; an ``HxWx4`` uint8 RGBA array
    (a mark from another artwork style) is pasted as it is.

    ``mark_style`` (e.g. :class:`vision.data.style_augment.MarkStyles`) turns the RGBA mark into another style
    before it is pasted; a Brand rendered cut out of a plate is left as it is (its alpha is the plate). None (the
    default) draws nothing from ``rng``, so the crops are those made without it."""
    if isinstance(brand, Brand):
        style = random_logo_style(brand, rng)
        render_side = math.ceil(scale_range[1] * min(background.shape[:2]))
        rgba = render_logo(brand, render_side, color=style.color, background=style.background)
        if style.background is not None:
            mark_style = None
    else:
        rgba = brand
    if mark_style is not None:
        rgba = mark_style(rgba, rng)
    image, boxes = composite_logos(background, [(rgba, 0)], rng, scale_range=scale_range,
                                   print_conditions=print_conditions)
    if len(boxes) == 0:
        return None
    return square_crop(image, boxes[0, 1:], margin=float(rng.uniform(*margin_range)), size=size)


def _albumentations_seed(rng: np.random.Generator) -> int:
    # albumentations keeps its own generators; seeding each pipeline from ours keeps one seed in charge
    return int(rng.integers(0, 2**31 - 1))


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
