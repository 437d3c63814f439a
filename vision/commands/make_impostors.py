"""``vision make-impostors``: impostor crops of brand-free photos, for calibrating a brand gallery's "unknown".

    vision make-impostors --root ../shared/datasets/grocery_store --out runs/impostors
    vision make-impostors --root ../shared/datasets/grocery_store --out runs/impostors --detector none --max-photos 50

Reads the Fruit and Vegetables photos (no brand marks) of the train and val splits (the held-out test split is
refused), runs the logo detector on them and writes square crops (the recogniser's framing) around its false
detections plus crops of text/sticker-like busy regions: <out>/{train,val}/*.jpg, <out>/manifest.csv (split, file,
kind, source photo, box, detector score) and <out>/impostors.json (parameters and counts).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from vision.commands import add_device, add_no_progress, add_zoo_dir, command_parser, note
    from vision.crops import CROP_MARGIN

    ap = command_parser("vision make-impostors", __doc__)
    ap.add_argument("--root", type=Path, required=True, help="Grocery Store root (with train/ and val/)")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--splits", default="train,val", help="comma-separated splits (train, val)")
    ap.add_argument("--detector", default="logo_yolo11n",
                    help="detector whose false detections become impostors (zoo name, file or export); 'none': "
                         "textured crops only")
    add_zoo_dir(ap)
    ap.add_argument("--conf", type=float, default=0.1, help="lowest detection score kept")
    ap.add_argument("--detections-per-photo", type=int, default=4)
    ap.add_argument("--textured-per-photo", type=int, default=2)
    ap.add_argument("--margin", type=float, default=CROP_MARGIN,
                    help="square-crop margin around a box (the recogniser's; build-gallery --margin must match)")
    ap.add_argument("--size", type=int, default=128, help="side of the written crops")
    ap.add_argument("--max-photos", type=int, help="at most this many photos per split (seeded choice)")
    add_device(ap)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace impostors already in --out")
    add_no_progress(ap)
    args = ap.parse_args(argv)
    from vision.progress import progress_bar, warnings_above_progress_bar
    from vision.synth.negatives import write_impostors

    detect, name = None, None
    if args.detector.lower() != "none":
        from vision.predictors import predictor

        model = predictor(args.detector, device=args.device, conf=args.conf, zoo_dir=args.zoo_dir)
        if model.card.task != "detection":
            note(f"error: --detector {args.detector!r} is a {model.card.task} model, not a detector",
                  file=sys.stderr)
            return 1
        name = f"{model.card.name} (sha256 {model.card.sha256})"

        def detect(arrays):
            return [r.boxes for r in model(arrays)]

    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    with warnings_above_progress_bar():
        try:
            summary = write_impostors(
                args.out, args.root, detect, splits=splits, max_photos=args.max_photos,
                detections_per_photo=args.detections_per_photo, textured_per_photo=args.textured_per_photo,
                conf=args.conf, margin=args.margin, size=args.size, seed=args.seed, detector_name=name,
                overwrite=args.overwrite,
                progress=lambda it, total, desc: progress_bar(it, enabled=not args.no_progress, total=total,
                                                               desc=desc, unit="batch"))
        except (ValueError, FileExistsError, FileNotFoundError) as e:
            note(f"error: {e}", file=sys.stderr)
            return 1
    note(f"wrote {summary.out_dir}")
    for split in splits:
        crops = summary.crops[split]
        note(f"  {split:5s}: {summary.photos[split]} photos ({summary.photos_with_detection[split]} with a detection "
              f">= {args.conf}), {crops['detection']} detection crops, {crops['textured']} textured crops")
    note(f"  skipped photos: {len(summary.skipped_photos)}"
          + "".join(f"\n    {path}: {reason}" for path, reason in summary.skipped_photos))
    return 0
