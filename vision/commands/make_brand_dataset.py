"""``vision make-brand-dataset``: build the brand metric-learning set from simple-icons: clean renders and logos
in the wild, by brand split.

    G=../shared/datasets/grocery_store
    vision make-brand-dataset --backgrounds $G/train/Fruit $G/train/Vegetables \
        --val-backgrounds $G/val/Fruit $G/val/Vegetables --out runs/brands --size 96 --workers 2
    # cross-style: + every training style of the Iconify sets (tools/fetch_icon_sets.py); val/test queries in the
    # held-out style (vision.synth.styles.EVAL_STYLES)
    vision make-brand-dataset ... --icon-sets runs/iconify --out runs/brand_styles
    # + brand titles set as text (vision.synth.wordmarks) as one more training style and gallery reference; --fonts
    # adds the pinned @fontsource fonts (tools/fetch_fonts.py) to the DejaVu/STIX faces inside matplotlib
    vision make-brand-dataset ... --icon-sets runs/iconify --wordmarks 3 --fonts runs/fonts --out runs/wordmark_styles

Writes train/<brand>/, {val,test}/gallery/<brand>/, {val,test}/query/<brand>/ and brands.json under --out
(see vision.synth.brand_dataset). Use fruit and vegetable photos as backgrounds: package photos carry real,
unlabelled logos.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vision.commands import add_no_progress, command_parser


def main(argv: list[str] | None = None) -> int:
    ap = command_parser("vision make-brand-dataset", __doc__)
    ap.add_argument("--backgrounds", type=Path, nargs="+", required=True, help="folders of background photos")
    ap.add_argument("--val-backgrounds", type=Path, nargs="+", help="backgrounds for val/test queries")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", type=int, default=96, help="side of the square crops")
    ap.add_argument("--train-clean", type=int, default=2, help="clean renders per train brand")
    ap.add_argument("--train-wild", type=int, default=6, help="composited crops per train brand")
    ap.add_argument("--queries", type=int, default=3, help="composited queries per val/test brand")
    ap.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    ap.add_argument("--max-brands", type=int, help="at most this many brands per split")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1, help="processes rendering brands")
    ap.add_argument("--icon-sets", type=Path, help="folder of Iconify sets (tools/fetch_icon_sets.py): cross-style "
                    "layout, every training style as positives, held-out style as val/test queries")
    ap.add_argument("--eval-styles", nargs="+", help="held-out styles (default: vision.synth.styles.EVAL_STYLES)")
    ap.add_argument("--style-clean", type=int, default=1, help="clean renders per training-style icon")
    ap.add_argument("--style-wild", type=int, default=3, help="composited crops per training-style icon")
    ap.add_argument("--icons-per-style", type=int, default=2, help="at most this many icons of one style per brand")
    ap.add_argument("--wordmarks", type=int, default=0, help="wordmarks (the brand title set as text) per train "
                    "brand, each one clean render and --style-wild composites; val/test galleries get "
                    "--gallery-wordmarks references (0: none)")
    ap.add_argument("--gallery-wordmarks", type=int, default=2, help="wordmark references per val/test brand")
    ap.add_argument("--fonts", type=Path, help="folder of fetched @fontsource fonts (tools/fetch_fonts.py) added to "
                    "the built-in DejaVu/STIX faces for --wordmarks")
    ap.add_argument("--print-conditions", action=argparse.BooleanOptionalAction, default=True,
                    help="print conditions in the composites (curved pack, glare, low contrast, small, blur, "
                    "sticker); --no-print-conditions: composites as before them")
    ap.add_argument("--mark-styles", help="per training composite, turn the mark into another style before it "
                    "is pasted, at most one per mark: e.g. fill_to_outline=0.2,outline_to_fill=0.2,mono=0.15 "
                    "(vision.data.style_augment.MarkStyles; off by default)")
    ap.add_argument("--overwrite", action="store_true")
    add_no_progress(ap)
    args = ap.parse_args(argv)
    from vision.progress import progress_bar, warnings_above_progress_bar
    from vision.synth.brand_dataset import write_brand_dataset
    from vision.synth.composite import PRINT_CONDITIONS
    from vision.synth.styles import EVAL_STYLES

    start = time.perf_counter()
    with warnings_above_progress_bar():
        try:
            summary = write_brand_dataset(
                args.out, args.backgrounds, val_backgrounds=args.val_backgrounds, size=args.size,
                train_clean=args.train_clean, train_wild=args.train_wild, queries=args.queries, splits=args.splits,
                max_brands=args.max_brands, seed=args.seed, workers=args.workers, overwrite=args.overwrite,
                icon_sets=args.icon_sets, eval_styles=tuple(args.eval_styles or EVAL_STYLES),
                style_clean=args.style_clean, style_wild=args.style_wild, icons_per_style=args.icons_per_style,
                print_conditions=PRINT_CONDITIONS if args.print_conditions else None,
                wordmarks=args.wordmarks, gallery_wordmark_count=args.gallery_wordmarks, fonts=args.fonts,
                mark_styles=args.mark_styles,
                progress=lambda it, total, desc: progress_bar(it, enabled=not args.no_progress, total=total,
                                                              desc=desc, unit="brand"))
        except (ValueError, FileExistsError, FileNotFoundError) as e:  # IconSetError, FontError: ValueErrors
            print(f"error: {e}", file=sys.stderr)
            return 1
    summary["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(summary))
    return 0
