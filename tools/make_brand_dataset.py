#!/usr/bin/env python
"""Build the brand metric-learning set from simple-icons: ``vision make-brand-dataset`` from a checkout."""

import sys

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["make-brand-dataset", *sys.argv[1:]]))
