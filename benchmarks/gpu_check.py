#!/usr/bin/env python
"""GPU check of every shipped model, in one run: TensorRT plans, parity through the predictor, speed vs torch.

On a machine with one NVIDIA GPU (a few minutes):

    python -m benchmarks.gpu_check --install --calib-dir ../shared/datasets/grocery_store/train --out runs/gpu_check

1. ``--install``: ``pip install '.[tensorrt]'`` when TensorRT is missing (``--wheels DIR`` installs from a folder of
   wheels instead, for machines without a package index).
2. Builds an FP16 plan of every model in ``weights/`` (profile 1/64/256) and, with ``--calib-dir``, an INT8 plan of
   the classifier and the embedder.
3. Runs each plan through :func:`vision.predictor` on the committed sample images and compares with the torch
   predictor (top-1 agreement, box agreement after NMS, cosine of embeddings).
4. Times the network alone (preprocessed random input) for torch eager fp32, torch eager fp16 and each plan at
   batch 1, 64 and 256: median ms per call, images/s, ratio to torch eager fp32 in the same run.
5. Writes ``gpu_check.json`` and ``gpu_check.md``.

``--cpu`` runs the same pipeline without a GPU, ONNX Runtime fp32 taking TensorRT's place and small batches: the
test suite runs it so that everything but the TensorRT build is checked on every commit.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SAMPLE_PHOTOS = sorted((REPO / "data" / "grocery_sample" / "val").rglob("*.jpg"))[:16]
SAMPLE_COMPOSITES = sorted((REPO / "data" / "logo_sample" / "images" / "val").glob("*.jpg"))[:8]
GPU_BATCHES = (1, 64, 256)
CPU_BATCHES = (1, 4)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/gpu_check"))
    ap.add_argument("--install", action="store_true", help="pip install the [tensorrt] extra if it is missing")
    ap.add_argument("--wheels", type=Path, help="install TensorRT from this folder of wheels (no index)")
    ap.add_argument("--calib-dir", type=Path, help="images for INT8 calibration (INT8 plans are skipped without)")
    ap.add_argument("--models", help="comma-separated zoo names (default: every model in weights/)")
    ap.add_argument("--seconds", type=float, default=2.0, help="timing per (batch, runtime) cell")
    ap.add_argument("--cpu", action="store_true", help="dry run without a GPU: ONNX Runtime instead of TensorRT")
    args = ap.parse_args(argv)

    import torch

    start = time.perf_counter()
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; run with --cpu for the dry run")
    if not args.cpu:
        ensure_tensorrt(args.install, args.wheels)
    from vision.benchmarking import hardware, time_cell, versions
    from vision.zoo import read_manifest

    names = args.models.split(",") if args.models else sorted(read_manifest(REPO / "weights"))
    device = "cpu" if args.cpu else "cuda"
    report: dict = {"device": device, "hardware": hardware(), "versions": versions(), "models": {}, "notes": []}
    with tempfile.TemporaryDirectory(prefix="vision-gpu-check-") as scratch:
        for name in names:
            report["models"][name] = check_model(name, Path(scratch), device, args, time_cell, report["notes"])
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    report["command"] = " ".join(["benchmarks/gpu_check.py", *(argv if argv is not None else sys.argv[1:])])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "gpu_check.md").write_text(markdown(report) + "\n")
    print(markdown(report))
    return report


def ensure_tensorrt(install: bool, wheels: Path | None) -> None:
    try:
        importlib.import_module("tensorrt")
        return
    except ImportError:
        if not install:
            raise SystemExit("error: TensorRT is not installed; pass --install "
                             "(or pip install '.[tensorrt]')") from None
    cmd = [sys.executable, "-m", "pip", "install", "-q"]
    cmd += ["--no-index", "--find-links", str(wheels), "tensorrt"] if wheels else ["-e", f"{REPO}[tensorrt]"]
    subprocess.run(cmd, check=True)
    importlib.invalidate_caches()
    importlib.import_module("tensorrt")


def build_artifacts(model, task: str, scratch: Path, device: str, calib_dir: Path | None) -> dict[str, Path]:
    """``{runtime label: artifact}``: FP16 (and INT8) plans on a GPU, an fp32 ONNX file in the dry run."""
    from vision.export import export

    stem = scratch / model.card.name
    if device == "cpu":
        return {"ort-fp32": export(model, "onnx", stem.with_suffix(".onnx"))}
    batch = ",".join(str(b) for b in (GPU_BATCHES[0], GPU_BATCHES[1], GPU_BATCHES[-1]))
    built = {"trt-fp16": export(model, "tensorrt", stem.with_suffix(".fp16.plan"), precision="fp16", batch=batch)}
    if calib_dir is not None and task != "detection":
        built["trt-int8"] = export(model, "tensorrt", stem.with_suffix(".int8.plan"), precision="int8", batch=batch,
                                   calib_dir=calib_dir)
    return built


def check_model(name: str, scratch: Path, device: str, args, time_cell, notes: list[str]) -> dict:
    import numpy as np
    import torch

    from vision.predictors import TorchRuntime, predictor
    from vision.zoo import load_model

    model = load_model(name, zoo_dir=REPO / "weights")
    task = model.card.task
    images = [str(p) for p in (SAMPLE_COMPOSITES if task == "detection" else SAMPLE_PHOTOS)]
    t0 = time.perf_counter()
    artifacts = build_artifacts(model, task, scratch, device, args.calib_dir)
    entry: dict = {"task": task, "build_seconds": round(time.perf_counter() - t0, 1), "parity": {}, "timing": []}

    reference = predictor(name, backend="torch", device=device, zoo_dir=REPO / "weights")(images)
    for label, path in artifacts.items():
        entry["parity"][label] = parity(reference, predictor(path, device=device)(images))

    runtimes = {"torch-fp32": reference_runtime(model, device, half=False, cls=TorchRuntime)}
    if device == "cuda":
        runtimes["torch-fp16"] = reference_runtime(load_model(name, zoo_dir=REPO / "weights"), device, half=True,
                                                   cls=TorchRuntime)
    for label, path in artifacts.items():
        runtimes[label] = predictor(path, device=device).runtime
    size = model.card.data_config.input_size
    for batch in CPU_BATCHES if device == "cpu" else GPU_BATCHES:
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32))
        # time_cell takes numpy batches and measures ratios against the runner called "torch"
        runners = {("torch" if label == "torch-fp32" else label): (lambda r: lambda a: r(torch.from_numpy(a)))(r)  # noqa: B023
                   for label, r in runtimes.items()}
        try:
            rows = time_cell(runners, x.numpy(), args.seconds, rounds=2)
        except Exception as e:  # noqa: BLE001 - e.g. out of memory at 256: report it, keep the other cells
            notes.append(f"{name} batch {batch}: {type(e).__name__}: {e}"[:300])
            continue
        for row in rows:
            backend = row.pop("backend")
            row["runtime"] = "torch-fp32" if backend == "torch" else backend
        entry["timing"] += rows
    return entry


def reference_runtime(model, device: str, half: bool, cls):
    from vision.export.onnx import default_output

    return cls(model, default_output(model.card), device, half)


def parity(reference: list, results: list) -> dict:
    """Agreement of an artifact's results with torch's on the same images, by result type."""
    import numpy as np

    from vision.results import Classification, Detections

    first = reference[0]
    if isinstance(first, Classification):
        return {"top1_agreement": float(np.mean([a.topk[0]["index"] == b.topk[0]["index"]
                                                 for a, b in zip(reference, results)]))}
    if isinstance(first, Detections):
        from vision.export.onnx import DETECTION_CONF

        kept = [sum(1 for d in r.boxes if d["score"] >= DETECTION_CONF) for r in reference]
        matched = [_matched_boxes(a, b) for a, b in zip(reference, results)]
        return {"boxes": int(sum(kept)), "box_agreement": float(sum(matched) / max(1, sum(kept)))}
    cosine = [float(a.vector @ b.vector) for a, b in zip(reference, results)]
    return {"min_cosine": float(min(cosine)), "mean_cosine": float(np.mean(cosine))}


def _matched_boxes(a, b, iou: float = 0.9) -> int:
    import torch

    if not a.boxes or not b.boxes:
        return 0
    from torchvision.ops import box_iou

    ious = box_iou(torch.tensor([d["box"] for d in a.boxes]), torch.tensor([d["box"] for d in b.boxes]))
    return int((ious.max(1).values >= iou).sum())


def markdown(report: dict) -> str:
    lines = [f"GPU check on {report['hardware'].get('gpu', report['hardware'].get('cpu', '?'))} "
             f"({report['device']}), wall {report.get('wall_seconds', '?')} s", "",
             "| model | runtime | parity | build s |", "|---|---|---|---|"]
    for name, entry in report["models"].items():
        for label, numbers in entry["parity"].items():
            text = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers.items())
            lines.append(f"| {name} | {label} | {text} | {entry['build_seconds']} |")
    lines += ["", "| model | batch | runtime | images/s | p50 ms | vs torch fp32 |", "|---|---|---|---|---|---|"]
    for name, entry in report["models"].items():
        for row in entry["timing"]:
            ratio = f"{row['vs_torch']:.2f}x" if row.get("vs_torch") else "-"
            lines.append(f"| {name} | {row['batch']} | {row['runtime']} | {row['images_per_s']:.1f} | "
                         f"{row['p50_ms']:.2f} | {ratio} |")
    lines += [f"note: {n}" for n in report["notes"]]
    lines.append(f"versions: {report['versions']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
