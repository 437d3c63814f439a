#!/usr/bin/env python
"""Reading the text on logos (:mod:`vision.ocr`) in the brand recogniser, against the embedder alone, on whole photos.

    python benchmarks/brand_robustness.py ... --data runs/brand_robustness/data   # builds the data once (see there)
    python benchmarks/brand_text.py --data runs/brand_robustness/data --grocery ../shared/datasets/grocery_store \\
        --out runs/brand_text/report.json

The shipped recogniser (``logo_yolo11n`` + ``brand_resnet10t`` + ``simple_icons_gallery`` with its detection rule)
runs once over every photo set with a :class:`vision.ocr.TextReader` that records what it reads on each detected
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

The Grocery Store test split is never read.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from vision.detection_rule import IOU_MATCH, iou  # noqa: E402

VARIANTS = {   # row name: (match kinds that may name a brand, lowest match score); None: the embedder alone
    "embedder only (today)": None,
    "+ text: exact names, score >= 0.8": (("exact",), 0.8),
    "+ text: exact or fuzzy, score >= 0.8 (the recogniser's default)": (("exact", "fuzzy"), 0.8),
    "+ text: exact or fuzzy, score >= 0.9": (("exact", "fuzzy"), 0.9),
    "+ text: exact, fuzzy or a brand's word, score >= 0.8": (("exact", "fuzzy", "word"), 0.8),
}


class RecordingReader:
    """A :class:`vision.ocr.TextReader` that keeps every crop's lines, in the order the recogniser reads them."""

    def __init__(self, reader):
        self.reader, self.lines, self.seconds = reader, [], 0.0

    def read(self, images):
        start = time.perf_counter()
        out = self.reader.read(images)
        self.seconds += time.perf_counter() - start
        self.lines += out
        return out


def run_set(recognizer, recorder, photos: list[Path]) -> list[list[dict]]:
    """Per photo its recognised logos, each with its OCR lines (``_lines``) attached."""
    first = len(recorder.lines)
    results = [r.boxes for r in recognizer.stream([str(p) for p in photos], batch_size=16)]
    lines = iter(recorder.lines[first:])
    for logos in results:
        for logo in logos:
            logo["_lines"] = next(lines)
    return results


def decide(logo: dict, names, variant) -> tuple[str, str]:
    """``(brand or "unknown", top-1 brand)`` of one logo under ``variant``."""
    image = (logo["brand"], logo["best"])
    if variant is None:
        return image
    kinds, threshold = variant
    found = names.match(logo["_lines"], kinds=kinds)
    if found is not None and found.score >= threshold:
        return found.brand, found.brand
    return image


def figures(variant, names, cross, queries, known, scenes, free) -> dict:
    out = {}
    for kind in ("all", "icon", "wordmark"):
        top1, right = [], []
        for logos, q in zip(cross, queries):
            if kind != "all" and q["kind"] != kind:
                continue
            hits = [decide(lg, names, variant) for lg in logos if iou(lg["box"], q["box"]) >= IOU_MATCH]
            top1.append(any(best == q["brand"] for _, best in hits))
            right.append(any(brand == q["brand"] for brand, _ in hits))
        out[f"cross_style_{kind}"] = {"queries": len(top1), "end_to_end_recall@1": round(float(np.mean(top1)), 4),
                                      "end_to_end_accepted_correct": round(float(np.mean(right)), 4)}
    accepted, correct = [], []
    for logos, q in zip(known, scenes):
        hits = [decide(lg, names, variant) for lg in logos if iou(lg["box"], q["box"]) >= IOU_MATCH]
        accepted.append(any(brand != "unknown" for brand, _ in hits))
        correct.append(any(brand == q["brand"] for brand, _ in hits))
    out["known_scenes"] = {"scenes": len(known), "frr_end_to_end": round(1 - float(np.mean(accepted)), 4),
                           "accepted_correct": round(float(np.mean(correct)), 4)}
    flagged, by_text = 0, []
    for photo, logos in free:
        decided = [(decide(lg, names, variant), lg) for lg in logos]
        flagged += any(brand != "unknown" for (brand, _), _ in decided)
        by_text += [{"photo": photo, "read": [ln.text for ln in lg["_lines"]], "brand": brand}
                    for (brand, _), lg in decided if variant is not None and brand != lg["brand"]
                    and brand != "unknown"]
    out["brand_free_val_photos"] = {"photos": len(free), "with_any_false_brand": round(flagged / len(free), 4),
                                    "named_by_text": by_text}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="benchmarks/brand_robustness.py's data folder")
    ap.add_argument("--grocery", type=Path, required=True, help="Grocery Store root (val photos; test never read)")
    ap.add_argument("--detector", default="logo_yolo11n")
    ap.add_argument("--embedder", default="brand_resnet10t")
    ap.add_argument("--gallery", default="simple_icons_gallery")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    from vision.ocr import TextReader
    from vision.recognition import BrandRecognizer
    from vision.synth.negatives import brand_free_photos

    start = time.perf_counter()
    recorder = RecordingReader(TextReader())
    recognizer = BrandRecognizer.from_pretrained(args.embedder, args.gallery, args.detector,
                                                 device="cpu", reader=recorder, text_threshold=float("inf"))
    queries = json.loads((args.data / "cross_style" / "queries.json").read_text())
    scenes = json.loads((args.data / "known_scenes" / "queries.json").read_text())
    free_photos = brand_free_photos(args.grocery, "val")
    timings = {}
    t = time.perf_counter()
    cross = run_set(recognizer, recorder, [args.data / "cross_style" / q["image"] for q in queries])
    known = run_set(recognizer, recorder, [args.data / "known_scenes" / q["image"] for q in scenes])
    free = list(zip(map(str, free_photos), run_set(recognizer, recorder, free_photos)))
    timings["recognise_s"] = round(time.perf_counter() - t, 1)
    timings["ocr_s"] = round(recorder.seconds, 1)
    timings["ocr_crops"] = len(recorder.lines)
    report = {"hardware": {"machine": platform.machine(), "processor": platform.processor(),
                           "cpu_count": __import__("os").cpu_count()},
              "models": {"detector": args.detector, "embedder": args.embedder, "gallery": args.gallery,
                         "decision": "detection rule" if recognizer.rule is not None else "threshold"},
              "rows": {name: figures(v, recognizer.names, cross, queries, known, scenes, free)
                       for name, v in VARIANTS.items()}}
    timings["wall_s"] = round(time.perf_counter() - start, 1)
    report["timings"] = timings
    lines = ["| variant | cross-style e2e R@1 (icons / wordmarks) | cross-style accepted + correct | known FRR e2e "
             "| known accepted + correct | brand-free val photos with a false brand |", "|---|---|---|---|---|---|"]
    for name, row in report["rows"].items():
        c, i, w = (row[f"cross_style_{k}"] for k in ("all", "icon", "wordmark"))
        lines.append(f"| {name} | {c['end_to_end_recall@1']:.3f} ({i['end_to_end_recall@1']:.3f} / "
                     f"{w['end_to_end_recall@1']:.3f}) | {c['end_to_end_accepted_correct']:.3f} | "
                     f"{row['known_scenes']['frr_end_to_end']:.3f} | {row['known_scenes']['accepted_correct']:.3f} | "
                     f"{row['brand_free_val_photos']['with_any_false_brand']:.3f} |")
    report["table"] = "\n".join(lines)
    print(report["table"])
    print(json.dumps(timings))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
        args.out.with_suffix(".md").write_text(report["table"] + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
