#!/usr/bin/env python
"""Build a YOLO logo-detection dataset (simple-icons marks on photos): ``vision make-logo-dataset``
from a checkout."""

import sys

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["make-logo-dataset", *sys.argv[1:]]))
