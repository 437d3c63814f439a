#!/usr/bin/env python
"""Predictions of any zoo model or export as JSON lines: ``vision predict`` from a checkout.

    python tools/predict.py --model grocery_resnet10t --images data/grocery_sample/val --topk 3
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vision.commands import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["predict", *sys.argv[1:]]))
