#!/usr/bin/env python
"""Pack a generated dataset folder into one .tar.gz for the 64 MiB transfer to a lent GPU machine
(benchmarks/device_brand_train.sh): every JPEG re-encoded as WebP (about 40% of the bytes at the quality
below), every other file (labels, data.yaml, brands.json) as is. Both training loaders read WebP.

    python -m benchmarks.device_pack runs/gpu/brand_styles64 .gpu/brand_styles64.tar.gz --quality 80
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tarfile
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

from PIL import Image


def _webp(path: Path, quality: int) -> bytes:
    buf = io.BytesIO()
    with Image.open(path) as im:
        im.convert("RGB").save(buf, "WEBP", quality=quality, method=4)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--quality", type=int, default=80)
    ap.add_argument("--workers", type=int, default=2, help="encoding processes (1: in this process)")
    args = ap.parse_args(argv)
    files = sorted(p for p in args.src.rglob("*") if p.is_file())
    jpegs = [p for p in files if p.suffix.lower() in (".jpg", ".jpeg")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    before = after = 0
    with contextlib.ExitStack() as stack:
        tar = stack.enter_context(tarfile.open(args.out, "w:gz", compresslevel=6))
        if args.workers > 1:
            pool = stack.enter_context(ProcessPoolExecutor(args.workers))
            encoded = pool.map(_webp, jpegs, repeat(args.quality), chunksize=256)
        else:
            encoded = (_webp(p, args.quality) for p in jpegs)
        for p, data in zip(jpegs, encoded):
            before += p.stat().st_size
            after += len(data)
            _add(tar, str(Path(args.src.name) / p.relative_to(args.src).with_suffix(".webp")), data)
        for p in files:
            if p.suffix.lower() not in (".jpg", ".jpeg"):
                _add(tar, str(Path(args.src.name) / p.relative_to(args.src)), p.read_bytes())
    print(f"{args.out}: {len(jpegs)} images {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB WebP q{args.quality}, "
          f"{len(files) - len(jpegs)} other files; tar {args.out.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
