"""Each channel of brand recognition alone and one calibrated decision over them (issue 27, route 4), for
``benchmarks/brand_robustness.py --channels``.

The channels of a detected logo: the detector's (verified) confidence, the embedder's open-set score in the gallery,
and the text read on it (:mod:`vision.brands.ocr`, read as the recogniser reads: logos detected at
:data:`~vision.brands.recognition.TEXT_MIN_DETECTION` or more whose best brand leads by less than
:data:`~vision.brands.recognition.TEXT_MAX_LEAD`). Rows, on the same detections (cached by brand_robustness) and the
same reads (cached here under ``<data>/text/``):

- embedder alone: the gallery's open-set threshold at the detector's own confidence;
- text alone: a logo is the brand its text names (a match scoring >= ``TEXT_THRESHOLD``), nothing else is accepted;
- image rule: the gallery's detection rule (detector + verifier + embedder: the shipped pipeline with text off);
- image rule + text renames: today's default (text names a logo's brand whatever the rule said);
- fused rule: a ``logistic_text`` rule (:mod:`vision.brands.detection_rule`) calibrated here on the known scenes
  and the brand-free TRAIN photos, with the impostor constraint (<= 5% of brand-free photos with a false brand at
  known FRR <= the budget) part of the fit; measured on the val sets;
- fused rule over top-k candidates (``--candidates K``): a ``logistic_candidates`` rule
  (:func:`vision.brands.fusion.calibrate_candidate_rule`, same photos, same constraint) choosing per logo among the
  embedder's K best brands and any brand its text names below ``TEXT_THRESHOLD`` too; with how often the right brand
  is among a cross-style query's candidates (what any choice among them could reach).

Also: the cost per photo of each channel (timed on a sample of val photos) and how many cross-style queries are
"different artwork" (the gallery holds no reference of the query's kind for its brand).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from vision.brands.detection_rule import IOU_MATCH, DetectionRuleError, iou
from vision.brands.fusion import (
    calibrate_candidate_rule,
    calibrate_text_rule,
    channel_table,
    marks,
    read_logos,
    text_gate,
)
from vision.brands.recognition import TEXT_KINDS, TEXT_MARGIN, embedder_leads, reads_text, text_crop
from vision.data.io import load_image

QUERY_KINDS = {"icon": "symbol", "wordmark": "wordmark"}   # a cross-style query's kind -> the reference kind it needs
TIMING_PHOTOS = 100


def cached_reads(reader, photos: list[Path], logos, gate, cache: Path | None) -> list[list]:
    """:func:`vision.brands.fusion.read_logos`, kept in ``cache`` by the photos, boxes and gate."""
    key = hashlib.sha256(json.dumps([[str(p) for p in photos], [[[round(v, 2) for v in d["box"]] for d in dets]
                                                                for dets, _ in logos], gate,
                                     [reader.side, reader.line_aspect, reader.line_width]]).encode()).hexdigest()[:16]
    path = None if cache is None else cache / f"text_{key}.json"
    if path is not None and path.is_file():
        return json.loads(path.read_text())
    out = read_logos(reader, photos, logos, gate)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out) + "\n")
    return out


def decisions(kind: str, gallery, image_rule, text_rule, conf: float):
    """``f(detection row) -> (top-1 brand or None, accepted brand or None)`` for a row kind (see the module
    docstring)."""
    def decide(r):
        if kind == "embedder alone":
            if r["det"] < conf:
                return None, None
            return r["best"], r["best"] if r["open_set"] >= gallery.threshold else None
        if kind == "text alone":
            return (r["named"], r["named"]) if r["det"] >= image_rule.min_detection_score else (None, None)
        if r["det"] < image_rule.min_detection_score:
            return None, None
        image_ok = bool(image_rule.accept([r["det"]], [r["open_set"]])[0])
        if kind == "image rule":
            return r["best"], r["best"] if image_ok else None
        if kind == "image rule + text renames":
            if r["named"] is not None:
                return r["named"], r["named"]
            return r["best"], r["best"] if image_ok else None
        if kind == "candidates":
            cands = r["candidates"]
            pick, ok = text_rule.pick(r["det"], [c.open_set for c in cands], [c.text for c in cands])
            return cands[pick].brand, cands[pick].brand if ok else None
        ok = bool(text_rule.accept([r["det"]], [r["cand_open_set"]], [r["text"]])[0])
        return r["candidate"], r["candidate"] if ok else None
    return decide


def row_figures(decide, cross, queries, known, scenes, train, val, floor: float) -> dict:
    """Cross-style Recall@1 (all, icons, wordmarks) and accepted + correct; known scenes' FRR (of the marks found at
    ``floor``, and end to end) and accepted + correct; the share of brand-free train (calibration) and val photos
    with a false brand, and the val detections' false-accept rate."""
    out = {}
    for kind in ("all", "icon", "wordmark"):
        top1, right = [], []
        for rows, q in zip(cross, queries):
            if kind != "all" and q.get("kind", "icon") != kind:
                continue
            hits = [decide(r) for r in rows if iou(r["box"], q["box"]) >= IOU_MATCH]
            top1.append(any(t == q["brand"] for t, _ in hits))
            right.append(any(a == q["brand"] for _, a in hits))
        out[f"recall@1_{kind}"] = round(float(np.mean(top1)), 4) if top1 else float("nan")
        if kind == "all":
            out["accepted_correct"] = round(float(np.mean(right)), 4)
    accepted, correct, found = [], [], []
    for rows, s in zip(known, scenes):
        hits = [r for r in rows if iou(r["box"], s["box"]) >= IOU_MATCH]
        decided = [decide(r)[1] for r in hits]
        accepted.append(any(a is not None for a in decided))
        correct.append(any(a == s["brand"] for a in decided))
        found.append(any(r["det"] >= floor for r in hits))
    accepted, found, correct = np.array(accepted), np.array(found), np.array(correct)
    out["known_frr_found"] = round(float(1 - accepted[found].mean()), 4)
    out["known_frr_end_to_end"] = round(float(1 - accepted.mean()), 4)
    out["known_accepted_correct"] = round(float(np.mean(correct)), 4)
    words = np.array([s.get("style") == "wordmark" for s in scenes], bool)
    if words.any():   # the known wordmark scenes apart (--known-wordmarks)
        out["known_wordmarks_frr_end_to_end"] = round(float(1 - accepted[words].mean()), 4)
        out["known_wordmarks_accepted_correct"] = round(float(correct[words].mean()), 4)
        out["known_symbols_frr_found"] = round(float(1 - accepted[~words & found].mean()), 4)
    out["train_photos_with_a_false_brand"] = round(float(np.mean(
        [any(decide(r)[1] is not None for r in rows) for rows in train])), 4)
    flags = [[decide(r)[1] is not None for r in rows if r["det"] >= floor] for rows in val]
    out["val_detections_accepted"] = round(float(np.mean([f for fs in flags for f in fs])), 4)
    out["val_photos_with_a_false_brand"] = round(float(np.mean([any(fs) for fs in flags])), 4)
    out["val_photos_with_a_false_brand_count"] = int(sum(any(fs) for fs in flags))
    return out


def channel_costs(fx, detector, gallery, reader, names, photos: list[Path], floor: float) -> dict:
    """Median and mean milliseconds per photo of each channel on ``photos`` (each photo through all of them in turn):
    the detector with its verifier (at ``floor``), the embedder on the square crops, the gallery search (best
    brand, open-set score and the lead the text gate uses), and the text (gated crops read and matched)."""
    from vision.brands.ocr import TextLine
    from vision.crops import square_crop

    seconds = {"detector + verifier": [], "embedder": [], "gallery": [], "text": []}
    reader.read([np.full((64, 64, 3), 255, np.uint8)])   # engines and word lists loaded before timing
    names.match([TextLine("warm", 1.0)], kinds=TEXT_KINDS)
    detector.predict([load_image(photos[0])])
    for path in photos:
        image = load_image(path)
        start = time.perf_counter()
        dets = detector.predict([image], conf=floor)[0] if _takes_conf(detector) else detector.predict([image])[0]
        seconds["detector + verifier"].append(time.perf_counter() - start)
        start = time.perf_counter()
        crops = [square_crop(image, d["box"], gallery.crop_margin) for d in dets]
        vectors = fx(crops) if crops else np.empty((0, gallery.dim), np.float32)
        seconds["embedder"].append(time.perf_counter() - start)
        start = time.perf_counter()
        leads = embedder_leads(gallery, vectors)
        if len(vectors):
            gallery.open_set_scores(vectors)
        seconds["gallery"].append(time.perf_counter() - start)
        start = time.perf_counter()
        todo = [d for d, lead in zip(dets, leads) if reads_text(d["score"], lead)]
        for lines in reader.read([text_crop(image, d["box"], TEXT_MARGIN) for d in todo]) if todo else []:
            names.match(lines, kinds=TEXT_KINDS)
        seconds["text"].append(time.perf_counter() - start)
    return {name: {"median_ms": round(1000 * float(np.median(s)), 1), "mean_ms": round(1000 * float(np.mean(s)), 1)}
            for name, s in seconds.items()} | {"photos": len(photos)}


def _takes_conf(detector) -> bool:
    import inspect

    try:
        return "conf" in inspect.signature(detector.predict).parameters
    except (TypeError, ValueError):
        return False


def different_artwork(gallery, queries) -> dict:
    """Cross-style queries whose brand has no gallery reference of the query's kind (an icon needs a symbol, a
    wordmark a wordmark): per query kind, and in all."""
    kinds = gallery.reference_kinds()
    missing = {}
    for q in queries:
        kind = q.get("kind", "icon")
        need = QUERY_KINDS.get(kind, kind)
        missing.setdefault(kind, [0, 0])
        missing[kind][1] += 1
        missing[kind][0] += need not in kinds.get(q["brand"], [])
    return {"all": sum(m for m, _ in missing.values()), "queries": len(queries),
            **{kind: {"different_artwork": m, "queries": n} for kind, (m, n) in missing.items()}}


def channel_rows(fx, detector, gallery, data: Path, queries, cross_logos, scene_photos, scenes, scene_logos,
                 train_photos, train_logos, train_rows, val_photos, val_logos, max_false_reject: float, floor: float,
                 text_rule_out: Path | None = None, timing_photos: int = TIMING_PHOTOS, candidates=(),
                 candidate_rule_out: Path | None = None) -> dict:
    """The --channels report of one model set (see the module docstring); ``scene_photos``, ``scenes`` (their
    ``brand``, ``box`` and ``style``) and ``scene_logos``: the known scenes; ``train_rows``: per brand-free train
    photo the cohort rows left out of its scores (or None); ``text_rule_out``: also write the gallery with the fused
    rule attached (``text_rule``) there; ``candidates``: the top-k values of the candidate rules measured
    (``candidate_rule_out``: the gallery with the first one's rule attached)."""
    from vision.brands.ocr import BrandNames, TextReader

    image_rule = gallery.detection_rule
    if image_rule is None or not image_rule.matches(detector.card.name, detector.card.sha256):
        raise ValueError("--channels compares with the gallery's own detection rule: give a gallery with a rule for "
                         "this detector")
    reader, names = TextReader(), BrandNames.from_gallery(gallery)
    report, timings = {}, {}
    start = time.perf_counter()
    cache = data / "text"
    cross_photos = [data / "cross_style" / q["image"] for q in queries]

    parts = {"cross": (cross_photos, cross_logos, marks([q["box"] for q in queries]), None),
             "known": (scene_photos, scene_logos, marks([s["box"] for s in scenes]), None),
             "train": (train_photos, train_logos, None, train_rows),
             "val": (val_photos, val_logos, None, None)}
    tables, candidate_tables = {}, {k: {} for k in candidates}
    for part, (photos, logos, keep, rows) in parts.items():
        reads = cached_reads(reader, photos, logos, text_gate(gallery, logos, keep), cache)
        report.setdefault("logos_read", {})[part] = sum(r is not None for photo in reads for r in photo)
        tables[part] = channel_table(gallery, names, logos, reads, rows)
        for k in candidates:
            candidate_tables[k][part] = channel_table(gallery, names, logos, reads, rows, top_k=k)
    timings["text_reading_s"] = round(time.perf_counter() - start, 1)
    styles = sorted({s.get("style", "") for s in scenes})
    report["known_scenes"] = {"scenes": len(scenes), "wordmarks": sum(s.get("style") == "wordmark" for s in scenes)}
    sets = dict(known_set=f"{len(scenes)} known scenes ({', '.join(styles)})",
                impostor_set=f"{len(train_photos)} brand-free train photos")
    try:
        text_rule = calibrate_text_rule(tables["known"], scenes, tables["train"], detector.card, fx.card,
                                        max_false_reject, floor, **sets)
    except DetectionRuleError as e:   # reported, and the rule without the constraint measured for what it is
        print(f"fused rule: {e}", file=sys.stderr)
        report["constraint_not_met"] = str(e)
        text_rule = calibrate_text_rule(tables["known"], scenes, tables["train"], detector.card, fx.card,
                                        max_false_reject, floor, max_impostor_photos=None, **sets)
    text_rule = dataclasses.replace(text_rule, verifier=image_rule.verifier)
    report["fused_rule"] = text_rule.to_json()
    symbols_rule = budget_rule = None
    symbols = [i for i, s in enumerate(scenes) if s.get("style") != "wordmark"]
    if len(symbols) < len(scenes):   # the same fit without the wordmark scenes: no known mark with text to read
        try:
            symbols_rule = calibrate_text_rule([tables["known"][i] for i in symbols], [scenes[i] for i in symbols],
                                               tables["train"], detector.card, fx.card, max_false_reject, floor,
                                               max_impostor_photos=None, **sets)
            report["fused_rule_symbol_scenes_only"] = symbols_rule.to_json()
        except DetectionRuleError as e:
            report["fused_rule_symbol_scenes_only"] = str(e)
            symbols_rule = None
        # fitted on every scene (the wordmarks teach the text weights), the FRR budget on the symbol scenes alone
        # (the population the image rule's budget counts); added after the first val measurement
        try:
            budget_rule = calibrate_text_rule(tables["known"], scenes, tables["train"], detector.card, fx.card,
                                              max_false_reject, floor, max_impostor_photos=None, **sets,
                                              budget_photos=np.array([s.get("style") != "wordmark" for s in scenes]))
            report["fused_rule_symbol_budget"] = budget_rule.to_json()
        except DetectionRuleError as e:
            report["fused_rule_symbol_budget"] = str(e)
            budget_rule = None
    candidate_rules = {}
    for k in candidates:
        try:
            candidate_rules[k] = calibrate_candidate_rule(candidate_tables[k]["known"], scenes,
                                                          candidate_tables[k]["train"], detector.card, fx.card, k,
                                                          max_false_reject, floor, **sets)
        except DetectionRuleError as e:
            print(f"candidate rule, top {k}: {e}", file=sys.stderr)
            report.setdefault("candidates_constraint_not_met", {})[k] = str(e)
            candidate_rules[k] = calibrate_candidate_rule(candidate_tables[k]["known"], scenes,
                                                          candidate_tables[k]["train"], detector.card, fx.card, k,
                                                          max_false_reject, floor, max_impostor_photos=None, **sets)
        candidate_rules[k] = dataclasses.replace(candidate_rules[k], verifier=image_rule.verifier)
        report.setdefault("candidate_rules", {})[k] = candidate_rules[k].to_json()
        report.setdefault("cross_right_brand_among_candidates", {})[k] = right_among_candidates(
            candidate_tables[k]["cross"], queries, floor)
    conf = float(getattr(detector, "conf", 0.25) or 0.25)
    rows = {}
    for name, kind in (("embedder alone (open-set threshold)", "embedder alone"),
                       ("text alone (a name read >= 0.8)", "text alone"),
                       ("image rule (shipped, text off)", "image rule"),
                       ("image rule + text renames (shipped default)", "image rule + text renames"),
                       ("fused rule (calibrated here on train)", "fused"),
                       ("fused rule, calibrated on the symbol scenes only", "fused on symbols"),
                       ("fused rule, fitted on all scenes, FRR budget on the symbol scenes", "fused symbol budget")):
        fused = {"fused": text_rule, "fused on symbols": symbols_rule, "fused symbol budget": budget_rule}.get(kind)
        if kind.startswith("fused") and fused is None:
            continue
        decide = decisions("fused" if kind.startswith("fused") else kind, gallery, image_rule, fused, conf)
        rows[name] = row_figures(decide, tables["cross"], queries, tables["known"], scenes, tables["train"],
                                 tables["val"], floor)
    for k, rule in candidate_rules.items():
        t = candidate_tables[k]
        rows[f"fused rule over the top {k} + text-named candidates"] = row_figures(
            decisions("candidates", gallery, image_rule, rule, conf), t["cross"], queries, t["known"], scenes,
            t["train"], t["val"], floor)
    report["rows"] = rows
    report["different_artwork"] = different_artwork(gallery, queries)
    start = time.perf_counter()
    sample = [p for pair in zip(cross_photos, val_photos) for p in pair][:timing_photos]
    report["cost_per_photo"] = channel_costs(fx, detector, gallery, reader, names, sample, floor)
    timings["timing_s"] = round(time.perf_counter() - start, 1)
    report["timings"] = timings
    if text_rule_out is not None:
        import copy

        out = copy.copy(gallery)
        out.text_rule = text_rule
        out.save(text_rule_out)
        report["gallery_with_the_fused_rule"] = str(text_rule_out)
    if candidate_rule_out is not None and candidate_rules:
        import copy

        out = copy.copy(gallery)
        out.text_rule = candidate_rules[candidates[0]]
        out.save(candidate_rule_out)
        report["gallery_with_the_candidate_rule"] = str(candidate_rule_out)
    return report


def right_among_candidates(table, queries, floor: float) -> dict:
    """Cross-style queries whose brand is among the candidates of a detection of their mark (from ``floor``): the
    most Recall@1 any choice among the candidates could reach; per query kind and in all."""
    out = {}
    for rows, q in zip(table, queries):
        hits = [r for r in rows if r["det"] >= floor and iou(r["box"], q["box"]) >= IOU_MATCH]
        right = any(c.brand == q["brand"] for r in hits for c in r["candidates"])
        for kind in ("all", q.get("kind", "icon")):
            out.setdefault(kind, []).append(right)
    return {kind: round(float(np.mean(v)), 4) for kind, v in out.items()}


def channels_markdown(report: dict) -> str:
    """The --channels rows of every model set as a Markdown table."""
    lines = ["| models | decision | e2e Recall@1 (icons / wordmarks) | accepted + correct | known FRR (found / e2e) | "
             "brand-free train photos with a false brand | val detections accepted | brand-free val photos with a "
             "false brand |", "|" + "---|" * 8]
    for model, row in report["rows"].items():
        channels = row.get("channels")
        if not channels:
            continue
        for name, f in channels["rows"].items():
            lines.append(f"| {model} | {name} | {f['recall@1_all']:.3f} ({f['recall@1_icon']:.3f} / "
                         f"{f['recall@1_wordmark']:.3f}) | {f['accepted_correct']:.3f} | {f['known_frr_found']:.3f} / "
                         f"{f['known_frr_end_to_end']:.3f} | {f['train_photos_with_a_false_brand']:.3f} | "
                         f"{f['val_detections_accepted']:.3f} | {f['val_photos_with_a_false_brand']:.3f} "
                         f"({f['val_photos_with_a_false_brand_count']}) |")
        costs = channels["cost_per_photo"]
        lines.append(f"\ncost per photo ({model}, {costs['photos']} val photos, median / mean ms): " + ", ".join(
            f"{k} {v['median_ms']} / {v['mean_ms']}" for k, v in costs.items() if isinstance(v, dict)))
        art = channels["different_artwork"]
        lines.append(f"different artwork (no reference of the query's kind for its brand): {art['all']} of "
                     f"{art['queries']} val queries ("
                     + ", ".join(f"{k} {v['different_artwork']}/{v['queries']}" for k, v in art.items()
                                 if isinstance(v, dict)) + ")")
    return "\n".join(lines)
