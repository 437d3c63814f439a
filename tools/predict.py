#!/usr/bin/env python
"""Predictions for images with a zoo model (classifier or logo detector), as JSON lines.

    python tools/predict.py --model demo_grocery_sample --images data/grocery_sample/val --topk 3
    python tools/predict.py --model weights/grocery_resnet10t.safetensors --images photos/ --out preds.jsonl
    python tools/predict.py --model logo_yolo11n --images data/logo_sample/images/val --conf 0.25 \
        --out logos.jsonl --draw runs/logos_drawn

Classifiers write ``{"image", "topk": [{"label", "index", "score"}], ...}`` per line; detectors write
``{"image", "width", "height", "detections": [{"box": [x1, y1, x2, y2], "score", "label", "class_id"}]}``
in original pixels, and ``--draw DIR`` also saves each image with its boxes as a PNG.
Unreadable files are skipped and listed on stderr (``--strict`` makes them an error); a folder without images,
or no readable image at all, exits non-zero. Drawings keep the full file name: ``shelf.1.jpg`` -> ``shelf.1.jpg.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from vision.data.io import ImageLoadError, collect_images, load_image  # noqa: E402
from vision.inference import ImageClassifier  # noqa: E402
from vision.inference_detection import LogoDetector, draw_detections  # noqa: E402
from vision.zoo import load_model  # noqa: E402


def classify(model, args):
    clf = ImageClassifier(model, device=args.device)
    return lambda arrays: clf.predict(arrays, topk=args.topk)


def detect(model, args):
    detector = LogoDetector(model, device=args.device, conf=args.conf, iou=args.iou)

    def run(arrays):
        return [{"width": a.shape[1], "height": a.shape[0], "detections": dets}
                for a, dets in zip(arrays, detector.predict(arrays))]
    return run


def drawing_name(path: Path, taken: set[str]) -> str:
    """A PNG name for ``path`` that no earlier drawing has: ``shelf.1.jpg`` -> ``shelf.1.jpg.png``.

    The full file name is kept because stems collide (``shelf.1.jpg`` / ``shelf.1.png``); same-named images
    from different folders get ``_1``, ``_2``, ... Names are compared case-insensitively for macOS/Windows disks.
    """
    name, n = path.name, 1
    while name.lower() in taken:
        name, n = f"{path.stem}_{n}{path.suffix}", n + 1
    taken.add(name.lower())
    return name + ".png"


# task -> (model, args) -> callable(list of RGB arrays) -> one JSON-able dict per image
PREDICTORS = {"classification": classify, "detection": detect}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="zoo name, .safetensors file or Lightning .ckpt")
    ap.add_argument("--images", type=Path, nargs="+", required=True, help="image files and/or folders (recursive)")
    ap.add_argument("--topk", type=int, default=5, help="classifiers: classes per image")
    ap.add_argument("--conf", type=float, default=0.25, help="detectors: minimum box score")
    ap.add_argument("--iou", type=float, default=0.7, help="detectors: NMS IoU threshold")
    ap.add_argument("--draw", type=Path, help="detectors: folder for annotated PNGs")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", type=Path, help="JSON lines file (default: stdout)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    args = ap.parse_args(argv)

    try:  # before loading the model: a mistyped or empty folder should fail at once
        files = collect_images(args.images)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(args.model, device=args.device)
    if model.card.task not in PREDICTORS:
        raise SystemExit(f"error: {args.model} is a {model.card.task!r} model; "
                         f"tools/predict.py handles {', '.join(sorted(PREDICTORS))}")
    if args.draw and model.card.task != "detection":
        raise SystemExit(f"error: --draw draws boxes; {args.model} is a {model.card.task!r} model")
    predict = PREDICTORS[model.card.task](model, args)
    out = args.out.open("w") if args.out else sys.stdout
    skipped: list[tuple[Path, str]] = []
    drawn: set[str] = set()
    try:
        for start in tqdm(range(0, len(files), args.batch_size), desc="predict", unit="batch",
                          disable=not args.out, file=sys.stderr):
            batch, arrays = [], []
            for path in files[start:start + args.batch_size]:
                try:
                    arrays.append(load_image(path))
                    batch.append(path)
                except ImageLoadError as e:
                    if args.strict:
                        raise SystemExit(f"error: {e}")
                    skipped.append((path, e.reason))
            for path, array, pred in zip(batch, arrays, predict(arrays) if arrays else []):
                out.write(json.dumps({"image": str(path), **pred}) + "\n")
                if args.draw and "detections" in pred:
                    draw_detections(array, pred["detections"], args.draw / drawing_name(path, drawn))
    finally:
        if args.out:
            out.close()
    if skipped:
        print(f"skipped {len(skipped)} of {len(files)} unreadable image(s): "
              + "; ".join(f"{p} ({why})" for p, why in skipped), file=sys.stderr)
    if len(skipped) == len(files):
        print(f"error: none of the {len(files)} image(s) could be read; nothing was predicted", file=sys.stderr)
        return 1
    print(f"predicted {len(files) - len(skipped)} image(s) with {args.model}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
