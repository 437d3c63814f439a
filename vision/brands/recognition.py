"""Brand recognition: logo detector -> square crops -> embeddings -> gallery -> brand or "unknown" per logo.

Example::

    recognizer = BrandRecognizer.from_pretrained(detector="logo_yolo11n", embedder="brand_ensemble",
                                                 gallery="weights/simple_icons_gallery.npz")
    recognizer.predict(["shelf.jpg"])[0]
    # [{'box': [x1, y1, x2, y2], 'brand': 'oatly', 'score': 0.83, 'best': 'oatly', 'open_set_score': 0.21,
    #   'detection_score': 0.71}]

A logo is ``"unknown"`` (``best`` still names the nearest brand) when its ``open_set_score`` is below the gallery's
calibrated threshold: the gallery decides how that score is made (its ``normalization``: the plain cosine
``score``, or the margin over a background cohort of real non-logo crops stored in the gallery), see
:mod:`vision.brands.gallery`. A gallery may also hold a detection-aware rule (:mod:`vision.brands.detection_rule`: the
detector's
confidence together with the open-set score, calibrated on whole photos for one detector); with that detector (same
name and sha256) it decides instead of the threshold, and the detector runs at the rule's confidence unless told
otherwise; with another detector the recogniser warns and falls back to the threshold. Without a detector
(``detector=None``) every image is treated as one logo crop (its whole frame).

When the recogniser reads text and the gallery holds a ``text_rule`` for its detector and embedder, one calibrated
decision replaces "the image's rule, then text may rename": each logo's candidate brand is the one its text names
(a match scoring at least ``text_threshold``) or else the embedder's best, and the text rule accepts it on the
detection confidence, the candidate's open-set score and the two text channels (:func:`text_channels`). A
``logistic_candidates`` text rule chooses instead among several candidates per logo (:func:`logo_candidates`: the
embedder's ``top_k`` brands and every brand the text names, however weakly), the best-scoring one named when the rule
accepts it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterator, NamedTuple, Protocol, Sequence

import numpy as np

from vision.brands.detection_rule import CANDIDATES_RULE_KIND
from vision.brands.gallery import UNKNOWN, BrandGallery, GalleryError
from vision.crops import CROP_MARGIN, check_margin, square_crop
from vision.data.inputs import ImageInput, to_rgb_array
from vision.predictors import Predictor, detector_conf, set_detector_conf
from vision.results import Recognitions

DEFAULT_DETECTOR_CONF = 0.25   # without a detection rule for the detector
TEXT_THRESHOLD = 0.8           # a text match's score (OCR confidence x name similarity) that names a logo's brand
TEXT_MARGIN = 0.15             # context the text reader gets around a logo (measured with it: README, --read-text)
# vision.brands.ocr match kinds that may name a brand ("word" matches read common words)
TEXT_KINDS = ("exact", "fuzzy")
# logos detected with a lower confidence are not read: mostly stickers and print on brand-free and packaged photos,
# they took 40% of the reading time; 0.3 kept every name that 0.2 read, 0.5 lost wordmarks (brand_text --readers)
TEXT_MIN_DETECTION = 0.3
# logos whose best brand's cosine leads the second's by this much are not read (None: every logo is); see
# benchmarks/brand_text.py --gates
TEXT_MAX_LEAD = 0.1


class Detector(Protocol):
    """What :class:`BrandRecognizer` needs of a detector besides a detection :class:`~vision.predictors.Predictor`
    (:class:`vision.inference.LogoDetector` has it)."""

    def predict(self, images: Sequence[ImageInput]) -> list[list[dict]]: ...


def _embedded(option: dict | None) -> str:
    return "plain" if option is None else f"with their {option['method']} foreground view fused"


class BrandRecognizer:
    """Recognise brands of the logos in images against a :class:`BrandGallery`: a pipeline of two predictors (the
    detector's and the embedder's, each on any backend) and the gallery, and a predictor itself (``stream``,
    ``__call__`` with :class:`~vision.results.Recognitions` results).

    ``extractor`` embeds crops (a :class:`vision.features.FeatureExtractor` of an ``embedding`` zoo model); the
    gallery must have been built with the same model (checked here; a gallery that records no model name or sha256
    is refused unless ``allow_unbound=True``, which is logged). ``margin`` frames each detected box
    (:func:`vision.crops.square_crop`); by default the gallery's
    :attr:`~vision.brands.gallery.BrandGallery.crop_margin`,
    the framing its threshold and rule were calibrated on. ``threshold`` overrides the gallery's calibrated one (it
    applies to the gallery's open-set score; the gallery's detection rule is then not used).

    ``reader``: a :class:`vision.brands.ocr.TextReader` to read the text on each logo as well; a logo whose text names a
    brand (:class:`vision.brands.ocr.BrandNames` of the gallery, or ``names``: a match of one of ``text_kinds`` scoring
    at least ``text_threshold``; an everyday word such as "orange" only with ``text_everyday``; ``text_aliases``:
    more names per brand, a mapping or a YAML file for :func:`vision.brands.ocr.load_aliases`) is that brand
    whatever the embedder says (results then also carry ``text``: the
    lines read, and ``source``: ``"text"`` or ``"image"``, what named the brand, with the match's ``text_score``
    when it was the text; ``best`` and ``score`` stay the embedder's). Only logos detected with a
    ``detection_score`` of at least ``text_min_detection`` (without a detector, every image) and whose best brand
    leads the second by less than ``text_max_lead`` (cosine; ``None``: any lead) are read (:meth:`needs_text`).
    :meth:`from_pretrained` reads text by default where the ``[ocr]`` extra is installed.

    ``detection_rule``: ``"auto"`` applies the gallery's :attr:`~vision.brands.gallery.BrandGallery.detection_rule` when
    ``detector`` is the detector it was calibrated for (card name and sha256), and warns and falls back to the
    threshold with any other detector; ``"off"`` always uses the threshold. :attr:`rule` is the rule in use (or
    ``None``).

    ``foreground``: ``"auto"`` (the default) embeds each logo crop as the gallery's threshold and rules were
    calibrated (:attr:`~vision.brands.gallery.BrandGallery.foreground`: the plain crop for every gallery built
    without ``--foreground``; the shipped gallery names by ``"box:name"``); ``None``/``"off"`` the plain crop; a
    method of :data:`vision.brands.views.FOREGROUND_METHODS` (or an option record) embeds the crop and its
    foreground view and fuses the two (:class:`vision.brands.views.ForegroundFusedExtractor`), warned about when the
    gallery was calibrated otherwise; with ``{"method": ..., "fusion": "name"}`` the fused vector names each logo's
    brand and the plain crop's open-set score decides (a gallery calibrated on plain crops keeps its threshold and
    rule; not with a gallery's text rule). A bad value is a :class:`vision.brands.views.ForegroundOptionError`.
    """

    def __init__(self, extractor, gallery: BrandGallery, detector=None, margin: float | None = None,
                 threshold: float | None = None, allow_unbound: bool = False, detection_rule: str = "auto",
                 reader=None, names=None, text_threshold: float = TEXT_THRESHOLD,
                 text_kinds: Sequence[str] = TEXT_KINDS, text_everyday: bool = False, text_aliases=None,
                 text_min_detection: float = TEXT_MIN_DETECTION, text_max_lead: float | None = TEXT_MAX_LEAD,
                 foreground="auto"):
        from vision.brands.views import (
            ForegroundFusedExtractor,
            TwoViews,
            deciding_view,
            foreground_option,
            with_foreground,
        )

        gallery.check_model(extractor.card, extractor.dim, allow_unbound=allow_unbound)
        if len(gallery) == 0:
            raise GalleryError("the gallery is empty: add brands before recognising with it")
        if detection_rule not in ("auto", "off"):
            raise ValueError(f"detection_rule must be 'auto' or 'off', got {detection_rule!r}")
        self.extractor, self.gallery, self.detector = extractor, gallery, detector
        self.margin = gallery.crop_margin if margin is None else check_margin(margin)
        # how each logo crop is embedded: the plain crop, or fused with its foreground view (vision.brands.views)
        self.foreground = gallery.foreground if foreground == "auto" else foreground_option(foreground)
        naming = self.foreground is not None and self.foreground["fusion"] == "name"
        decides = deciding_view(self.foreground)   # how the open-set score's crops are embedded
        if decides != deciding_view(gallery.foreground) and threshold is None:
            warnings.warn(f"the gallery's threshold and rules were calibrated on logo crops embedded "
                          f"{_embedded(deciding_view(gallery.foreground))}, not {_embedded(decides)}: its open-set "
                          "decisions will not keep their calibrated rates (build the gallery with the same "
                          "--foreground, or leave foreground='auto')", stacklevel=2)
        # fusion "name": the plain crops' vectors decide, the fused ones name (both from one pass: TwoViews)
        self._views = TwoViews(ForegroundFusedExtractor(extractor, self.foreground, self.margin)) if naming else None
        self.extractor = extractor if naming else with_foreground(extractor, self.foreground, self.margin)
        self.threshold = threshold
        self.skipped: list[tuple[str, str]] = []
        self.reader, self.text_threshold, self.text_kinds = reader, float(text_threshold), tuple(text_kinds)
        self.text_everyday = bool(text_everyday)
        self.text_min_detection = float(text_min_detection)
        self.text_max_lead = None if text_max_lead is None else float(text_max_lead)
        self.names = names
        if reader is not None and names is None:
            from vision.brands.ocr import BrandNames, load_aliases

            source = None
            if isinstance(text_aliases, (str, os.PathLike)):   # a YAML file of names
                source, text_aliases = os.fspath(text_aliases), load_aliases(text_aliases)
            self.names = BrandNames.from_gallery(gallery, aliases=text_aliases, source=source)
        self.rule = self._rule_for(detector) if detection_rule == "auto" and threshold is None else None
        self.text_rule = (self._text_rule_for(detector) if reader is not None and detector is not None
                          and detection_rule == "auto" and threshold is None else None)
        if self.text_rule is not None and self._views is not None:
            from vision.brands.views import ForegroundOptionError

            raise ForegroundOptionError("foreground fusion 'name' decides on the plain crop's open-set score; the "
                                        "gallery's text rule scores candidates on one vector: use fusion 'mean' "
                                        "with this gallery, or no text rule")
        if self.rule is not None:
            conf = detector_conf(detector)
            if conf is not None and conf > self.rule.min_detection_score:
                warnings.warn(f"the detector runs at confidence {conf}, above the {self.rule.min_detection_score:.4g} "
                              "the gallery's detection rule was calibrated at: more known logos will be missed than "
                              "its calibration says", stacklevel=2)

    def _rule_for(self, detector):
        """The gallery's detection rule when ``detector`` is its detector; otherwise ``None`` (warned about)."""
        rule = self.gallery.detection_rule
        if rule is None or detector is None:
            return None
        card = getattr(detector, "card", None)
        name, sha = (getattr(card, "name", ""), getattr(card, "sha256", "")) if card is not None else ("", "")
        if rule.matches(name, sha):
            return rule
        warnings.warn(f"the gallery's detection rule was calibrated for detector {rule.detector_name!r} (sha256 "
                      f"{rule.detector_sha256[:12]}...), not {name or 'this detector'!r}"
                      f"{f' (sha256 {sha[:12]}...)' if sha else ' (no sha256)'}: falling back to the open-set "
                      f"threshold {self.gallery.threshold}", stacklevel=3)
        return None

    def _text_rule_for(self, detector):
        """The gallery's text rule when ``detector`` is its detector (else ``None``, warned about); a text rule
        calibrated with another embedder is refused (:class:`~vision.brands.detection_rule.DetectionRuleError`)."""
        rule = self.gallery.text_rule
        if rule is None:
            return None
        card = getattr(detector, "card", None)
        if not rule.matches(getattr(card, "name", ""), getattr(card, "sha256", "")):
            warnings.warn(f"the gallery's text rule was calibrated for detector {rule.detector_name!r}, not "
                          f"{getattr(card, 'name', '') or 'this detector'!r}: text can only rename logos",
                          stacklevel=3)
            return None
        rule.check_pair(card, self.extractor.card)
        return rule

    @classmethod
    def from_pretrained(cls, embedder: str | os.PathLike, gallery: str | os.PathLike,
                        detector: str | os.PathLike | None = None, device: str | None = None,
                        detector_conf: float | None = None, allow_unbound: bool = False,
                        embedder_backend: str = "auto", detector_backend: str = "auto",
                        read_text: bool | None = None,
                        verifier: str | os.PathLike | None = None, verifier_power: float = 0.75,
                        **kwargs) -> "BrandRecognizer":
        """``embedder``/``detector``: zoo names, weights files or exports, each run by its own backend.
        ``detector_conf``: default the gallery's detection rule's confidence when the rule is for this detector,
        else 0.25. ``read_text``: also read the text on each logo (a :class:`vision.brands.ocr.TextReader`, the
        ``vision-zoo[ocr]`` extra); ``None`` (the default): when that extra is installed, else the logos are named
        by the image alone and a warning says so; ``True`` without the extra raises
        :class:`~vision.brands.ocr.OCRUnavailable` before any model loads; ``False``: never. ``verifier``: a logo
        verifier (zoo name or file) rescoring the detector's boxes
        (:class:`vision.brands.verification.VerifiedDetector`, ``verifier_power``); the gallery's rule applies when it
        was calibrated for that pair. Without it, a gallery rule calibrated with a verifier for this detector brings
        its verifier along (:func:`vision.brands.verification.verified_for_rule`)."""
        from vision.features import FeatureExtractor

        if kwargs.get("reader") is None:
            read_text = text_wanted(read_text)
        extractor = FeatureExtractor.from_pretrained(embedder, backend=embedder_backend, device=device)
        loaded = BrandGallery.load(gallery)  # checked against the embedder in __init__
        logo_detector = None
        if detector is not None:
            from vision.predictors import predictor

            logo_detector = predictor(detector, backend=detector_backend, device=device,
                                      conf=DEFAULT_DETECTOR_CONF if detector_conf is None else detector_conf)
            if logo_detector.card.task != "detection":
                raise ValueError(f"detector {detector!r} is a {logo_detector.card.task} model, not a detector")
            rule = loaded.detection_rule
            auto = kwargs.get("threshold") is None and kwargs.get("detection_rule", "auto") == "auto"
            if verifier is not None:
                from vision.brands.verification import LogoVerifier, VerifiedDetector

                logo_detector = VerifiedDetector(logo_detector, LogoVerifier.from_pretrained(
                    verifier, backend=detector_backend, device=device), power=verifier_power)
            elif auto and rule is not None and rule.verifier:   # the verifier the gallery's rule was calibrated with
                from vision.brands.verification import verified_for_rule

                logo_detector = verified_for_rule(logo_detector, rule, backend=detector_backend, device=device)
            if (detector_conf is None and rule is not None and auto
                    and rule.matches(logo_detector.card.name, logo_detector.card.sha256)):
                set_detector_conf(logo_detector, rule.min_detection_score)   # the rule's calibration confidence
        elif verifier is not None:
            raise ValueError("a verifier rescores a detector's boxes: give a detector too")
        if read_text and kwargs.get("reader") is None:
            from vision.brands.ocr import TextReader

            kwargs["reader"] = TextReader()
        return cls(extractor, loaded, logo_detector, allow_unbound=allow_unbound, **kwargs)

    def __call__(self, images, batch_size: int = 16, on_error: str = "raise") -> list[Recognitions]:
        return list(self.stream(images, batch_size=batch_size, on_error=on_error))

    def stream(self, images, batch_size: int = 16, on_error: str = "raise") -> Iterator[Recognitions]:
        """One :class:`~vision.results.Recognitions` per image, ``batch_size`` images read and run at a time;
        ``on_error="skip"`` lists unreadable images in :attr:`skipped` instead of raising."""
        from vision.predictors import read_batches

        self.skipped = []
        for sources, arrays in read_batches(images, batch_size, on_error, self.skipped):
            for source, array, logos in zip(sources, arrays, self._recognise(arrays)):
                yield Recognitions(source, boxes=logos, width=int(array.shape[1]), height=int(array.shape[0]))

    def predict(self, images: ImageInput | Sequence[ImageInput], batch_size: int = 16) -> list[list[dict]]:
        """Per image a list of ``{"box", "brand", "score", "best", "open_set_score", "detection_score"}``, one per
        detected logo (``brand`` is ``"unknown"`` when ``open_set_score`` is below the threshold); an image without a
        detected logo gives ``[]``. With a logo verifier, ``detection_score`` is the rescored confidence, and
        ``detector_confidence`` and ``verifier_score`` are its two parts."""
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        return [r.boxes for r in self([to_rgb_array(im) for im in items], batch_size=batch_size)]

    def _recognise(self, arrays: list[np.ndarray]) -> list[list[dict]]:
        logos = embed_logos(self.extractor if self._views is None else self._views, arrays, self.detector,
                            self.margin)
        results: list[list[dict]] = [[] for _ in logos]
        flat = [(i, det, vector) for i, (dets, vectors) in enumerate(logos) for det, vector in zip(dets, vectors)]
        if not flat:
            return results
        vectors = np.stack([vector for _, _, vector in flat])
        plain = None
        if self._views is not None:   # fusion "name": the fused vectors name, the plain ones' open-set score decides
            from vision.brands.views import split_views

            plain, vectors = split_views(vectors)
        best, scores, open_set = self.gallery.open_set_scores(vectors)
        if plain is not None:
            open_set = self.gallery.open_set_scores(plain)[2]
        if self.rule is None:
            threshold = self.gallery.threshold if self.threshold is None else self.threshold
            accepted = [threshold is None or o >= threshold for o in open_set]
        else:
            accepted = self.rule.accept([float(det["score"]) for _, det, _ in flat], open_set)
        matches = [{"brand": b if ok else UNKNOWN, "score": round(float(s), 6), "best": b,
                    "open_set_score": round(float(o), 6)}
                   for b, s, o, ok in zip(best, scores, open_set, accepted)]
        for (i, det, _), match in zip(flat, matches):
            results[i].append({"box": [round(float(v), 2) for v in det["box"]], "brand": match["brand"],
                               "score": match["score"], "best": match["best"],
                               "open_set_score": match["open_set_score"],
                               "detection_score": round(float(det["score"]), 6)})
            if "verifier_score" in det:   # a VerifiedDetector: detection_score is its rescored confidence
                results[i][-1].update(detector_confidence=round(float(det["detector_score"]), 6),
                                      verifier_score=round(float(det["verifier_score"]), 6))
        if self.reader is not None:
            leads = self.leads(vectors) if self.text_max_lead is not None else [None] * len(flat)
            self.read_texts(arrays, results, leads, vectors)
        return results

    def leads(self, vectors: np.ndarray) -> list[float]:
        """Per embedded logo how far the embedder's best brand leads its second (:func:`embedder_leads`)."""
        return embedder_leads(self.gallery, vectors)

    def needs_text(self, logo: dict, lead: float | None = None) -> bool:
        """Whether the text on ``logo`` (a result of the embedder) is read: its detection confidence is at least
        :attr:`text_min_detection`, and the embedder's best brand leads its second by less than
        :attr:`text_max_lead` (``lead``; not checked when either is ``None``): a logo the embedder names with a clear
        lead is left unread. Whether the embedder accepted the logo is not asked: it accepts many wordmarks as
        another brand."""
        return reads_text(logo["detection_score"] if self.detector is not None else None, lead,
                          self.text_min_detection, self.text_max_lead)

    def read_texts(self, arrays: Sequence[np.ndarray], results: list[list[dict]],
                   leads: Sequence[float | None] | None = None, vectors: np.ndarray | None = None) -> None:
        """Read the text on every logo of ``results`` (per image of ``arrays``) that :meth:`needs_text` (``leads``:
        per logo in reading order, see :meth:`leads`), each on its box framed with :data:`TEXT_MARGIN` (not squared:
        a wordmark's box stays a line); a match names its brand. With :attr:`text_rule` (and ``vectors``: the logos'
        embeddings in reading order) the text rule decides every logo instead (:meth:`fuse`)."""
        margin = TEXT_MARGIN if self.detector is not None else 0.0
        todo = [(i, logo) for i, logos in enumerate(results) for logo in logos]
        for _, logo in todo:
            logo["source"] = "image"
        leads = [None] * len(todo) if leads is None else list(leads)
        todo = [(i, logo) for (i, logo), lead in zip(todo, leads) if self.needs_text(logo, lead)]
        crops = [text_crop(arrays[i], logo["box"], margin) for i, logo in todo]
        read = {}
        for (_, logo), lines in zip(todo, self.reader.read(crops) if crops else []):
            logo["text"] = [line.text for line in lines]
            read[id(logo)] = lines
            if self.text_rule is None or vectors is None:
                found = self.names.match(lines, kinds=self.text_kinds, everyday=self.text_everyday)
                if found is not None and found.score >= self.text_threshold:
                    logo.update(brand=found.brand, source="text", text_score=round(found.score, 6))
        if self.text_rule is not None and vectors is not None:
            self.fuse([logo for logos in results for logo in logos], vectors, read)

    def fuse(self, logos: list[dict], vectors: np.ndarray, read: dict) -> None:
        """Decide every logo (in reading order, ``vectors`` their embeddings) by :attr:`text_rule`: its candidate
        brand and text channels (:func:`text_channels`; ``read``: ``id(logo)`` -> the lines read on it), the
        candidate's open-set score (:func:`brand_open_set`), and the rule's acceptance; a ``logistic_candidates``
        rule picks among :func:`logo_candidates` (``source`` is ``"text"`` when the picked brand's name was read)."""
        if self.text_rule.kind == CANDIDATES_RULE_KIND:
            tops = self.gallery.search(vectors, k=self.text_rule.top_k) if len(logos) else []
            for logo, vector, top in zip(logos, vectors, tops):
                candidates = logo_candidates(self.gallery, self.names, vector, top, logo["open_set_score"],
                                             read.get(id(logo)), self.text_kinds, self.text_everyday)
                pick, ok = self.text_rule.pick(logo["detection_score"], [c.open_set for c in candidates],
                                               [c.text for c in candidates])
                chosen = candidates[pick]
                if chosen.text[0] > 0:
                    logo.update(source="text", text_score=round(chosen.text[0], 6))
                logo["brand"] = chosen.brand if ok else UNKNOWN
            return
        channels = []
        for logo, vector in zip(logos, vectors):
            brand, score, match, other, found = candidate_channels(
                self.gallery, self.names, vector, logo["best"], logo["score"], logo["open_set_score"],
                read.get(id(logo)), self.text_kinds, self.text_everyday, self.text_threshold)
            channels.append((brand, score, match, other))
            if found is not None and found.brand == brand and found.score >= self.text_threshold:
                logo.update(source="text", text_score=round(found.score, 6))
        accepted = self.text_rule.accept([logo["detection_score"] for logo in logos], [c[1] for c in channels],
                                         [c[2:] for c in channels])
        for logo, (brand, _, _, _), ok in zip(logos, channels, accepted):
            logo["brand"] = brand if ok else UNKNOWN


def embedder_leads(gallery: BrandGallery, vectors: np.ndarray) -> list[float]:
    """Per embedded logo how far the embedder's best brand leads its second in ``gallery`` (cosine, best reference
    of each; 1 when the gallery holds one brand)."""
    if not len(vectors):
        return []
    return [top[0][1] - top[1][1] if len(top) > 1 else 1.0 for top in gallery.search(vectors, k=2)]


def reads_text(detection_score: float | None, lead: float | None, min_detection: float = TEXT_MIN_DETECTION,
               max_lead: float | None = TEXT_MAX_LEAD) -> bool:
    """The recogniser's reading gate for one logo: detected with at least ``min_detection`` (``None``: no detector)
    and its best brand leading the second by less than ``max_lead`` (``lead`` from :func:`embedder_leads`; not
    checked when either is ``None``). Calibration and benchmarks read the logos this says, so they see what the
    recogniser will."""
    if detection_score is not None and detection_score < min_detection:
        return False
    return lead is None or max_lead is None or lead < max_lead


def text_channels(names, lines, image_best: str, kinds: Sequence[str] = TEXT_KINDS, everyday: bool = False,
                  threshold: float = TEXT_THRESHOLD):
    """``(candidate brand, text_match, text_other, match)`` of one logo for a ``logistic_text`` rule
    (:data:`vision.brands.detection_rule.TEXT_FEATURES`): the brand its read ``lines`` name with a match scoring at
    least ``threshold``, else ``image_best`` (the embedder's); ``text_match``: the score of a match naming that
    candidate (0 without one); ``text_other``: where none does, the highest confidence of a line read with at least
    two letters or digits (text that names no brand, an everyday word or another brand: a price label, a product
    description), else 0. ``lines=None``: not read (both 0)."""
    from vision.brands.ocr import normalize

    found = names.match(lines, kinds=kinds, everyday=everyday) if lines else None
    brand = found.brand if found is not None and found.score >= threshold else image_best
    match = float(found.score) if found is not None and found.brand == brand else 0.0
    other = 0.0 if match > 0 or not lines else max(
        (float(line.score) for line in lines if len(normalize(line.text)) >= 2), default=0.0)
    return brand, min(max(match, 0.0), 1.0), min(max(other, 0.0), 1.0), found


def candidate_channels(gallery: BrandGallery, names, vector: np.ndarray, best: str, best_score: float,
                       open_set: float, lines, kinds: Sequence[str] = TEXT_KINDS, everyday: bool = False,
                       threshold: float = TEXT_THRESHOLD):
    """What a ``logistic_text`` rule decides one embedded logo on: ``(candidate brand, its open-set score,
    text_match, text_other, the text match or None)`` (:func:`text_channels`, :func:`brand_open_set`; ``best``,
    ``best_score``, ``open_set``: the embedder's best brand, its cosine and open-set score)."""
    brand, match, other, found = text_channels(names, lines, best, kinds, everyday, threshold)
    score = open_set if brand == best else brand_open_set(gallery, vector, best_score, open_set, brand)
    return brand, score, match, other, found


class Candidate(NamedTuple):
    """One candidate brand of a logo for a ``logistic_candidates`` rule: its open-set score, its text channels
    (``(text_match, text_other)``, :data:`vision.brands.detection_rule.TEXT_FEATURES`) and its rank among the
    embedder's brands (``None``: named by the text alone)."""
    brand: str
    open_set: float
    text: tuple[float, float]
    rank: int | None


def logo_candidates(gallery: BrandGallery, names, vector: np.ndarray, top: Sequence[tuple[str, float]],
                    open_set: float, lines, kinds: Sequence[str] = TEXT_KINDS,
                    everyday: bool = False) -> list[Candidate]:
    """The candidate brands of one embedded logo: the embedder's ``top`` brands (``gallery.search``'s ``(brand,
    cosine)``, best first; ``open_set``: the best one's open-set score), then every other brand the read ``lines``
    name (a match of ``kinds`` at any score, below :data:`TEXT_THRESHOLD` too). Each carries its own open-set score
    (the best one's, shifted by its cosine's distance to the best cosine: :func:`brand_open_set`), ``text_match`` (the
    score of the text's match naming it, 0 without one) and ``text_other`` (where its name was not read: the highest
    confidence of a line of at least two letters or digits, else 0; both 0 when ``lines`` is ``None``, not read)."""
    from vision.brands.ocr import normalize

    named: dict[str, float] = {}
    for found in names.candidates(lines) if lines else []:
        if found.how in kinds and (everyday or not found.everyday):
            named.setdefault(found.brand, min(max(float(found.score), 0.0), 1.0))
    other = max((min(max(float(line.score), 0.0), 1.0) for line in lines or []
                 if len(normalize(line.text)) >= 2), default=0.0)
    best_cosine = top[0][1] if top else 0.0
    out = [Candidate(brand, float(np.clip(open_set - (best_cosine - cosine), -2.0, 2.0)),
                     (named.get(brand, 0.0), 0.0 if brand in named else other), rank)
           for rank, (brand, cosine) in enumerate(top)]
    ranked = {c.brand for c in out}
    out += [Candidate(brand, brand_open_set(gallery, vector, best_cosine, open_set, brand), (score, 0.0), None)
            for brand, score in named.items() if brand not in ranked]
    return out


def brand_open_set(gallery: BrandGallery, vector: np.ndarray, best_score: float, open_set: float, brand: str) -> float:
    """The open-set score ``brand`` would have for one embedded logo whose best brand scores ``best_score`` (cosine)
    and ``open_set``: the same normalisation with ``brand``'s best reference's cosine in place of the best one (exact
    for the plain and background scores, whose subtracted part does not depend on the brand)."""
    rows = np.flatnonzero(np.asarray(gallery.owners) == brand)
    if not len(rows):
        return -2.0
    unit = np.asarray(vector, np.float64) / max(float(np.linalg.norm(vector)), 1e-12)
    cosine = float((gallery.vectors[rows] @ unit).max())
    return float(np.clip(open_set - (best_score - cosine), -2.0, 2.0))


def text_wanted(read_text: bool | None) -> bool:
    """Whether the recogniser reads text, for ``read_text`` of :meth:`BrandRecognizer.from_pretrained`: ``None`` reads
    when the ``[ocr]`` extra is installed and warns when it is not; ``True`` without it is an error."""
    from vision.brands.ocr import OCRUnavailable, missing_packages

    missing = missing_packages() if read_text is not False else []
    if missing and read_text:
        raise OCRUnavailable(f"reading text on logos needs {', '.join(missing)}: pip install 'vision-zoo[ocr]'")
    if missing:
        warnings.warn(f"the brand names on logos are not read: {', '.join(missing)} not installed "
                      "(pip install 'vision-zoo[ocr]'); logos are named by the image alone (read_text=False, "
                      "vision recognize --no-read-text: without this warning)", stacklevel=3)
    return not missing and read_text is not False


def text_crop(image: np.ndarray, box: Sequence[float], margin: float = TEXT_MARGIN) -> np.ndarray:
    """The pixels of ``box`` grown by ``margin`` of its width and height on each side, cut at the image's edges:
    what the text reader reads (a square crop would turn a wordmark's line into a mostly empty square)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    height, width = image.shape[:2]
    left, top = max(0, int(np.floor(x1 - dx))), max(0, int(np.floor(y1 - dy)))
    right, bottom = min(width, int(np.ceil(x2 + dx))), min(height, int(np.ceil(y2 + dy)))
    return np.ascontiguousarray(image[top:max(bottom, top + 1), left:max(right, left + 1)])


def embed_logos(extractor, images: ImageInput | Sequence[ImageInput], detector: Detector | None = None,
                margin: float = CROP_MARGIN) -> list[tuple[list[dict], np.ndarray]]:
    """Per image its detected logos (``{"box", "score"}``) and their embeddings, ``(n_logos, D)``.

    Each box is framed by :func:`~vision.crops.square_crop` with ``margin``; without a
    ``detector`` the whole frame is the one logo. An image without a detected logo gives ``([], (0, D))``.
    """
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    arrays = [to_rgb_array(image) for image in items]
    if detector is None:
        detections = [[{"box": [0.0, 0.0, float(a.shape[1]), float(a.shape[0])], "score": 1.0}] for a in arrays]
    elif isinstance(detector, Predictor):
        detections = [r.boxes for r in detector(arrays)]
    else:
        detections = detector.predict(arrays)
    crops, owners = [], []
    for i, (array, dets) in enumerate(zip(arrays, detections)):
        for det in dets:
            x1, y1, x2, y2 = det["box"]
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue   # a degenerate box has no pixels to embed
            # a whole frame is already the crop: no context to add around it
            crops.append(square_crop(array, det["box"], margin if detector is not None else 0.0))
            owners.append((i, det))
    vectors = extractor(crops) if crops else np.empty((0, extractor.dim), np.float32)
    kept: list[list[dict]] = [[] for _ in arrays]
    rows: list[list[int]] = [[] for _ in arrays]
    for row, (i, det) in enumerate(owners):
        kept[i].append(det)
        rows[i].append(row)
    return [(dets, vectors[r]) for dets, r in zip(kept, rows)]


def draw_brands(image: ImageInput, results: list[dict], path: str | os.PathLike) -> Path:
    """Write ``image`` with each logo's box, brand (or ``unknown``) and gallery score as a PNG."""
    from vision.inference import draw_detections

    return draw_detections(image, [{"box": r["box"], "label": r["brand"], "score": r["score"]} for r in results],
                           path)


def detect_and_score(extractor, detector, gallery, photos: Sequence, margin: float | None = None,
                     cohort_rows: Sequence[np.ndarray] | None = None, batch_size: int = 16,
                     progress=None) -> list[tuple[list[dict], list[str], np.ndarray]]:
    """Per photo (a path or an image) its detections (``{"box", "score"}`` at the detector's own confidence), each
    one's best brand and open-set score in ``gallery``, as the recogniser frames and embeds them
    (:func:`embed_logos`, :func:`score_logos`; ``margin``: default the gallery's ``crop_margin``)."""
    logos = detect_and_embed(extractor, detector, photos, gallery.crop_margin if margin is None else margin,
                             batch_size, progress)
    best, scores = score_logos(gallery, logos, cohort_rows)
    return [(dets, b, s) for (dets, _), b, s in zip(logos, best, scores)]


def detect_and_embed(extractor, detector, photos: Sequence, margin: float = CROP_MARGIN, batch_size: int = 16,
                     progress=None) -> list[tuple[list[dict], np.ndarray]]:
    """:func:`embed_logos` over ``photos``, ``batch_size`` at a time (``progress(n)`` after each batch)."""
    logos = []
    for start in range(0, len(photos), batch_size):
        chunk = list(photos[start:start + batch_size])
        logos += embed_logos(extractor, chunk, detector, margin)
        if progress is not None:
            progress(len(chunk))
    return logos


def score_logos(gallery: BrandGallery, logos: Sequence[tuple[list[dict], np.ndarray]],
                cohort_rows: Sequence[np.ndarray] | None = None) -> tuple[list[list[str]], list[np.ndarray]]:
    """Per photo the best brand and open-set score of each of its embedded logos (:func:`embed_logos`' output).
    ``cohort_rows``: per photo the background-cohort rows its logos are not compared with
    (:func:`vision.brands.detection_rule.source_rows`: crops cut from the same photos)."""
    best, scores = [], []
    for i, (dets, vectors) in enumerate(logos):
        if not dets:
            best.append([])
            scores.append(np.empty(0))
            continue
        b, _, s = gallery.open_set_scores(vectors, leave_out=cohort_mask(gallery, cohort_rows, i, len(dets)))
        best.append(b)
        scores.append(s)
    return best, scores


def cohort_mask(gallery: BrandGallery, cohort_rows: Sequence[np.ndarray] | None, photo: int,
                logos: int) -> np.ndarray | None:
    """The ``leave_out`` mask of :meth:`BrandGallery.open_set_scores` for the ``logos`` of one photo: its
    ``cohort_rows`` (see :func:`score_logos`) masked for each, or ``None`` when there is nothing to leave out."""
    if cohort_rows is None or not len(cohort_rows[photo]) or not len(gallery.background):
        return None
    leave_out = np.zeros((logos, len(gallery.background)), bool)
    leave_out[:, cohort_rows[photo]] = True
    return leave_out
