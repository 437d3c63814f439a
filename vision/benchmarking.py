"""Speed of zoo models per runtime through the predictor interface (``vision benchmark``):
network-only timing on random input per batch size, end-to-end timing on real images, top-1 per runtime, and the
machine facts every figure is reported with."""

from __future__ import annotations

import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vision.export import ExportError, export
from vision.export.onnx import default_output
from vision.export.quantize import cpu_isa
from vision.predictors import Predictor, TorchRuntime, predictor
from vision.zoo import load_model

BACKENDS = ("torch", "ort-fp32", "ort-int8", "trt-fp32", "trt-fp16")
Runner = Callable[[np.ndarray], np.ndarray]


class BenchmarkError(ValueError):
    """Benchmark options that do not fit together (reported by ``vision benchmark`` as a one-line error)."""


def run(args, argv: list[str] | None = None) -> dict:
    """Benchmark every model of ``args.model`` (parsed by :func:`vision.commands.benchmark.parser`), print the
    Markdown tables, write ``args.out`` and return the result."""
    start = time.perf_counter()
    threads = args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(wanted) - set(BACKENDS))
    if unknown:
        raise SystemExit(f"error: unknown backends {unknown}; choose from {list(BACKENDS)}")
    wanted = torch_precisions(wanted, args.precision)
    # listed before any export: a folder without images is refused, never timed as "0 images" with ratios
    args.image_files = end_to_end_images(args.images) if args.images is not None else []
    args.workers = getattr(args, "workers", 1)   # (an args namespace made before the option existed: 1)
    if args.workers < 1:
        raise BenchmarkError(f"--workers must be 1 or more, got {args.workers}")
    if args.workers > 1 and args.images is None:
        raise BenchmarkError("--workers times the end-to-end rows: give --images too")
    results = [benchmark_model(name.strip(), wanted, args) for name in args.model.split(",") if name.strip()]
    result = {"models": results, "hardware": hardware(), "threads": threads, "versions": versions(),
              "command": " ".join(["vision benchmark", *(argv if argv is not None else sys.argv[1:])]),
              "wall_seconds": round(time.perf_counter() - start, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    return result


def torch_precisions(wanted: list[str], precision: str) -> list[str]:
    """``wanted`` with the torch eager rows of ``--precision`` (``fp32,bf16``: ``torch`` then ``torch-bf16``)."""
    from vision.predictors import PRECISIONS

    precisions = [p.strip() for p in precision.split(",") if p.strip()]
    if not precisions or set(precisions) - set(PRECISIONS):
        raise BenchmarkError(f"--precision {precision!r}: choose from {list(PRECISIONS)}, comma-separated")
    if "torch" not in wanted:
        return wanted
    i = wanted.index("torch")
    rows = ["torch" if p == "fp32" else f"torch-{p}" for p in precisions]
    return wanted[:i] + rows + wanted[i + 1:]


def benchmark_model(name: str, wanted: list[str], args) -> dict:
    """Every backend of one zoo model through the predictor interface: network speed on random input per batch
    size, optionally end-to-end speed on real images and top-1 on a labelled manifest. A progress bar on stderr
    counts exports and cells (between timings, never inside one)."""
    from vision.progress import progress_bar

    model = load_model(name, zoo_dir=args.zoo_dir)
    card = model.card
    profile_max = int(args.profile.split(",")[-1])
    notes, exports = [], {}
    bar = progress_bar(total=len(wanted), enabled=not args.no_progress, desc=name, unit="step")
    with tempfile.TemporaryDirectory(prefix="vision-bench-") as scratch, bar:
        predictors: dict[str, Predictor] = {}
        for backend in wanted:
            t0 = time.perf_counter()
            bar.set_postfix_str(f"export {backend}")
            try:
                predictors[backend] = make_predictor(backend, model, Path(scratch), args)
            except (ExportError, ImportError) as e:  # e.g. INT8 of a detector, TensorRT on a CPU machine
                notes.append(f"{backend}: skipped ({e})"[:400])
                continue
            finally:
                bar.update(1)
            exports[backend] = round(time.perf_counter() - t0, 1)
        runners = {backend: _numpy_runner(p) for backend, p in predictors.items()}
        batches = sorted({int(b) for b in args.batch_sizes.split(",")} | ({profile_max} if any(
            n.startswith("trt") for n in runners) else set()))
        bar.total += len(batches) * (2 if args.image_files else 1) + bool(args.data and card.task == "classification")
        bar.refresh()
        size = card.data_config.input_size
        rows = []
        for batch in batches:
            bar.set_postfix_str(f"batch {batch}")
            x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
            rows += time_cell(runners, x, args.seconds, args.rounds)
            bar.update(1)
        end_to_end = []
        if args.image_files:
            bar.set_postfix_str("end to end")
            end_to_end = time_end_to_end({**predictors, **with_workers(predictors, args.workers)},
                                         args.image_files, batches, args, done=bar.update)
        accuracy = None
        if args.data and card.task == "classification":
            bar.set_postfix_str("top-1")
            accuracy = top1_per_backend(runners, model, args.data)
            bar.update(1)
    return {"model": card.name, "task": card.task, "output": args.output, "rows": rows, "end_to_end": end_to_end,
            "accuracy": accuracy, "notes": notes, "export_seconds": exports}


def make_predictor(name: str, model, scratch: Path, args) -> Predictor:
    """The predictor of one benchmark backend; exports are written to ``scratch`` (digest-recorded, so the
    predictor's integrity checks run as in production)."""
    options = {"output": args.output} if args.output else {}
    if name.startswith("torch"):
        device = args.device or "cpu"
        # on a GPU the timed copy moves there; the model the other backends export stays on the CPU
        network = model if device == "cpu" else copy.deepcopy(model)
        precision = name.partition("-")[2] or "fp32"
        return Predictor(TorchRuntime(network, args.output or default_output(model.card), device,
                                      precision=precision))
    if name.startswith("ort"):
        if name == "ort-int8":
            from vision.export.quantize import int8_cpu_warning, read_calibration_record

            if args.calib_dir is None:
                raise ExportError("needs --calib-dir")
            path = export(model, "onnx-int8", scratch / f"{model.card.name}.int8.onnx", calib_dir=args.calib_dir,
                          quant_format=args.int8_format, **options)
            warning = int8_cpu_warning(read_calibration_record(path))
            if warning:
                print(f"warning: {model.card.name}: {warning}", file=sys.stderr)
        else:
            path = export(model, "onnx", scratch / f"{model.card.name}.onnx", **options)
        # the predictor's own session settings: its workers spin at most SPIN_US after a run, so they take no
        # cores from the backend timed next (onnxruntime's unbounded spinning did)
        return predictor(path, device="cpu", threads=args.threads)
    precision = name.split("-")[1]
    path = export(model, "tensorrt", scratch / f"{model.card.name}.{precision}.plan", precision=precision,
                  batch=args.profile, **options)
    return predictor(path, device="cuda")


def with_workers(predictors: dict[str, Predictor], workers: int) -> dict[str, Predictor]:
    """For ``workers`` > 1, each ONNX Runtime backend's export again with that many batches at once
    (``"<backend>, N workers"``): rows of the end-to-end table only, since they differ in how batches are run, not
    in the network."""
    if workers <= 1:
        return {}
    return {f"{name}, {workers} workers": predictor(p.runtime.path, device="cpu", workers=workers)
            for name, p in predictors.items() if p.backend == "onnxruntime"}


def _numpy_runner(p: Predictor) -> Runner:
    runtime = p.runtime
    return lambda x: runtime(torch.from_numpy(x))


def end_to_end_images(folder: str | Path) -> list[str]:
    """The image files of ``--images``; an empty path, a missing folder or one without images is an error (a
    timing over no images would print 0 images/s and meaningless ratios)."""
    from vision.data.io import collect_images

    if not str(folder).strip():
        raise FileNotFoundError("--images: an empty path; give a folder of images")
    return [str(p) for p in collect_images([folder])]


def time_end_to_end(predictors: dict[str, Predictor], images: list[str], batches: list[int], args,
                    done: Callable[[], object] = lambda: None) -> list[dict]:
    """Images/s of the whole predictor call (decode, preprocess, network, postprocess incl. NMS) per backend and
    batch size, median of ``--rounds`` passes over ``images``, interleaved across backends; ``done()`` after each
    batch size."""
    rows = []
    for batch in batches:
        seconds: dict[str, list[float]] = {name: [] for name in predictors}
        stages: dict[str, list[dict]] = {name: [] for name in predictors}  # Predictor.speed, ms/image per stage
        for p in predictors.values():
            p(images[:batch], batch_size=batch)  # warm-up
        for _ in range(args.rounds):
            for name, p in predictors.items():
                t0 = time.perf_counter()
                p(images, batch_size=batch)
                seconds[name].append(time.perf_counter() - t0)
                stages[name].append(dict(p.speed))
        base = float(np.median(seconds["torch"])) if "torch" in seconds else None
        for name, values in seconds.items():
            med = float(np.median(values))
            rows.append({"backend": name, "batch": batch, "images": len(images),
                         "images_per_s": round(len(images) / med, 1),
                         # the next batch read while this one runs (a call on one batch has none to read)
                         "reads_ahead": predictors[name].workers == 1 and predictors[name].reads_ahead()
                         and len(images) > batch,   # (workers read in the caller's thread instead)
                         "vs_torch": round(base / med, 2) if base else None,
                         "ms_per_image": {k: round(float(np.median([r[k] for r in stages[name]])), 2)
                                          for k in stages[name][0]}})
        done()
    return rows


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
    from vision.data.inputs import to_batch
    from vision.data.io import load_image
    from vision.data.transforms import build_eval_transform

    card = model.card
    samples = read_manifest(manifest, classes=ClassTable(card.class_names, card.coarse_names, card.fine_to_coarse))
    transform = build_eval_transform(card.data_config)
    labels = np.array([s.label for s in samples])
    preds: dict[str, list[np.ndarray]] = {name: [] for name in runners}
    for i in range(0, len(samples), 32):
        x = to_batch([load_image(s.path) for s in samples[i:i + 32]], transform).numpy()
        for name, run in runners.items():  # the TensorRT runtime slices batches over its profile itself
            preds[name].append(run(x).argmax(1))
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
    except (OSError, StopIteration):
        pass
    info["isa"] = cpu_isa()
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
    lines = []
    for m in result["models"]:
        lines += [f"### {m['model']} ({m['task']}): network only, random input", "",
                  "| batch | backend | images/s | p50 ms | p99 ms | vs torch eager |", "|---|---|---|---|---|---|"]
        for r in m["rows"]:
            ratio = f"{r['vs_torch']:.2f}x" if r["vs_torch"] is not None else "-"
            lines.append(f"| {r['batch']} | {r['backend']} | {r['images_per_s']:.1f} | {r['p50_ms']:.2f} | "
                         f"{r['p99_ms']:.2f} | {ratio} |")
        if m["end_to_end"]:
            lines += ["", f"{m['model']}: end to end (decode, preprocess, network, postprocess"
                      f"{' incl. NMS' if m['task'] == 'detection' else ''}), {m['end_to_end'][0]['images']} images",
                      "", "| batch | backend | images/s | vs torch | ms/image: decode, preprocess, inference, "
                      "postprocess |", "|---|---|---|---|---|"]
            for r in m["end_to_end"]:
                ratio = f"{r['vs_torch']:.2f}x" if r["vs_torch"] is not None else "-"
                stages = ", ".join(f"{v:.2f}" for v in r.get("ms_per_image", {}).values()) or "-"
                ahead = " (reads ahead)" if r.get("reads_ahead") else ""   # a core left free: the next batch read
                lines.append(f"| {r['batch']} | {r['backend']}{ahead} | {r['images_per_s']:.1f} | {ratio} | {stages} |")
        if m["accuracy"]:
            acc = m["accuracy"]
            lines += ["", f"top-1 on {acc['manifest']} ({acc['images']} images):", "",
                      "| backend | top-1 | agreement with torch |", "|---|---|---|"]
            lines += [f"| {name} | {v['top1']:.4f} | {v['agreement_with_torch']} |" for name, v in acc.items()
                      if isinstance(v, dict)]
        lines += [f"note: {n}" for n in m["notes"]] + [""]
    lines.append(f"hardware: {result['hardware']}; threads {result['threads']}; versions {result['versions']}; "
                 f"wall {result['wall_seconds']} s")
    return "\n".join(lines)
