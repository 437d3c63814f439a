#!/usr/bin/env python
"""Download the pinned ``@fontsource`` fonts (checksum-verified) for brand wordmarks (vision.synth.wordmarks).

    python tools/fetch_fonts.py --out runs/fonts                  # every pinned font
    python tools/fetch_fonts.py --out runs/fonts --fonts lobster oswald

Writes <out>/<id>/{<faces>.woff,LICENSE,package.json,source.json} and prints each font's version, licence and
faces. The DejaVu and STIX faces inside matplotlib need no download.
"""

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from vision.synth.styles import IconSetError
    from vision.synth.wordmarks import FONTSOURCE_FONTS, FontError, default_fonts_dir, fetch_fonts, load_fonts

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help=f"cache folder (default: {default_fonts_dir()})")
    ap.add_argument("--fonts", nargs="+", default=None, help=f"ids to fetch (default: {' '.join(FONTSOURCE_FONTS)})")
    ap.add_argument("--overwrite", action="store_true", help="download again even when the pinned version is there")
    args = ap.parse_args(argv)
    out = args.out or default_fonts_dir()
    start = time.perf_counter()
    try:
        sources = fetch_fonts(out, args.fonts, overwrite=args.overwrite)
        faces = load_fonts(out)
    except (FontError, IconSetError, OSError) as e:  # IconSetError: the shared npm fetch (checksum, tarball)
        print(f"error: {e}", file=sys.stderr)
        return 1
    summary = {"out": str(out), "fetched": {i: {"version": s["version"], "license": s["license"], "files": s["files"]}
                                            for i, s in sources.items()},
               "faces": {f.key: f.record() for f in faces}, "wall_s": round(time.perf_counter() - start, 1)}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
