#!/usr/bin/env python
"""What the logo verifier costs: the shipped detector alone against the detector + verifier
(vision.brands.verification),
side by side in one process on brand-free Grocery Store val photos; medians of ``--runs`` passes, and their ratio.

    python -m benchmarks.verifier_speed --grocery ../shared/datasets/grocery_store
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grocery", type=Path, required=True, help="Grocery Store root (its val Fruit photos are read)")
    ap.add_argument("--detector", default="logo_yolo11n")
    ap.add_argument("--verifier", default="logo_verifier_lite0")
    ap.add_argument("--conf", type=float, default=0.10, help="detector confidence (the shipped rule's floor)")
    ap.add_argument("--photos", type=int, default=24, help="every 6th val Fruit photo, at most this many")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    from vision.brands.verification import LogoVerifier, VerifiedDetector
    from vision.data.io import list_images, load_image
    from vision.inference import LogoDetector

    photos = list_images(args.grocery / "val" / "Fruit")[::6][:args.photos]
    if not photos:
        ap.error(f"no photos under {args.grocery / 'val' / 'Fruit'}")
    arrays = [np.asarray(load_image(p)) for p in photos]
    detector = LogoDetector.from_pretrained(args.detector, device=args.device, conf=args.conf)
    pair = VerifiedDetector(detector, LogoVerifier.from_pretrained(args.verifier, backend="torch", device=args.device))
    pair.predict(arrays[:2])   # warm-up
    times: dict[str, list[float]] = {"detector": [], "detector + verifier": []}
    boxes = {}
    for _ in range(args.runs):
        for name, model in (("detector", detector), ("detector + verifier", pair)):
            start = time.perf_counter()
            found = model.predict(arrays, conf=args.conf)
            times[name].append(time.perf_counter() - start)
            boxes[name] = sum(len(f) for f in found)
    median = {k: statistics.median(v) for k, v in times.items()}
    report = {"photos": len(arrays), "conf": args.conf, "device": args.device, "threads": torch.get_num_threads(),
              "boxes_kept": boxes, "ms_per_photo": {k: round(1000 * v / len(arrays), 1) for k, v in median.items()},
              "ratio": round(median["detector + verifier"] / median["detector"], 2)}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
