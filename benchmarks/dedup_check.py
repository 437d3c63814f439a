"""The keypoint check of ``vision dedup`` on its own, side by side in one process: where its time goes by thread.

Runs on the set and exports ``benchmarks/dedup_speed.py --end-to-end`` builds (give the same ``--out``): scans the
images with the shipped features as ``vision dedup`` does, records the pairs the cosine gate passes to the keypoint
check (and which may try the mirror), then times, in interleaved rounds (medians):

- ``Verifier.score_pairs`` with 1 thread and with 2 (one thread scores the pairs while the other computes keypoints
  ahead of it);
- the pair work alone (every keypoint set computed beforehand) on 1 thread, on 2 threads sharing it, and on 2
  forked processes each taking half the pairs (Linux): how much of the pair work the GIL serialises.

    python -m benchmarks.dedup_speed --end-to-end --out /tmp/dd/base --no-torch     # builds the set once
    python -m benchmarks.dedup_check --out /tmp/dd/base --rounds 5
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MODEL = "grocery_resnet10t"


def recorded_pairs(folder: Path, exports: Path):
    """The catalog (with its thumbnails), the thresholds and the ``(pairs, mirror)`` the keypoint check gets."""
    from vision.dedup import Thresholds, find_duplicates, scan_images
    from vision.dedup.verify import Verifier

    os.environ["VISION_EXPORT_DIR"] = str(exports)
    catalog = scan_images(str(folder), model=MODEL, thumbnails=True)
    t = Thresholds.for_catalog(catalog)
    seen = {}

    class Recording(Verifier):
        def score_pairs(self, pairs, workers=1, mirror=None):
            seen.update(pairs=list(pairs), mirror=None if mirror is None else list(mirror))
            return super().score_pairs(pairs, workers, mirror)

    find_duplicates(catalog, t, verifier=Recording(**verifier_options(catalog, t)))
    return catalog, t, seen["pairs"], seen["mirror"] or [True] * len(seen["pairs"])


def verifier_options(catalog, t) -> dict:
    """The verifier ``find_duplicates`` makes for these thresholds (signals that cannot change a decision skipped)."""
    return {"min_inliers": t.min_inliers, "local_from": t.verify if t.min_local is not None else math.inf,
            "thumbnails": catalog.thumbnails}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="the --out of benchmarks.dedup_speed --end-to-end")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    folder, exports = args.out / "images", args.out / "exports"
    if not folder.is_dir() or not exports.is_dir():
        ap.error(f"{args.out} holds no images/ and exports/: run benchmarks.dedup_speed --end-to-end --out there")
    from vision.dedup.verify import Verifier, _one_openmp_thread

    catalog, t, pairs, mirror = recorded_pairs(folder, exports)
    jobs = list(zip(pairs, mirror))

    def fresh() -> Verifier:
        return Verifier(**verifier_options(catalog, t))

    def prepared() -> Verifier:   # every keypoint set a pair may need, computed beforehand
        v = fresh()
        for (a, b), m in jobs:
            for key in ((a, False), (b, False)) + (((a, True),) if m else ()):
                v._features(*key)
        return v

    def pair_work(v: Verifier, part) -> None:
        _one_openmp_thread()
        for (a, b), m in part:
            v.score(a, b, mirror=m)

    def threads(v: Verifier) -> None:
        with ThreadPoolExecutor(2, initializer=_one_openmp_thread) as pool:
            list(pool.map(lambda job: v.score(*job[0], mirror=job[1]), jobs))

    def processes(v: Verifier) -> None:
        children = []
        for part in (jobs[0::2], jobs[1::2]):
            pid = os.fork()
            if pid == 0:   # the child scores its half on the keypoints computed before the fork, then exits
                pair_work(v, part)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)

    runs = {"score_pairs, 1 thread": lambda: (None, lambda v: v.score_pairs(pairs, 1, mirror)),
            "score_pairs, 2 threads (shipped)": lambda: (None, lambda v: v.score_pairs(pairs, 2, mirror)),
            "pair work alone, 1 thread": lambda: (prepared(), lambda v: pair_work(v, jobs)),
            "pair work alone, 2 threads": lambda: (prepared(), threads)}
    if hasattr(os, "fork"):
        runs["pair work alone, 2 forked processes"] = lambda: (prepared(), processes)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    started = time.perf_counter()
    for _ in range(args.rounds):
        for name, make in runs.items():
            v, run = make()
            v = v or fresh()
            t0 = time.perf_counter()
            run(v)
            seconds[name].append(time.perf_counter() - t0)
    print(f"{len(pairs)} checked pairs over {len(catalog)} images ({folder}); {os.cpu_count()} CPUs; median of "
          f"{args.rounds} interleaved rounds; {time.perf_counter() - started:.0f} s of rounds")
    print("| run | seconds (median) | rounds |\n|---|---|---|")
    for name, s in seconds.items():
        print(f"| {name} | {statistics.median(s):.2f} | {', '.join(f'{x:.2f}' for x in s)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
