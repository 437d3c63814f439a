"""A second view of each logo crop: its foreground alone, embedded beside the plain crop and fused with it.

A logo composited on a photo is embedded with the photo around it; the gallery's references are clean marks. The
foreground view sets everything the method takes for background to one flat colour before embedding, and the crop's
vector becomes the normalised mean of the two views' unit vectors (``fusion="mean"``), so everything downstream of
the embedding (gallery search, open-set score, detection rule, text) is unchanged. ``fusion="name"``: the fused
vector only names the logo's brand (its best brand and cosine) and the plain crop's open-set score decides, so a
gallery calibrated on plain crops keeps its threshold and detection rule. A gallery stores the option it was built
with, which the recogniser follows by default (``foreground="auto"``): the shipped gallery names by ``"box:name"``
(its crops decide plain; measured in ``benchmarks/results/brand_recognition.md``, "The box view as a naming view");
the masking methods are off unless asked for ("A foreground view of each logo crop").

Methods (each on the crop resized to ``size`` px, the box assumed to be the crop less its margin band):

- ``"grabcut"``: OpenCV GrabCut initialised with that rectangle (``iterations`` rounds);
- ``"border"``: the pixels far from the border ring's median colour inside the rectangle, their silhouette
  (:func:`vision.data.style_augment.mark_mask` and :func:`~vision.data.style_augment.silhouette`, the training
  augmentation's mask, taken on any border);
- ``"colour"``: a colour-histogram likelihood ratio, the margin band against the rectangle (GrabCut's colour model
  without its graph cut or iterations);
- ``"tight"`` and ``"box"``: no mask; the view is the crop framed tighter, the box with half its margin
  (``"tight"``) or with none (``"box"``), so the fused vector sees the logo at two framings.

Where a method finds almost nothing or almost everything, the view is the plain crop (the fused vector is then the
plain one).

Example::

    fx = ForegroundFusedExtractor(FeatureExtractor.from_pretrained("brand_resnet10t"), "grabcut")
    fx(crops)        # (N, D) unit vectors: plain and foreground views fused
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from vision.crops import CROP_MARGIN, check_margin

__all__ = ["FOREGROUND_METHODS", "FRAMINGS", "FUSIONS", "FILLS", "DEFAULT_METHOD", "ForegroundFusedExtractor",
           "deciding_view", "ForegroundOptionError", "foreground_option", "foreground_view", "fuse_mean", "inner_rect",
           "with_foreground", "TwoViews", "split_views"]

FOREGROUND_METHODS = ("grabcut", "border", "colour", "tight", "box")
# the framing methods: the view is the crop cut down to the box with this share of the crop's margin kept (no mask)
FRAMINGS = {"tight": 0.5, "box": 0.0}
# "mean": the crop's vector is the normalised mean of the two views' (search and open-set score both use it; a
# gallery is calibrated for it: build-gallery --foreground); "name": the fused vector names the logo's brand, the
# plain crop's open-set score decides, so a gallery calibrated on plain crops keeps its threshold and rule
FUSIONS = ("mean", "name")
FILLS = ("white", "border")
# the one that gained on true-box cross-style val without losing in distribution (simple-icons val: border -2.7
# points, colour -0.8, grabcut +0.2; results file, "A foreground view of each logo crop")
DEFAULT_METHOD = "grabcut"
# the option's other fields, when it is given by its method's name alone
DEFAULTS = {"fusion": "mean", "fill": "border", "size": 64, "iterations": 1}
OFF = ("off", "none")          # option values that turn it off, besides None
_MIN_FG, _MAX_FG = 0.02, 0.98  # a mask outside this share of the crop leaves the crop as it is


class ForegroundOptionError(ValueError):
    """A foreground option (method, fusion, fill, size, iterations) that does not exist."""


def foreground_option(value) -> dict | None:
    """The foreground option as a checked record ``{"method", "fusion", "fill", "size", "iterations"}``, or
    ``None`` (off). ``value``: ``None``, ``"off"``, a method name (:data:`FOREGROUND_METHODS`, the other fields
    from :data:`DEFAULTS`), ``"method:fusion"`` (``"border:name"``) or such a record (as a gallery stores it).
    Anything else is a :class:`ForegroundOptionError` saying what is allowed."""
    if value is None or (isinstance(value, str) and value.lower() in OFF):
        return None
    if isinstance(value, str):   # "border", or "border:name" (method:fusion, as the command line gives it)
        method, _, fusion = value.partition(":")
        value = {"method": method, **({"fusion": fusion} if fusion else {})}
    if not isinstance(value, dict):
        raise ForegroundOptionError(f"foreground option must be None, 'off', one of {list(FOREGROUND_METHODS)} or "
                                    f"a record of them, got {value!r}")
    unknown = sorted(set(value) - {"method", *DEFAULTS})
    if unknown:
        raise ForegroundOptionError(f"unknown foreground option field(s) {unknown}; the fields are "
                                    f"{['method', *DEFAULTS]}")
    option = {"method": value.get("method"), **{k: value.get(k, v) for k, v in DEFAULTS.items()}}
    for field, allowed in (("method", FOREGROUND_METHODS), ("fusion", FUSIONS), ("fill", FILLS)):
        if option[field] not in allowed:
            raise ForegroundOptionError(f"unknown foreground {field} {option[field]!r}; choose one of "
                                        f"{list(allowed)}" + (" (or 'off')" if field == "method" else ""))
    for field, low in (("size", 8), ("iterations", 1)):
        if type(option[field]) is not int or option[field] < low:
            raise ForegroundOptionError(f"foreground {field} must be an integer >= {low}, got {option[field]!r}")
    return option


def inner_rect(side: int, margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of the box inside a square crop of ``side`` px framed with ``margin``
    (:func:`vision.crops.square_crop`), taking the box as square (a crop alone does not say its aspect)."""
    band = int(round(side * margin / (1 + 2 * margin)))
    band = min(band, max(0, (side - 2) // 2))
    return band, band, side - 2 * band, side - 2 * band


def _ring(image: np.ndarray) -> np.ndarray:
    b = max(1, min(image.shape[:2]) // 16)
    return np.concatenate([image[:b].reshape(-1, 3), image[-b:].reshape(-1, 3),
                           image[:, :b].reshape(-1, 3), image[:, -b:].reshape(-1, 3)])


def _grabcut(image: np.ndarray, rect: tuple[int, int, int, int], iterations: int) -> np.ndarray | None:
    mask = np.zeros(image.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)   # GrabCut's k-means draws from OpenCV's global RNG: the same crop, the same mask, in any order
    try:
        cv2.grabCut(image, mask, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    except cv2.error:   # e.g. a flat crop: no colour model to fit
        return None
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def _border(image: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray | None:
    from vision.data.style_augment import mark_mask, silhouette  # albumentations: imported when used

    found = mark_mask(image, max_clutter=1.0)
    if found is None:
        return None
    x, y, w, h = rect
    inside = np.zeros(image.shape[:2], bool)
    inside[y:y + h, x:x + w] = True
    return silhouette(found[0] & inside)


def _colour(image: np.ndarray, rect: tuple[int, int, int, int], bits: int = 4) -> np.ndarray:
    x, y, w, h = rect
    inside = np.zeros(image.shape[:2], bool)
    inside[y:y + h, x:x + w] = True
    q = (image >> (8 - bits)).astype(np.int32)
    code = (q[..., 0] << (2 * bits)) | (q[..., 1] << bits) | q[..., 2]
    bins = 1 << (3 * bits)
    fg = np.bincount(code[inside], minlength=bins) / max(1, inside.sum())
    bg = np.bincount(code[~inside], minlength=bins) / max(1, (~inside).sum())
    ratio = fg / (fg + bg + 1e-12)
    return (ratio[code] > 0.5) & inside


def foreground_view(crop, method: str = DEFAULT_METHOD, margin: float = CROP_MARGIN, size: int = 64,
                    iterations: int = 1, fill: str = "border") -> np.ndarray:
    """The foreground view of one square logo crop (framed with ``margin``): ``size`` x ``size`` RGB uint8, the
    background that ``method`` finds set to ``fill`` (``"white"``, or ``"border"``: the border ring's median colour).
    The resized crop itself where the method finds no usable mask."""
    from vision.data.inputs import to_rgb_array

    foreground_option({"method": method, "fill": fill, "size": size, "iterations": iterations})
    image = to_rgb_array(crop)
    if method in FRAMINGS:   # the box with a share of the margin: cut from the crop at its own resolution
        side = min(image.shape[:2])
        band = int(round(side * check_margin(margin) * (1 - FRAMINGS[method]) / (1 + 2 * check_margin(margin))))
        band = min(band, max(0, (side - 2) // 2))
        image = image[band:image.shape[0] - band, band:image.shape[1] - band]
    if image.shape[0] != size or image.shape[1] != size:
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if min(image.shape[:2]) > size
                           else cv2.INTER_LINEAR)
    image = np.ascontiguousarray(image)
    if method in FRAMINGS:   # no mask: the framing is the view
        return image
    rect = inner_rect(size, check_margin(margin))
    if method == "grabcut":
        mask = _grabcut(image, rect, max(1, int(iterations)))
    elif method == "border":
        mask = _border(image, rect)
    else:
        mask = _colour(image, rect)
    if mask is None or not _MIN_FG <= float(mask.mean()) <= _MAX_FG:
        return image
    out = image.copy()
    out[~mask] = 255 if fill == "white" else np.median(_ring(image), axis=0).astype(np.uint8)
    return out


class ForegroundFusedExtractor:
    """An embedder (:class:`vision.features.FeatureExtractor`) whose vector of a crop fuses the plain crop's and its
    :func:`foreground_view`'s: ``normalise(plain + foreground)`` of the two unit vectors (``fusion="mean"``).
    ``option``: see :func:`foreground_option` (a method name or a record); ``margin``: how the crops were framed
    (the gallery's ``crop_margin``). Same ``card`` and ``dim`` as the wrapped extractor (a gallery of that embedder
    accepts it); :attr:`view` is the option's record (gallery files, cache keys)."""

    def __init__(self, extractor, option=DEFAULT_METHOD, margin: float = CROP_MARGIN):
        view = foreground_option(option)
        if view is None:
            raise ForegroundOptionError("ForegroundFusedExtractor needs a foreground method, not 'off'")
        self.extractor, self.view, self.margin = extractor, view, check_margin(margin)
        self.card, self.dim = extractor.card, extractor.dim

    def foreground(self, images: Sequence) -> list[np.ndarray]:
        """The foreground view of each crop (:func:`foreground_view`)."""
        v = self.view
        return [foreground_view(im, v["method"], self.margin, v["size"], v["iterations"], v["fill"]) for im in images]

    def __call__(self, images, batch_size: int = 32) -> np.ndarray:
        if not isinstance(images, (list, tuple)):
            images = [images]
        return self.embed_views(images, batch_size)[1]

    def embed_views(self, images, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """``(plain, fused)`` unit vectors of the crops: the plain crop's and the two views' normalised mean."""
        from vision.data.inputs import to_rgb_array

        arrays = [to_rgb_array(im) for im in images]
        if not arrays:
            empty = np.empty((0, self.dim), np.float32)
            return empty, empty
        # both views through one call: one preprocessing pass and network run for the two (a call costs about as
        # much as a few crops: 12 against 21 ms for two crops' views on 2 EPYC cores)
        both = self.extractor(arrays + self.foreground(arrays), batch_size=batch_size)
        plain, fore = both[:len(arrays)], both[len(arrays):]
        return plain, fuse_mean(plain, fore)


class TwoViews:
    """An extractor giving each crop's plain and fused vectors side by side (``(N, 2D)``), for callers that embed
    crops through one extractor call (:func:`vision.brands.recognition.embed_logos`); :func:`split_views` parts
    them."""

    def __init__(self, fused: ForegroundFusedExtractor):
        self.fused, self.card, self.dim = fused, fused.card, 2 * fused.dim

    def __call__(self, images, batch_size: int = 32) -> np.ndarray:
        if not isinstance(images, (list, tuple)):
            images = [images]
        return np.hstack(self.fused.embed_views(images, batch_size))


def split_views(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(plain, fused)`` of :class:`TwoViews` rows."""
    half = vectors.shape[1] // 2
    return vectors[:, :half], vectors[:, half:]


def deciding_view(option) -> dict | None:
    """How the crops whose open-set scores decide are embedded under foreground ``option``: the option itself with
    fusion ``"mean"``, plain crops (``None``) with fusion ``"name"`` (the fused view only names the brand) or off.
    A gallery is calibrated on these."""
    view = foreground_option(option)
    return view if view is not None and view["fusion"] == "mean" else None


def with_foreground(extractor, option, margin: float = CROP_MARGIN):
    """``extractor`` itself when ``option`` is off (:func:`foreground_option`), else it wrapped in a
    :class:`ForegroundFusedExtractor`."""
    view = foreground_option(option)
    return extractor if view is None else ForegroundFusedExtractor(extractor, view, margin)


def fuse_mean(plain: np.ndarray, fore: np.ndarray) -> np.ndarray:
    """Unit rows of ``plain + fore`` (both unit rows): the mean of the two views' embeddings, normalised."""
    total = np.asarray(plain, np.float32) + np.asarray(fore, np.float32)
    return (total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)).astype(np.float32)
