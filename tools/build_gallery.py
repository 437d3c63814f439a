#!/usr/bin/env python
"""Build a brand gallery (.npz) and calibrate its open-set threshold: ``vision build-gallery`` from a checkout.

    python tools/build_gallery.py --embedder brand_resnet10t --folder my_logos/ --out my_gallery.npz
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vision.commands.build_gallery import calibrate, main  # noqa: E402,F401  (tests and benchmarks call them)

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["build-gallery", *sys.argv[1:]]))
