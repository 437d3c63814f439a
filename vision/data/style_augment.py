"""Style-removing augmentations for logo crops: fill <-> outline, mono / inverted, edge map, background removal.

Artworks of one brand differ in ways a logo embedder should not care about: a filled full-colour mark against
its cut-out outline, brand colour against black or white, a mark on a plate against the bare mark. Each transform
here turns a crop into one of those other renderings, so that training pulls them together (issue 27, route 3).

They find the mark the same way: the background is the median colour of the crop's border ring, the mark is
every pixel far enough from it (Otsu's threshold on the distance, at least ``MIN_CONTRAST``). A crop whose border
is not a flat ground (a logo composited on a photo), or where the mark covers almost nothing or almost everything,
is returned unchanged: in a brand training set they act on the clean renders, and the composites keep teaching
robustness to photos. ``EdgeMap`` needs no mask and applies to every crop.

Turned on by name and probability from a data module's ``style_augment`` (at most one of them per image)::

    data:
      init_args:
        style_augment: {fill_to_outline: 0.15, outline_to_fill: 0.15, mono: 0.1, edge_map: 0.05}

:class:`MarkStyles` does the mask-based ones to a rendered RGBA mark *before* it is composited (its alpha is the
exact mask), so they reach the crops on photos too (``vision make-brand-dataset --mark-styles``)::

    MarkStyles.parse("fill_to_outline=0.2,outline_to_fill=0.2,mono=0.15")(rgba, rng)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from typing import Mapping

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")   # as in vision.data.transforms: no PyPI check offline

import albumentations as A  # noqa: E402
import cv2  # noqa: E402

__all__ = ["EdgeMap", "FillToOutline", "MarkStyles", "MonoMark", "OutlineToFill", "RemoveBackground",
           "STYLE_AUGMENTS", "mark_mask", "fill_holes", "outline_interior", "remove_background", "silhouette",
           "style_augment_ops"]

MIN_CONTRAST = 32          # a mark pixel differs from the background by at least this much in some channel
_MIN_AREA, _MAX_AREA = 0.005, 0.95   # fraction of the crop the mark may cover for a transform to apply
_MAX_CLUTTER = 0.2         # at most this fraction of the border ring may differ from its median colour


def mark_mask(image: np.ndarray, max_clutter: float = _MAX_CLUTTER) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mask, background colour)`` of the mark in an HxWx3 uint8 crop, or None where no mark stands out.

    ``max_clutter``: the largest share of the border ring that may differ from its median colour (a flat ground);
    1.0 takes any border (a mark on a photo: the mask then also follows the photo where it differs from the ring's
    median colour)."""
    h, w = image.shape[:2]
    b = max(1, min(h, w) // 16)
    ring = np.concatenate([image[:b].reshape(-1, 3), image[-b:].reshape(-1, 3),
                           image[:, :b].reshape(-1, 3), image[:, -b:].reshape(-1, 3)])
    background = np.median(ring, axis=0)
    if (np.abs(ring.astype(np.int16) - background.astype(np.int16)).max(axis=1) > MIN_CONTRAST).mean() > max_clutter:
        return None   # no flat ground (a photo behind the mark): the mask would follow the photo's texture
    distance = np.abs(image.astype(np.int16) - background.astype(np.int16)).max(axis=2).astype(np.uint8)
    otsu, _ = cv2.threshold(distance, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = distance > max(otsu, MIN_CONTRAST)
    if not _MIN_AREA <= mask.mean() <= _MAX_AREA:
        return None
    return mask, background.astype(np.uint8)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with every background region not touching the crop's border filled (the mark's silhouette)."""
    n, labels = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
    outside = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = ~mask & ~np.isin(labels, outside)
    return mask | holes


def outline_interior(mask: np.ndarray, px: int) -> np.ndarray:
    """The part of ``mask`` farther than ``px`` pixels from its contour (outer and inner edges): what
    :class:`FillToOutline` clears, leaving a band ``px`` wide. Pixels beyond the array's edge count as outside."""
    return cv2.erode(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8),
                     borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)


def _mark_colour(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.median(image[mask], axis=0).astype(np.uint8)


def _band_px(width: float, shape: tuple[int, ...]) -> int:
    return max(1, round(width * min(shape[:2])))


def _ink(inverted: bool) -> tuple[int, int]:
    """``(ink, ground)`` grey levels of a mono mark: dark on light, or light on dark when ``inverted``."""
    return (255, 0) if inverted else (0, 255)


class FillToOutline(A.ImageOnlyTransform):
    """Keep only a band along the mark's contour (outer and inner edges); its inside becomes background.

    ``width``: the band's width as a fraction of the crop's shorter side, drawn uniformly from the range
    (at least 1 pixel). A filled square becomes a square outline.
    """

    def __init__(self, width: tuple[float, float] = (0.02, 0.05), p: float = 0.5):
        super().__init__(p=p)
        self.width = tuple(width)

    def get_params(self) -> dict:
        return {"width": self.py_random.uniform(*self.width)}

    def apply(self, img: np.ndarray, width: float = 0.03, **params) -> np.ndarray:
        found = mark_mask(img)
        if found is None:
            return img
        mask, background = found
        out = img.copy()
        out[outline_interior(mask, _band_px(width, img.shape))] = background
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("width",)


class OutlineToFill(A.ImageOnlyTransform):
    """Fill the mark's holes (every enclosed background region) with the mark's colour: its silhouette.

    An outlined square becomes a filled square; a cut-out letter in a filled disc becomes the disc.
    """

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        found = mark_mask(img)
        if found is None:
            return img
        mask, _ = found
        holes = fill_holes(mask) & ~mask
        if not holes.any():
            return img
        out = img.copy()
        out[holes] = _mark_colour(img, mask)
        return out


class MonoMark(A.ImageOnlyTransform):
    """The mark in one colour on a flat ground: dark on light, or light on dark with probability ``invert``."""

    def __init__(self, invert: float = 0.5, p: float = 0.5):
        super().__init__(p=p)
        self.invert = invert

    def get_params(self) -> dict:
        return {"inverted": self.py_random.random() < self.invert}

    def apply(self, img: np.ndarray, inverted: bool = False, **params) -> np.ndarray:
        found = mark_mask(img)
        if found is None:
            return img
        mask, _ = found
        ink, ground = _ink(inverted)
        out = np.full_like(img, ground)
        out[mask] = ink
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("invert",)


class EdgeMap(A.ImageOnlyTransform):
    """Sobel gradient magnitude drawn dark on light, in grey: only the mark's edges are left, not its fill."""

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
        magnitude = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3),
                                  cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
        peak = float(magnitude.max())
        if peak <= 0:
            return img
        edges = 255 - np.clip(magnitude * (255.0 / peak) * 2.0, 0, 255).astype(np.uint8)   # x2: thin edges show
        return np.repeat(edges[:, :, None], 3, axis=2)


class RemoveBackground(A.ImageOnlyTransform):
    """Everything outside the mark's silhouette set to the background's median colour (a crude background removal).

    The silhouette keeps the mask's parts of at least ``min_part`` of the largest part's area: specks and clutter
    that differ from the background go with it.
    """

    def __init__(self, min_part: float = 0.1, p: float = 0.5):
        super().__init__(p=p)
        self.min_part = min_part

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        return remove_background(img, self.min_part)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("min_part",)


def silhouette(mask: np.ndarray, min_part: float = 0.1) -> np.ndarray:
    """The mark's silhouette (:func:`fill_holes`) keeping only its parts of at least ``min_part`` of the largest
    part's area (8-connected)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fill_holes(mask).astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if not len(areas):
        return np.zeros_like(mask, bool)
    keep = np.flatnonzero(areas >= min_part * areas.max()) + 1
    return np.isin(labels, keep)


def remove_background(img: np.ndarray, min_part: float = 0.1, max_clutter: float = _MAX_CLUTTER) -> np.ndarray:
    """:class:`RemoveBackground` as a function: everything outside the mark's :func:`silhouette` set to the border's
    median colour; ``img`` itself where no mark stands out (``max_clutter``: see :func:`mark_mask`)."""
    found = mark_mask(img, max_clutter)
    if found is None:
        return img
    mask, background = found
    out = img.copy()
    out[~silhouette(mask, min_part)] = background
    return out


STYLE_AUGMENTS: dict[str, type[A.ImageOnlyTransform]] = {
    "fill_to_outline": FillToOutline,
    "outline_to_fill": OutlineToFill,
    "mono": MonoMark,
    "edge_map": EdgeMap,
    "remove_background": RemoveBackground,
}


def _check_probabilities(probabilities: Mapping[str, float], what: str) -> dict[str, float]:
    """``probabilities`` as floats, for choices of which at most one applies per image; a value that is not a
    probability in [0, 1] (the error names ``<what>.<name>``) or a sum above 1 is an error."""
    ps = {}
    for name, p in probabilities.items():
        try:
            ps[name] = float(p) if not isinstance(p, bool) else math.nan
        except (TypeError, ValueError):
            ps[name] = math.nan
        if not 0.0 <= ps[name] <= 1.0:
            raise ValueError(f"{what}.{name} must be a probability in [0, 1], got {p!r}")
    total = sum(ps.values())
    if total > 1 + 1e-9:
        raise ValueError(f"{what} probabilities must sum to at most 1 (at most one per image), got {total:g}")
    return ps


def style_augment_ops(probabilities: Mapping[str, float] | None) -> list:
    """The transforms named in ``probabilities`` as one ``OneOf`` (at most one per image, each with its probability).

    Empty for None or all-zero probabilities. Unknown names, negative probabilities or a sum above 1 are errors.
    """
    if not probabilities:
        return []
    unknown = sorted(set(probabilities) - set(STYLE_AUGMENTS))
    if unknown:
        raise ValueError(f"unknown style augmentation(s) {unknown}; choose from {sorted(STYLE_AUGMENTS)}")
    ps = _check_probabilities(probabilities, "style_augment")
    chosen = [STYLE_AUGMENTS[name](p=p) for name, p in ps.items() if p > 0]
    if not chosen:
        return []
    return [A.OneOf(chosen, p=min(1.0, sum(t.p for t in chosen)))]


@dataclass(frozen=True)
class MarkStyles:
    """Per-mark probabilities of turning a rendered RGBA mark into another style before it is composited.

    At most one per mark: ``fill_to_outline`` keeps a band along the contour (``outline_width``, a fraction of the
    render's shorter side, as :class:`FillToOutline`), ``outline_to_fill`` fills its holes with the mark's colour
    (its silhouette, :func:`fill_holes`), ``mono`` paints it in one ink, black, or white with probability
    ``mono_invert`` (as :class:`MonoMark`, on the photo instead of a flat ground). The mask is the render's alpha
    (>= 128), exact, so unlike the crop augmentations they need no flat ground. A render whose alpha is a plate
    (the mark cut out of or painted on it) is the caller's to leave out: its silhouette is the plate.

    Validation names the field (``mark_styles.<name>``); :meth:`parse` reads the command line's
    ``"fill_to_outline=0.2,mono=0.1"``. Off (all zero) by default.
    """

    fill_to_outline: float = 0.0
    outline_to_fill: float = 0.0
    mono: float = 0.0
    outline_width: tuple[float, float] = (0.02, 0.05)
    mono_invert: float = 0.5

    STYLES = ("fill_to_outline", "outline_to_fill", "mono")

    def __post_init__(self):
        checked = {**_check_probabilities(self.probabilities(), "mark_styles"),
                   **_check_probabilities({"mono_invert": self.mono_invert}, "mark_styles")}
        for name, value in checked.items():   # stored as floats
            object.__setattr__(self, name, value)
        lo, hi = self.outline_width
        if not 0 < lo <= hi <= 0.5:
            raise ValueError(f"mark_styles.outline_width must be a range within (0, 0.5], got {self.outline_width}")

    @classmethod
    def parse(cls, text: str | Mapping[str, float] | None) -> "MarkStyles | None":
        """``"fill_to_outline=0.2,mono=0.1"`` (or a mapping) as :class:`MarkStyles`; None for None, empty or all
        zero (off)."""
        if text is None:
            return None
        if isinstance(text, str):
            items = {}
            for part in filter(None, (p.strip() for p in text.split(","))):
                name, eq, value = part.partition("=")
                if not eq:
                    raise ValueError(f"mark_styles: expected name=probability, got {part!r}")
                try:
                    items[name.strip()] = float(value)
                except ValueError:
                    raise ValueError(f"mark_styles.{name.strip()} must be a probability in [0, 1], got "
                                     f"{value.strip()!r}") from None
        else:
            items = dict(text)
        known = {f.name for f in fields(cls)} - ({"outline_width"} if isinstance(text, str) else set())
        unknown = sorted(set(items) - known)
        if unknown:
            raise ValueError(f"mark_styles: unknown field(s) {unknown}; choose from {sorted(known)}")
        styles = cls(**items)
        return styles if styles.active else None

    @property
    def active(self) -> bool:
        return any(getattr(self, n) > 0 for n in self.STYLES)

    def probabilities(self) -> dict[str, float]:
        return {n: getattr(self, n) for n in self.STYLES}

    def draw(self, rng: np.random.Generator) -> str | None:
        """Which style one mark gets (None: kept as rendered); one draw from ``rng``."""
        u, edge = rng.random(), 0.0
        for name in self.STYLES:
            edge += getattr(self, name)
            if u < edge:
                return name
        return None

    def apply(self, rgba: np.ndarray, style: str, rng: np.random.Generator) -> np.ndarray:
        """``rgba`` (``HxWx4`` uint8) in ``style``; unchanged when the mark is empty or has nothing to change."""
        if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
            raise ValueError(f"mark must be HxWx4 uint8, got {rgba.shape} {rgba.dtype}")
        mask = rgba[..., 3] >= 128
        if not mask.any():
            return rgba
        out = rgba.copy()
        if style == "fill_to_outline":
            out[outline_interior(mask, _band_px(float(rng.uniform(*self.outline_width)), rgba.shape)), 3] = 0
        elif style == "outline_to_fill":
            holes = fill_holes(mask) & ~mask
            out[holes, :3] = _mark_colour(rgba[..., :3], mask)
            out[holes, 3] = 255
        elif style == "mono":
            out[..., :3] = _ink(bool(rng.random() < self.mono_invert))[0]
        else:
            raise ValueError(f"unknown mark style {style!r}; choose from {list(self.STYLES)}")
        return out

    def __call__(self, rgba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        style = self.draw(rng)
        return rgba if style is None else self.apply(rgba, style, rng)
