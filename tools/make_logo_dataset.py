#!/usr/bin/env python
"""Build a YOLO logo-detection dataset (simple-icons marks on photos): ``vision make-logo-dataset``
from a checkout."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vision.commands.make_logo_dataset import main  # noqa: E402,F401

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["make-logo-dataset", *sys.argv[1:]]))
