#!/usr/bin/env python
"""Metrics of any zoo model on a labelled split: ``vision eval`` from a checkout.

    python tools/eval.py --model grocery_resnet10t --data ../shared/datasets/grocery_store/val.txt \
        --classes ../shared/datasets/grocery_store/classes.csv
"""

import sys

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["eval", *sys.argv[1:]]))
