#!/usr/bin/env python
"""Download the pinned ``@iconify-json`` brand icon sets (checksum-verified) for the multi-style brand data.

    python tools/fetch_icon_sets.py --out runs/iconify            # every pinned set
    python tools/fetch_icon_sets.py --out runs/iconify --sets devicon skill-icons

Writes <out>/<prefix>/{icons.json,package.json,source.json} (see vision.synth.styles) and prints, per set, its
version, licence and how many simple-icons brands its icon names match. ``logos`` is refused (reserved for
independent evaluation).

``tabler`` and ``material-icon-theme`` were pinned on 2026-12-07 (21:30 UTC, for the shipped gallery). The data of
every model trained before then (the shipped embedder's and detector's) came from the eight sets pinned before:

    python tools/fetch_icon_sets.py --out runs/iconify8 --sets devicon skill-icons cib fa6-brands bxl arcticons \
        streamline-logos vscode-icons
"""

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from vision.synth.styles import ICON_SETS, IconSetError, default_icon_sets_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help=f"cache folder (default: {default_icon_sets_dir()})")
    ap.add_argument("--sets", nargs="+", default=None, help=f"prefixes to fetch (default: {' '.join(ICON_SETS)})")
    ap.add_argument("--overwrite", action="store_true", help="download again even when the pinned version is there")
    args = ap.parse_args(argv)

    from vision.synth.catalog import list_brands, split_brands
    from vision.synth.styles import EVAL_STYLES, fetch_icon_sets, load_icon_sets, style_catalogue

    out = args.out or default_icon_sets_dir()
    start = time.perf_counter()
    try:
        sources = fetch_icon_sets(out, args.sets, overwrite=args.overwrite)
        sets = load_icon_sets(out, list(sources))
    except (IconSetError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    brands = list_brands()
    test = set(split_brands(brands, seed=0)["test"])
    catalogue, reports = style_catalogue(sets, brands)
    summary = {}
    for prefix, icon_set in sets.items():
        summary[prefix] = {"version": icon_set.version, "license": icon_set.license, **reports[prefix].summary(),
                           "test_brands": sum(1 for s, styles in catalogue.items() if prefix in styles and s in test),
                           "held_out": prefix in EVAL_STYLES}
    print(json.dumps({"out": str(out), "sets": summary, "wall_s": round(time.perf_counter() - start, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
