#!/usr/bin/env python
"""Recognise brands in photos (detector -> crops -> embeddings -> gallery): ``vision recognize`` from a checkout.

    python tools/recognize.py --images photos/ --detector logo_yolo11n --embedder brand_ensemble \
        --gallery simple_icons_gallery --out runs/recognized
"""

import sys

from vision.commands.recognize import main  # noqa: F401 (tests call it)

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["recognize", *sys.argv[1:]]))
