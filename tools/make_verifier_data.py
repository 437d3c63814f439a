#!/usr/bin/env python
"""Train/val manifests of a logo verifier: ``vision make-verifier-data``
from a checkout."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vision.commands.make_verifier_data import main  # noqa: E402,F401

if __name__ == "__main__":
    from vision.commands import main as vision_main

    raise SystemExit(vision_main(["make-verifier-data", *sys.argv[1:]]))
