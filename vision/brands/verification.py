"""A second look at every detected logo: a crop classifier (background / logo) rescoring the detector's boxes.

The logo detector sees whole photos at 320 px and fires on PLU stickers, price labels and printed text; a
classifier that sees each box's crop (framed as the recogniser frames it, :func:`vision.crops.square_crop`) at its
own resolution, trained on real brand-free crops against logos in many artwork styles, is a second, independent
piece of evidence, as the second stage of a cascade detector. :class:`VerifiedDetector` wraps a detector: each box
keeps the detector's confidence as ``detector_score``, gets the classifier's probability as ``verifier_score``, and
its ``score`` becomes their weighted geometric mean ``detector_score ** (1 - power) * verifier_score ** power``
(``power`` 0.75 by default).
It is a detector like any other for :class:`~vision.brands.recognition.BrandRecognizer`, ``vision build-gallery
--detector ... --verifier ...`` and the benchmarks; its card names both models and hashes both sha256s, so a
gallery's detection rule calibrated for the pair is never applied to the detector alone (or to another verifier).

Example::

    detector = VerifiedDetector(LogoDetector.from_pretrained("logo_yolo11n", conf=0.1),
                                LogoVerifier.from_pretrained("logo_verifier_lite0"))
    detector.predict(["photo.jpg"])   # [[{"box", "score", "detector_score", "verifier_score"}, ...]]
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from vision.crops import square_crop
from vision.data.inputs import ImageInput, to_rgb_array

LOGO_CLASS = "logo"


class VerifierError(ValueError):
    """A model that cannot serve as a logo verifier."""


class LogoVerifier:
    """P(logo) of image crops from a two-class (or more) classification model whose class names include ``logo``.

    ``predictor``: a classification :class:`~vision.predictors.Predictor` (any backend)."""

    def __init__(self, predictor, positive: str = LOGO_CLASS, batch_size: int = 64):
        card = predictor.card
        if card.task != "classification":
            raise VerifierError(f"a logo verifier is a classification model; {card.name!r} is a {card.task} model")
        if positive not in card.class_names:
            raise VerifierError(f"verifier {card.name!r} has no class {positive!r} (classes: {card.class_names})")
        self.predictor, self.card, self.batch_size = predictor, card, batch_size
        self.index = list(card.class_names).index(positive)
        predictor.head.topk = len(card.class_names)   # every class's probability

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, backend: str = "auto", device: str | None = None,
                        **kwargs) -> "LogoVerifier":
        from vision.predictors import predictor

        return cls(predictor(name_or_path, backend=backend, device=device), **kwargs)

    def __call__(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        if not len(crops):
            return np.empty(0, np.float64)
        out = []
        for result in self.predictor(list(crops), batch_size=self.batch_size):
            out.append(next((t["score"] for t in result.topk if t["index"] == self.index), 0.0))
        return np.asarray(out, np.float64)


@dataclass(frozen=True)
class PairCard:
    """The card of a detector + verifier pair: what a detection rule records and checks."""
    name: str
    sha256: str
    detector: object
    verifier: object
    task: str = "detection"


class VerifiedDetector:
    """A detector whose boxes are rescored by a :class:`LogoVerifier` (see the module docstring).

    ``detector``: a :class:`~vision.inference.LogoDetector` (``predict(images, conf=)``) or a detection
    :class:`~vision.predictors.Predictor`; ``margin``: the crop framing (as the verifier's training crops, 0.15);
    ``power``: the verifier's weight in the geometric mean (0: the detector alone, 1: the verifier alone; 0.75, the
    shipped gallery's, measured better than 0 and 0.5). ``conf`` (the detector's own by default) applies to the
    combined score; ``detector_conf``, when given, is the detector's confidence down to which boxes go to the
    verifier (lower than ``conf``: a weak box the verifier is sure of can still pass), else ``conf`` applies to
    the detector's confidence too."""

    def __init__(self, detector, verifier: LogoVerifier, margin: float = 0.15, power: float = 0.75,
                 detector_conf: float | None = None):
        if not 0.0 <= power <= 1.0:
            raise ValueError(f"power must be in [0, 1], got {power}")
        if detector_conf is not None and not 0.0 < detector_conf <= 1.0:
            raise ValueError(f"detector_conf must be in (0, 1], got {detector_conf}")
        self.detector, self.verifier, self.margin, self.power = detector, verifier, float(margin), float(power)
        self.detector_conf = None if detector_conf is None else float(detector_conf)
        from vision.predictors import detector_conf

        self._conf = detector_conf(detector)   # the combined score's floor starts at the detector's own
        d, v = detector.card, verifier.card
        key = f"{d.sha256}:{v.sha256}:{self.power:g}:{self.margin:g}"
        if self.detector_conf is not None:
            key += f":{self.detector_conf:g}"
        digest = hashlib.sha256(key.encode()).hexdigest()
        self.card = PairCard(f"{d.name}+{v.name}", digest if d.sha256 and v.sha256 else "", d, v)

    @property
    def backend(self) -> str | None:
        """The detector's runtime (``torch``, ``onnxruntime``, ``tensorrt``), when it is a predictor."""
        return getattr(self.detector, "backend", None)

    def describe(self) -> dict:
        """What a detection rule records of the pair (:attr:`vision.brands.detection_rule.DetectionRule.verifier`)."""
        d, v = self.detector.card, self.verifier.card
        return {"name": v.name, "sha256": v.sha256, "power": self.power, "margin": self.margin,
                **({"detector_conf": self.detector_conf} if self.detector_conf is not None else {}),
                "detector": {"name": d.name, "sha256": d.sha256}}

    @property
    def conf(self) -> float | None:
        """The combined score a box needs (the detector's own confidence until set)."""
        return self._conf

    @conf.setter
    def conf(self, value: float) -> None:
        self._conf = float(value)

    def predict(self, images: ImageInput | Sequence[ImageInput], conf: float | None = None) -> list[list[dict]]:
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        arrays = [to_rgb_array(image) for image in items]
        floor = self.conf if conf is None else float(conf)
        inner = floor if self.detector_conf is None else (
            self.detector_conf if floor is None else min(floor, self.detector_conf))
        detections = self._detect(arrays, inner)
        crops, owners = [], []
        for i, (array, dets) in enumerate(zip(arrays, detections)):
            for j, det in enumerate(dets):
                x1, y1, x2, y2 = det["box"]
                if x2 - x1 >= 1 and y2 - y1 >= 1:
                    crops.append(square_crop(array, det["box"], self.margin))
                    owners.append((i, j))
        probs = self.verifier(crops)
        verified = {owner: float(p) for owner, p in zip(owners, probs)}
        out: list[list[dict]] = []
        for i, dets in enumerate(detections):
            kept = []
            for j, det in enumerate(dets):
                p = verified.get((i, j), 0.0)
                c = float(det["score"])
                score = c ** (1.0 - self.power) * p ** self.power
                if floor is None or score >= floor:
                    kept.append({**det, "score": score, "detector_score": c, "verifier_score": round(p, 6)})
            out.append(kept)
        return out

    def _detect(self, arrays: list[np.ndarray], conf: float | None) -> list[list[dict]]:
        from vision.predictors import Predictor

        if isinstance(self.detector, Predictor):
            previous = self.detector.head.conf
            if conf is not None:
                self.detector.head.conf = conf
            try:
                return [[dict(b) for b in r.boxes] for r in self.detector(arrays)]
            finally:
                self.detector.head.conf = previous
        return self.detector.predict(arrays, conf=conf)


def zoo_source(name: str):
    """What loads zoo model ``name`` and nothing else: the name itself, or its file in the zoo when a file or folder
    of that name lies in the working directory (which the loaders would otherwise take). A gallery names its rule's
    verifier, and a gallery file is data: it must not choose a file to load and run. :class:`vision.zoo.ZooError`
    when no zoo holds the name."""
    from pathlib import Path

    from vision.names import check_plain_name
    from vision.zoo import ZooError, find_card

    check_plain_name(name, "verifier name", ZooError)
    found = find_card(name)
    if found is None:
        raise ZooError(f"no model named {name!r} in the zoo (a gallery's verifier is loaded from the zoo only)")
    card, folder = found
    return folder / card.file if Path(name).exists() else name


def verified_for_rule(detector, rule, backend: str = "auto", device: str | None = None):
    """``detector`` rescored by the verifier a gallery's detection rule was calibrated with, when the rule names one
    (:attr:`~vision.brands.detection_rule.DetectionRule.verifier`) and ``detector`` is the detector of that pair (card
    name
    and sha256); otherwise ``detector`` unchanged. A verifier that cannot be loaded, or whose sha256 differs from the
    recorded one, is warned about and left out (the rule then does not match, and the threshold decides). The
    verifier is looked up in the zoo only (:func:`zoo_source`), never as a file path."""
    import warnings

    spec = getattr(rule, "verifier", None) or {}
    card = getattr(detector, "card", None)
    if not spec or card is None or isinstance(detector, VerifiedDetector):
        return detector
    if (getattr(card, "name", ""), getattr(card, "sha256", "")) != (spec["detector"]["name"],
                                                                    spec["detector"]["sha256"]):
        return detector
    try:
        verifier = LogoVerifier.from_pretrained(zoo_source(spec["name"]), backend=backend, device=device)
    except Exception as e:  # noqa: BLE001 - a missing or unreadable model: say so and go on without it
        warnings.warn(f"the gallery's detection rule rescores detections with the logo verifier {spec['name']!r}, "
                      f"which could not be loaded ({type(e).__name__}: {e}); without it the rule does not apply",
                      stacklevel=2)
        return detector
    if verifier.card.sha256 != spec["sha256"]:
        warnings.warn(f"the gallery's detection rule was calibrated with the logo verifier {spec['name']!r} sha256 "
                      f"{spec['sha256'][:12]}..., this one is {verifier.card.sha256[:12]}...: it is not used and the "
                      "rule does not apply", stacklevel=2)
        return detector
    return VerifiedDetector(detector, verifier, margin=spec["margin"], power=spec["power"],
                            detector_conf=spec.get("detector_conf"))
