#!/usr/bin/env python
"""Build the brand metric-learning set from simple-icons: ``vision make-brand-dataset`` from a checkout."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vision.commands.make_brand_dataset import main  # noqa: E402,F401

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["make-brand-dataset", *sys.argv[1:]]))
