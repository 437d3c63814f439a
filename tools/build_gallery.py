#!/usr/bin/env python
"""Build a brand gallery (.npz) with an embedding model, and calibrate its open-set threshold.

    # every simple-icons brand (clean canonical render each), threshold calibrated on the val brands
    python tools/build_gallery.py --embedder brand_resnet10t --simple-icons \
        --calibrate runs/brands/val --frr 0.05 --out weights/simple_icons_gallery.npz
    # your own logos, one folder per brand (add --index hnsw for very large galleries)
    python tools/build_gallery.py --embedder brand_resnet10t --folder my_logos/ --out my_gallery.npz

``--calibrate DIR`` needs ``DIR/gallery/<brand>/`` and ``DIR/query/<brand>/`` of brands with known identity
(e.g. the val split of tools/make_brand_dataset.py): the threshold is set so that ``--frr`` of those queries
score below it against their gallery.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm  # noqa: E402

from vision.data.datasets import ManifestError, scan_image_folder  # noqa: E402
from vision.features import FeatureExtractor  # noqa: E402
from vision.gallery import BrandGallery, GalleryError  # noqa: E402
from vision.retrieval import INDEX_KINDS  # noqa: E402
from vision.zoo import ZooError  # noqa: E402


def simple_icons_images(size: int, brands: list[str] | None = None) -> dict[str, list]:
    """``{slug: [canonical render]}`` for the simple-icons catalogue (or the listed slugs)."""
    from vision.data.brands import canonical_logo
    from vision.data.logos import LogoRenderError, list_brands

    images = {}
    for brand in tqdm(list_brands(), desc="render", unit="brand"):
        if brands is not None and brand.slug not in brands:
            continue
        try:
            images[brand.slug] = [canonical_logo(brand, size)]
        except LogoRenderError as e:
            tqdm.write(f"warning: skipping brand {e.name!r}: {e.reason}", file=sys.stderr)
    return images


def calibrate(fx: FeatureExtractor, folder: Path, frr: float) -> dict:
    """Threshold at ``frr`` for ``folder/query`` against a gallery of ``folder/gallery``; also its recall@1."""
    calibration = BrandGallery.from_folder(fx, folder / "gallery")
    samples, table = scan_image_folder(folder / "query")
    queries = fx([s.path for s in samples], batch_size=128)
    threshold = calibration.calibrate_threshold(queries, frr)
    top1 = [r["best"] for r in calibration.identify(queries)]
    recall = sum(b == table.names[s.label] for b, s in zip(top1, samples)) / len(samples)
    return {"threshold": round(threshold, 6), "frr": frr, "queries": len(samples), "brands": len(calibration),
            "recall@1": round(recall, 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedder", required=True, help="zoo name or file of an embedding model")
    ap.add_argument("--folder", type=Path, action="append", default=[], help="<folder>/<brand>/* images")
    ap.add_argument("--simple-icons", action="store_true", help="add every simple-icons brand's canonical render")
    ap.add_argument("--calibrate", type=Path, help="folder with gallery/ and query/ of known brands")
    ap.add_argument("--frr", type=float, default=0.05, help="false-reject rate the threshold is set for")
    ap.add_argument("--threshold", type=float, help="set the threshold directly instead of calibrating")
    ap.add_argument("--index", choices=INDEX_KINDS, default="flat")
    ap.add_argument("--out", type=Path, required=True, help="gallery file to write (.npz)")
    args = ap.parse_args(argv)
    if not args.folder and not args.simple_icons:
        print("error: give --folder and/or --simple-icons", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        fx = FeatureExtractor.from_pretrained(args.embedder, backend="torch")
        images: dict[str, list] = {}
        for folder in args.folder:
            samples, table = scan_image_folder(folder)
            for s in samples:
                images.setdefault(table.names[s.label], []).append(s.path)
        if args.simple_icons:
            for slug, renders in simple_icons_images(fx.card.data_config.input_size).items():
                if slug in images:
                    raise GalleryError(f"brand {slug!r} is both in a --folder and in simple-icons; rename one")
                images[slug] = renders
        gallery = BrandGallery.from_images(fx, images, batch_size=128, index=args.index, threshold=args.threshold)
        report = {"brands": len(gallery), "vectors": len(gallery.vectors), "dim": gallery.dim,
                  "model": gallery.model_name}
        if args.calibrate is not None and args.threshold is None:
            report["calibration"] = calibrate(fx, args.calibrate, args.frr)
            gallery.threshold = report["calibration"]["threshold"]
        gallery.save(args.out)
    except (GalleryError, ManifestError, ZooError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report.update(threshold=gallery.threshold, out=str(args.out), wall_s=round(time.perf_counter() - start, 1))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
