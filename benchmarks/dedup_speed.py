"""Dedup speed side by side, in one process, interleaved rounds; medians and ratios.

``--end-to-end`` (issue 25: dedup at hash-like speed): ``vision dedup`` with the shipped features against plain
``imagehash.phash`` (open + hash, one thread, no search) over the same files, on a set built like
``benchmarks/dedup_eval.py``'s (Grocery Store originals with edited copies, plus neighbouring shots of the same
products as hard negatives; 150 x (1 + 2) + 300 = 750 photos by default). Timed as the command runs (model load,
read, hash, embed, search, cosine gate, keypoint check, grouping, report files); the features run on ONNX Runtime
from the exports made once beforehand in the export folder: ``vision dedup --model grocery_resnet10t`` as a user
runs it (``backend=auto`` serves it from the INT8 export, ``--format onnx-int8`` calibrated on train photos, where
this CPU has VNNI/AMX, or AVX2 and the export is tuned for it), the fp32 export given as ``--model FILE``, and
torch for comparison (``--no-torch`` leaves it out). ``--before REF [REF ...]`` adds the same
command from each commit ``REF`` (its ``vision`` package extracted with ``git archive`` and run in a child process each
round, timed inside it: before/after on the same machine state; ``--before-backend auto``: its fp32 ONNX features).
Prints images/s, the ratio to pHash, F1 (pairs in one group vs the truth) and each stage's images/s from
``summary.json``.

    python -m benchmarks.dedup_speed --end-to-end --out runs/dedup_speed --repeats 3 --before 30a72c9

Without ``--end-to-end``: our hash stages (exact + mirror-aware pHash + guarded union-find; ``vision dedup``
without ``--model``) against imagededup's hash methods, each at its own defaults on this machine's cores (ours: one
reading thread per core; imagededup: ``num_enc_workers`` and ``num_dist_workers`` = CPU count), at the distance
thresholds ``benchmarks/dedup_eval.py`` chose on its validation split (read from its ``result.json``).

    python -m benchmarks.dedup_speed --images runs/dedup_eval/images/test --result runs/dedup_eval/result.json
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

HASH_ROW = "ours, hash stages only"
PEERS = ("PHash", "DHash", "AHash", "WHash")
MODEL = "grocery_resnet10t"


def hash_peers(args) -> int:
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


# --- end to end: vision dedup against plain pHash
def build_set(args) -> tuple[Path, dict[str, int]]:
    """The benchmark folder and its truth (file name -> original's number, -1 for a hard negative)."""
    from benchmarks.dedup_eval import build_split

    folder = args.out / "images"
    split = build_split(args.data, args.split, folder, args.originals, args.edits, args.negatives, args.seed)
    return folder, {Path(p).name: g for p, g, _ in split["files"]}


def plain_phash(paths: list[str]) -> None:
    import imagehash
    from PIL import Image

    for p in paths:
        with Image.open(p) as image:
            imagehash.phash(image)


def dedup_args(folder: Path, out: Path, extra: list[str], model: str = MODEL) -> list[str]:
    return ["--images", str(folder), "--model", model, "--out", str(out), "--no-progress", *extra]


def ours(folder: Path, out: Path, extra: list[str], model: str = MODEL) -> dict:
    """``vision dedup`` in this process; its JSON report (with the wall time)."""
    from vision.commands.dedup import main

    stdout = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        main(dedup_args(folder, out, extra, model))
    return json.loads(stdout.getvalue()) | {"wall_s": time.perf_counter() - t0}


CHILD = """import contextlib, io, json, sys, time
from vision.commands.dedup import main
out = io.StringIO()
t0 = time.perf_counter()
with contextlib.redirect_stdout(out):
    main(sys.argv[1:])
print(json.dumps(json.loads(out.getvalue()) | {"wall_s": time.perf_counter() - t0}))
"""


def before_tree(ref: str, work: Path) -> Path:
    """Commit ``ref``'s ``vision`` package under ``work`` (its shipped weights linked from this checkout)."""
    root = Path(__file__).resolve().parents[1]
    tree = work / f"before-{ref}"
    if not (tree / "vision").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(root), "archive", ref, "vision"], check=True,
                                 capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        (tree / "weights").symlink_to(root / "weights")
    return tree


def before(tree: Path, folder: Path, out: Path, extra: list[str]) -> dict:
    """The command of the older tree in a child process (its own imports), timed inside it."""
    env = os.environ | {"PYTHONPATH": str(tree)}
    # run from the tree's folder: "python -c" puts the working folder first on sys.path (this checkout's vision)
    done = subprocess.run([sys.executable, "-c", CHILD, *dedup_args(folder, out, extra)], env=env, check=True,
                          capture_output=True, text=True, cwd=tree)
    return json.loads(done.stdout.strip().splitlines()[-1])


def f1_of(out: Path, truth: dict[str, int]) -> float:
    from benchmarks.dedup_eval import group_pairs, pair_metrics

    with open(out / "groups.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return pair_metrics(group_pairs([int(r["group"]) for r in rows]), [truth[Path(r["id"]).name] for r in rows])["f1"]


def auto_pick(exports: Path) -> str:
    """Which export ``backend="auto"`` serves the features from (INT8 where it runs as measured)."""
    from vision.predictors import _auto_source

    chosen, backend = _auto_source(MODEL, "features", exports, None, None)
    return Path(str(chosen)).name if backend != "torch" else "torch"


def end_to_end(args) -> int:
    from vision.commands.export import main as export

    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    folder, truth = build_set(args)
    paths = sorted(str(p) for p in folder.iterdir())
    exports = args.out / "exports"
    if not (exports / f"{MODEL}.features.onnx").is_file():
        exports.mkdir(exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            export(["--model", MODEL, "--format", "onnx", "--output-kind", "features", "--out", str(exports)])
    int8 = exports / f"{MODEL}.features.int8.onnx"
    if not int8.is_file():   # calibrated on the train photos, the gate on val photos (as benchmarks/int8_isa.py)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            export(["--model", MODEL, "--format", "onnx-int8", "--output-kind", "features", "--out", str(int8),
                    "--calib-dir", str(args.data / "train"), "--parity-dir", str(args.data / "val")])
    os.environ["VISION_EXPORT_DIR"] = str(exports)   # backend=auto picks the INT8 export where it runs as measured
    runs = {"plain imagehash.phash (1 thread, no search)": lambda: plain_phash(paths),
            "vision dedup (ONNX Runtime fp32 features, --model FILE)": lambda: ours(
                folder, args.out / "ours_ort", [], str(exports / f"{MODEL}.features.onnx")),
            f"vision dedup --model {MODEL} (backend auto: {auto_pick(exports)})": lambda: ours(
                folder, args.out / "ours_int8", []),
            "vision dedup (torch features)": lambda: ours(folder, args.out / "ours_torch", ["--backend", "torch"])}
    if args.no_torch:
        del runs["vision dedup (torch features)"]
    features = "torch" if args.before_backend == "torch" else "ONNX Runtime"
    for ref in args.before or []:   # each in a child process: a child's first imports count, so compare children
        tree = before_tree(ref, args.out)
        runs[f"vision dedup at {ref} ({features} features, child process)"] = (
            lambda tree=tree, ref=ref: before(tree, folder, args.out / f"before-{ref}-out",
                                              ["--backend", args.before_backend]))
    names = list(runs)
    for name in names[1:3 if args.no_torch else 4]:   # warm-up: first imports, each model's first batch
        runs[name]()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    reports: dict[str, dict] = {}
    started = time.perf_counter()
    for _ in range(args.repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            got = run()
            seconds[name].append(got["wall_s"] if isinstance(got, dict) else time.perf_counter() - t0)
            if isinstance(got, dict):
                reports[name] = got
    wall = time.perf_counter() - started
    phash_s = statistics.median(seconds[names[0]])
    outs = dict(zip(names[1:], ["ours_ort", "ours_int8"] + ([] if args.no_torch else ["ours_torch"])
                    + [f"before-{ref}-out" for ref in args.before or []]))
    print(f"{len(paths)} images ({args.originals} originals x (1 + {args.edits} edits) + {args.negatives} "
          f"negatives, {args.split} split); median of {args.repeats} interleaved rounds; {os.cpu_count()} CPUs; "
          f"{wall:.0f} s of rounds")
    print("| method | seconds (median) | rounds | images/s | x plain pHash | F1 |")
    print("|---|---|---|---|---|---|")
    for name, values in seconds.items():
        median = statistics.median(values)
        f1 = f1_of(args.out / outs[name], truth) if name in outs else ""
        print(f"| {name} | {median:.2f} | {', '.join(f'{v:.2f}' for v in values)} | {len(paths) / median:.0f} | "
              f"{median / phash_s:.1f} | {f1} |")
    for name, report in reports.items():
        stages = report.get("stages")
        if stages:
            print(f"\n{name}, last round: " + "; ".join(
                f"{stage} {s['seconds']:.2f} s ({s['images_per_s']} images/s"
                + "".join(f", {k} {v}" for k, v in s.items() if k not in ("seconds", "images_per_s")) + ")"
                for stage, s in stages.items()))
            print(f"pairs decided by: {report.get('pairs_decided_by')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--end-to-end", action="store_true", help="vision dedup against plain pHash (see above)")
    ap.add_argument("--images", type=Path, help="a folder of images (flat: imagededup reads one folder)")
    ap.add_argument("--result", type=Path, help="dedup_eval.py's result.json (chosen thresholds)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "dedup_speed",
                    help="--end-to-end: the benchmark set, the export and the reports")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/grocery_store")
    ap.add_argument("--split", default="train", help="Grocery Store split the set is built from")
    ap.add_argument("--originals", type=int, default=150)
    ap.add_argument("--edits", type=int, default=2)
    ap.add_argument("--negatives", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--before", metavar="REF", nargs="+",
                    help="--end-to-end: also time vision dedup as of these commits (each in a child process, timed "
                         "inside it, first imports included: give HEAD too for a like-for-like row)")
    ap.add_argument("--no-torch", action="store_true", help="--end-to-end: leave out the torch features row")
    ap.add_argument("--before-backend", default="torch", choices=("torch", "auto"),
                    help="--before: its features on torch, or 'auto' (the fp32 ONNX export)")
    args = ap.parse_args(argv)
    if args.end_to_end:
        return end_to_end(args)
    if args.images is None or args.result is None:
        ap.error("give --images and --result (or --end-to-end)")
    return hash_peers(args)


if __name__ == "__main__":
    raise SystemExit(main())
