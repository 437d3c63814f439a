"""Logos pasted onto photos with exact boxes: scale, perspective, colour, occlusion, degradation; "wild" crops.

The detector data (:mod:`vision.synth.yolo`) and the brand queries (:mod:`vision.synth.brand_dataset`) share this
compositing, so logos in the wild look alike in both::

    image, boxes = composite_logos(photo, [(render_logo(brand, 128), 0)], np.random.default_rng(0))
    crop = wild_logo_crop(brand, photo, np.random.default_rng(0), size=96)   # square crop around the pasted logo
"""

from __future__ import annotations

import math
import os
from typing import Sequence

# albumentations checks PyPI for a newer version at import time; we run offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from vision.crops import square_crop  # noqa: E402
from vision.synth.catalog import Brand  # noqa: E402
from vision.synth.render import mask_box, premultiply, random_logo_style, render_logo  # noqa: E402

__all__ = ["SCALE_RANGE", "composite_logos", "random_resized_background", "wild_logo_crop"]

SCALE_RANGE: tuple[float, float] = (0.04, 0.35)   # logo's longer side as a fraction of the image's shorter side


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

    if occlusion_prob > 0:
        for _, box in placed:
            if rng.random() < occlusion_prob:
                _occlude(canvas, owner, background, box, rng)

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
    layer = cv2.resize(premultiply(rgba), size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
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


def wild_logo_crop(brand: Brand, background: np.ndarray, rng: np.random.Generator, size: int,
                   scale_range: tuple[float, float] = (0.2, 0.6), margin_range: tuple[float, float] = (0.05, 0.3)
                   ) -> np.ndarray | None:
    """``brand`` composited once onto ``background`` (random style, perspective, colour, blur, occlusion, JPEG),
    cut out with :func:`square_crop` and resized to ``size``; ``None`` when the logo found no place."""
    style = random_logo_style(brand, rng)
    render_side = math.ceil(scale_range[1] * min(background.shape[:2]))
    rgba = render_logo(brand, render_side, color=style.color, background=style.background)
    image, boxes = composite_logos(background, [(rgba, 0)], rng, scale_range=scale_range)
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
