#!/usr/bin/env python
"""``vision.predictor`` on several model files (or zoo names) side by side in one process: end-to-end images/s
(decode to results) on the same images, in interleaved rounds (round 0 warms up; every other round runs the rows
in reverse order; medians), with each one's per-stage milliseconds (``Predictor.speed``) and its ratio to the first
(the median of the rounds' ratios). ``--read-ahead both`` times each model without and with
``Predictor.stream``'s ``read_ahead``.

    python -m benchmarks.predictor_ab --images data --batch 1 --rounds 7 \
        runs/int8det/logo.onnx runs/int8det/logo.fused.int8.onnx runs/int8det/logo.unfused.int8.onnx

torch is kept to one thread by default (its OpenMP workers would otherwise take the cores ONNX Runtime's want;
``--torch-threads``); ONNX Runtime sessions have the library's defaults (``vision.predictors.ort_session_options``;
``--ort-threads``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from benchmarks import finish_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="model files or zoo names; ratios are against the first")
    ap.add_argument("--images", type=Path, required=True, help="image folder (read recursively)")
    ap.add_argument("--max-images", type=int, default=160)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--read-ahead", choices=("off", "on", "both"), default="off",
                    help="Predictor.stream's read_ahead for every model; both: each model twice, without and with")
    ap.add_argument("--ort-threads", type=int, help="ONNX Runtime's intra-op threads (default: its own)")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch's threads (default 1)")
    ap.add_argument("--device", default="cpu", help="where the networks run (cuda: torch and ONNX Runtime on the "
                                                    "GPU, where reading ahead is off by default and unmeasured)")
    ap.add_argument("--out", type=Path, help="JSON report")
    args = ap.parse_args(argv)
    import torch

    import vision
    from vision.data.io import list_images

    torch.set_num_threads(args.torch_threads)
    images = [str(p) for p in list_images(args.images)][:args.max_images]
    if not images:
        ap.error(f"no images in {args.images}")
    modes = {"off": (False,), "on": (True,), "both": (False, True)}[args.read_ahead]
    loaded = {m: vision.predictor(m, device=args.device, threads=args.ort_threads) for m in args.models}
    predictors = {(m, ahead): loaded[m] for m in args.models for ahead in modes}
    seconds: dict[tuple, list[float]] = {key: [] for key in predictors}
    speed: dict[tuple, dict] = {}
    for round_ in range(args.rounds + 1):
        order = list(predictors.items())  # every other round in reverse: no row always runs first or last
        for (m, ahead), p in (order[::-1] if round_ % 2 else order):
            t0 = time.perf_counter()
            for _ in p.stream(images, batch_size=args.batch, read_ahead=ahead):
                pass
            if round_:
                seconds[m, ahead].append(time.perf_counter() - t0)
                speed[m, ahead] = dict(p.speed)
    first = next(iter(seconds.values()))
    rows = [{"model": m, "backend": p.backend, "read_ahead": ahead,
             "images_per_s": round(len(images) / statistics.median(seconds[m, ahead]), 1),
             # the median of each round's ratio: the rows of one round ran minutes apart at most
             "vs_first": round(statistics.median(a / b for a, b in zip(first, seconds[m, ahead])), 3),
             "ms_per_image": speed[m, ahead],
             "seconds": [round(s, 3) for s in seconds[m, ahead]]} for (m, ahead), p in predictors.items()]
    for row in rows:  # with --read-ahead both: each model's gain from reading ahead, the median of its rounds' ratios
        if row["read_ahead"] and (row["model"], False) in seconds:
            row["vs_no_read_ahead"] = round(statistics.median(
                a / b for a, b in zip(seconds[row["model"], False], seconds[row["model"], True])), 3)
    print(f"{len(images)} images from {args.images}, batch {args.batch}, median of {args.rounds} interleaved rounds")
    print("\n| model | backend | read ahead | images/s | vs first | ms/image per stage |\n|---|---|---|---|---|---|")
    for r in rows:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["ms_per_image"].items())
        ahead = f"yes ({r['vs_no_read_ahead']:.3f}x without)" if "vs_no_read_ahead" in r else \
            "yes" if r["read_ahead"] else "no"
        print(f"| {r['model']} | {r['backend']} | {ahead} | {r['images_per_s']} | {r['vs_first']:.3f}x | {stages} |")
    report = {"images": len(images), "folder": str(args.images), "batch": args.batch, "rounds": args.rounds,
              "ort_threads": args.ort_threads, "torch_threads": args.torch_threads, "device": args.device,
              "rows": rows}
    finish_report(report, "predictor_ab", argv, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
