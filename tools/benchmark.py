#!/usr/bin/env python
"""Speed of zoo models per runtime through the predictor interface: ``vision benchmark`` from a checkout.

    python tools/benchmark.py --model grocery_resnet10t,logo_yolo11n,brand_resnet10t --batch-sizes 1,8,32 \
        --calib-dir data/grocery_sample/train --images data/grocery_sample/val
"""

import sys

from vision.commands.benchmark import main  # noqa: F401 (tests call it)

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["benchmark", *sys.argv[1:]]))
