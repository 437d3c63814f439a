#!/usr/bin/env python
"""Predictions of any zoo model or export as JSON lines: ``vision predict`` from a checkout.

    python tools/predict.py --model grocery_resnet10t --images data/grocery_sample/val --topk 3
"""

import sys

from vision.commands import main

if __name__ == "__main__":
    raise SystemExit(main(["predict", *sys.argv[1:]]))
