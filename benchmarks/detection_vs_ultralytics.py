"""Side by side: our LogoDetectionModule (tools/train.py) vs ultralytics' own ``YOLO(...).train(...)``; with
``--predict IMAGES``, our detector path (``vision.predictor``) vs ultralytics' own ``YOLO(...).predict``.

Same dataset, architecture (YAML, from scratch), epochs, image size, batch, close_mosaic and threads.
The two trainings run at the same time as two processes with ``--threads`` each (ultralytics itself
trains with ``min(8, cores - 1)`` threads on CPU and no loader workers; ours is given the same), so
background load on a shared machine hits both alike. Both final models are then scored by the same
evaluator (ultralytics ``YOLO(pt).val``, conf 0.001, IoU 0.7) on the same val split.

    python tools/make_logo_dataset.py --backgrounds BG/train --val-backgrounds BG/val --out runs/logos2k \\
        --train-images 2400 --val-images 400 --imgsz 320
    python -m benchmarks.detection_vs_ultralytics --data runs/logos2k/data.yaml --epochs 10 --imgsz 320 \\
        --out runs/detbench

Trusted inputs only: the ultralytics side runs ultralytics' own ``YOLO(...).train/.val``, which loads full-pickle
``.pt`` files, evaluates model YAMLs and reads and writes pickled ``labels/*.cache`` files in the data folder (the
library's own loaders refuse all three). Point it at a dataset you generated, or a copy.

Writes ``<out>/results.json`` and prints one table. ``--only ours|ultralytics`` runs one side (e.g. to
re-score), ``--score-only`` skips training and scores what ``<out>`` holds.

Prediction, in one process (the shipped ``logo_yolo11n``, written as an ultralytics ``.pt`` and exported to ONNX by
each library from those same weights; decode to NMS on the same image files, conf 0.25, IoU 0.7)::

    python -m benchmarks.detection_vs_ultralytics --predict data --threads 1 --rounds 7 --out runs/detpredict

torch at ``--batch`` (16) with ``--threads`` threads on both sides (ultralytics sets torch's count itself at its
first predict; it is set back before every timed run), ONNX Runtime at batch 1 as each library ships it, plus
ultralytics given our runtime's session settings (workers spin at most ``SPIN_US`` microseconds) and ours given
theirs (``vision.predictor(..., spin=True)``) and without spinning (``spin=False``, the default until 2026-12-07);
rounds interleaved across the runs,
medians. Per-stage milliseconds per image come from each side's own ``speed`` figures. ``--int8-calib IMAGES``
adds our predictor on an INT8 export of the same weights (calibrated on IMAGES; what ``backend="auto"`` serves
where such an export is in the export folder and runs as measured on this CPU) against both ultralytics ONNX
rows. ``--workers N`` (default: one per core) adds both ONNX Runtime exports with N batch-1 runs at once
(``vision.predictor(..., workers=N)``, the cores shared out), compared with ultralytics' ONNX predictor as shipped
and with N threads of it, each with its own model (ultralytics' way to predict from several threads) and a share
of the images; their boxes with one worker's. Writes ``<out>/predict.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def absolute_data_yaml(data_yaml: Path, out: Path) -> Path:
    """A copy of ``data_yaml`` with an absolute ``path`` (ultralytics resolves relative ones against the cwd)."""
    import yaml

    from vision.data.detection import read_data_yaml

    data = read_data_yaml(data_yaml)
    copy = {"path": data["path"], "train": data["train"], "val": data["val"], "names": data["names"]}
    target = out / "data.yaml"
    target.write_text(yaml.safe_dump(copy, sort_keys=False))
    return target


def _timing(start: float) -> dict:
    """Wall seconds since ``start`` and this process's CPU seconds (all threads; no loader workers run)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"fit_s": time.perf_counter() - start, "cpu_s": usage.ru_utime + usage.ru_stime}


def train_ultralytics(args, data_yaml: Path, out: Path) -> None:
    """Runs in a child process: ultralytics' own trainer, offline, run directory under ``out``."""
    from vision import ultralytics_compat as ulc

    model = ulc.yolo_class()(args.model, task="detect")
    start = time.perf_counter()
    model.train(data=str(data_yaml), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device="cpu",
                workers=0, close_mosaic=args.close_mosaic, seed=args.seed, deterministic=False, plots=False,
                amp=False, project=str(out), name="ultralytics", exist_ok=True, verbose=False, pretrained=False)
    (out / "ultralytics" / "timing.json").write_text(json.dumps(_timing(start)))


def train_ours(args, data_yaml: Path, out: Path) -> None:
    """Runs in a child process: tools/train.py with the shipped detection config."""
    from vision.cli import main

    sys.argv = sys.argv[:1]  # the CLI gets its arguments below, not from this script's command line
    start = time.perf_counter()
    main(["--config", str(REPO / "configs/detection/logo_yolo11n.yaml"), "--data.data_yaml", str(data_yaml),
          "--model.yaml", args.model, "--data.imgsz", str(args.imgsz), "--data.batch_size", str(args.batch),
          "--data.num_workers", "0", "--data.close_mosaic", str(args.close_mosaic),
          "--trainer.max_epochs", str(args.epochs), "--trainer.accelerator", "cpu",
          "--trainer.default_root_dir", str(out / "ours"), "--trainer.enable_progress_bar", "false",
          "--seed_everything", str(args.seed), "--zoo_name", args.zoo_name, "--zoo_dir", str(out / "ours" / "zoo")])
    (out / "ours" / "timing.json").write_text(json.dumps(_timing(start)))


def score(pt: Path, data_yaml: Path, args) -> dict:
    from vision import ultralytics_compat as ulc

    metrics = ulc.yolo_class()(str(pt), task="detect").val(
        data=str(data_yaml), imgsz=args.imgsz, batch=args.batch, conf=0.001, iou=0.7, device="cpu", plots=False,
        verbose=False, project=str(Path(args.out) / "val"), name=pt.parent.name, exist_ok=True)
    return {"mAP50": float(metrics.box.map50), "mAP50-95": float(metrics.box.map)}


def ours_as_ultralytics_pt(out: Path, args) -> Path:
    """Our shipped zoo file, written as an ultralytics ``.pt`` (the interop path users would take)."""
    from vision.models.detector import export_ultralytics_pt
    from vision.zoo import load_model

    model = load_model(out / "ours" / "zoo" / f"{args.zoo_name}.safetensors")
    return export_ultralytics_pt(model, out / "ours" / f"{args.zoo_name}.pt", imgsz=args.imgsz)


def predict_side_by_side(args) -> dict:
    """Images/s and per-stage ms/image of our predictor and ultralytics' ``predict``, torch and ONNX Runtime."""
    import numpy as np
    import onnxruntime as ort
    import torch

    import vision
    from vision import ultralytics_compat as ulc
    from vision.data.io import list_images
    from vision.export import export
    from vision.models.detector import export_ultralytics_pt
    from vision.predictors import available_cores, ort_session_options
    from vision.zoo import load_model

    out = args.out.resolve()
    images = [str(p) for p in list_images(args.predict)]
    model = load_model(args.model_name)
    imgsz = model.card.data_config.input_size
    pt = export_ultralytics_pt(model, out / f"{args.model_name}.pt", imgsz=imgsz)
    ours_onnx = export(model, "onnx", out / f"{args.model_name}.predictions.onnx")
    theirs_onnx = Path(ulc.yolo_class()(str(pt), task="detect").export(format="onnx", imgsz=imgsz, batch=1,
                                                                         simplify=True, verbose=False))

    def session(path: Path, threads: int | None = None):  # ultralytics' session given our runtime's settings
        return ort.InferenceSession(str(path), ort_session_options(threads), providers=["CPUExecutionProvider"])

    options = {"imgsz": imgsz, "conf": 0.25, "iou": 0.7, "max_det": 300, "device": "cpu", "verbose": False}
    ours_torch = vision.predictor(args.model_name, backend="torch", device="cpu")
    ours_ort = vision.predictor(ours_onnx, device="cpu")  # as shipped: onnxruntime's default thread count
    ours_ort_spin = vision.predictor(ours_onnx, device="cpu", spin=True)   # ultralytics' session settings
    ours_ort_nospin = vision.predictor(ours_onnx, device="cpu", spin=False)   # the default until 2026-12-07
    ours_ort_1 = vision.predictor(ours_onnx, device="cpu", threads=1)   # a core left free: it reads ahead
    workers = args.workers or available_cores()
    ours_ort_w = vision.predictor(ours_onnx, device="cpu", workers=workers) if workers > 1 else None
    ours_int8 = ours_int8_spin = ours_int8_1 = ours_int8_w = None
    if args.int8_calib is not None:   # what backend auto serves from an INT8 export tuned for this CPU
        int8 = export(model, "onnx-int8", out / f"{args.model_name}.predictions.int8.onnx", calib_dir=args.int8_calib)
        ours_int8 = vision.predictor(int8, device="cpu")
        ours_int8_spin = vision.predictor(int8, device="cpu", spin=True)   # and with ultralytics' session settings
        ours_int8_1 = vision.predictor(int8, device="cpu", threads=1)
        if workers > 1:   # batch-1 runs at once, one thread each (the cores shared out)
            ours_int8_w = vision.predictor(int8, device="cpu", workers=workers)
    theirs_torch = ulc.yolo_class()(str(pt), task="detect")
    theirs_ort, theirs_ort_set, theirs_ort_1 = (ulc.yolo_class()(str(theirs_onnx), task="detect") for _ in range(3))
    for y in (theirs_ort, theirs_ort_set, theirs_ort_1):
        list(y.predict(images[:1], batch=1, stream=True, **options))  # builds its predictor and session
    theirs_ort_set.predictor.model.backend.session = session(theirs_onnx)
    theirs_ort_1.predictor.model.backend.session = session(theirs_onnx, threads=1)
    # the same trick on their side: ultralytics asks for one model per thread for thread-safe inference
    theirs_w = [ulc.yolo_class()(str(theirs_onnx), task="detect") for _ in range(workers if workers > 1 else 0)]
    for y in theirs_w:
        list(y.predict(images[:1], batch=1, stream=True, **options))
        y.predictor.model.backend.session = session(theirs_onnx, threads=max(1, available_cores() // workers))

    def ours(p, batch):
        return lambda: (list(p.stream(images, batch_size=batch)), getattr(p, "speed", None))

    def theirs(y, batch):
        def run():
            results = list(y.predict(images, batch=batch, stream=True, **options))
            return results, {k: float(np.mean([r.speed[k] for r in results])) for k in results[0].speed}
        return run

    runs = {"ours torch": ours(ours_torch, args.batch), "ultralytics torch": theirs(theirs_torch, args.batch),
            "ours onnxruntime": ours(ours_ort, 1), "ultralytics onnxruntime": theirs(theirs_ort, 1),
            "ultralytics onnxruntime, our session settings": theirs(theirs_ort_set, 1),
            "ours onnxruntime, spin=True (their session settings)": ours(ours_ort_spin, 1),
            "ours onnxruntime, spin=False (no spinning)": ours(ours_ort_nospin, 1),
            "ours onnxruntime, 1 thread (reads ahead)": ours(ours_ort_1, 1),
            "ultralytics onnxruntime, our session settings, 1 thread": theirs(theirs_ort_1, 1)}
    if ours_ort_w is not None:
        runs[f"ours onnxruntime, {workers} workers"] = ours(ours_ort_w, 1)

        def theirs_threads():   # each thread its own model and a share of the images; results in input order
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(lambda k: list(theirs_w[k].predict(images[k::workers], batch=1, stream=True,
                                                                         **options)), range(workers)))
            ordered = [parts[i % workers][i // workers] for i in range(len(images))]
            return ordered, {k: float(np.mean([r.speed[k] for r in ordered])) for k in ordered[0].speed}

        runs[f"ultralytics onnxruntime, {workers} threads with a model each"] = theirs_threads
    if ours_int8 is not None:
        runs["ours onnxruntime INT8"] = ours(ours_int8, 1)
        runs["ours onnxruntime INT8, spin=True"] = ours(ours_int8_spin, 1)
        runs["ours onnxruntime INT8, 1 thread (reads ahead)"] = ours(ours_int8_1, 1)
        if ours_int8_w is not None:
            runs[f"ours onnxruntime INT8, {workers} workers"] = ours(ours_int8_w, 1)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    speeds: dict[str, list[dict]] = {name: [] for name in runs}
    found: dict[str, list] = {}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for name, run in runs.items():
            torch.set_num_threads(args.threads)
            t0 = time.perf_counter()
            results, speed = run()
            if round_:
                seconds[name].append(time.perf_counter() - t0)
                speeds[name].append(speed)
            found[name] = results
    rows = {}
    for name in runs:
        med = float(np.median(seconds[name]))
        stages = None
        if speeds[name][0]:
            stages = {k: round(float(np.median([s[k] for s in speeds[name]])), 2) for k in speeds[name][0]}
        rows[name] = {"images_per_s": round(len(images) / med, 1), "seconds": [round(s, 3) for s in seconds[name]],
                      "ms_per_image": stages, "boxes": _count_boxes(found[name])}
    for ours_name, theirs_name in (("ours torch", "ultralytics torch"), ("ours onnxruntime", "ultralytics onnxruntime"),
                                   ("ours onnxruntime", "ultralytics onnxruntime, our session settings"),
                                   ("ours onnxruntime, 1 thread (reads ahead)",
                                    "ultralytics onnxruntime, our session settings, 1 thread")):
        ratio = rows[ours_name]["images_per_s"] / rows[theirs_name]["images_per_s"]
        rows[theirs_name]["ours_vs_this"] = round(ratio, 2)
    rows["ultralytics onnxruntime"]["ours_spin_vs_this"] = round(   # the same session settings, theirs
        rows["ours onnxruntime, spin=True (their session settings)"]["images_per_s"]
        / rows["ultralytics onnxruntime"]["images_per_s"], 2)
    if ours_int8 is not None:   # INT8 against each ultralytics ONNX row (its own key: the rows above keep theirs)
        for theirs_name in ("ultralytics onnxruntime", "ultralytics onnxruntime, our session settings"):
            rows[theirs_name]["ours_int8_vs_this"] = round(
                rows["ours onnxruntime INT8"]["images_per_s"] / rows[theirs_name]["images_per_s"], 2)
        for theirs_name in ("ultralytics onnxruntime", "ultralytics onnxruntime, our session settings, 1 thread"):
            rows[theirs_name]["ours_int8_1_thread_vs_this"] = round(
                rows["ours onnxruntime INT8, 1 thread (reads ahead)"]["images_per_s"]
                / rows[theirs_name]["images_per_s"], 2)
        rows["ultralytics onnxruntime"]["ours_int8_spin_vs_this"] = round(   # the same session settings, theirs
            rows["ours onnxruntime INT8, spin=True"]["images_per_s"] / rows["ultralytics onnxruntime"]["images_per_s"],
            2)
    same_boxes = {}
    for plain, name in (("ours onnxruntime", f"ours onnxruntime, {workers} workers"),
                        ("ours onnxruntime INT8", f"ours onnxruntime INT8, {workers} workers")):
        if name in rows:   # the workers' rows against ultralytics' as shipped; their boxes against one worker's
            rows["ultralytics onnxruntime"][f"{'int8_' if 'INT8' in name else ''}workers_vs_this"] = round(
                rows[name]["images_per_s"] / rows["ultralytics onnxruntime"]["images_per_s"], 2)
            same_boxes[name] = [r.boxes for r in found[name]] == [r.boxes for r in found[plain]]
    if f"ultralytics onnxruntime, {workers} threads with a model each" in rows:
        theirs_name = f"ultralytics onnxruntime, {workers} threads with a model each"
        for name in (f"ours onnxruntime, {workers} workers", f"ours onnxruntime INT8, {workers} workers"):
            if name in rows:
                rows[theirs_name][f"{'int8_' if 'INT8' in name else ''}workers_vs_this"] = round(
                    rows[name]["images_per_s"] / rows[theirs_name]["images_per_s"], 2)
    return {"images": len(images), "folder": str(args.predict), "threads": args.threads, "batch_torch": args.batch,
            "workers": workers, "workers_give_the_same_boxes": same_boxes,
            "rounds": args.rounds, "model": args.model_name, "rows": rows,
            "box_agreement_torch": _box_agreement(found["ours torch"], found["ultralytics torch"]),
            **({"box_agreement_int8": _iou_agreement(found["ours onnxruntime INT8"], found["ultralytics onnxruntime"])}
               if ours_int8 is not None else {})}


def _count_boxes(results) -> int:
    return sum(len(r.boxes) for r in results)


def _box_agreement(ours, theirs) -> dict:
    """Largest difference between our boxes and ultralytics' on the same images (same count expected)."""
    import numpy as np

    worst_box = worst_score = 0.0
    same_count = 0
    for o, t in zip(ours, theirs):
        mine = np.array([b["box"] + [b["score"]] for b in o.boxes]).reshape(-1, 5)
        their = np.concatenate([t.boxes.xyxy.numpy(), t.boxes.conf.numpy()[:, None]], 1) if len(t.boxes) else \
            np.zeros((0, 5))
        if len(mine) != len(their):
            continue
        same_count += 1
        if len(mine):
            worst_box = max(worst_box, float(np.abs(mine[:, :4] - their[:, :4]).max()))
            worst_score = max(worst_score, float(np.abs(mine[:, 4] - their[:, 4]).max()))
    return {"images_with_same_count": same_count, "images": len(ours), "max_box_px": round(worst_box, 3),
            "max_score": round(worst_score, 5)}


def _iou_agreement(ours, theirs, at: float = 0.5) -> dict:
    """How many of our boxes overlap one of ultralytics' on the same image by IoU >= ``at``, and the other way
    round (INT8 moves boxes and scores a little, so the boxes are matched by overlap, not by order)."""
    import numpy as np

    def matched(a: np.ndarray, b: np.ndarray) -> int:
        if not len(a) or not len(b):
            return 0
        lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
        inter = np.clip(rb - lt, 0, None).prod(-1)
        area = lambda x: (x[:, 2:] - x[:, :2]).prod(-1)  # noqa: E731
        iou = inter / (area(a)[:, None] + area(b)[None, :] - inter)
        return int((iou.max(1) >= at).sum())

    counts = {"ours": 0, "ours_matched": 0, "theirs": 0, "theirs_matched": 0}
    for o, t in zip(ours, theirs):
        mine = np.array([b["box"] for b in o.boxes], dtype=float).reshape(-1, 4)
        their = t.boxes.xyxy.numpy().reshape(-1, 4)
        counts["ours"] += len(mine)
        counts["theirs"] += len(their)
        counts["ours_matched"] += matched(mine, their)
        counts["theirs_matched"] += matched(their, mine)
    return {**counts, "iou": at}


def print_predict(result: dict) -> None:
    print(f"{result['model']}: {result['images']} images from {result['folder']}, {result['threads']} thread(s), "
          f"median of {result['rounds']} rounds")
    print("\n| run | batch | images/s | ours / this | ms/image per stage |\n|---|---|---|---|---|")
    for name, r in result["rows"].items():
        batch = result["batch_torch"] if "torch" in name else 1
        ratio = f"{r['ours_vs_this']:.2f}x" if "ours_vs_this" in r else "-"
        if "ours_spin_vs_this" in r:
            ratio += f" (spin=True: {r['ours_spin_vs_this']:.2f}x)"
        if "ours_int8_vs_this" in r:
            ratio += f" (INT8: {r['ours_int8_vs_this']:.2f}x)"
        if "ours_int8_spin_vs_this" in r:
            ratio += f" (INT8, spin=True: {r['ours_int8_spin_vs_this']:.2f}x)"
        if "ours_int8_1_thread_vs_this" in r:
            ratio += f" (INT8 on 1 thread, reading ahead: {r['ours_int8_1_thread_vs_this']:.2f}x)"
        if "workers_vs_this" in r:
            ratio += f" ({result['workers']} workers: {r['workers_vs_this']:.2f}x)"
        if "int8_workers_vs_this" in r:
            ratio += f" (INT8, {result['workers']} workers: {r['int8_workers_vs_this']:.2f}x)"
        stages = ", ".join(f"{k} {v:.2f}" for k, v in (r["ms_per_image"] or {}).items()) or "-"
        print(f"| {name} | {batch} | {r['images_per_s']:.1f} | {ratio} | {stages} |")
    print(f"\nboxes, ours vs ultralytics (torch): {result['box_agreement_torch']}")
    if "box_agreement_int8" in result:
        print(f"boxes, ours INT8 vs ultralytics ONNX (fp32), matched by overlap: {result['box_agreement_int8']}")
    if result.get("workers_give_the_same_boxes"):
        print(f"the same boxes with {result['workers']} workers as with one: {result['workers_give_the_same_boxes']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="ultralytics data.yaml (class-agnostic logo set); training only")
    ap.add_argument("--predict", type=Path, metavar="IMAGES",
                    help="time prediction on this image folder instead of training")
    ap.add_argument("--model-name", default="logo_yolo11n", help="zoo detector timed by --predict")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per run with --predict")
    ap.add_argument("--workers", type=int, default=None,
                    help="--predict: also time our ONNX Runtime predictors with this many batch-1 runs at once, "
                         "the cores shared out (default: one per core; 1: no such rows)")
    ap.add_argument("--int8-calib", type=Path, metavar="IMAGES",
                    help="--predict: also time our predictor on an INT8 export calibrated on these images (what "
                         "backend auto serves where one tuned for this CPU is in the export folder)")
    ap.add_argument("--out", type=Path, default=Path("runs/detbench"))
    ap.add_argument("--model", default="yolo11n.yaml", help="ultralytics architecture YAML (from scratch)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--close-mosaic", type=int, default=3)
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                    help="torch threads per training process (default: ultralytics' own CPU choice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--zoo-name", default="logo_yolo11n")
    ap.add_argument("--only", choices=("ours", "ultralytics"))
    ap.add_argument("--score-only", action="store_true")
    ap.add_argument("--_child", choices=("ours", "ultralytics"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.predict is not None:
        start = time.perf_counter()
        result = predict_side_by_side(args)
        result["wall_s"] = round(time.perf_counter() - start, 1)
        (out / "predict.json").write_text(json.dumps(result, indent=1) + "\n")
        print_predict(result)
        return 0
    if args.data is None:
        ap.error("--data is required for training (or give --predict IMAGES)")
    data_yaml = absolute_data_yaml(args.data, out) if args._child is None else args.data

    if args._child:
        import torch

        torch.set_num_threads(args.threads)
        (train_ours if args._child == "ours" else train_ultralytics)(args, data_yaml, out)
        return 0

    sides = [args.only] if args.only else ["ours", "ultralytics"]
    if not args.score_only:
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        procs = {}
        for side in sides:
            log = open(out / f"{side}.log", "w")
            cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]),
                   "--data", str(data_yaml), "--_child", side]
            procs[side] = (subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO), log)
            print(f"started {side}: log {out / f'{side}.log'}", flush=True)
        failed = [side for side, (proc, log) in procs.items() if proc.wait() != 0]
        for _, log in procs.values():
            log.close()
        if failed:
            print(f"error: training failed for {', '.join(failed)} (see the logs above)", file=sys.stderr)
            return 1

    results = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                          if not k.startswith("_")}, "cpu_count": os.cpu_count()}
    for side in sides:
        pt = ours_as_ultralytics_pt(out, args) if side == "ours" else out / "ultralytics" / "weights" / "last.pt"
        timing = json.loads((out / side / "timing.json").read_text())
        results[side] = {**score(pt, data_yaml, args), **timing, "s_per_epoch": timing["fit_s"] / args.epochs,
                         "cpu_s_per_epoch": timing.get("cpu_s", float("nan")) / args.epochs, "weights": str(pt)}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n{'':12s} {'mAP50':>7s} {'mAP50-95':>9s} {'s/epoch':>8s} {'CPU s/epoch':>12s}")
    for side in sides:
        r = results[side]
        print(f"{side:12s} {r['mAP50']:7.3f} {r['mAP50-95']:9.3f} {r['s_per_epoch']:8.0f} {r['cpu_s_per_epoch']:12.0f}")
    if len(sides) == 2:
        o, u = results["ours"], results["ultralytics"]
        print(f"ours / ultralytics: mAP50-95 {o['mAP50-95'] / max(u['mAP50-95'], 1e-9):.2f}x, "
              f"time per epoch {o['s_per_epoch'] / u['s_per_epoch']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
