"""Dedup speed side by side on one folder, in one process, interleaved: our hash stages (exact + mirror-aware pHash
+ guarded union-find; ``vision dedup`` without ``--model``) against imagededup's hash methods, each at its own
defaults on this machine's cores (ours: one reading thread per core; imagededup: ``num_enc_workers`` and
``num_dist_workers`` = CPU count), at the distance thresholds ``benchmarks/dedup_eval.py`` chose on its validation
split (read from its ``result.json``). Prints the median images/s over ``--repeats`` rounds and each peer's ratio
to ours. Quality is not measured here: it is the same setting as in ``result.json``, which holds it.

    python -m benchmarks.dedup_speed --images runs/dedup_eval/images/test --result runs/dedup_eval/result.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
import warnings
from pathlib import Path

HASH_ROW = "ours, hash stages only"
PEERS = ("PHash", "DHash", "AHash", "WHash")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, required=True, help="a folder of images (flat: imagededup reads one folder)")
    ap.add_argument("--result", type=Path, required=True, help="dedup_eval.py's result.json (chosen thresholds)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    from imagededup import methods

    from vision.dedup import Thresholds, find_duplicates, scan_images
    from vision.dedup.catalog import default_workers

    logging.getLogger("imagededup").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="Parameter num_enc_workers has no effect")  # imagededup's own note
    chosen = json.loads(args.result.read_text(encoding="utf-8"))["methods"]
    ours_distance = next(v for k, v in chosen.items() if k.startswith(HASH_ROW))["setting"]["phash_distance"]
    paths = sorted(str(p) for p in args.images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise SystemExit(f"error: {args.images}: no images")

    def ours(workers):
        def run():
            catalog = scan_images(paths, workers=workers)
            find_duplicates(catalog, Thresholds(phash_distance=ours_distance, similarity=None, verify=None))
        return run

    def peer(name):
        method = getattr(methods, name)(verbose=False)
        distance = chosen[f"imagededup {name}"]["setting"]["max_distance"]

        def run():
            encodings = method.encode_images(image_dir=str(args.images))
            method.find_duplicates(encoding_map=encodings, max_distance_threshold=distance)
        return run

    runs = {f"ours, hash stages ({default_workers()} threads)": ours(None), "ours, hash stages (1 thread)": ours(1)}
    runs |= {f"imagededup {name} (defaults: {os.cpu_count()} processes)": peer(name) for name in PEERS}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            rates[name].append(len(paths) / (time.perf_counter() - t0))
    reference = statistics.median(rates[next(iter(runs))])
    print(f"{len(paths)} images from {args.images}; median of {args.repeats} interleaved rounds; "
          f"{os.cpu_count()} CPUs")
    print("| method | images/s (median) | rounds | ours / this |")
    print("|---|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.0f} | {', '.join(f'{v:.0f}' for v in values)} | {reference / median:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
