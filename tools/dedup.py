#!/usr/bin/env python
"""Find duplicate and near-duplicate images in a catalog: ``vision dedup`` from a checkout.

    python tools/dedup.py --images data/grocery_sample --model grocery_resnet10t --out runs/dedup
"""

import sys

from vision.commands.dedup import main  # noqa: F401 (tests call tools/dedup.main)

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["dedup", *sys.argv[1:]]))
