#!/usr/bin/env python
"""Reading the text on logos (:mod:`vision.brands.ocr`) in the brand recogniser, against the embedder alone, on whole
photos.

    python -m benchmarks.brand_robustness ... --data runs/brand_robustness/data   # builds the data once (see there)
    python -m benchmarks.brand_text --data runs/brand_robustness/data --grocery ../shared/datasets/grocery_store \\
        --out runs/brand_text/report.json

The shipped recogniser (``logo_yolo11n`` + ``brand_ensemble`` + ``simple_icons_gallery`` with its detection rule)
runs once over every photo set with a :class:`vision.brands.ocr.TextReader` that records what it reads on each detected
logo; the text decisions are then applied per variant (which match kinds may name a brand, and the lowest match
score), so every row sees the same detections, embeddings and OCR:

- **cross-style**: the unseen test-split brands in the held-out devicon style on val photos
  (``cross_style/queries.json``): end-to-end Recall@1 (a detection with IoU >= 0.5 to the true box names the right
  brand: the text's brand where the text decided, the embedder's best otherwise) and accepted + correct, for
  icons and wordmarks apart;
- **known marks**: the calibration known scenes (val brands in the training styles on train photos): the
  end-to-end false-reject rate (no detection of the mark accepted as a brand) and accepted + correct;
- **brand-free val photos** (Grocery Store Fruit and Vegetables): the share with any accepted brand, and the
  detections the text named (what it read, and the brand).

``--readers`` compares ways of *reading* instead (:data:`READERS`: crop framing, the text detector's input size, one
line without the detector for wide boxes, ORT threads, a detection floor): cost beside the recogniser photo by photo,
and cross-style Recall@1, false brands on brand-free photos and names read on packaged photos, on val only::

    python -m benchmarks.brand_text --readers --data runs/brand_robustness/data --grocery $GROCERY \
        --out runs/brand_text/readers.json

The Grocery Store test split is never read.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from vision.brands.detection_rule import IOU_MATCH, iou
from vision.brands.recognition import TEXT_MIN_DETECTION

VARIANTS = {   # row name: None (the embedder alone) or how the text decides: the match kinds that may name a brand,
    # the lowest match score, where the text is read ("crop": on each detected logo, the recogniser's reader;
    # "photo": on the whole photo, a name read over a detected logo names it, one read elsewhere is one more logo;
    # "both"), whether everyday words may name a brand, and the embedder's lowest rank of the named brand
    "embedder only (today)": None,
    "+ text: exact names, score >= 0.8": dict(kinds=("exact",)),
    "+ text: exact or fuzzy, score >= 0.8 (the recogniser's default)": dict(),
    "+ text: exact or fuzzy, score >= 0.9": dict(threshold=0.9),
    "+ text: exact, fuzzy or a brand's word, score >= 0.8": dict(kinds=("exact", "fuzzy", "word")),
    "+ text, everyday words too (\"orange\")": dict(everyday=True),
    "+ text, everyday words too, only where the embedder ranks the brand in its top 200": dict(everyday=True,
                                                                                             max_rank=200),
    "+ whole-photo text instead": dict(where="photo"),
    "+ text on logos and on the whole photo": dict(where="both"),
}
VARIANTS = {name: None if v is None else {"kinds": ("exact", "fuzzy"), "threshold": 0.8, "where": "crop",
                                          "everyday": False, "max_rank": None, **v} for name, v in VARIANTS.items()}
PHOTO_ROWS = tuple(name for name, v in VARIANTS.items() if v is not None and v["where"] != "crop")


class RecordingReader:
    """A :class:`vision.brands.ocr.TextReader` that keeps every crop's lines, in the order the recogniser reads them."""

    def __init__(self, reader):
        self.reader, self.lines, self.seconds = reader, [], 0.0

    def read(self, images):
        start = time.perf_counter()
        out = self.reader.read(images)
        self.seconds += time.perf_counter() - start
        self.lines += out
        return out


def run_set(recognizer, recorder, photos: list[Path]) -> list[list[dict]]:
    """Per photo its recognised logos, each with its OCR lines (``_lines``) and the embedder's rank of every brand
    the lines name (``_ranks``: 1 = the embedder's best brand) attached."""
    first, embedded = len(recorder.lines), []
    gallery = recognizer.gallery
    scores_of = gallery.open_set_scores

    def recording(queries, *args, **kwargs):   # the recogniser scores every logo of a batch in one call
        embedded.append(np.atleast_2d(np.asarray(queries, np.float32)))
        return scores_of(queries, *args, **kwargs)

    gallery.open_set_scores = recording
    try:
        results = [r.boxes for r in recognizer.stream([str(p) for p in photos], batch_size=16)]
    finally:
        del gallery.open_set_scores
    lines = iter(recorder.lines[first:])
    vectors = iter(np.concatenate(embedded) if embedded else [])
    for logos in results:
        for logo in logos:
            logo["_lines"] = next(lines)
            named = {m.brand for m in recognizer.names.candidates(logo["_lines"])}
            logo["_ranks"] = brand_ranks(gallery, next(vectors), named)
    return results


def brand_ranks(gallery, vector: np.ndarray, brands) -> dict[str, int]:
    """The embedder's rank of each of ``brands`` for one embedded logo (1 = its best brand; a brand's score is its
    best reference's cosine)."""
    if not brands:
        return {}
    vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
    sims = gallery.vectors @ vector
    best: dict[str, float] = {}
    for owner, sim in zip(gallery.owners, sims.tolist()):
        if sim > best.get(owner, -2.0):
            best[owner] = sim
    ordered = np.sort(np.fromiter(best.values(), np.float64))[::-1]
    return {b: int(np.searchsorted(-ordered, -best[b], side="left")) + 1 for b in brands if b in best}


def decide(logos: list[dict], photo_lines, names, variant) -> list[tuple[list[float], str, str]]:
    """``(box, brand or "unknown", top-1 brand)`` of each logo of one photo under ``variant`` (and of each name
    read on the photo away from every logo, for the whole-photo rows)."""
    out = [(lg["box"], lg["brand"], lg["best"]) for lg in logos]
    if variant is None:
        return out
    kinds, threshold, where, everyday = (variant[k] for k in ("kinds", "threshold", "where", "everyday"))
    max_rank = variant["max_rank"]
    if where in ("crop", "both"):
        for i, lg in enumerate(logos):
            found = names.match(lg["_lines"], kinds=kinds, everyday=everyday)
            if found is None or found.score < threshold:
                continue
            if max_rank is not None and lg.get("_ranks", {}).get(found.brand, max_rank + 1) > max_rank:
                continue   # the embedder does not see that brand in the crop
            out[i] = (lg["box"], found.brand, found.brand)
    if where in ("photo", "both"):
        for found in names.candidates(photo_lines):
            if (found.how not in kinds or found.score < threshold or found.box is None
                    or (found.everyday and not everyday)):
                continue
            over = [i for i, (box, _, _) in enumerate(out) if _centre_inside(found.box, box)]
            for i in over if where == "photo" else ():
                out[i] = (out[i][0], found.brand, found.brand)
            if not over:
                out.append((list(found.box), found.brand, found.brand))
    return out


def _centre_inside(text_box, box, pad: float = 0.15) -> bool:
    """Whether the centre of ``text_box`` lies in ``box`` grown by ``pad`` of its sides."""
    cx, cy = (text_box[0] + text_box[2]) / 2, (text_box[1] + text_box[3]) / 2
    w, h = box[2] - box[0], box[3] - box[1]
    return box[0] - pad * w <= cx <= box[2] + pad * w and box[1] - pad * h <= cy <= box[3] + pad * h


def figures(variant, names, cross, queries, known, scenes, free, packages, photo_lines) -> dict:
    """``photo_lines``: per set (cross, known, free) per photo the lines read on the whole photo."""
    out = {}
    decided = [[decide(logos, lines, names, variant) for logos, lines in zip(results, set_lines)]
               for results, set_lines in zip((cross, known, [logos for _, logos in free]), photo_lines)]
    for kind in ("all", "icon", "wordmark"):
        top1, right, found = [], [], 0
        for logos, q, detected in zip(decided[0], queries, cross):
            if kind != "all" and q["kind"] != kind:
                continue
            hits = [(brand, best) for box, brand, best in logos if iou(box, q["box"]) >= IOU_MATCH]
            top1.append(any(best == q["brand"] for _, best in hits))
            right.append(any(brand == q["brand"] for brand, _ in hits))
            found += any(iou(lg["box"], q["box"]) >= IOU_MATCH for lg in detected)
        out[f"cross_style_{kind}"] = {"queries": len(top1), "end_to_end_recall@1": round(float(np.mean(top1)), 4),
                                      "end_to_end_accepted_correct": round(float(np.mean(right)), 4),
                                      "found_by_the_detector": found}
    accepted, correct = [], []
    for logos, q in zip(decided[1], scenes):
        hits = [brand for box, brand, _ in logos if iou(box, q["box"]) >= IOU_MATCH]
        accepted.append(any(brand != "unknown" for brand in hits))
        correct.append(any(brand == q["brand"] for brand in hits))
    out["known_scenes"] = {"scenes": len(known), "frr_end_to_end": round(1 - float(np.mean(accepted)), 4),
                           "accepted_correct": round(float(np.mean(correct)), 4)}
    flagged, by_text = 0, []
    for (photo, logos), mine in zip(free, decided[2]):
        flagged += any(brand != "unknown" for _, brand, _ in mine)
        by_text += [{"photo": photo, "read": [ln.text for ln in logos[i]["_lines"]] if i < len(logos) else "photo",
                     "brand": brand} for i, (_, brand, _) in enumerate(mine)
                    if brand != "unknown" and (i >= len(logos) or brand != logos[i]["brand"])]
    out["brand_free_val_photos"] = {"photos": len(free), "with_any_false_brand": round(flagged / len(free), 4),
                                    "named_by_text": by_text}
    named = []   # packaged photos: their brands are not in the gallery, so a brand named by text is a false one
    for photo, logos in packages:
        mine = decide(logos, [], names, variant if variant is None or variant["where"] != "photo" else None)
        named += [{"photo": photo, "read": [ln.text for ln in lg["_lines"]], "brand": brand}
                  for lg, (_, brand, _) in zip(logos, mine) if brand != "unknown" and brand != lg["brand"]]
    out["packaged_val_photos"] = {"photos": len(packages),
                                  "with_a_brand_named_by_text": round(len({n["photo"] for n in named})
                                                                      / max(len(packages), 1), 4),
                                  "named_by_text": named}
    return out


def grocery_text(packages, package_lines, threshold: float = 0.8) -> dict:
    """The Grocery Store packaged-goods check by text: the 9 brands of the packaged goods are the names, each val
    photo's brand is its class folder's; per way of reading (the text on the detected logos: the strongest match
    over them; the whole photo; logos first, then the photo) and with or without everyday words ("Bravo" is one),
    the share of photos named right, named wrong and not named."""
    from benchmarks.brand_eval import grocery_brand, grocery_names, named_brand

    truth = [grocery_brand(Path(photo).parent.name) for photo, _ in packages]
    names = grocery_names(truth)
    out = {"photos": len(packages), "brands": sorted(set(truth))}
    for everyday in (False, True):
        crop = [named_brand(names, [lg["_lines"] for lg in logos], threshold, everyday) for _, logos in packages]
        photo = [named_brand(names, [lines], threshold, everyday) for lines in package_lines] or [None] * len(crop)
        for how, named in (("logos", crop), ("photo", photo),
                           ("logos_then_photo", [c or p for c, p in zip(crop, photo)])):
            if how != "logos" and not package_lines:
                continue
            out[f"{how}{'_everyday' if everyday else ''}"] = {
                "right": round(float(np.mean([n == t for n, t in zip(named, truth)])), 4),
                "wrong": round(float(np.mean([n is not None and n != t for n, t in zip(named, truth)])), 4),
                "none": round(float(np.mean([n is None for n in named])), 4)}
    return out


READERS = {   # --readers rows: how the text is read (crop framing, TextReader settings) and which logos are read
    "until 2026-12-06: square crops, ORT's threads, detector on every crop": dict(crop="square", threads=None,
                                                                                 line_aspect=None, side=320),
    "box crops, 1 thread, wide boxes read as one line": dict(side=320),
    "box crops, 1 thread, one line from 3x, detector at 192 px": dict(side=192),
    "box crops, 1 thread, one line from 3x, detector at 160 px": dict(side=160),
    "box crops, 1 thread, one line from 3x, detector at 128 px (the default reader)": dict(side=128),
    "box crops, 1 thread, one line from 3x, detector at 96 px": dict(side=96),
}
# the recogniser's input padded to 320 px as RapidOCR does: these rows were measured so (the default is 96 px now)
READERS = {name: {"crop": "box", "threads": 1, "line_aspect": 3.0, "side": 320, "line_width": 320, **v}
           for name, v in READERS.items()}
MIN_DETECTIONS = (0.2, 0.3, 0.5)   # rows derived from the default reader: logos detected under this are not read


def read_logos(reader, how: dict, array, logos) -> list[dict]:
    """A copy of one photo's ``logos`` (the recogniser's, text not read), each with the lines ``reader`` reads on it
    framed as ``how`` says (``_lines``)."""
    from vision.brands.recognition import TEXT_MARGIN, text_crop
    from vision.crops import square_crop

    frame = square_crop if how["crop"] == "square" else text_crop
    logos = copy.deepcopy(logos)
    for logo in logos:
        logo["_lines"] = reader.read([frame(array, logo["box"], TEXT_MARGIN)])[0]
    return logos


def text_decided(recognizer, results, min_detection: float = 0.0) -> list[list[dict]]:
    """``results`` with each read logo's text decision applied as the recogniser makes it (``min_detection``: a logo
    detected with a lower confidence keeps the embedder's answer, as if not read)."""
    out = []
    for logos in results:
        mine = []
        for logo in logos:
            logo = dict(logo)
            read = logo["detection_score"] >= min_detection
            found = recognizer.names.match(logo["_lines"], kinds=recognizer.text_kinds) if read else None
            if found is not None and found.score >= recognizer.text_threshold:
                logo.update(brand=found.brand, best=found.brand, by_text=True)
            logo["_read"] = read
            mine.append(logo)
        out.append(mine)
    return out


def reader_figures(cross, queries, free, packages) -> dict:
    """Cross-style end-to-end Recall@1 (all, icons, wordmarks), brand-free photos with a false brand, packaged
    photos with a brand named by text."""
    out = {}
    for kind in ("all", "icon", "wordmark"):
        top1 = [any(iou(lg["box"], q["box"]) >= IOU_MATCH and lg["best"] == q["brand"] for lg in logos)
                for logos, q in zip(cross, queries) if kind in ("all", q["kind"])]
        out[f"cross_style_recall@1_{kind}"] = round(float(np.mean(top1)), 4)
    out["brand_free_with_a_false_brand"] = round(float(np.mean([any(lg["brand"] != "unknown" for lg in logos)
                                                                for logos in free])), 4)
    out["packaged_named_by_text"] = round(float(np.mean([any(lg.get("by_text") for lg in logos)
                                                         for logos in packages])), 4)
    return out


def val_sets(args) -> tuple[list[dict], dict[str, list[Path]]]:
    """The cross-style queries and the photos of the three val sets (``cross``, ``free``: brand-free, ``packages``),
    the first ``args.limit`` of each for a quick look."""
    from vision.synth.negatives import brand_free_photos

    queries = json.loads((args.data / "cross_style" / "queries.json").read_text())
    sets = {"cross": [args.data / "cross_style" / q["image"] for q in queries],
            "free": brand_free_photos(args.grocery, "val"),
            "packages": brand_free_photos(args.grocery, "val", categories=("Packages",))}
    if args.limit:
        queries = queries[:args.limit]
        sets = {part: paths[:args.limit] for part, paths in sets.items()}
    return queries, sets


def reader_rows(args) -> dict:
    """The --readers report: the recogniser run once without text over the cross-style, brand-free and packaged val
    photos, then each way of reading (:data:`READERS`) applied to the same logos, timed photo by photo beside the
    recogniser; then ``--timing-photos`` photos recognised end to end (:func:`end_to_end`)."""
    from vision.brands.ocr import TextReader
    from vision.brands.recognition import BrandRecognizer
    from vision.data.io import load_image

    queries, sets = val_sets(args)
    recognizer = BrandRecognizer.from_pretrained(args.embedder, args.gallery, args.detector, device="cpu",
                                                 read_text=False)
    if args.end_to_end_only:
        return {"end_to_end": end_to_end(recognizer, [p for paths in sets.values() for p in paths],
                                         args.timing_photos), "rows": {}}
    from vision.brands.ocr import BrandNames

    recognizer.names = BrandNames.from_gallery(recognizer.gallery)
    readers = {}
    chosen = {name: how for name, how in READERS.items() if not args.only or any(o in name for o in args.only)}
    for name, how in chosen.items():
        readers[name] = TextReader(side=how["side"], threads=how["threads"], line_aspect=how["line_aspect"],
                                   line_width=how["line_width"])
        readers[name].read([np.zeros((64, 64, 3), np.uint8)])   # the engine's load is not counted
    # photo by photo: the recogniser without text, then each way of reading its logos, so that every way is timed
    # under the same load on a shared machine
    base = {part: [] for part in sets}
    read = {name: {part: [] for part in sets} for name in chosen}
    base_s, text_s = [], {name: [] for name in chosen}
    for part, paths in sets.items():
        for path in paths:
            image = load_image(path)
            start = time.perf_counter()
            (logos,) = recognizer.predict([image])
            base_s.append(time.perf_counter() - start)
            base[part].append(logos)
            for name, reader in readers.items():
                start = time.perf_counter()
                read[name][part].append(read_logos(reader, chosen[name], image, logos))
                text_s[name] += [time.perf_counter() - start] * bool(logos)
    total = sum(base_s)
    report = {"photos": {part: len(v) for part, v in sets.items()},
              "logos": {part: sum(map(len, v)) for part, v in base.items()},
              "recognise_ms_per_photo_median": round(1000 * float(np.median(base_s)), 1),
              "recognise_s_total": round(total, 1), "rows": {}}
    report["rows"]["embedder only"] = {**reader_figures(base["cross"], queries, base["free"], base["packages"]),
                                       "text_s_total": 0.0, "text_added": 0.0}
    for name in chosen:
        decided = {part: text_decided(recognizer, v) for part, v in read[name].items()}
        report["rows"][name] = {**reader_figures(decided["cross"], queries, decided["free"], decided["packages"]),
                                "text_s_total": round(sum(text_s[name]), 1),
                                "text_added": round(sum(text_s[name]) / total, 3)}
    default = next((name for name in chosen if name.endswith("(the default reader)")), next(iter(chosen)))
    logos_s = [s / max(len(lg), 1) for s, lg in zip(text_s[default], (lg for part in sets for lg in base[part] if lg))
               for _ in lg]   # each logo of a photo gets an equal share of its photo's reading time
    for floor in MIN_DETECTIONS:
        decided = {part: text_decided(recognizer, v, floor) for part, v in read[default].items()}
        flags = [lg["_read"] for part in sets for logos in decided[part] for lg in logos]
        kept = sum(s for s, f in zip(logos_s, flags) if f)
        report["rows"][f"{default}, logos detected under {floor} not read"
                       f"{' (the default)' if floor == TEXT_MIN_DETECTION else ''}"] = {
            **reader_figures(decided["cross"], queries, decided["free"], decided["packages"]),
            "logos_read": int(sum(flags)), "text_s_total": round(kept, 1), "text_added": round(kept / total, 3)}
    if args.records:   # every logo's lines per way of reading and every photo's times, for rows computed later
        args.records.parent.mkdir(parents=True, exist_ok=True)
        args.records.write_text(json.dumps({"base": base, "read": read, "base_s": base_s, "text_s": text_s},
                                           default=_jsonable) + "\n")
    if args.timing_photos:
        report["end_to_end"] = end_to_end(recognizer, [p for paths in sets.values() for p in paths],
                                          args.timing_photos)
    return report


class StageTimer:
    """Wraps one of a RapidOCR engine's stages (``text_det``, ``text_rec``) and adds up its seconds."""

    def __init__(self, stage):
        self.stage, self.seconds = stage, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.stage(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start

    def __getattr__(self, name):
        return getattr(self.stage, name)


def timed_engine(reader) -> dict:
    """Load ``reader``'s engine (detector and recogniser) and wrap both stages in :class:`StageTimer`."""
    from vision.brands.ocr import TextReader

    TextReader.read(reader, [np.zeros((64, 64, 3), np.uint8), np.zeros((16, 96, 3), np.uint8)])
    engine = reader.engine
    engine.text_det, engine.text_rec = StageTimer(engine.text_det), StageTimer(engine.text_rec)
    return {"det": engine.text_det, "rec": engine.text_rec}


def gate_records(args) -> dict:
    """--gates: the recogniser without text photo by photo over the cross-style, brand-free and packaged val photos,
    each logo then read on its own right after its photo (the default reader, and ``GATE_READERS``), with what a
    gate could use: detection, detector and verifier scores, the open-set score, the embedder's top-1 cosine and
    its gap to the second brand, and each read's seconds (text detector and recogniser apart)."""
    from vision.brands.ocr import BrandNames, TextReader
    from vision.brands.recognition import TEXT_MARGIN, BrandRecognizer, text_crop
    from vision.data.io import load_image

    queries, sets = val_sets(args)
    recognizer = BrandRecognizer.from_pretrained(args.embedder, args.gallery, args.detector, device="cpu",
                                                 read_text=False)
    recognizer.names = BrandNames.from_gallery(recognizer.gallery)
    gallery = recognizer.gallery
    readers = {name: TextReader(**how) for name, how in GATE_READERS.items()}
    stages = {name: timed_engine(reader) for name, reader in readers.items()}
    recognizer.predict([load_image(sets["cross"][0])])   # the recogniser's lazy loads are not counted
    embedded = []
    scores_of = gallery.open_set_scores

    def recording(queries, *a, **k):
        embedded.append(np.atleast_2d(np.asarray(queries, np.float32)))
        return scores_of(queries, *a, **k)

    gallery.open_set_scores = recording
    out = {part: [] for part in sets}
    base_s = []
    try:
        for part, paths in sets.items():
            for path in paths:
                image = load_image(path)
                embedded.clear()
                start = time.perf_counter()
                (logos,) = recognizer.predict([image])
                base_s.append(time.perf_counter() - start)
                vectors = np.concatenate(embedded) if embedded else np.empty((0, gallery.dim), np.float32)
                tops = gallery.search(vectors, k=2) if len(vectors) else []
                for logo, top in zip(logos, tops):
                    logo["_top2"] = top[1][1] if len(top) > 1 else -1.0
                    crop = text_crop(image, logo["box"], TEXT_MARGIN)
                    for name, reader in readers.items():
                        det0, rec0 = stages[name]["det"].seconds, stages[name]["rec"].seconds
                        start = time.perf_counter()
                        (lines,) = reader.read([crop])
                        logo.setdefault("_reads", {})[name] = {
                            "lines": lines, "s": time.perf_counter() - start,
                            "det_s": stages[name]["det"].seconds - det0, "rec_s": stages[name]["rec"].seconds - rec0}
                out[part].append(logos)
    finally:
        del gallery.open_set_scores
    return {"queries": queries, "sets": out, "base_s": base_s, "photos": {k: len(v) for k, v in sets.items()}}


GATE_READERS = {   # --gates: ways of reading each logo, timed one logo at a time
    "recogniser width 320": dict(line_width=320),
    "recogniser width 96": dict(line_width=96),
}


def gap(logo: dict) -> float:
    """The embedder's top-1 cosine minus its second brand's."""
    return float(logo["score"]) - float(logo["_top2"])


def floor_gate(lead: float | None = None, accepted_only: bool = False, verifier: float | None = None):
    """A --gates rule: read logos detected at 0.3 or more, and not those whose top-1 leads by ``lead`` or more (only
    the accepted ones with ``accepted_only``), nor those the verifier scores under ``verifier``."""
    def gate(logo: dict) -> bool:
        if logo["detection_score"] < 0.3:
            return False
        if lead is not None and gap(logo) >= lead and (not accepted_only or logo["brand"] != "unknown"):
            return False
        return verifier is None or logo.get("verifier_score", 1.0) >= verifier
    return gate


GATES = {   # --gates rows: which logos are read
    "every logo": lambda lg: True,
    "detected >= 0.3 (read_text=True until now)": floor_gate(),
    **{f"detected >= 0.3, not where the top-1 leads by {g}": floor_gate(lead=g) for g in (0.05, 0.1, 0.15, 0.2)},
    **{f"detected >= 0.3, not where accepted and the top-1 leads by {g}": floor_gate(lead=g, accepted_only=True)
       for g in (0.05, 0.1, 0.15)},
    **{f"detected >= 0.3, verifier >= {v}": floor_gate(verifier=v) for v in (0.3, 0.5, 0.7)},
}


def gate_rows(recognizer, records: dict, gates: dict) -> dict:
    """Per gate (a name -> ``f(logo) -> bool``, whether that logo is read) and per way of reading: the figures of
    :func:`reader_figures` with the text decisions of the logos read, the logos read, and the reading's seconds (the
    read logos' own) as a share of the recogniser's."""
    total = float(sum(records["base_s"]))
    sets, queries = records["sets"], records["queries"]
    rows = {"embedder only": {**reader_figures(sets["cross"], queries, sets["free"], sets["packages"]),
                              "logos_read": 0, "text_added": 0.0}}
    for reader in next((lg["_reads"] for part in sets.values() for logos in part for lg in logos), {}):
        for name, gate in gates.items():
            decided, seconds, count = {}, {"s": 0.0, "det_s": 0.0, "rec_s": 0.0}, 0
            for part, photos in sets.items():
                decided[part] = []
                for logos in photos:
                    mine = []
                    for logo in logos:
                        logo = {**logo, "_lines": logo["_reads"][reader]["lines"]}
                        read = bool(gate(logo))
                        if read:
                            count += 1
                            for k in seconds:
                                seconds[k] += logo["_reads"][reader][k]
                        found = (recognizer.names.match(logo["_lines"], kinds=recognizer.text_kinds)
                                 if read else None)
                        if found is not None and found.score >= recognizer.text_threshold:
                            logo.update(brand=found.brand, best=found.brand, by_text=True)
                        mine.append(logo)
                    decided[part].append(mine)
            rows[f"{name} ({reader})"] = {
                **reader_figures(decided["cross"], queries, decided["free"], decided["packages"]),
                "logos_read": count, "text_added": round(seconds["s"] / total, 3),
                "det_share": round(seconds["det_s"] / total, 3), "rec_share": round(seconds["rec_s"] / total, 3)}
    return rows


def reader_table(report: dict) -> str:
    """The --readers rows as a Markdown table."""
    lines = ["| reading | cross-style R@1 (icons / wordmarks) | brand-free photos with a false brand | packaged photos "
             "named by text | text time, share of the recogniser's |", "|---|---|---|---|---|"]
    for name, row in report["rows"].items():
        lines.append(f"| {name} | {row['cross_style_recall@1_all']:.3f} ({row['cross_style_recall@1_icon']:.3f} / "
                     f"{row['cross_style_recall@1_wordmark']:.3f}) | {row['brand_free_with_a_false_brand']:.3f} | "
                     f"{row['packaged_named_by_text']:.3f} | +{100 * row['text_added']:.0f}% |")
    return "\n".join(lines)


def end_to_end(recognizer, images, count: int) -> dict:
    """Median seconds per photo of ``recognizer.predict`` on ``count`` photos spread over ``images``: without text,
    with the reading of ``read_text=True`` until 2026-12-06 evening (the recogniser's input padded to 320 px, every
    logo detected at 0.3 or more read) and with the default one, the three alternating photo by photo; the machine's
    load average before and after."""
    import os

    from vision.brands.ocr import EVERYDAY_LANGUAGES, TextReader, everyday_word
    from vision.data.io import load_image

    picked = [load_image(images[i]) for i in np.linspace(0, len(images) - 1, count).astype(int)]
    parts = (recognizer.extractor, recognizer.gallery, recognizer.detector)
    ways = {"no text": recognizer,
            "until now": type(recognizer)(*parts, reader=TextReader(line_width=320), text_max_lead=None),
            "default": type(recognizer)(*parts, reader=TextReader())}
    for way in ways.values():
        way.predict([picked[0]])   # engines loaded, not counted
    everyday_word("warm", languages=EVERYDAY_LANGUAGES)   # wordfreq's lists load once per process, not counted
    load_before = os.getloadavg()
    times = {name: [] for name in ways}
    for image in picked:
        for name, way in ways.items():
            start = time.perf_counter()
            way.predict([image])
            times[name].append(time.perf_counter() - start)
    base = float(np.median(times["no text"]))
    per_photo = {name: [t / b for t, b in zip(times[name], times["no text"])] for name in ways}
    return {name: {"median_s_per_photo": round(float(np.median(t)), 3),
                   "mean_s_per_photo": round(float(np.mean(t)), 3),
                   "ratio_of_means_to_no_text": round(float(np.mean(t)) / float(np.mean(times["no text"])), 3),
                   "ratio_of_medians_to_no_text": round(float(np.median(t)) / base, 3),
                   "median_of_per_photo_ratios": round(float(np.median(per_photo[name])), 3)}
            for name, t in times.items()} | {"photos": len(picked), "load_before": load_before,
                                            "load_after": os.getloadavg()}


def _jsonable(value):
    if hasattr(value, "__dataclass_fields__"):
        return {"text": value.text, "score": value.score, "box": value.box}
    raise TypeError(type(value))


def default_check(args) -> dict:
    """--default-check: the recogniser as ``BrandRecognizer.from_pretrained`` makes it (text read by default) beside
    the same models with ``read_text=False``, photo by photo in alternating order over the cross-style, brand-free and
    packaged val photos: the figures of :func:`reader_figures` for both and the time each takes per photo."""
    import os

    from vision.brands.recognition import BrandRecognizer
    from vision.data.io import load_image

    queries, sets = val_sets(args)
    # --foreground-name METHOD: each logo named by its foreground-fused vector (vision.brands.views, fusion "name")
    extra = {} if not getattr(args, "foreground_name", None) else {
        "foreground": {"method": args.foreground_name, "fusion": "name"}}
    ways = {"no text": BrandRecognizer.from_pretrained(args.embedder, args.gallery, args.detector, device="cpu",
                                                       read_text=False, **extra),
            "default": BrandRecognizer.from_pretrained(args.embedder, args.gallery, args.detector, device="cpu",
                                                       **extra)}
    assert ways["default"].reader is not None, "the [ocr] extra is not installed: nothing to compare"
    warm = load_image(sets["cross"][0])
    for way in ways.values():
        way.predict([warm])   # models and OCR engines loaded, not counted
    from vision.brands.ocr import EVERYDAY_LANGUAGES, everyday_word

    everyday_word("warm", languages=EVERYDAY_LANGUAGES)   # wordfreq's lists load once per process, not counted
    load_before = os.getloadavg()
    logos = {name: {part: [] for part in sets} for name in ways}
    seconds = {name: [] for name in ways}
    for n, (part, path) in enumerate((part, path) for part, paths in sets.items() for path in paths):
        image = load_image(path)
        for name in (list(ways) if n % 2 == 0 else list(ways)[::-1]):   # neither way always runs first
            start = time.perf_counter()
            (found,) = ways[name].predict([image])
            seconds[name].append(time.perf_counter() - start)
            for logo in found:   # a text-named logo's brand is what Recall@1 counts
                if logo.get("source") == "text":
                    logo.update(best=logo["brand"], by_text=True)
            logos[name][part].append(found)
    ratios = [t / b for t, b in zip(seconds["default"], seconds["no text"])]
    return {"photos": {part: len(v) for part, v in sets.items()},
            "rows": {name: {**reader_figures(v["cross"], queries, v["free"], v["packages"]),
                            "logos_read": sum("text" in lg for part in v.values() for photo in part for lg in photo),
                            "median_s_per_photo": round(float(np.median(seconds[name])), 4),
                            "total_s": round(float(np.sum(seconds[name])), 1)} for name, v in logos.items()},
            "text_added_median_of_per_photo_ratios": round(float(np.median(ratios)) - 1, 3),
            "text_added_ratio_of_medians": round(float(np.median(seconds["default"]))
                                                 / float(np.median(seconds["no text"])) - 1, 3),
            "text_added_ratio_of_totals": round(float(np.sum(seconds["default"]))
                                                / float(np.sum(seconds["no text"])) - 1, 3),
            "load_before": load_before, "load_after": os.getloadavg()}


def known_check(args) -> dict:
    """--known-check: the 300 known-brand scenes (val brands in the training styles on train photos, a set no text
    setting was chosen on) recognised without text, reading every logo detected at 0.3 or more, and with the default
    reading (the lead rule too), the three photo by photo: false-reject rate and accepted + correct end to end, the
    logos read and named by text, and the median seconds per photo."""
    import os

    from vision.brands.ocr import TextReader
    from vision.brands.recognition import BrandRecognizer
    from vision.data.io import load_image

    scenes = json.loads((args.data / "known_scenes" / "queries.json").read_text())[:args.limit]
    default = BrandRecognizer.from_pretrained(args.embedder, args.gallery, args.detector, device="cpu")
    parts = (default.extractor, default.gallery, default.detector)
    ways = {"no text": type(default)(*parts),
            "every logo detected >= 0.3": type(default)(*parts, reader=TextReader(), text_max_lead=None),
            "default": default}
    for way in ways.values():
        way.predict([load_image(args.data / "known_scenes" / scenes[0]["image"])])   # lazy loads not counted
    load_before = os.getloadavg()
    rows = {name: {"accepted": [], "correct": [], "read": 0, "named_by_text": 0, "s": []} for name in ways}
    for scene in scenes:
        image = load_image(args.data / "known_scenes" / scene["image"])
        for name, way in ways.items():
            start = time.perf_counter()
            (logos,) = way.predict([image])
            row = rows[name]
            row["s"].append(time.perf_counter() - start)
            hits = [lg for lg in logos if iou(lg["box"], scene["box"]) >= IOU_MATCH]
            row["accepted"].append(any(lg["brand"] != "unknown" for lg in hits))
            row["correct"].append(any(lg["brand"] == scene["brand"] for lg in hits))
            row["read"] += sum("text" in lg for lg in logos)
            row["named_by_text"] += sum(lg.get("source") == "text" for lg in logos)
    base = float(np.median(rows["no text"]["s"]))
    return {"scenes": len(scenes), "load_before": load_before, "load_after": os.getloadavg(),
            "rows": {name: {"frr_end_to_end": round(1 - float(np.mean(r["accepted"])), 4),
                            "accepted_correct": round(float(np.mean(r["correct"])), 4), "logos_read": r["read"],
                            "named_by_text": r["named_by_text"],
                            "median_s_per_photo": round(float(np.median(r["s"])), 4),
                            "ratio_of_medians": round(float(np.median(r["s"])) / base, 3)}
                     for name, r in rows.items()}}


def gates_main(args) -> int:
    """--gates: record (or load) every logo's reads, then one row per gate and way of reading."""
    import os

    from vision.brands.ocr import BrandNames, TextLine

    start = time.perf_counter()
    if args.from_records:
        records = json.loads(args.from_records.read_text())
        for logo in (lg for part in records["sets"].values() for photo in part for lg in photo):
            for read in logo["_reads"].values():
                read["lines"] = [TextLine(r["text"], r["score"], tuple(map(tuple, r["box"]))) for r in read["lines"]]
    else:
        import torch

        torch.set_num_threads(args.threads)
        records = gate_records(args)
        records["load_before"] = os.getloadavg()
        if args.records:
            args.records.parent.mkdir(parents=True, exist_ok=True)
            args.records.write_text(json.dumps(records, default=_jsonable) + "\n")
    from vision.brands.gallery import BrandGallery
    from vision.brands.recognition import TEXT_KINDS, TEXT_THRESHOLD

    recognizer = type("Decision", (), dict(names=BrandNames.from_gallery(BrandGallery.load(args.gallery)),
                                           text_kinds=TEXT_KINDS, text_threshold=TEXT_THRESHOLD))
    rows = gate_rows(recognizer, records, GATES)
    report = {"photos": records["photos"], "recognise_s_total": round(sum(records["base_s"]), 1),
              "recognise_ms_per_photo_median": round(1000 * float(np.median(records["base_s"])), 1),
              "logos": sum(len(lg) for part in records["sets"].values() for lg in part), "rows": rows,
              "wall_s": round(time.perf_counter() - start, 1), "load": os.getloadavg()}
    lines = ["| logos read (reader) | cross-style R@1 (icons / wordmarks) | brand-free photos with a false brand "
             "| packaged photos named by text | logos read | text time, share of the recogniser's (detector / "
             "recogniser) |", "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['cross_style_recall@1_all']:.3f} ({row['cross_style_recall@1_icon']:.3f} / "
                     f"{row['cross_style_recall@1_wordmark']:.3f}) | {row['brand_free_with_a_false_brand']:.3f} | "
                     f"{row['packaged_named_by_text']:.3f} | {row['logos_read']} | +{100 * row['text_added']:.0f}% "
                     f"({100 * row.get('det_share', 0):.0f}% / {100 * row.get('rec_share', 0):.0f}%) |")
    report["table"] = "\n".join(lines)
    print(report["table"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="benchmarks/brand_robustness.py's data folder")
    ap.add_argument("--grocery", type=Path, required=True, help="Grocery Store root (val photos; test never read)")
    ap.add_argument("--detector", default="logo_yolo11n")
    ap.add_argument("--embedder", default="brand_ensemble")
    ap.add_argument("--gallery", default="simple_icons_gallery")
    ap.add_argument("--photo-side", type=int, default=960,
                    help="also read each whole photo at this longer side (the photo-text rows); 0 skips them")
    ap.add_argument("--records", type=Path, help="write every photo's logos and read lines here (JSON)")
    ap.add_argument("--from-records", type=Path,
                    help="take the logos and lines from a --records file instead of running the models (the rows "
                         "only: the decisions are recomputed)")
    ap.add_argument("--readers", action="store_true",
                    help="compare ways of reading (cost and accuracy) on the cross-style, brand-free and packaged "
                         "val photos instead of the decision rows")
    ap.add_argument("--timing-photos", type=int, default=40,
                    help="--readers: photos timed end to end without and with text, alternating (0: none)")
    ap.add_argument("--end-to-end-only", action="store_true",
                    help="--readers: only the end-to-end timing of --timing-photos photos")
    ap.add_argument("--only", action="append", help="--readers: only the ways of reading whose name has this")
    ap.add_argument("--threads", type=int, default=1, help="--readers: torch threads of the recogniser")
    ap.add_argument("--limit", type=int, help="--readers: only the first LIMIT photos of each set (a quick look)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--gates", action="store_true",
                    help="compare which logos are read (GATES) and ways of reading them (GATE_READERS), each logo "
                         "timed on its own beside the recogniser, on the cross-style, brand-free and packaged val "
                         "photos; --records / --from-records keep and reuse the run")
    ap.add_argument("--foreground-name", metavar="METHOD",
                    help="--default-check: name each logo by its crop fused with its foreground view (grabcut, "
                         "border, colour; vision.brands.views fusion 'name'), the plain crop's score deciding")
    ap.add_argument("--default-check", action="store_true",
                    help="the recogniser with its default text reading beside read_text=False, alternating photo by "
                         "photo over the cross-style, brand-free and packaged val photos: figures and time")
    ap.add_argument("--known-check", action="store_true",
                    help="the known-brand scenes without text, reading every logo and with the default reading")
    args = ap.parse_args(argv)
    if args.known_check or args.default_check:
        import torch

        torch.set_num_threads(args.threads)
        start = time.perf_counter()
        report = known_check(args) if args.known_check else default_check(args)
        report["wall_s"] = round(time.perf_counter() - start, 1)
        report["hardware"] = {"machine": platform.machine(), "processor": platform.processor(),
                              "cpu_count": __import__("os").cpu_count()}
        print(json.dumps(report, indent=1))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1) + "\n")
        return 0
    if args.gates:
        return gates_main(args)
    if args.readers:
        import torch

        torch.set_num_threads(args.threads)   # like the reader's ONNX Runtime sessions: 1 thread each
        start = time.perf_counter()
        report = reader_rows(args)
        report["torch_threads"] = args.threads
        report["wall_s"] = round(time.perf_counter() - start, 1)
        report["hardware"] = {"machine": platform.machine(), "processor": platform.processor(),
                              "cpu_count": __import__("os").cpu_count()}
        report["table"] = reader_table(report)
        print(report["table"])
        print(json.dumps(report.get("end_to_end")))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1) + "\n")
        return 0

    from vision.brands.ocr import BrandNames, TextLine, TextReader
    from vision.data.io import load_image
    from vision.synth.negatives import brand_free_photos

    start = time.perf_counter()
    queries = json.loads((args.data / "cross_style" / "queries.json").read_text())
    scenes = json.loads((args.data / "known_scenes" / "queries.json").read_text())
    free_photos = brand_free_photos(args.grocery, "val")
    packaged = brand_free_photos(args.grocery, "val", categories=("Packages",))   # brands the gallery lacks
    timings, photo_lines = {}, []
    if args.from_records:
        from vision.brands.gallery import BrandGallery

        def lines_of(rows):
            return [TextLine(r["text"], r["score"], tuple(map(tuple, r["box"]))) for r in rows]

        saved = json.loads(args.from_records.read_text())
        for logo in (lg for part in ("cross", "known", "free", "packages") for photo in saved[part] for lg in photo):
            logo["_lines"] = lines_of(logo["_lines"])
        cross, known = saved["cross"], saved["known"]
        free = list(zip(map(str, free_photos), saved["free"]))
        packages = list(zip(map(str, packaged), saved["packages"]))
        photo_lines = [[lines_of(rows) for rows in part] for part in saved["photo_lines"]]
        names = BrandNames.from_gallery(BrandGallery.load(args.gallery))
        decision = saved.get("decision")
    else:
        from vision.brands.recognition import BrandRecognizer

        recorder = RecordingReader(TextReader())
        recognizer = BrandRecognizer.from_pretrained(args.embedder, args.gallery, args.detector, device="cpu",
                                                     reader=recorder, text_threshold=float("inf"))
        names, decision = recognizer.names, "detection rule" if recognizer.rule is not None else "threshold"
        t = time.perf_counter()
        cross = run_set(recognizer, recorder, [args.data / "cross_style" / q["image"] for q in queries])
        known = run_set(recognizer, recorder, [args.data / "known_scenes" / q["image"] for q in scenes])
        free = list(zip(map(str, free_photos), run_set(recognizer, recorder, free_photos)))
        packages = list(zip(map(str, packaged), run_set(recognizer, recorder, packaged)))
        timings["recognise_s"] = round(time.perf_counter() - t, 1)
        timings["ocr_s"] = round(recorder.seconds, 1)
        timings["ocr_crops"] = len(recorder.lines)
        if args.photo_side:
            t = time.perf_counter()
            photo_reader = TextReader(side=args.photo_side)
            for paths in ([args.data / "cross_style" / q["image"] for q in queries],
                          [args.data / "known_scenes" / q["image"] for q in scenes], free_photos, packaged):
                photo_lines.append([photo_reader.read([load_image(p)])[0] for p in paths])
            timings["photo_ocr_s"] = round(time.perf_counter() - t, 1)
            timings["photo_ocr_photos"] = sum(map(len, photo_lines))
        if args.records:
            args.records.parent.mkdir(parents=True, exist_ok=True)
            args.records.write_text(json.dumps({"cross": cross, "known": known,
                                                "free": [logos for _, logos in free],
                                                "packages": [logos for _, logos in packages],
                                                "photo_lines": photo_lines,
                                                "decision": decision}, default=_jsonable) + "\n")
    report = {"hardware": {"machine": platform.machine(), "processor": platform.processor(),
                           "cpu_count": __import__("os").cpu_count()},
              "models": {"detector": args.detector, "embedder": args.embedder, "gallery": args.gallery,
                         "decision": decision, "photo_side": args.photo_side or None},
              "rows": {name: figures(v, names, cross, queries, known, scenes, free, packages,
                                     photo_lines or [[[]] * len(cross), [[]] * len(known), [[]] * len(free)])
                       for name, v in VARIANTS.items() if photo_lines or name not in PHOTO_ROWS}}
    report["grocery_text"] = grocery_text(packages, photo_lines[3] if len(photo_lines) > 3 else [])
    timings["wall_s"] = round(time.perf_counter() - start, 1)
    report["timings"] = timings
    lines = ["| variant | cross-style e2e R@1 (icons / wordmarks) | cross-style accepted + correct | known FRR e2e "
             "| known accepted + correct | brand-free val photos with a false brand "
             "| packaged val photos with a brand named "
             "by text |", "|---|---|---|---|---|---|---|"]
    for name, row in report["rows"].items():
        c, i, w = (row[f"cross_style_{k}"] for k in ("all", "icon", "wordmark"))
        lines.append(f"| {name} | {c['end_to_end_recall@1']:.3f} ({i['end_to_end_recall@1']:.3f} / "
                     f"{w['end_to_end_recall@1']:.3f}) | {c['end_to_end_accepted_correct']:.3f} | "
                     f"{row['known_scenes']['frr_end_to_end']:.3f} | {row['known_scenes']['accepted_correct']:.3f} | "
                     f"{row['brand_free_val_photos']['with_any_false_brand']:.3f} | "
                     f"{row['packaged_val_photos']['with_a_brand_named_by_text']:.3f} |")
    report["table"] = "\n".join(lines)
    print(report["table"])
    print("Grocery packaged goods by text (right / wrong / none):",
          json.dumps({k: v for k, v in report["grocery_text"].items() if isinstance(v, dict)}))
    print(json.dumps(timings))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
        args.out.with_suffix(".md").write_text(report["table"] + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
