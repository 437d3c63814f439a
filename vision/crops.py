"""The square crop around a logo box: what the brand recogniser embeds, and how its training crops are framed."""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

__all__ = ["CROP_MARGIN", "LEGACY_CROP_MARGIN", "check_margin", "square_crop"]

# How the brand recogniser frames a detected box before embedding it: the context on each side as a fraction of the
# box's longer side (the embedder trained on crops with 0.05-0.3). A gallery records the margin its threshold and
# detection rule were calibrated on (BrandGallery.crop_margin) and the recogniser frames its queries that way;
# galleries written before they recorded it were calibrated at LEGACY_CROP_MARGIN. 0.10 (the scale of the canonical
# references) measured better on oracle crops and no better end to end, with more false brands (README, "How a
# detected logo is framed").
CROP_MARGIN = 0.15
LEGACY_CROP_MARGIN = 0.15


def check_margin(value, what: str = "margin") -> float:
    """``value`` as a crop margin (a number from 0 to 1), else a :class:`ValueError` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= 1:
        raise ValueError(f"{what} must be a number from 0 to 1 (context around a box, fraction of its side), "
                         f"got {value!r}")
    return float(value)


def square_crop(image: np.ndarray, box: Sequence[float], margin: float = CROP_MARGIN,
                size: int | None = None) -> np.ndarray:
    """The square region centred on ``box`` (``x1, y1, x2, y2``) with side ``max(w, h) * (1 + 2 * margin)``.

    Parts outside the image are filled by replicating the border, so a wide wordmark is never cut by the model's
    centre crop. ``size`` resizes the result to ``size x size``.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"box must have x2 > x1 and y2 > y1, got {list(box)}")
    side = max(2, int(round(max(x2 - x1, y2 - y1) * (1 + 2 * margin))))
    left, top = int(round((x1 + x2 - side) / 2)), int(round((y1 + y2 - side) / 2))
    height, width = image.shape[:2]
    pad = max(0, -left, -top, left + side - width, top + side - height)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = image[top + pad:top + pad + side, left + pad:left + pad + side]
    if size is not None:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    return np.ascontiguousarray(crop)
