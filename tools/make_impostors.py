#!/usr/bin/env python
"""Impostor crops of brand-free photos (gallery calibration): ``vision make-impostors``
from a checkout."""

import sys

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["make-impostors", *sys.argv[1:]]))
