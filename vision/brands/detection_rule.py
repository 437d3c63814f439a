"""A decision rule on a detected logo's detection confidence *and* its gallery open-set score, calibrated for one
detector.

The gallery's own ``threshold`` judges a crop by its open-set score alone; on whole photos the detector's confidence
is a second, largely independent piece of evidence (a PLU sticker may look like some brand to the embedder while the
detector is unsure it is a logo at all). A :class:`DetectionRule` accepts a detection as a brand when

- ``kind="pair"``: ``detection_score >= min_detection_score`` and ``open_set_score >= threshold``;
- ``kind="logistic"``: ``detection_score >= min_detection_score`` and
  ``weights[0] * detection_score + weights[1] * open_set_score >= threshold`` (a logistic regression of known logos
  against impostor detections, its bias folded into the threshold);
- ``kind="logistic_text"`` (:data:`TEXT_RULE_KIND`): the same with the text read on the logo as two more channels,
  ``+ weights[2] * text_match + weights[3] * text_other`` (:data:`TEXT_FEATURES`: the score of the text match naming
  the logo's candidate brand, and the confidence of text read that names no brand or another one; both 0 where
  nothing was read). It also records the embedder it was calibrated with (:meth:`DetectionRule.check_pair`), since
  its open-set scores and the logos it reads depend on it. A gallery stores it beside the image-only rule
  (``text_rule``), and the recogniser applies it when it reads text (:mod:`vision.brands.recognition`).
- ``kind="logistic_candidates"`` (:data:`CANDIDATES_RULE_KIND`): the ``logistic_text`` score over several candidate
  brands per logo (the embedder's ``top_k`` brands and any brand its text names, however weakly), each with its own
  open-set score and text channels; the best-scoring candidate is the logo's brand when it passes the threshold
  (:meth:`DetectionRule.pick`). Its weights are fitted on candidates (the mark's brand against every other one,
  :func:`vision.brands.fusion.calibrate_candidate_rule`), then its threshold here on the picked candidates.

:func:`calibrate_detection_rule` sets it from whole photos: *known scenes* (photos with one known-brand mark and its
true box; the mark counts as found by any detection with IoU >= 0.5 to it, and as rejected when no such detection
passes the rule, missed detections included) and *impostor photos* (brand-free photos: every detection is a false
one). Among rules whose known-scene false-reject rate (FRR) stays within the budget it picks the lowest share of
impostor photos with any accepted detection (photo FAR), then the lowest detection FAR, then the lowest FRR; with
``max_impostor_photos`` a rule whose photo FAR is above it is refused (the impostor constraint is part of the fit).
The rule records the detector it was calibrated for (name and sha256): its detection confidences mean nothing for
another detector (:meth:`DetectionRule.matches`).

Stored in a gallery file as the ``detection_rule`` metadata field (:mod:`vision.brands.gallery`); galleries without one
keep
the crop-only threshold.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from vision.retrieval import open_set_threshold

RULE_KINDS = ("pair", "logistic")       # the image-only rules (build-gallery --decision-rule)
TEXT_RULE_KIND = "logistic_text"        # the rule fused with the text read on each logo
CANDIDATES_RULE_KIND = "logistic_candidates"   # the same score, choosing among several candidate brands per logo
FUSED_KINDS = (TEXT_RULE_KIND, CANDIDATES_RULE_KIND)   # rules over text channels, bound to their embedder
ALL_KINDS = (*RULE_KINDS, *FUSED_KINDS)
TEXT_FEATURES = ("text_match", "text_other")   # a logistic_text rule's text channels, each in [0, 1]
WEIGHTS = {"pair": 0, "logistic": 2, TEXT_RULE_KIND: 2 + len(TEXT_FEATURES),
           CANDIDATES_RULE_KIND: 2 + len(TEXT_FEATURES)}
IOU_MATCH = 0.5
OPEN_SET_BOUND = 2.0   # an open-set score is a cosine (-1..1) or a cosine minus a cosine (-2..2)
MAX_TOP_K = 50        # a logistic_candidates rule's top_k: more candidates than this is not a choice among a few
MAX_WEIGHT = 1e4       # a logistic coefficient past this is not a calibration (the shipped rule's are 9 and 13)
SHOWN_CHARS = 80       # of a stored value quoted in an error


class DetectionRuleError(ValueError):
    """A detection rule that cannot be calibrated, or a malformed stored one."""


@dataclass(frozen=True)
class DetectionRule:
    kind: str
    detector_name: str
    detector_sha256: str
    min_detection_score: float
    threshold: float
    weights: tuple[float, ...] = ()
    calibration: dict = field(default_factory=dict, compare=False)
    # the logo verifier the detections were rescored by (vision.brands.verification; then detector_* name the pair):
    # {"name", "sha256", "power", "margin", "detector": {"name", "sha256"}}, or empty
    verifier: dict = field(default_factory=dict, compare=False)
    # the embedder of a logistic_text rule: {"name", "sha256"} (its open-set scores and the logos it reads are its)
    embedder: dict = field(default_factory=dict)
    # a logistic_candidates rule: how many of the embedder's best brands are candidates (0 for the other kinds)
    top_k: int = 0

    def __post_init__(self):
        if self.kind not in ALL_KINDS:
            raise DetectionRuleError(f"unknown rule kind {self.kind!r}; choose one of {ALL_KINDS}")
        if not self.detector_name or not self.detector_sha256:
            raise DetectionRuleError("a detection rule must record its detector's name and sha256")
        for name, value in (("min_detection_score", self.min_detection_score), ("threshold", self.threshold),
                            *((f"weights[{i}]", w) for i, w in enumerate(self.weights))):
            if type(value) not in (int, float) or not math.isfinite(value):
                raise DetectionRuleError(f"{name} must be a finite number, got {_shown(value)}")
        if not 0 <= self.min_detection_score <= 1:
            raise DetectionRuleError(f"min_detection_score must be in [0, 1], got {self.min_detection_score}")
        if len(self.weights) != WEIGHTS[self.kind]:
            raise DetectionRuleError(f"a {self.kind!r} rule has {WEIGHTS[self.kind]} weights, got "
                                     f"{len(self.weights)}")
        if self.kind in FUSED_KINDS or self.embedder:
            embedder = self.embedder
            if not (isinstance(embedder, dict) and all(isinstance(embedder.get(k), str) and embedder[k]
                                                       for k in ("name", "sha256"))):
                raise DetectionRuleError(f"a {self.kind!r} rule must record its embedder: an object with string "
                                         f"'name' and 'sha256', got {_shown(embedder)}")
        if self.kind == CANDIDATES_RULE_KIND:
            if type(self.top_k) is not int or not 1 <= self.top_k <= MAX_TOP_K:
                raise DetectionRuleError(f"a {self.kind!r} rule's top_k (the embedder's best brands it chooses "
                                         f"among) must be an integer from 1 to {MAX_TOP_K}, got {_shown(self.top_k)}")
        elif self.top_k:
            raise DetectionRuleError(f"top_k is for a {CANDIDATES_RULE_KIND!r} rule, not {self.kind!r}")
        for i, w in enumerate(self.weights):
            if abs(w) > MAX_WEIGHT:
                raise DetectionRuleError(f"weights[{i}] must be in [-{MAX_WEIGHT:g}, {MAX_WEIGHT:g}] (a logistic "
                                         f"coefficient of a score in [0, 1] or [-2, 2]), got {w!r}")
        low, high = self.score_range()
        if not low < self.threshold <= high:
            # at or below the lowest combined score every detection is accepted, above the highest none is
            raise DetectionRuleError(f"threshold must be in ({low:g}, {high:g}] (the range of this {self.kind!r} "
                                     f"rule's score), got {self.threshold!r}")
        if self.verifier:
            _check_verifier(self.verifier)

    def score_range(self) -> tuple[float, float]:
        """The lowest and highest value :meth:`combined` can take (detection scores in [0, 1], open-set scores in
        [-2, 2])."""
        if self.kind == "pair":
            return -OPEN_SET_BOUND, OPEN_SET_BOUND
        w_det, w_score, *w_text = self.weights
        low = min(0.0, w_det) - OPEN_SET_BOUND * abs(w_score) + sum(min(0.0, w) for w in w_text)
        high = max(0.0, w_det) + OPEN_SET_BOUND * abs(w_score) + sum(max(0.0, w) for w in w_text)
        return low, high

    def combined(self, detection_scores, open_set_scores, text=None) -> np.ndarray:
        """The score the ``threshold`` applies to: the open-set score (``pair``) or the weighted sum (``logistic``;
        ``logistic_text`` and ``logistic_candidates`` add ``text``, ``(detections, 2)``: :data:`TEXT_FEATURES`,
        zeros when not given)."""
        det = np.asarray(detection_scores, np.float64)
        score = np.asarray(open_set_scores, np.float64)
        if self.kind == "pair":
            return score
        out = self.weights[0] * det + self.weights[1] * score
        if self.kind in FUSED_KINDS and text is not None:
            out = out + np.asarray(text, np.float64).reshape(len(det), len(TEXT_FEATURES)) @ np.array(self.weights[2:])
        return out

    def accept(self, detection_scores, open_set_scores, text=None) -> np.ndarray:
        """Per detection: accepted as its (candidate) brand (``True``) or ``unknown``."""
        det = np.asarray(detection_scores, np.float64)
        return (det >= self.min_detection_score) & (self.combined(det, open_set_scores, text) >= self.threshold)

    def pick(self, detection_score: float, open_set_scores, text=None) -> tuple[int, bool]:
        """Of one detection's candidate brands (their ``open_set_scores`` and ``text`` channels, ``(candidates,
        2)``), the index of the best-scoring one (the first on a tie) and whether the rule accepts it. With weights
        ``(1, 1, 2, -2)`` and threshold 1.5, ``pick(0.9, [0.5, 0.2], [[0, 0], [0.6, 0]])`` is ``(1, True)``: the
        second brand, its name read, scores 2.6 against 2.3."""
        scores = self.combined(np.full(len(open_set_scores), detection_score), open_set_scores, text)
        if not len(scores):
            return -1, False
        best = int(np.argmax(scores))
        return best, bool(detection_score >= self.min_detection_score and scores[best] >= self.threshold)

    def matches(self, name: str, sha256: str) -> bool:
        """Whether a detector (its card's ``name`` and ``sha256``) is the one this rule was calibrated for."""
        return bool(sha256) and name == self.detector_name and sha256 == self.detector_sha256

    def check_pair(self, detector_card, embedder_card) -> None:
        """Refuse (:class:`DetectionRuleError`, naming both) a detector or embedder other than the pair this rule
        was calibrated for (cards' ``name`` and ``sha256``; the embedder is checked when the rule records one)."""
        name, sha = getattr(detector_card, "name", ""), getattr(detector_card, "sha256", "")
        if not self.matches(name, sha):
            raise DetectionRuleError(f"this {self.kind!r} rule was calibrated for detector {self.detector_name!r} "
                                     f"(sha256 {self.detector_sha256[:12]}...), not {name or 'this detector'!r}"
                                     f"{f' (sha256 {sha[:12]}...)' if sha else ' (no sha256)'}: calibrate one for "
                                     "this pair (vision build-gallery --detector ... --text-rule)")
        if self.embedder:
            name, sha = getattr(embedder_card, "name", ""), getattr(embedder_card, "sha256", "")
            if not (sha and name == self.embedder["name"] and sha == self.embedder["sha256"]):
                raise DetectionRuleError(f"this {self.kind!r} rule was calibrated with embedder "
                                         f"{self.embedder['name']!r} (sha256 {self.embedder['sha256'][:12]}...), not "
                                         f"{name or 'this embedder'!r}{f' (sha256 {sha[:12]}...)' if sha else ''}: "
                                         "calibrate one for this pair (vision build-gallery --text-rule)")

    def to_json(self) -> dict:
        return {"kind": self.kind, "detector": {"name": self.detector_name, "sha256": self.detector_sha256},
                "min_detection_score": round(self.min_detection_score, 6), "threshold": round(self.threshold, 6),
                "weights": [round(w, 6) for w in self.weights], "calibration": self.calibration,
                **({"verifier": self.verifier} if self.verifier else {}),
                **({"embedder": self.embedder} if self.embedder else {}),
                **({"top_k": self.top_k} if self.top_k else {})}

    @classmethod
    def from_json(cls, record, where: str = "detection_rule") -> "DetectionRule":
        """The rule of a stored record, every field checked (:class:`DetectionRuleError` naming ``where``)."""
        if not isinstance(record, dict):
            raise DetectionRuleError(f"{where} must be a JSON object, got {type(record).__name__}")
        detector = record.get("detector")
        if not isinstance(detector, dict) or not all(isinstance(detector.get(k), str) for k in ("name", "sha256")):
            raise DetectionRuleError(f"{where}.detector must be an object with string 'name' and 'sha256'")
        weights = record.get("weights", [])
        if not isinstance(weights, list):
            raise DetectionRuleError(f"{where}.weights must be a list of numbers")
        calibration = record.get("calibration", {})
        if not isinstance(calibration, dict):
            raise DetectionRuleError(f"{where}.calibration must be a JSON object")
        verifier = record.get("verifier", {})
        if not isinstance(verifier, dict):
            raise DetectionRuleError(f"{where}.verifier must be a JSON object")
        embedder = record.get("embedder", {})
        if not isinstance(embedder, dict):
            raise DetectionRuleError(f"{where}.embedder must be a JSON object")
        try:
            return cls(record.get("kind"), detector["name"], detector["sha256"], record.get("min_detection_score"),
                       record.get("threshold"), tuple(weights), calibration, verifier, embedder,
                       record.get("top_k", 0))
        except DetectionRuleError as e:
            raise DetectionRuleError(f"{where}: {e}") from None


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + f"... ({len(text)} characters)"


def _check_verifier(spec: dict) -> None:
    """The ``verifier`` record: a zoo name (never a path: it is loaded and run), a sha256, and the values
    :class:`vision.brands.verification.VerifiedDetector` accepts (power in [0, 1], a crop margin from 0 to 1,
    detector_conf
    in (0, 1])."""
    from vision.crops import check_margin
    from vision.names import check_plain_name

    check_plain_name(spec.get("name"), "verifier.name (a zoo model name)", DetectionRuleError)
    if not isinstance(spec.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", spec["sha256"]):
        raise DetectionRuleError(f"verifier.sha256 must be a sha256 hex digest, got {_shown(spec.get('sha256'))}")
    for key, low, high in (("power", 0.0, 1.0), ("detector_conf", 0.0, 1.0)):
        value = spec.get(key)
        if key == "detector_conf" and value is None:
            continue   # optional: the rule's own confidence applies to the detector too
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high or (key == "detector_conf" and value == 0):
            interval = "(0, 1]" if key == "detector_conf" else f"[{low:g}, {high:g}]"
            raise DetectionRuleError(f"verifier.{key} must be a number in {interval}, got {_shown(value)}")
    try:
        check_margin(spec.get("margin"), "verifier.margin")
    except ValueError as e:
        raise DetectionRuleError(str(e)) from None
    detector = spec.get("detector")
    if not isinstance(detector, dict) or not all(isinstance(detector.get(k), str) and detector[k]
                                                 for k in ("name", "sha256")):
        raise DetectionRuleError("verifier.detector must be an object with string 'name' and 'sha256'")


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class RuleSet:
    """Detections of one set of photos: per detection its photo (index), detection score and open-set score;
    ``photos`` counts every photo, those without a detection too. For known scenes only detections that match the
    true mark (IoU >= 0.5) are listed, ``correct`` (optional) says whether each one's best brand is the mark's.
    ``text`` (optional, ``(detections, 2)``): the text channels of a ``logistic_text`` rule (:data:`TEXT_FEATURES`;
    then ``open_set`` and ``correct`` are the candidate brand's)."""
    photo: np.ndarray
    detection: np.ndarray
    open_set: np.ndarray
    photos: int
    correct: np.ndarray | None = None
    text: np.ndarray | None = None

    def __post_init__(self):
        self.photo = np.asarray(self.photo, np.int64)
        self.detection = np.asarray(self.detection, np.float64)
        self.open_set = np.asarray(self.open_set, np.float64)
        if not len(self.photo) == len(self.detection) == len(self.open_set):
            raise DetectionRuleError(f"{len(self.photo)} photo indices, {len(self.detection)} detection scores and "
                                     f"{len(self.open_set)} open-set scores: one of each per detection")
        if self.correct is not None:
            self.correct = np.asarray(self.correct, bool)
            if len(self.correct) != len(self.photo):
                raise DetectionRuleError(f"{len(self.correct)} 'correct' flags for {len(self.photo)} detections")
        if self.text is not None:
            self.text = np.asarray(self.text, np.float64).reshape(-1, len(TEXT_FEATURES))
            if len(self.text) != len(self.photo) or not np.all((self.text >= 0) & (self.text <= 1)):
                raise DetectionRuleError(f"text: one row of {len(TEXT_FEATURES)} values in [0, 1] per detection "
                                         f"({len(self.photo)}), got {len(self.text)} rows")
        if len(self.photo) and (self.photo.min() < 0 or self.photo.max() >= self.photos):
            raise DetectionRuleError(f"photo indices must be in [0, {self.photos})")

    def photo_accepted(self, accepted: np.ndarray) -> np.ndarray:
        """Per photo: whether any of its detections is accepted."""
        out = np.zeros(self.photos, bool)
        out[self.photo[accepted]] = True
        return out

    def photo_max(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Per photo the largest of ``values`` over its detections (where ``mask``); ``-inf`` without one."""
        out = np.full(self.photos, -np.inf)
        keep = np.ones(len(values), bool) if mask is None else mask
        np.maximum.at(out, self.photo[keep], np.asarray(values, np.float64)[keep])
        return out


def rule_figures(rule: DetectionRule, known: RuleSet, impostors: RuleSet, found_at: float = 0.0) -> dict:
    """Known-scene false-reject rates: ``frr`` end to end (a mark without an accepted matching detection, marks
    the detector never found included) and ``frr_found`` (of the marks with a matching detection scoring at least
    ``found_at``: the rule's own rejections); detection FAR and photo FAR on the impostor photos; the counts."""
    known_accepted = rule.accept(known.detection, known.open_set, known.text)
    known_ok = known.photo_accepted(known_accepted)
    found = np.zeros(known.photos, bool)
    found[known.photo[known.detection >= found_at]] = True
    accepted = rule.accept(impostors.detection, impostors.open_set, impostors.text)
    right = {} if known.correct is None else {"known_accepted_correct": round(float(
        known.photo_accepted(known_accepted & known.correct).mean()), 4)}
    return {"frr": round(float(1 - known_ok.mean()), 4),
            "frr_found": round(float(1 - known_ok[found].mean()), 4) if found.any() else 1.0, **right,
            "far_detections": round(float(accepted.mean()), 4) if len(accepted) else 0.0,
            "far_photos": round(float(impostors.photo_accepted(accepted).mean()), 4),
            "found_at_confidence": found_at, "known_scenes": known.photos,
            "known_missed": int(known.photos - found.sum()),
            "impostor_photos": impostors.photos, "impostor_detections": int(len(accepted))}


def _threshold(known_best: np.ndarray, impostor_best: np.ndarray, max_false_reject: float) -> float | None:
    """:func:`vision.retrieval.open_set_threshold` on per-photo best scores (-inf: a photo without a detection the
    rule could accept); None when the budget cannot be met (too many known photos have none)."""
    known = np.sort(known_best)
    if not np.isfinite(known[int(math.floor(max_false_reject * len(known) + 1e-9))]):
        return None
    return open_set_threshold(known, impostor_best[np.isfinite(impostor_best)], max_false_reject)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 50) -> tuple[np.ndarray, float]:
    """Weights and bias of a class-balanced, L2-regularised logistic regression (Newton's method, numpy only)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if not (0 < y.sum() < len(y)):
        raise DetectionRuleError("logistic calibration needs both known and impostor detections")
    sample_weight = np.where(y > 0, 0.5 / y.sum(), 0.5 / (len(y) - y.sum())) * len(y)
    mean, std = x.mean(0), np.maximum(x.std(0), 1e-9)
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    penalty = np.diag([l2] * (z.shape[1] - 1) + [0.0]) * len(y)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(z @ w, -30, 30)))
        gradient = z.T @ (sample_weight * (p - y)) + penalty @ w
        hessian = (z * (sample_weight * p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(w)), gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = w[:-1] / std
    return weights, float(w[-1] - (weights * mean).sum())


def calibrate_detection_rule(known: RuleSet, impostors: RuleSet, detector_name: str, detector_sha256: str,
                             kind: str = "pair", max_false_reject: float = 0.10, min_detection_score: float = 0.05,
                             budget: str = "found", known_set: str = "", impostor_set: str = "",
                             embedder: dict | None = None, max_impostor_photos: float | None = None,
                             budget_photos: np.ndarray | None = None, weights: Sequence[float] | None = None,
                             top_k: int = 0) -> DetectionRule:
    """The rule of ``kind`` with known-scene FRR <= ``max_false_reject`` and the fewest impostor photos with an
    accepted detection (see the module docstring). ``min_detection_score``: the confidence the detections were
    collected at (the lowest detection threshold a ``pair`` rule may pick; a ``logistic`` rule keeps it as its
    floor). ``budget``: ``"found"`` bounds the FRR of the marks the detector finds at that confidence (the rule's
    own rejections, as the crop threshold's budget bounds rejections of crops at the true box); ``"all"`` bounds
    the end-to-end FRR, marks the detector never finds included (unreachable when it misses more than the
    budget). ``kind="logistic_text"`` fits the text channels of both sets too (their ``text``; zeros where a set has
    none) and needs ``embedder`` (``{"name", "sha256"}``). ``max_impostor_photos``: refuse a rule that accepts a
    brand on more than this share of the impostor photos (the issue's "<= 5% of brand-free photos at FRR <= 10%").
    ``budget_photos``: a boolean mask of the known photos the FRR budget counts (default all; e.g. the symbol scenes
    only, where wordmark scenes are there to fit the text channels' weights); every known photo is fitted on.
    ``weights``: a logistic kind's weights fitted elsewhere, only the threshold is set here (required by
    ``kind="logistic_candidates"``, whose sets hold each detection's picked candidate and whose ``top_k`` is given;
    :func:`vision.brands.fusion.calibrate_candidate_rule`)."""
    if kind not in ALL_KINDS:
        raise DetectionRuleError(f"unknown rule kind {kind!r}; choose one of {ALL_KINDS}")
    if not 0 <= max_false_reject < 1:
        raise DetectionRuleError(f"max_false_reject must be in [0, 1), got {max_false_reject}")
    if known.photos == 0 or impostors.photos == 0:
        raise DetectionRuleError(f"calibration needs known scenes and impostor photos, got {known.photos} and "
                                 f"{impostors.photos}")
    if budget not in ("found", "all"):
        raise DetectionRuleError(f"budget must be 'found' or 'all', got {budget!r}")
    if kind == CANDIDATES_RULE_KIND and weights is None:
        raise DetectionRuleError(f"a {kind!r} rule's weights are fitted on candidate brands: calibrate it with "
                                 "vision.brands.fusion.calibrate_candidate_rule")
    floor = float(min_detection_score)
    detected = known.detection >= floor
    # the known photos the FRR budget counts: those with a matching detection at the floor, or all of them
    counted = np.zeros(known.photos, bool)
    counted[known.photo[detected]] = True
    if budget == "all":
        counted[:] = True
    if budget_photos is not None:
        counted &= np.asarray(budget_photos, bool)
    if not counted.any():
        raise DetectionRuleError(f"the detector finds none of the {known.photos} known marks at confidence {floor}")
    if kind == "pair":
        # candidate detection thresholds: the floor and every known detection score above it
        candidates = np.unique(np.concatenate([[floor], known.detection[detected]]))
        best = None
        for t_det in candidates:
            t_score = _threshold(known.photo_max(known.open_set, known.detection >= t_det)[counted],
                                 impostors.photo_max(impostors.open_set, impostors.detection >= t_det),
                                 max_false_reject)
            if t_score is None:
                break   # higher detection thresholds only reject more marks
            rule = DetectionRule("pair", detector_name, detector_sha256, float(t_det), t_score)
            figures = rule_figures(rule, known, impostors, floor)
            key = (figures["far_photos"], figures["far_detections"], figures["frr"])
            if best is None or key < best[0]:
                best = (key, rule)
        if best is None:
            raise DetectionRuleError(f"no rule keeps the known-scene FRR within {max_false_reject}: the detector "
                                     f"misses {int(known.photos - len(np.unique(known.photo[detected])))} of "
                                     f"{known.photos} marks at confidence {floor}")
        rule = best[1]
        extra = {}
    else:
        text = kind in FUSED_KINDS
        if text and not embedder:
            raise DetectionRuleError(f"a {kind!r} rule records its embedder: give embedder={{'name', 'sha256'}}")
        known_text, impostor_text = (np.zeros((len(s.photo), len(TEXT_FEATURES))) if s.text is None else s.text
                                     for s in (known, impostors))
        seen = impostors.detection >= floor
        x = np.stack([np.concatenate([known.detection[detected], impostors.detection[seen]]),
                      np.concatenate([known.open_set[detected], impostors.open_set[seen]])], 1)
        if text:
            x = np.hstack([x, np.concatenate([known_text[detected], impostor_text[seen]])])
        y = np.concatenate([np.ones(int(detected.sum())), np.zeros(int(seen.sum()))])
        fitted = weights is None
        weights, bias = fit_logistic(x, y) if fitted else (weights, None)
        weights = tuple(float(w) for w in weights)
        probe = DetectionRule(kind, detector_name, detector_sha256, floor, 0.0, weights,
                              embedder=dict(embedder or {}), top_k=top_k)
        threshold = _threshold(
            known.photo_max(probe.combined(known.detection, known.open_set, known_text), detected)[counted],
            impostors.photo_max(probe.combined(impostors.detection, impostors.open_set, impostor_text), seen),
            max_false_reject)
        if threshold is None:
            raise DetectionRuleError(f"no rule keeps the known-scene FRR within {max_false_reject}: too many marks "
                                     f"are missed at confidence {floor}")
        rule = DetectionRule(kind, detector_name, detector_sha256, floor, threshold, weights,
                             embedder=dict(embedder or {}), top_k=top_k)
        extra = {} if not fitted else {"bias": round(bias, 6), "probability_at_threshold": round(
            1 / (1 + math.exp(-(threshold + bias))), 4)}
        if text:
            extra["features"] = ["detection", "open_set", *TEXT_FEATURES]
            extra["read_known"] = int((known_text[detected].max(1, initial=0) > 0).sum()) if len(known_text) else 0
            extra["read_impostors"] = int((impostor_text[seen].max(1, initial=0) > 0).sum()) \
                if len(impostor_text) else 0
    figures = rule_figures(rule, known, impostors, floor)
    if max_impostor_photos is not None:
        extra["max_impostor_photos"] = max_impostor_photos
        if figures["far_photos"] > max_impostor_photos:
            raise DetectionRuleError(
                f"the impostor constraint is not met: at known-scene FRR <= {max_false_reject} the rule accepts a "
                f"brand on {figures['far_photos']:.3f} of the {impostors.photos} impostor photos (at most "
                f"{max_impostor_photos} allowed)")
    record = {"method": "known-scene FRR <= max_false_reject, fewest impostor photos with an accepted detection",
              "max_false_reject": max_false_reject, "budget": "frr_found" if budget == "found" else "frr",
              "collected_at_confidence": floor, **figures, **extra,
              **({} if budget_photos is None else {"budget_photos": int(np.sum(budget_photos))}),
              "known_set": known_set, "impostor_set": impostor_set}
    return DetectionRule(rule.kind, rule.detector_name, rule.detector_sha256, rule.min_detection_score,
                         rule.threshold, rule.weights, record, embedder=rule.embedder, top_k=rule.top_k)


def known_scene_set(detections: Sequence[Sequence[dict]], open_set: Sequence[np.ndarray],
                    boxes: Sequence[Sequence[float]], best: Sequence[Sequence[str]] | None = None,
                    brands: Sequence[str] | None = None, text: Sequence[np.ndarray] | None = None) -> RuleSet:
    """A :class:`RuleSet` of known scenes: per photo its detections (``{"box", "score"}``), their open-set scores
    and the true box of its mark; detections not overlapping it (IoU < 0.5) are left out (they are neither the mark
    nor a brand-free region). With ``best`` (per photo each detection's best brand) and ``brands`` (the mark's),
    each kept detection's ``correct`` flag; ``text``: per photo its detections' text channels (``(n, 2)``)."""
    photo, det, score, correct, channels = [], [], [], [], []
    for i, (dets, scores, box) in enumerate(zip(detections, open_set, boxes)):
        for j, (d, s) in enumerate(zip(dets, scores)):
            if iou(d["box"], box) >= IOU_MATCH:
                photo.append(i)
                det.append(d["score"])
                score.append(s)
                correct.append(best is not None and brands is not None and best[i][j] == brands[i])
                if text is not None:
                    channels.append(np.asarray(text[i], np.float64)[j])
    return RuleSet(np.array(photo, np.int64), np.array(det), np.array(score), len(detections),
                   np.array(correct, bool) if best is not None and brands is not None else None,
                   None if text is None else np.array(channels).reshape(-1, len(TEXT_FEATURES)))


def photo_set(detections: Sequence[Sequence[dict]], open_set: Sequence[np.ndarray],
              text: Sequence[np.ndarray] | None = None) -> RuleSet:
    """A :class:`RuleSet` of brand-free photos: every detection counts (``text``: as in :func:`known_scene_set`)."""
    photo = [i for i, dets in enumerate(detections) for _ in dets]
    det = [d["score"] for dets in detections for d in dets]
    score = [float(s) for scores in open_set for s in scores]
    channels = None if text is None else np.concatenate(
        [np.asarray(t, np.float64).reshape(-1, len(TEXT_FEATURES)) for t in text] or
        [np.zeros((0, len(TEXT_FEATURES)))])
    return RuleSet(np.array(photo, np.int64), np.array(det), np.array(score), len(detections), text=channels)


def source_rows(photos: Sequence, groups: Sequence[str], by: str = "folder") -> list[np.ndarray]:
    """Per photo the rows of a background cohort cut from it (``by="photo"``) or from any photo of its folder
    (``"folder"``): ``groups`` names each cohort row's source photo (``vision make-impostors``' manifest ``source``,
    relative to the dataset root, e.g. ``train/Fruit/Apple/x.jpg``), matched as a path suffix of the photo's path.
    A detection on a photo is scored without those crops: they are near-copies (a Grocery Store class folder is a
    series of shots of the same produce), so the score would say little of a new photo (the shipped gallery's
    threshold accepts a brand on 13.5% of brand-free train photos scored without their own crops, 25.2% without
    their folder's, and on 40.3% of val photos)."""
    from pathlib import PurePath

    if by not in ("photo", "folder"):
        raise DetectionRuleError(f"by must be 'photo' or 'folder', got {by!r}")

    def key(path) -> tuple[str, ...]:
        path = PurePath(str(path))
        return (path if by == "photo" else path.parent).parts

    by_tail: dict[tuple[str, ...], list[int]] = {}
    for row, group in enumerate(groups):
        by_tail.setdefault(key(group), []).append(row)
    lengths = sorted({len(tail) for tail in by_tail})
    out = []
    for photo in photos:
        parts = key(photo)
        rows = [r for n in lengths if n <= len(parts) for r in by_tail.get(parts[-n:], ())]
        out.append(np.array(sorted(rows), np.int64))
    return out
