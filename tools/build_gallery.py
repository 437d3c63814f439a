#!/usr/bin/env python
"""Build a brand gallery (.npz) and calibrate its open-set threshold: ``vision build-gallery`` from a checkout.

    python tools/build_gallery.py --embedder brand_resnet10t --folder my_logos/ --out my_gallery.npz
"""

import sys

from vision.commands.build_gallery import main  # noqa: F401 (tests call it)

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["build-gallery", *sys.argv[1:]]))
