#!/usr/bin/env python
"""Feature vectors for a folder or manifest of images: ``vision extract`` from a checkout.

    python tools/extract.py --model grocery_resnet10t --images data/grocery_sample/val --out runs/val_feats.npy
"""

import sys

from vision.commands.extract import main  # noqa: F401 (tests call it)

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["extract", *sys.argv[1:]]))
