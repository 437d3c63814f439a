#!/usr/bin/env python
"""Train/val manifests of a logo verifier: ``vision make-verifier-data``
from a checkout."""

import sys

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["make-verifier-data", *sys.argv[1:]]))
