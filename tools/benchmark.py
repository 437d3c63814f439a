#!/usr/bin/env python
"""Inference speed of a zoo model per backend and batch size, side by side in one process, plus (optionally) the
top-1 of each backend on a labelled split. Prints a Markdown table and writes JSON.

    python tools/benchmark.py --model grocery_resnet10t --calib-dir ../shared/datasets/grocery_store/train \
        --accuracy ../shared/datasets/grocery_store/val.txt --out runs/benchmark/grocery.json

Backends: ``torch`` (eager fp32), ``ort-fp32``, ``ort-int8`` (static QDQ, needs ``--calib-dir``), ``trt-fp32``,
``trt-fp16`` (need the [tensorrt] extra and a GPU; skipped with a note otherwise). Each (batch, backend) cell is
measured in ``--rounds`` interleaved rounds of ``--seconds`` / rounds, after warm-up; latency is per call
(p50/p99), throughput is batch / p50, and the ratio is to torch eager at the same batch. Inputs are random
tensors of the model's input shape (speed does not depend on pixel values); accuracy uses the real images.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vision.export import ExportError, export  # noqa: E402
from vision.zoo import load_model  # noqa: E402

BACKENDS = ("torch", "ort-fp32", "ort-int8", "trt-fp32", "trt-fp16")
Runner = Callable[[np.ndarray], np.ndarray]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--output", help="output kind to time (default per task: logits for classifiers)")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--batch", default="1,8,16,32", help="batch sizes; the TensorRT profile max is added")
    ap.add_argument("--profile", default="1,8,64", help="TensorRT min,opt,max batch profile")
    ap.add_argument("--calib-dir", type=Path, help="INT8 calibration images (ort-int8)")
    ap.add_argument("--int8-format", default="qdq", choices=["qdq", "qoperator"], help="ort-int8 graph format")
    ap.add_argument("--accuracy", type=Path, help="labelled manifest: top-1 of every backend on it")
    ap.add_argument("--seconds", type=float, default=4.0, help="measuring time per cell")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", type=Path, default=Path("runs/benchmark/benchmark.json"))
    args = ap.parse_args(argv)

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    card = model.card
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(wanted) - set(BACKENDS))
    if unknown:
        raise SystemExit(f"error: unknown backends {unknown}; choose from {list(BACKENDS)}")
    profile_max = int(args.profile.split(",")[-1])
    notes, exports = [], {}
    with tempfile.TemporaryDirectory(prefix="vision-bench-") as scratch:
        runners: dict[str, Runner] = {}
        for name in wanted:
            t0 = time.perf_counter()
            try:
                runners[name] = make_runner(name, model, Path(scratch), args)
            except (ExportError, ImportError) as e:
                notes.append(f"{name}: skipped ({e})"[:400])
                continue
            exports[name] = round(time.perf_counter() - t0, 1)
        batches = sorted({int(b) for b in args.batch.split(",")} | ({profile_max} if any(
            n.startswith("trt") for n in runners) else set()))
        size = card.data_config.input_size
        rows = []
        for batch in batches:
            x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
            rows += time_cell(runners, x, args.seconds, args.rounds)
        accuracy = top1_per_backend(runners, model, args.accuracy) if args.accuracy else None
    result = {"model": card.name, "output": args.output, "rows": rows, "accuracy": accuracy, "notes": notes,
              "export_seconds": exports, "hardware": hardware(), "threads": args.threads,
              "versions": versions(), "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
              "wall_seconds": round(time.perf_counter() - start, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    return result


def make_runner(name: str, model, scratch: Path, args) -> Runner:
    if name == "torch":
        from vision.export.onnx import default_output, output_network

        network = output_network(model, args.output or default_output(model.card)).eval()

        def run_torch(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return network(torch.from_numpy(x)).numpy()

        return run_torch
    if name.startswith("ort"):
        import onnxruntime as ort

        options = {"output": args.output} if args.output else {}
        if name == "ort-int8":
            if args.calib_dir is None:
                raise ExportError("needs --calib-dir")
            path = export(model, "onnx-int8", scratch / "model.int8.onnx", calib_dir=args.calib_dir,
                          quant_format=args.int8_format, **options)
        else:
            path = export(model, "onnx", scratch / "model.onnx", **options)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        # idle onnxruntime workers spin-wait by default and would take cores from the backend timed next
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"images": x})[0]
    precision = name.split("-")[1]
    path = export(model, "tensorrt", scratch / f"model.{precision}.plan", precision=precision, batch=args.profile,
                  **({"output": args.output} if args.output else {}))
    from vision.export.tensorrt import TensorRTEngine

    engine = TensorRTEngine(path)
    return engine


def time_cell(runners: dict[str, Runner], x: np.ndarray, seconds: float, rounds: int) -> list[dict]:
    """Interleaved rounds over the backends at one batch size; latency per call in ms."""
    latencies: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():  # warm-up: first calls allocate and pick kernels
        for _ in range(3):
            run(x)
    for _ in range(rounds):
        for name, run in runners.items():
            deadline = time.perf_counter() + seconds / rounds
            while True:
                t0 = time.perf_counter()
                run(x)
                latencies[name].append((time.perf_counter() - t0) * 1e3)
                if time.perf_counter() > deadline and len(latencies[name]) >= 3:
                    break
    rows, batch = [], len(x)
    base = float(np.median(latencies["torch"])) if "torch" in latencies else None
    for name, values in latencies.items():
        p50, p99 = float(np.median(values)), float(np.percentile(values, 99))
        rows.append({"backend": name, "batch": batch, "calls": len(values), "p50_ms": round(p50, 3),
                     "p99_ms": round(p99, 3), "images_per_s": round(batch / p50 * 1e3, 1),
                     "vs_torch": round(base / p50, 2) if base else None})
    return rows


def top1_per_backend(runners: dict[str, Runner], model, manifest: Path) -> dict:
    """Top-1 on a labelled manifest and top-1 agreement with torch, per backend (same preprocessed batches)."""
    from vision.data.datasets import ClassTable, read_manifest
    from vision.data.io import load_image
    from vision.data.transforms import build_eval_transform
    from vision.data.inputs import to_batch

    card = model.card
    samples = read_manifest(manifest, classes=ClassTable(card.class_names, card.coarse_names, card.fine_to_coarse))
    transform = build_eval_transform(card.data_config)
    labels = np.array([s.label for s in samples])
    preds: dict[str, list[np.ndarray]] = {name: [] for name in runners}
    for i in range(0, len(samples), 32):
        x = to_batch([load_image(s.path) for s in samples[i:i + 32]], transform).numpy()
        for name, run in runners.items():
            if name.startswith("trt"):
                step = run.max_batch
                out = np.concatenate([run(x[j:j + step]) for j in range(0, len(x), step)])
            else:
                out = run(x)
            preds[name].append(out.argmax(1))
    top = {name: np.concatenate(p) for name, p in preds.items()}
    ref = top.get("torch")
    return {"manifest": str(manifest), "images": len(samples),
            **{name: {"top1": round(float((p == labels).mean()), 4),
                      "agreement_with_torch": None if ref is None else round(float((p == ref).mean()), 4)}
               for name, p in top.items()}}


def hardware() -> dict:
    info = {"machine": platform.machine(), "cpus": os.cpu_count(), "cuda": torch.cuda.is_available()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = set(next(line for line in text.splitlines() if line.startswith("flags")).split())
        info["isa"] = sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"})
    except (OSError, StopIteration):
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def versions() -> dict:
    import onnxruntime

    found = {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
    try:
        import tensorrt

        found["tensorrt"] = tensorrt.__version__
    except ImportError:
        pass
    return found


def markdown(result: dict) -> str:
    lines = ["| batch | backend | images/s | p50 ms | p99 ms | vs torch eager |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        ratio = f"{r['vs_torch']:.2f}x" if r["vs_torch"] is not None else "-"
        lines.append(f"| {r['batch']} | {r['backend']} | {r['images_per_s']:.1f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {ratio} |")
    if result["accuracy"]:
        acc = result["accuracy"]
        lines += ["", f"top-1 on {acc['manifest']} ({acc['images']} images):", "",
                  "| backend | top-1 | agreement with torch |", "|---|---|---|"]
        lines += [f"| {name} | {v['top1']:.4f} | {v['agreement_with_torch']} |" for name, v in acc.items()
                  if isinstance(v, dict)]
    lines += [f"note: {n}" for n in result["notes"]]
    lines.append(f"hardware: {result['hardware']}; threads {result['threads']}; versions {result['versions']}; "
                 f"wall {result['wall_seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
