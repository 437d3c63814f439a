#!/usr/bin/env python
"""How the recogniser frames a box before embedding it: cross-style Recall@1 per crop margin, side by side.

Every row embeds the same boxes of ``benchmarks/brand_robustness.py``'s cross-style set (``--data``/cross_style:
unseen test brands drawn in the held-out style on val photos) with one margin (context per side, a fraction of the
box's longer side) and ranks the brands of ``--gallery``:

- *oracle*: the true boxes;
- *end to end*: the boxes the gallery's detector (with its verifier, as the recogniser runs it) finds at confidence
  ``--conf`` that overlap a true box with IoU >= 0.5; a query counts when one of them has the right best brand;
- ``--query-folders``: ready-cut crops (e.g. ``runs/brand_styles/val/query``, cut at margins of 0.05-0.3), zoomed in
  to ``--zooms`` of their side, the nearer framings.

and the mean of the embeddings of several margins (test-time augmentation). Only the best brand is ranked: the
open-set figures of a margin need a gallery calibrated at it (``vision build-gallery --margin``).

    python -m benchmarks.crop_margin --data runs/brand_robustness/data \\
        --query-folders runs/brand_styles/val/query runs/brand_styles/test/query
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="benchmarks/brand_robustness.py --data folder")
    ap.add_argument("--embedder", default="brand_ensemble")
    ap.add_argument("--gallery", default="simple_icons_gallery")
    ap.add_argument("--detector", default="logo_yolo11n")
    ap.add_argument("--conf", type=float, default=0.10, help="detector confidence (the shipped rule's floor)")
    ap.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.05, 0.10, 0.15, 0.20, 0.25])
    ap.add_argument("--tta", default="0.1,0.15;0.05,0.15,0.25;0.1,0.15,0.2",
                    help="';'-separated margin sets whose embeddings are averaged")
    ap.add_argument("--query-folders", type=Path, nargs="*", default=[], help="<brand>/<crop> folders")
    ap.add_argument("--zooms", type=float, nargs="+", default=[0.8, 0.85, 0.9, 0.95, 1.0])
    ap.add_argument("--out", type=Path, help="also write the figures here (JSON)")
    args = ap.parse_args(argv)
    import numpy as np
    from PIL import Image

    from vision.brands.detection_rule import IOU_MATCH, iou
    from vision.brands.gallery import BrandGallery
    from vision.brands.verification import verified_for_rule
    from vision.crops import square_crop
    from vision.data.datasets import scan_image_folder
    from vision.data.io import load_image
    from vision.features import FeatureExtractor
    from vision.inference import LogoDetector

    fx = FeatureExtractor.from_pretrained(args.embedder, backend="torch")
    gallery = BrandGallery.load(args.gallery, model=fx.card, dim=fx.dim)
    owners = np.asarray(gallery.owners)
    tta = [tuple(float(m) for m in group.split(",")) for group in args.tta.split(";") if group]
    margins = sorted({*args.margins, *(m for group in tta for m in group)})

    def best_brands(vectors: np.ndarray) -> np.ndarray:
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return owners[np.argmax(vectors @ gallery.vectors.T, axis=1)]

    def rows(embed) -> dict:
        """Recall@1 per margin and per averaged margin set; ``embed(margin) -> (vectors, hit(best) -> float)``."""
        found = {m: embed(m) for m in margins}
        out = {f"margin {m:g}": found[m][1](best_brands(found[m][0])) for m in args.margins}
        for group in tta:
            mean = sum(found[m][0] for m in group)
            out["mean of " + ", ".join(f"{m:g}" for m in group)] = found[group[0]][1](best_brands(mean))
        return {k: round(float(v), 4) for k, v in out.items()}

    root = args.data / "cross_style"
    queries = json.loads((root / "queries.json").read_text())
    images = [load_image(root / q["image"]) for q in queries]
    truth = np.array([q["brand"] for q in queries])

    def oracle(margin):
        vectors = fx([square_crop(im, q["box"], margin) for im, q in zip(images, queries)], batch_size=128)
        return vectors, lambda best: (best == truth).mean()

    detector = verified_for_rule(LogoDetector.from_pretrained(args.detector, conf=args.conf),
                                 gallery.detection_rule, backend="torch")
    matched = [(i, d["box"]) for i, (q, dets) in enumerate(zip(queries, detector.predict(images)))
               for d in dets if iou(d["box"], q["box"]) >= IOU_MATCH]

    def end_to_end(margin):
        vectors = fx([square_crop(images[i], box, margin) for i, box in matched], batch_size=128)

        def recall(best):
            hit = np.zeros(len(queries), bool)
            for (i, _), brand in zip(matched, best):
                hit[i] |= brand == truth[i]
            return hit.mean()
        return vectors, recall

    report = {"queries": len(queries), "found": len({i for i, _ in matched}),
              "oracle": rows(oracle), "end_to_end": rows(end_to_end), "query_folders": {}}
    for folder in args.query_folders:
        samples, table = scan_image_folder(folder)
        crops = [Image.open(s.path).convert("RGB") for s in samples]
        names = np.array([table.names[s.label] for s in samples])
        figures = {}
        for zoom in args.zooms:
            cut = [c.crop((c.width * (1 - zoom) / 2, c.height * (1 - zoom) / 2,
                           c.width * (1 + zoom) / 2, c.height * (1 + zoom) / 2)) for c in crops]
            figures[f"zoom {zoom:g}"] = round(float((best_brands(fx(cut, batch_size=128)) == names).mean()), 4)
        report["query_folders"][str(folder)] = {"queries": len(samples), **figures}
    print(json.dumps(report, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
