#!/usr/bin/env python
"""``FeatureExtractor.extract_folder`` against a plain loop over the same images, side by side in one process.

The plain loop is what ``extract_folder`` did until 2026-12-07 and what a user writes by hand: decode each image in
turn, then embed the batch (``FeatureExtractor._embed``) and write it. ``extract_folder`` decodes a batch's images
on a thread pool within the pixel budget and, where the network leaves a core free, reads the next batch while
this one runs (``vision.predictors.read_batches``, ``one_ahead``). Both write an ``.npy``; the vectors are checked
equal. Interleaved rounds (round 0 warms up; every other round in reverse order); the ratio is the median of the
rounds' ratios.

    python -m benchmarks.extract_ab --images $GROCERY/train --limit 320 --rounds 4 \
        grocery_resnet10t runs/dd_zen5/exports/grocery_resnet10t.features.int8.onnx
    python -m benchmarks.extract_ab ... --ort-threads 1      # ONNX Runtime on one thread: a core left free

``--limit`` takes every k-th image of the sorted folder; the files are read once before any timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import finish_report


def plain_loop(fx, paths: list[Path], out: Path, batch_size: int) -> None:
    from vision.data.io import load_image
    from vision.features import NpyWriter

    with NpyWriter(out, {"model": fx.card.name, "model_sha256": fx.card.sha256, "output": "features"}) as writer:
        for i in range(0, len(paths), batch_size):
            chunk = paths[i:i + batch_size]
            writer.write([str(p) for p in chunk], fx._embed([load_image(p) for p in chunk]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="zoo names or feature exports")
    ap.add_argument("--images", type=Path, required=True, help="image folder (read recursively)")
    ap.add_argument("--limit", type=int, default=320)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--ort-threads", type=int, help="ONNX Runtime's intra-op threads (default: its own)")
    ap.add_argument("--out", type=Path, help="JSON report")
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    from vision.data.io import list_images
    from vision.features import FeatureExtractor, load_features

    paths = list_images(args.images)
    if args.limit and args.limit < len(paths):
        step = len(paths) / args.limit
        paths = [paths[int(i * step)] for i in range(args.limit)]
    if not paths:
        ap.error(f"no images in {args.images}")
    for p in paths:  # warm page cache
        p.read_bytes()
    work = Path(tempfile.mkdtemp(prefix="extract_ab-"))
    extractors = {m: FeatureExtractor.from_pretrained(m, device="cpu", threads=args.ort_threads) for m in args.models}
    runs = {"plain loop": lambda fx, out: plain_loop(fx, paths, out, args.batch),
            "extract_folder": lambda fx, out: fx.extract_folder(paths, out, batch_size=args.batch, progress=False)}
    seconds = {(m, r): [] for m in extractors for r in runs}
    for round_ in range(args.rounds + 1):
        order = list(seconds)
        for m, r in (order[::-1] if round_ % 2 else order):
            t0 = time.perf_counter()
            runs[r](extractors[m], work / f"{args.models.index(m)}.{r}.npy")
            if round_:
                seconds[m, r].append(time.perf_counter() - t0)
    for i, m in enumerate(args.models):  # the same vectors both ways
        np.testing.assert_allclose(load_features(work / f"{i}.plain loop.npy")[1],
                                   load_features(work / f"{i}.extract_folder.npy")[1], atol=1e-5, err_msg=m)
    rows = []
    for m, fx in extractors.items():
        plain, ours = seconds[m, "plain loop"], seconds[m, "extract_folder"]
        rows.append({"model": m, "backend": fx.backend.backend, "reads_ahead": fx.predictor.reads_ahead(),
                     "plain_images_per_s": round(len(paths) / statistics.median(plain), 1),
                     "extract_folder_images_per_s": round(len(paths) / statistics.median(ours), 1),
                     "extract_folder_vs_plain": round(statistics.median(a / b for a, b in zip(plain, ours)), 3)})
    print(f"{len(paths)} images from {args.images}, batch {args.batch}, median of {args.rounds} interleaved rounds, "
          f"torch threads {torch.get_num_threads()}, ONNX Runtime threads {args.ort_threads or 'its own'}")
    print("\n| model | backend | reads ahead | plain loop images/s | extract_folder images/s | ratio |\n"
          "|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['backend']} | {'yes' if r['reads_ahead'] else 'no'} | {r['plain_images_per_s']} "
              f"| {r['extract_folder_images_per_s']} | {r['extract_folder_vs_plain']:.3f}x |")
    report = {"images": len(paths), "folder": str(args.images), "batch": args.batch, "rounds": args.rounds,
              "ort_threads": args.ort_threads, "rows": rows}
    finish_report(report, "extract_ab", argv, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
