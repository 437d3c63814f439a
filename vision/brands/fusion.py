"""Calibrating the text rule on whole photos: the text read on each detected logo, as the recogniser reads it, and
the ``logistic_text`` rule (:mod:`vision.brands.detection_rule`) fitted on those channels.

The same photos as the image-only rule: known scenes (one known-brand mark and its true box each: only the mark's
detections are read) and brand-free photos (every detection is a false one). A logo is read when the recogniser
would read it (:data:`~vision.brands.recognition.TEXT_MIN_DETECTION`, :data:`~vision.brands.recognition.TEXT_MAX_LEAD`),
so the rule is fitted on what it will see; every logo gets its candidate brand, that brand's open-set score and the
two text channels (:func:`vision.brands.recognition.candidate_channels`). A ``logistic_candidates`` rule
(:func:`calibrate_candidate_rule`) sees every logo's candidate brands instead (:func:`vision.brands.recognition.
logo_candidates`: the embedder's ``top_k`` and any brand the text names), its weights fitted on them."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from vision.brands.detection_rule import (
    CANDIDATES_RULE_KIND,
    IOU_MATCH,
    TEXT_RULE_KIND,
    DetectionRule,
    DetectionRuleError,
    calibrate_detection_rule,
    fit_logistic,
    iou,
    known_scene_set,
    photo_set,
)
from vision.brands.recognition import (
    TEXT_KINDS,
    TEXT_MARGIN,
    TEXT_THRESHOLD,
    candidate_channels,
    cohort_mask,
    embedder_leads,
    logo_candidates,
    reads_text,
    text_crop,
)

MAX_IMPOSTOR_PHOTOS = 0.05   # at most this share of brand-free photos with a false brand (issue 27's constraint)


def text_gate(gallery, logos, keep: Callable[[int, dict], bool] | None = None) -> list[list[bool]]:
    """Per photo, per detection whether the recogniser reads it (:func:`~vision.brands.recognition.reads_text` on
    its detection score and :func:`~vision.brands.recognition.embedder_leads`; and ``keep(photo index, detection)``)."""
    out = []
    for i, (dets, vectors) in enumerate(logos):
        leads = embedder_leads(gallery, vectors) if len(dets) else []
        out.append([reads_text(d["score"], lead) and (keep is None or keep(i, d)) for d, lead in zip(dets, leads)])
    return out


def read_logos(reader, photos: Sequence, logos, gate: list[list[bool]]) -> list[list]:
    """Per photo (a path or an image), per detection the lines ``reader`` reads on its box framed as the recogniser
    frames it (``[(text, score)]``), or ``None`` where ``gate`` says it is not read."""
    from vision.data.inputs import to_rgb_array

    out = []
    for photo, (dets, _), flags in zip(photos, logos, gate):
        if not any(flags):
            out.append([None] * len(dets))
            continue
        image = to_rgb_array(photo)
        lines = iter(reader.read([text_crop(image, d["box"], TEXT_MARGIN) for d, f in zip(dets, flags) if f]))
        out.append([[(ln.text, float(ln.score)) for ln in next(lines)] if f else None for f in flags])
    return out


def channel_table(gallery, names, logos, reads, cohort_rows=None, top_k: int = 0) -> list[list[dict]]:
    """Per photo, per detection every channel: ``box``, ``det``, the embedder's ``best`` and ``open_set``, the text's
    ``named`` brand (a match scoring >= ``TEXT_THRESHOLD``, else None), and the text rule's ``candidate``, its
    ``cand_open_set`` and ``text`` channels; with ``top_k``, also ``candidates``: the
    :func:`~vision.brands.recognition.logo_candidates` of the embedder's ``top_k`` brands. ``cohort_rows``: per photo
    the background-cohort rows its logos are not compared with (:func:`vision.brands.detection_rule.source_rows`)."""
    from vision.brands.ocr import TextLine

    table = []
    for i, ((dets, vectors), read) in enumerate(zip(logos, reads)):
        if not dets:
            table.append([])
            continue
        best, cosine, open_set = gallery.open_set_scores(vectors,
                                                         leave_out=cohort_mask(gallery, cohort_rows, i, len(dets)))
        tops = gallery.search(vectors, k=top_k) if top_k else [None] * len(dets)
        rows = []
        for d, v, b, c, o, lines, top in zip(dets, vectors, best, cosine, open_set, read, tops):
            lines = None if lines is None else [TextLine(t, s) for t, s in lines]
            cand, cand_o, match, other, found = candidate_channels(gallery, names, v, b, float(c), float(o), lines,
                                                                   TEXT_KINDS, False, TEXT_THRESHOLD)
            rows.append({"box": [float(x) for x in d["box"]], "det": float(d["score"]), "best": b,
                         "open_set": float(o), "named": found.brand if found is not None
                         and found.score >= TEXT_THRESHOLD else None, "candidate": cand,
                         "cand_open_set": float(cand_o), "text": (match, other), "read": lines is not None})
            if top is not None:
                rows[-1]["candidates"] = logo_candidates(gallery, names, v, top, float(o), lines, TEXT_KINDS)
        table.append(rows)
    return table


def rule_set(table, boxes=None, brands=None):
    """The :class:`~vision.brands.detection_rule.RuleSet` of a :func:`channel_table` (known scenes with their marks'
    ``boxes`` and ``brands``; brand-free photos without)."""
    dets = [[{"box": r["box"], "score": r["det"]} for r in photo] for photo in table]
    scores = [np.array([r["cand_open_set"] for r in photo]) for photo in table]
    text = [np.array([r["text"] for r in photo], np.float64).reshape(-1, 2) for photo in table]
    if boxes is None:
        return photo_set(dets, scores, text)
    return known_scene_set(dets, scores, boxes, [[r["candidate"] for r in photo] for photo in table], brands, text)


def marks(boxes: Sequence[Sequence[float]]) -> Callable[[int, dict], bool]:
    """``keep`` for :func:`text_gate` on known scenes: only the detections of each photo's mark are read."""
    return lambda i, d: iou(d["box"], boxes[i]) >= IOU_MATCH


def calibrate_text_rule(known_table, scenes: Sequence[dict], free_table, detector_card, embedder_card,
                        max_false_reject: float = 0.10, floor: float = 0.10, budget: str = "found",
                        max_impostor_photos: float | None = MAX_IMPOSTOR_PHOTOS, known_set: str = "",
                        impostor_set: str = "", budget_photos=None) -> DetectionRule:
    """The ``logistic_text`` rule of the known scenes' and brand-free photos' :func:`channel_table`s (``scenes``:
    their ``box`` and ``brand``) for this detector and embedder (cards), refused when it accepts a brand on more than
    ``max_impostor_photos`` of the brand-free photos; ``budget_photos``: the known scenes the FRR budget counts
    (:func:`~vision.brands.detection_rule.calibrate_detection_rule`)."""
    return calibrate_detection_rule(
        rule_set(known_table, [s["box"] for s in scenes], [s["brand"] for s in scenes]), rule_set(free_table),
        detector_card.name, detector_card.sha256, kind=TEXT_RULE_KIND, max_false_reject=max_false_reject,
        min_detection_score=floor, budget=budget, known_set=known_set, impostor_set=impostor_set,
        embedder={"name": embedder_card.name, "sha256": embedder_card.sha256},
        max_impostor_photos=max_impostor_photos, budget_photos=budget_photos)


def picked_table(rule: DetectionRule, table) -> list[list[dict]]:
    """A :func:`channel_table` (built with the rule's ``top_k``) with each detection's candidate, ``cand_open_set``
    and ``text`` those of the candidate ``rule`` picks (:meth:`~vision.brands.detection_rule.DetectionRule.pick`),
    and ``accepted``: whether it accepts it."""
    out = []
    for photo in table:
        rows = []
        for r in photo:
            cands = r["candidates"]
            pick, ok = rule.pick(r["det"], [c.open_set for c in cands], [c.text for c in cands])
            rows.append({**r, "candidate": cands[pick].brand, "cand_open_set": cands[pick].open_set,
                         "text": cands[pick].text, "accepted": ok})
        out.append(rows)
    return out


def candidate_examples(known_table, scenes: Sequence[dict], free_table, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """The rows a ``logistic_candidates`` rule is fitted on: every candidate of each detection from ``floor`` up
    (``(detection, open_set, text_match, text_other)``) and its label: 1 for the mark's brand on a known scene's
    detection of the mark, 0 for every other candidate there and every candidate on a brand-free photo."""
    x, y = [], []
    for table, marked in ((known_table, True), (free_table, False)):
        for i, photo in enumerate(table):
            for r in photo:
                if r["det"] < floor or (marked and iou(r["box"], scenes[i]["box"]) < IOU_MATCH):
                    continue
                for c in r["candidates"]:
                    x.append((r["det"], c.open_set, *c.text))
                    y.append(float(marked and c.brand == scenes[i]["brand"]))
    return np.array(x, np.float64).reshape(-1, 4), np.array(y)


def calibrate_candidate_rule(known_table, scenes: Sequence[dict], free_table, detector_card, embedder_card,
                             top_k: int, max_false_reject: float = 0.10, floor: float = 0.10, budget: str = "found",
                             max_impostor_photos: float | None = MAX_IMPOSTOR_PHOTOS, known_set: str = "",
                             impostor_set: str = "", budget_photos=None) -> DetectionRule:
    """The ``logistic_candidates`` rule of the known scenes' and brand-free photos' :func:`channel_table`s (built
    with ``top_k``): a class-balanced logistic regression on every candidate (:func:`candidate_examples`), then, on
    the candidate it picks per detection, the threshold and the impostor constraint exactly as
    :func:`calibrate_text_rule` sets them. Its calibration record adds how often the mark's brand was among the
    candidates and was picked (``known_right_candidate``, ``known_right_picked``: shares of the marks' detections)."""
    x, y = candidate_examples(known_table, scenes, free_table, floor)
    if not (0 < y.sum() < len(y)):
        raise DetectionRuleError(f"no known mark's brand is among its detections' candidates (top {top_k}): "
                                 "nothing to fit a candidate rule on")
    weights, bias = fit_logistic(x, y)
    probe = DetectionRule(CANDIDATES_RULE_KIND, detector_card.name, detector_card.sha256, floor, 0.0,
                          tuple(float(w) for w in weights), embedder={"name": "probe", "sha256": "probe"},
                          top_k=top_k)
    picked = picked_table(probe, known_table)
    rule = calibrate_detection_rule(
        rule_set(picked, [s["box"] for s in scenes], [s["brand"] for s in scenes]),
        rule_set(picked_table(probe, free_table)), detector_card.name, detector_card.sha256,
        kind=CANDIDATES_RULE_KIND, max_false_reject=max_false_reject, min_detection_score=floor, budget=budget,
        known_set=known_set, impostor_set=impostor_set,
        embedder={"name": embedder_card.name, "sha256": embedder_card.sha256},
        max_impostor_photos=max_impostor_photos, budget_photos=budget_photos, weights=probe.weights, top_k=top_k)
    marks_rows = [(r, s["brand"]) for photo, s in zip(picked, scenes) for r in photo
                  if r["det"] >= floor and iou(r["box"], s["box"]) >= IOU_MATCH]
    record = {**rule.calibration, "bias": round(bias, 6),
              "probability_at_threshold": round(1 / (1 + math.exp(-(rule.threshold + bias))), 4),
              "candidate_rows": int(len(y)), "known_right_candidate": round(float(np.mean(
                  [any(c.brand == b for c in r["candidates"]) for r, b in marks_rows])), 4) if marks_rows else 0.0,
              "known_right_picked": round(float(np.mean([r["candidate"] == b for r, b in marks_rows])), 4)
              if marks_rows else 0.0}
    return DetectionRule(rule.kind, rule.detector_name, rule.detector_sha256, rule.min_detection_score,
                         rule.threshold, rule.weights, record, embedder=rule.embedder, top_k=top_k)

