"""``vision build-gallery``: build a brand gallery (.npz) with an embedding model, and calibrate its open-set threshold.

    # every simple-icons brand: the mean of its renders in brand colour, black and white; threshold calibrated
    # on the val brands' queries against val galleries built the same way
    vision build-gallery --embedder brand_resnet10t --simple-icons --renders brand,black,white \
        --merge mean --calibrate runs/brands/val --frr 0.05 --out weights/simple_icons_gallery.npz
    # your own logos, one folder per brand (add --index hnsw for very large galleries)
    vision build-gallery --embedder brand_resnet10t --folder my_logos/ --out my_gallery.npz

``--calibrate DIR`` needs ``DIR/gallery/<brand>/`` and ``DIR/query/<brand>/`` of brands with known identity
(e.g. the val split of tools/make_brand_dataset.py): the threshold is set so that ``--frr`` of those queries
score below it against their gallery. For a ``--simple-icons`` gallery (no ``--folder``) that gallery is rebuilt
from the val brands' simple-icons renders with the same ``--renders`` and ``--merge``, so the threshold is
calibrated on scores of the kind the shipped gallery will give.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# (vision.gallery.MERGES, vision.retrieval.INDEX_KINDS; spelled out so --help loads neither numpy nor faiss:
# tests/test_commands.py checks they agree)
MERGES = ("all", "mean")
INDEX_KINDS = ("flat", "hnsw", "ivf")


def calibrate(fx, folder: Path, frr: float, renders: tuple[str, ...] | None = None, merge: str = "all") -> dict:
    """Threshold at ``frr`` for ``folder/query`` against a gallery of ``folder/gallery``; also its recall@1.

    With ``renders`` the calibration gallery is rebuilt from simple-icons renders of ``folder/gallery``'s brand
    slugs in those colours and merged as ``merge``: the same construction as the gallery being calibrated."""
    from tqdm import tqdm

    from vision.data.datasets import scan_image_folder
    from vision.gallery import BrandGallery, GalleryError
    from vision.synth.render import simple_icons_renders

    samples, table = scan_image_folder(folder / "query")
    if renders:
        images = simple_icons_renders(fx.card.data_config.input_size, list(table.names), renders, progress=tqdm)
        missing = sorted(set(table.names) - set(images))
        if missing:
            raise GalleryError(f"--calibrate {folder}: {len(missing)} query brands are not simple-icons slugs "
                               f"(e.g. {missing[0]!r}); calibrate a --simple-icons gallery on simple-icons brands")
        calibration = BrandGallery.from_images(fx, images, batch_size=128, merge=merge)
    else:
        calibration = BrandGallery.from_folder(fx, folder / "gallery", merge=merge)
    queries = fx([s.path for s in samples], batch_size=128)
    threshold = calibration.calibrate_threshold(queries, frr)
    top1 = [r["best"] for r in calibration.identify(queries)]
    recall = sum(b == table.names[s.label] for b, s in zip(top1, samples)) / len(samples)
    return {"threshold": round(threshold, 6), "frr": frr, "queries": len(samples), "brands": len(calibration),
            "recall@1": round(recall, 4), "gallery": f"simple-icons renders {list(renders)}" if renders
            else str(folder / "gallery"), "merge": merge}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vision build-gallery", description=__doc__.splitlines()[0])
    ap.add_argument("--embedder", required=True, help="zoo name or file of an embedding model")
    ap.add_argument("--folder", type=Path, action="append", default=[], help="<folder>/<brand>/* images")
    ap.add_argument("--simple-icons", action="store_true", help="add every simple-icons brand's canonical render")
    ap.add_argument("--renders", default="brand",
                    help="comma-separated colours of the simple-icons renders per brand: brand, black, white, #rrggbb")
    ap.add_argument("--merge", choices=MERGES, default="all",
                    help="all: a vector per image (a brand scores its best); mean: one prototype per brand")
    ap.add_argument("--calibrate", type=Path, help="folder with gallery/ and query/ of known brands")
    ap.add_argument("--frr", type=float, default=0.05, help="false-reject rate the threshold is set for")
    ap.add_argument("--threshold", type=float, help="set the threshold directly instead of calibrating")
    ap.add_argument("--index", choices=INDEX_KINDS, default="flat")
    ap.add_argument("--out", type=Path, required=True, help="gallery file to write (.npz)")
    ap.add_argument("--device", help="cuda, cpu (default: CUDA when available)")
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args(argv)
    from vision.data.datasets import ManifestError
    from vision.gallery import GalleryError
    from vision.progress import warnings_above_progress_bar
    from vision.synth.render import parse_render_colors
    from vision.zoo import ZooError

    if not args.folder and not args.simple_icons:
        print("error: give --folder and/or --simple-icons", file=sys.stderr)
        return 2
    try:
        colors = parse_render_colors(args.renders)
    except ValueError as e:
        print(f"error: --renders: {e}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        with warnings_above_progress_bar():
            gallery, report = build(args, colors)
    except (GalleryError, ManifestError, ZooError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report.update(threshold=gallery.threshold, out=str(args.out), wall_s=round(time.perf_counter() - start, 1))
    print(json.dumps(report))
    return 0


def build(args: argparse.Namespace, colors: tuple[str, ...]):
    """Embed the brands, calibrate and save the gallery (errors propagate to :func:`main`)."""
    from tqdm import tqdm

    from vision.data.datasets import scan_image_folder
    from vision.features import FeatureExtractor
    from vision.gallery import BrandGallery, GalleryError
    from vision.synth.render import simple_icons_renders

    fx = FeatureExtractor.from_pretrained(args.embedder, backend="torch", device=args.device)
    if not fx.card.sha256:  # the gallery could not be bound to the model: recognisers refuse it by default
        raise GalleryError(f"--embedder {args.embedder}: this model has no sha256 (a weights file outside a zoo "
                           "manifest), so the gallery could not record which model built it; pass a zoo name or a "
                           "file listed in its folder's manifest")
    images: dict[str, list] = {}
    for folder in args.folder:
        samples, table = scan_image_folder(folder)
        for s in samples:
            images.setdefault(table.names[s.label], []).append(s.path)
    if args.simple_icons:
        size = fx.card.data_config.input_size
        for slug, renders in simple_icons_renders(size, colors=colors, progress=tqdm).items():
            if slug in images:
                raise GalleryError(f"brand {slug!r} is both in a --folder and in simple-icons; rename one")
            images[slug] = renders
    gallery = BrandGallery.from_images(fx, images, batch_size=args.batch_size, merge=args.merge, index=args.index,
                                       threshold=args.threshold)
    report = {"brands": len(gallery), "vectors": len(gallery.vectors), "dim": gallery.dim,
              "model": gallery.model_name}
    if args.calibrate is not None and args.threshold is None:
        # a simple-icons-only gallery is calibrated on galleries built the same way
        same_way = colors if args.simple_icons and not args.folder else None
        report["calibration"] = calibrate(fx, args.calibrate, args.frr, same_way, args.merge)
        gallery.threshold = report["calibration"]["threshold"]
    gallery.save(args.out)
    return gallery, report
