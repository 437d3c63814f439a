"""``vision make-logo-dataset``: build a YOLO logo-detection dataset: real brand marks (simple-icons) pasted on photos.

    vision make-logo-dataset --backgrounds ../shared/datasets/grocery_store/train \
        --val-backgrounds ../shared/datasets/grocery_store/val --out data/logos --train-images 2000 --val-images 300
    vision make-logo-dataset --backgrounds photos/ --out data/logos_pb --mode per_brand --max-brands 50

Writes images/{train,val}, labels/{train,val}, data.yaml and brands.json (brand split and parameters) under --out.
Broken SVGs and unreadable backgrounds are skipped with a warning and counted in the summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# (vision.synth.yolo.MODES; spelled out so --help loads no synthesis: tests/test_commands.py checks they agree)
MODES = ("agnostic", "per_brand")


def parse_range(text: str) -> tuple[int, int]:
    """``"1-4"`` -> ``(1, 4)``; ``"2"`` -> ``(2, 2)``."""
    low, _, high = text.partition("-")
    try:
        bounds = int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or LOW-HIGH, got {text!r}") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"expected 1 <= LOW <= HIGH, got {text!r}")
    return bounds


def print_summary(summary) -> None:
    print(f"wrote {summary.out_dir} ({summary.mode}, {len(summary.names)} classes)")
    for split in ("train", "val"):
        print(f"  {split:5s}: {summary.images.get(split, 0)} images "
              f"({summary.background_only.get(split, 0)} background-only), "
              f"{summary.logos_pasted.get(split, 0)} logos of {summary.brands_used.get(split, 0)} brands "
              f"(from {summary.brands_available.get(split, 0)} available)")
    print(f"  skipped SVGs: {len(summary.skipped_svgs)}"
          + "".join(f"\n    {name}: {reason}" for name, reason in summary.skipped_svgs))
    print(f"  skipped backgrounds: {len(summary.skipped_backgrounds)}"
          + "".join(f"\n    {path}: {reason}" for path, reason in summary.skipped_backgrounds))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vision make-logo-dataset", description=__doc__.splitlines()[0])
    ap.add_argument("--backgrounds", type=Path, required=True, help="folder of background photos (recursive)")
    ap.add_argument("--val-backgrounds", type=Path, help="background folder for val images (default: --backgrounds)")
    ap.add_argument("--out", type=Path, required=True, help="output dataset folder")
    ap.add_argument("--train-images", type=int, default=1000)
    ap.add_argument("--val-images", type=int, default=200)
    ap.add_argument("--imgsz", type=int, default=416, help="side of the square output images (e.g. 320..640)")
    ap.add_argument("--mode", choices=MODES, default="agnostic",
                    help="agnostic: one 'logo' class, val shows unseen brands; per_brand: one class per train brand")
    ap.add_argument("--max-brands", type=int, help="at most this many brands from each brand split used")
    ap.add_argument("--logos-per-image", type=parse_range, default=(1, 4), metavar="LOW-HIGH")
    ap.add_argument("--background-only", type=float, default=0.05,
                    help="fraction of images with no logo (empty label file)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    args = ap.parse_args(argv)
    from tqdm import tqdm

    from vision.progress import warnings_above_progress_bar
    from vision.synth.yolo import write_yolo_dataset


    with warnings_above_progress_bar():
        try:
            summary = write_yolo_dataset(
                args.out, args.backgrounds, val_backgrounds=args.val_backgrounds, train_images=args.train_images,
                val_images=args.val_images, imgsz=args.imgsz, mode=args.mode, max_brands=args.max_brands,
                logos_per_image=args.logos_per_image, seed=args.seed, background_only_fraction=args.background_only,
                overwrite=args.overwrite, progress=lambda it, total, desc: tqdm(it, total=total, desc=desc,
                                                                                 unit="img"))
        except (ValueError, FileExistsError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    print_summary(summary)
    return 0
