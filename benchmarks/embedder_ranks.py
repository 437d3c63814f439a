#!/usr/bin/env python
"""Where the right brand ranks: Recall@1/5/10/50 and the median rank of a query folder's crops against a gallery.

Each query crop (``--queries``/<brand>/<crop>, e.g. the cross-style queries of ``tools/make_brand_dataset.py
--icon-sets``) is embedded and its brands ranked by their best reference in ``--gallery`` (all of the gallery's
brands compete); icon and wordmark queries (``wordmark`` in the file name) are also counted apart. It says how far a
re-ranking of the embedder's top K could go before any is built.

    python -m benchmarks.embedder_ranks --queries runs/brand_styles/val/query runs/brand_styles/test/query
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=Path, nargs="+", required=True, help="<brand>/<crop> folders")
    ap.add_argument("--embedder", default="brand_ensemble")
    ap.add_argument("--gallery", default="simple_icons_gallery")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10, 50])
    args = ap.parse_args(argv)
    import numpy as np

    from vision.brands.gallery import BrandGallery
    from vision.data.datasets import scan_image_folder
    from vision.features import FeatureExtractor

    fx = FeatureExtractor.from_pretrained(args.embedder, backend="torch")
    gallery = BrandGallery.load(args.gallery, model=fx.card, dim=fx.dim)
    brands = gallery.brands
    column = {b: i for i, b in enumerate(brands)}
    owner = np.array([column[o] for o in gallery.owners])
    report = {"embedder": args.embedder, "gallery": str(args.gallery), "brands": len(brands), "sets": {}}
    for folder in args.queries:
        samples, table = scan_image_folder(folder)
        names = [table.names[s.label] for s in samples]
        missing = sorted(set(names) - set(column))
        if missing:
            ap.error(f"{folder}: {len(missing)} query brands are not in the gallery (e.g. {missing[0]!r})")
        sims = fx([s.path for s in samples], batch_size=128) @ gallery.vectors.T
        best = np.full((len(samples), len(brands)), -np.inf, np.float32)
        np.maximum.at(best.T, owner, sims.T)             # a brand scores its best reference
        right = best[np.arange(len(samples)), [column[n] for n in names]]
        rank = (best > right[:, None]).sum(axis=1)       # 0: the right brand is first
        wordmark = np.array(["wordmark" in s.path.name for s in samples])
        rows = {}
        for kind, keep in (("all", np.ones(len(samples), bool)), ("icon", ~wordmark), ("wordmark", wordmark)):
            if keep.any():
                rows[kind] = {"queries": int(keep.sum()), "median_rank": float(np.median(rank[keep]) + 1),
                              **{f"recall@{k}": round(float((rank[keep] < k).mean()), 4) for k in args.ks}}
        report["sets"][str(folder)] = rows
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
