"""``vision make-verifier-data``: train/val manifests of a logo verifier (background / logo crop classifier).

    vision make-verifier-data --logos runs/brand_styles/train --impostors runs/impostors \\
        --val-logos runs/brand_styles/val/query --out runs/verifier
    vision train --config configs/classification/logo_verifier_lite0.yaml --zoo-name logo_verifier_lite0

Positives: a brand dataset's composites on real photos (every artwork style of vision make-brand-dataset
--icon-sets); negatives: vision make-impostors' train crops (false detections and busy text/sticker regions of
brand-free photos), a share of their class folders held out for validation. See vision.brands.verification.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from vision.commands import command_parser, note

    ap = command_parser("vision make-verifier-data", __doc__)
    ap.add_argument("--logos", type=Path, required=True, help="a brand dataset's train folder (<brand>/<image>)")
    ap.add_argument("--impostors", type=Path, required=True, help="vision make-impostors' output folder")
    ap.add_argument("--val-logos", type=Path, help="validation positives (<brand>/<image>, e.g. cross-style queries)")
    ap.add_argument("--out", type=Path, required=True, help="output folder (train.txt, val.txt, classes.txt)")
    ap.add_argument("--max-logos", type=int, default=8000, help="at most this many positives (a seeded choice)")
    ap.add_argument("--val-fraction", type=float, default=0.125,
                    help="share of the impostors' source class folders held out as validation negatives")
    ap.add_argument("--pattern", default="*wild*", help="file pattern of the positives inside each brand folder")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from vision.synth.negatives import write_verifier_data

    try:
        summary = write_verifier_data(args.out, args.logos, args.impostors, val_logos=args.val_logos,
                                      max_logos=args.max_logos, val_fraction=args.val_fraction, seed=args.seed,
                                      pattern=args.pattern)
    except (ValueError, FileNotFoundError) as e:
        note(f"error: {e}", file=sys.stderr)
        return 1
    note(f"wrote {summary.out_dir}")
    for split, counts in summary.counts.items():
        note(f"  {split:5s}: {counts['logo']} logo crops, {counts['background']} background crops")
    note(f"  held-out impostor folders: {len(summary.held_out_folders)}")
    return 0
