#!/usr/bin/env python
"""Export a zoo model for deployment (ONNX, INT8 ONNX, TensorRT, Triton, ultralytics): ``vision export`` from a
checkout.

    python tools/export.py --model grocery_resnet10t --format onnx --output-kind features
    python tools/export.py --verify export/grocery_resnet10t.features.onnx
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vision.commands.export import default_out, main  # noqa: E402,F401  (tests call both)

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["export", *sys.argv[1:]]))
