#!/usr/bin/env python
"""Top-k predictions for images with a zoo model, as JSON lines.

    python tools/predict.py --model demo_grocery_sample --images data/grocery_sample/val --topk 3
    python tools/predict.py --model weights/grocery_resnet10t.safetensors --images photos/ --out preds.jsonl

Unreadable files are skipped and listed on stderr (``--strict`` makes them an error).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm  # noqa: E402

from vision.data.io import ImageLoadError, list_images, load_image  # noqa: E402
from vision.inference import ImageClassifier  # noqa: E402


def collect_images(inputs: list[Path]) -> list[Path]:
    files = []
    for item in inputs:
        if item.is_dir():
            files += list_images(item)
        elif item.is_file():
            files.append(item)
        else:
            raise SystemExit(f"error: {item} does not exist")
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="zoo name, .safetensors file or Lightning .ckpt")
    ap.add_argument("--images", type=Path, nargs="+", required=True, help="image files and/or folders (recursive)")
    ap.add_argument("--topk", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", type=Path, help="JSON lines file (default: stdout)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    args = ap.parse_args(argv)

    clf = ImageClassifier.from_pretrained(args.model, device=args.device)
    files = collect_images(args.images)
    out = args.out.open("w") if args.out else sys.stdout
    skipped: list[tuple[Path, str]] = []
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
            for path, pred in zip(batch, clf.predict(arrays, topk=args.topk) if arrays else []):
                out.write(json.dumps({"image": str(path), **pred}) + "\n")
    finally:
        if args.out:
            out.close()
    if skipped:
        print(f"skipped {len(skipped)} of {len(files)} unreadable image(s): "
              + "; ".join(f"{p} ({why})" for p, why in skipped), file=sys.stderr)
    print(f"predicted {len(files) - len(skipped)} image(s) with {args.model}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
