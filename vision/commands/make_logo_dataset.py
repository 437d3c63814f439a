"""``vision make-logo-dataset``: build a YOLO logo-detection dataset: real brand marks (simple-icons) pasted on photos.

    vision make-logo-dataset --backgrounds ../shared/datasets/grocery_store/train \
        --val-backgrounds ../shared/datasets/grocery_store/val --out data/logos --train-images 2000 --val-images 300
    vision make-logo-dataset --backgrounds photos/ --out data/logos_pb --mode per_brand --max-brands 50

Real photos: several artwork styles (--icon-sets: Iconify sets fetched by tools/fetch_icon_sets.py, the held-out
style left out), print conditions (--print-conditions) and brand-free photos as hard negatives (--negatives):

    G=../shared/datasets/grocery_store
    vision make-logo-dataset --backgrounds $G/train/Fruit $G/train/Vegetables --out data/logo_styles \
        --icon-sets runs/iconify --print-conditions --negatives $G/train/Fruit $G/train/Vegetables \
        --negative-fraction 0.15
    vision make-logo-dataset --cross-style-val --icon-sets runs/iconify --train-images 0 --val-images 400 \
        --backgrounds $G/val/Fruit $G/val/Vegetables --negatives $G/val/Fruit $G/val/Vegetables \
        --negative-fraction 0.25 --out data/logo_cross_style      # test-split brands, held-out style only

Hard-negative mining (--mined-negatives): the negatives are the train photos on which a detector fired, read from
the manifest `vision make-impostors` wrote (its detector's false detections per photo), instead of random photos:

    vision make-logo-dataset ... --mined-negatives runs/impostors --mined-min-score 0.25 \
        --val-negatives $G/val/Fruit $G/val/Vegetables --negative-fraction 0.3

Wordmarks (--wordmark-fraction, --fonts): a share of the logos are the brand's title set in a font, alone or as a
lockup with its mark (vision.synth.wordmarks; fonts from tools/fetch_fonts.py, licences recorded in brands.json).

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
    from vision.commands import note

    note(f"wrote {summary.out_dir} ({summary.mode}, {len(summary.names)} classes)")
    for split in ("train", "val"):
        note(f"  {split:5s}: {summary.images.get(split, 0)} images "
              f"({summary.background_only.get(split, 0)} with an empty label file, "
              f"{summary.hard_negatives.get(split, 0)} of them brand-free photos), "
              f"{summary.logos_pasted.get(split, 0)} logos of {summary.brands_used.get(split, 0)} brands "
              f"(from {summary.brands_available.get(split, 0)} available)")
        if summary.styles_used.get(split):
            note("         logos per style: " + ", ".join(f"{k} {v}" for k, v in summary.styles_used[split].items()))
    note(f"  skipped SVGs: {len(summary.skipped_svgs)}"
          + "".join(f"\n    {name}: {reason}" for name, reason in summary.skipped_svgs))
    note(f"  skipped backgrounds: {len(summary.skipped_backgrounds)}"
          + "".join(f"\n    {path}: {reason}" for path, reason in summary.skipped_backgrounds))


def main(argv: list[str] | None = None) -> int:
    from vision.commands import add_no_progress, command_parser, note

    ap = command_parser("vision make-logo-dataset", __doc__)
    ap.add_argument("--backgrounds", type=Path, nargs="+", required=True,
                    help="folder(s) of background photos (recursive)")
    ap.add_argument("--val-backgrounds", type=Path, nargs="+",
                    help="background folder(s) for val images (default: --backgrounds)")
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
    ap.add_argument("--icon-sets", type=Path, metavar="DIR",
                    help="folder of Iconify icon sets (tools/fetch_icon_sets.py): brands in more artwork styles; the "
                         "held-out evaluation style is left out of training images")
    ap.add_argument("--style-fraction", type=float, default=0.5,
                    help="with --icon-sets: fraction of logos drawn in another artwork style (brands a set has)")
    ap.add_argument("--cross-style-val", action="store_true",
                    help="val images show test-split brands in the held-out style only (needs --icon-sets)")
    ap.add_argument("--negatives", type=Path, nargs="+", metavar="DIR",
                    help="folder(s) of brand-free photos used whole as hard negatives (empty label files)")
    ap.add_argument("--val-negatives", type=Path, nargs="+", metavar="DIR",
                    help="brand-free photo folder(s) for val images (default: --negatives)")
    ap.add_argument("--negative-fraction", type=float, default=0.0,
                    help="fraction of images that are a brand-free photo (needs --negatives)")
    ap.add_argument("--mined-negatives", type=Path, metavar="IMPOSTORS_DIR",
                    help="train negatives = the train photos listed in this `vision make-impostors` output with a "
                         "false detection >= --mined-min-score (instead of --negatives; needs --val-negatives when "
                         "val images are drawn)")
    ap.add_argument("--mined-min-score", type=float, default=0.25,
                    help="with --mined-negatives: the detector score a photo's false detection must reach")
    ap.add_argument("--print-conditions", action="store_true",
                    help="curved packaging, glare, low contrast, small size, blur and stickers while compositing")
    ap.add_argument("--print-conditions-scale", type=float, default=1.0, metavar="S",
                    help="with --print-conditions: multiply each condition's probability by S (0 < S <= 1; fewer "
                         "degraded logos keeps more clean ones)")
    ap.add_argument("--wordmark-fraction", type=float, default=0.0, metavar="F",
                    help="fraction of logos drawn as the brand's title set in a font (half of them beside or under "
                         "its mark; vision.synth.wordmarks), not in a --cross-style-val split")
    ap.add_argument("--fonts", type=Path, metavar="DIR",
                    help="with --wordmark-fraction: fonts fetched by tools/fetch_fonts.py, besides the built-in "
                         "DejaVu/STIX faces")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    add_no_progress(ap)
    args = ap.parse_args(argv)
    from vision.progress import progress_bar, warnings_above_progress_bar
    from vision.synth.composite import PRINT_CONDITIONS, PrintConditions
    from vision.synth.styles import EVAL_STYLES, IconSetError, load_icon_sets
    from vision.synth.yolo import write_yolo_dataset

    icon_sets = val_icon_sets = None
    negatives, record_extra, fonts = args.negatives, None, None
    try:
        if not 0.0 <= args.wordmark_fraction <= 1.0:
            raise ValueError(f"--wordmark-fraction must be in [0, 1], got {args.wordmark_fraction}")
        if args.fonts is not None and args.wordmark_fraction == 0:
            raise ValueError("--fonts needs --wordmark-fraction > 0")
        if args.wordmark_fraction > 0:
            from vision.synth.wordmarks import FontError, load_fonts

            try:
                fonts = load_fonts(args.fonts)
            except FontError as e:
                raise ValueError(str(e)) from None
            note(f"wordmark fonts: {len(fonts)}")
        if not 0.0 < args.print_conditions_scale <= 1.0:
            raise ValueError(f"--print-conditions-scale must be in (0, 1], got {args.print_conditions_scale}")
        if args.mined_negatives is not None:
            from vision.synth.mined import mined_negative_photos

            if args.negatives is not None:
                raise ValueError("--mined-negatives and --negatives both name the train negatives: pass one")
            if args.val_images > 0 and args.negative_fraction > 0 and args.val_negatives is None:
                raise ValueError("--mined-negatives mines train photos only: pass --val-negatives for val images")
            negatives, mined = mined_negative_photos(args.mined_negatives, args.mined_min_score)
            record_extra = {"mined_negatives": mined.record()}
            note(f"mined negatives: {mined.photos_kept} of {mined.photos_in_split} train photos with a false "
                  f"detection >= {args.mined_min_score} ({mined.detector}), {len(mined.missing)} missing")
        if args.cross_style_val and args.icon_sets is None:
            raise ValueError("--cross-style-val needs --icon-sets (the folder holding the held-out style)")
        if args.icon_sets is not None:
            icon_sets = load_icon_sets(args.icon_sets, exclude=EVAL_STYLES)
            if args.cross_style_val:
                val_icon_sets = load_icon_sets(args.icon_sets, EVAL_STYLES)
            note(f"icon sets for training: {', '.join(icon_sets) or 'none'} (held out: {', '.join(EVAL_STYLES)})")
    except (ValueError, IconSetError, FileNotFoundError) as e:
        note(f"error: {e}", file=sys.stderr)
        return 2

    print_conditions = None
    if args.print_conditions:
        print_conditions = PrintConditions(**{name: p * args.print_conditions_scale
                                              for name, p in vars(PRINT_CONDITIONS).items()})
    with warnings_above_progress_bar():
        try:
            summary = write_yolo_dataset(
                args.out, args.backgrounds, val_backgrounds=args.val_backgrounds, train_images=args.train_images,
                val_images=args.val_images, imgsz=args.imgsz, mode=args.mode, max_brands=args.max_brands,
                logos_per_image=args.logos_per_image, seed=args.seed, background_only_fraction=args.background_only,
                icon_sets=icon_sets, style_fraction=args.style_fraction, val_icon_sets=val_icon_sets,
                val_brand_split="test" if args.cross_style_val else "val", negatives=negatives,
                val_negatives=args.val_negatives, negative_fraction=args.negative_fraction,
                print_conditions=print_conditions, overwrite=args.overwrite, record_extra=record_extra,
                wordmark_fraction=args.wordmark_fraction, fonts=fonts,
                progress=lambda it, total, desc: progress_bar(it, enabled=not args.no_progress, total=total,
                                                               desc=desc, unit="img"))
        except (ValueError, FileExistsError, FileNotFoundError) as e:
            note(f"error: {e}", file=sys.stderr)
            return 1
    print_summary(summary)
    return 0
