#!/usr/bin/env python
"""Logo detectors on brand-free photos: the fraction of photos with at least one (false) detection.

    python -m benchmarks.detector_negatives --grocery ../shared/datasets/grocery_store \
        --models logo_yolo11n runs/logo_styles_zoo/logo_styles_yolo11n.safetensors --out runs/detector_negatives.json

The Grocery Store Fruit and Vegetables photos of ``--split`` (val by default; the test split is refused) carry no
brand mark, so every detection on them is false. Per model: photos with >= 1 detection at ``--conf`` (the
recogniser's default detection confidence, 0.25), detections per photo, and the same at a few other
confidences. Prints one JSON object and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grocery", type=Path, required=True, help="Grocery Store root (with train/ and val/)")
    ap.add_argument("--split", default="val", help="train or val")
    ap.add_argument("--models", nargs="+", required=True, help="zoo names or weights files of detectors")
    ap.add_argument("--conf", type=float, default=0.25, help="detection confidence (the recogniser's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    from vision.predictors import predictor
    from vision.synth.negatives import brand_free_photos

    photos = brand_free_photos(args.grocery, args.split)
    report = {"photos": len(photos), "split": args.split, "conf": args.conf, "models": {},
              "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.device}"}
    levels = sorted({0.1, args.conf, 0.5})
    for name in args.models:
        start = time.perf_counter()
        model = predictor(name, device=args.device, conf=min(levels))
        scores = [[b["score"] for b in result.boxes] for result in model([str(p) for p in photos])]
        row = {"card": model.card.name, "sha256": model.card.sha256}
        for level in levels:
            kept = [[s for s in photo if s >= level] for photo in scores]
            row[f"photos_with_detection@{level:g}"] = round(sum(bool(k) for k in kept) / len(photos), 4)
            row[f"detections_per_photo@{level:g}"] = round(sum(map(len, kept)) / len(photos), 3)
        row["wall_s"] = round(time.perf_counter() - start, 1)
        report["models"][name] = row
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
