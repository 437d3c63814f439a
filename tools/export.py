#!/usr/bin/env python
"""Export a zoo model for deployment (ONNX, INT8 ONNX, TensorRT, Triton, ultralytics): ``vision export`` from a
checkout.

    python tools/export.py --model grocery_resnet10t --format onnx --output-kind features
    python tools/export.py --verify export/grocery_resnet10t.features.onnx
"""

import sys

from vision.commands.export import default_out, main  # noqa: F401 (tests call both)

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["export", *sys.argv[1:]]))
