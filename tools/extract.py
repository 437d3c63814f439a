#!/usr/bin/env python
"""Pooled, L2-normalised backbone features for a folder or manifest of images, to .npy (+ .ids.txt) or .parquet.

    python tools/extract.py --model grocery_resnet10t --images data/grocery_sample/val --out runs/val_feats.npy
    python tools/extract.py --model export/grocery_features.onnx --images data/grocery_sample/val.txt --out f.npy

Unreadable files are skipped and listed in a warning; a folder with no readable image is an error (nothing is
written). The ``.npy`` and its ``.ids.txt`` are committed as one pair (``vision.features.load_features`` reads them
back and checks they belong together); exports are checked against their recorded sha256 before they run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vision.export import ExportError  # noqa: E402
from vision.features import BACKENDS, FeatureExtractor  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="zoo name, .safetensors, .ckpt, features .onnx or TensorRT .plan")
    ap.add_argument("--backend", default="auto", choices=BACKENDS)
    ap.add_argument("--images", type=Path, required=True, help="folder (recursive) or manifest of 'path, ...' lines")
    ap.add_argument("--out", type=Path, required=True, help=".npy (with an .ids.txt sidecar) or .parquet")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)

    try:
        extractor = FeatureExtractor.from_pretrained(args.model, backend=args.backend, device=args.device)
        summary = extractor.extract_folder(args.images, args.out, batch_size=args.batch_size)
    except (ValueError, ImportError, FileNotFoundError, ExportError) as e:
        raise SystemExit(f"error: {e}")
    print(json.dumps({k: v for k, v in summary.items() if k != "skipped"} | {"skipped": len(summary["skipped"])}),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
