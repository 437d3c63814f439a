#!/usr/bin/env python
"""Export a zoo model for deployment (ONNX for now), with its card embedded and a parity report beside it.

    python tools/export.py --model grocery_resnet10t --format onnx --output features --out export/grocery_features.onnx
    python tools/export.py --model weights/grocery_resnet10t.safetensors --out export/grocery.onnx \
        --calib-images data/grocery_sample/val

``--calib-images`` adds real images (a few per run) to the random inputs of the parity check.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vision.data.io import list_images  # noqa: E402
from vision.export import ExportError, export_onnx  # noqa: E402
from vision.zoo import ZooError, load_model  # noqa: E402

CALIB_IMAGES = 16
FORMATS = {"onnx": export_onnx}
PLANNED = {"tensorrt": "tensorrt: not implemented yet (export onnx and build a plan with trtexec for now)"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="zoo name, .safetensors file or Lightning .ckpt")
    ap.add_argument("--format", default="onnx", choices=sorted({*FORMATS, *PLANNED}))
    ap.add_argument("--output", default="logits", choices=["logits", "features"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--calib-images", type=Path, help="folder of images for the parity check")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--no-simplify", action="store_true")
    args = ap.parse_args(argv)

    if args.format in PLANNED:
        raise SystemExit(f"error: {PLANNED[args.format]}")
    samples = list_images(args.calib_images)[:CALIB_IMAGES] if args.calib_images else None
    try:
        model = load_model(args.model)
        path = FORMATS[args.format](model, args.out, opset=args.opset, simplify=not args.no_simplify,
                                    output=args.output, sample_images=samples)
    except (ExportError, ZooError) as e:
        raise SystemExit(f"error: {e}")
    report = json.loads(path.with_name(path.name + ".parity.json").read_text())
    print(f"wrote {path} ({args.output}); parity: {json.dumps(report)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
