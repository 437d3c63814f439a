#!/usr/bin/env python
"""INT8 settings per CPU, and bf16, measured side by side in one process: for one zoo model, torch eager (fp32 and
bf16 autocast on channels-last), ONNX Runtime fp32 and the INT8 exports of each ``tuned_for`` setting
(vision.export.quantize.INT8_SETTINGS) and graph format; speed at one batch size (interleaved rounds, p50), accuracy
on labelled data, and which onnxruntime kernels take the time (its profiler).

    python -m benchmarks.int8_isa --model grocery_resnet10t --calib-dir $GROCERY/train --data $GROCERY/val.txt
    python -m benchmarks.int8_isa --model brand_resnet10t --calib-dir runs/brands/val/gallery --data runs/brands/val
    python -m benchmarks.int8_isa --model logo_yolo11n --calib-dir data/logo_sample/images --batch 8 \
        --data data/logo_sample/data.yaml

Accuracy: classifiers top-1 on a manifest; embedders Recall@1 of ``query/<id>/*`` against ``gallery/<id>/*``;
the detector's box agreement with torch after NMS on the calibration images (the strict one at score 0.05 and the
INT8 gate's, of the boxes kept at the deployed score 0.25) and, with ``--data`` (a YOLO data.yaml), mAP50 of every
file on its val split (``vision.evaluate``, ONNX files run by ONNX Runtime). The detector's rows: the export
``vision export --format onnx-int8`` writes (box decode and stem ``model.0`` in fp32) and variants with less or more
of the graph in fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# (label, export_onnx_int8 options): "generic" is what every CPU got before INT8 was tuned by ISA
VARIANTS = {
    "int8 generic (s8 act, 7-bit w)": {"tuned_for": "generic"},
    "int8 tensorrt (s8 act, full w)": {"tuned_for": "tensorrt"},
    "int8 vnni (u8 act, full w)": {"tuned_for": "vnni"},
    "int8 vnni, qoperator": {"tuned_for": "vnni", "quant_format": "qoperator"},
    "int8 avx2 (u8 act, 7-bit w)": {"tuned_for": "avx2"},
}
# detector rows besides the export's own: (ultralytics modules model.0..<n-1> kept in fp32 besides the box decode,
# activation-range percentile or None for min/max)
DETECTOR_VARIANTS = {"int8 vnni, decode fp32 (stem int8)": (0, None), "int8 vnni, decode + model.0-2 fp32": (3, None)}
# rows of the vnni export with every node of these ONNX op types left in fp32 (dequantised around them), where the
# graph has them, and SiLU not fused (fuse_silu=False): the profiler gave the SiLU's int8 Sigmoid and Mul (YOLO)
# over a quarter of the kernel time; left in fp32 unfused they are slower still (the export now fuses them).
# (resnet10t's int8 AveragePool, a tenth, cannot be kept this way: onnxruntime fuses DequantizeLinear ->
# AveragePool -> QuantizeLinear back into QLinearAveragePool, the same speed; measured 2026-12-07)
KEEP_OP_VARIANTS = {"int8 vnni, SiLU fp32": ("Sigmoid", "Mul")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--calib-dir", type=Path, required=True)
    ap.add_argument("--data", type=Path, help="classifier: manifest; embedder: folder with gallery/ and query/; "
                                           "detector: YOLO data.yaml (mAP50 on its val split)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=6.0, help="measuring time per backend")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--max-images", type=int, default=256, help="calibration images")
    ap.add_argument("--out", type=Path, help="JSON report (default: stdout only)")
    args = ap.parse_args(argv)
    import numpy as np
    import onnxruntime as ort
    import torch

    import vision
    from vision.benchmarking import hardware, time_cell, versions
    from vision.export import ExportError, export
    from vision.export.onnx import default_output
    from vision.predictors import TorchRuntime

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    model = vision.load_model(args.model)
    card = model.card
    output = default_output(card)

    def session(path: Path, profile: str | None = None):
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if profile:
            so.enable_profiling, so.profile_file_prefix = True, profile
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def onnx_runner(path: Path):
        s = session(path)
        return lambda x: s.run(None, {"images": x})[0]

    def torch_runner(precision: str):
        rt = TorchRuntime(model, output, "cpu", precision=precision)
        return lambda x: rt(torch.from_numpy(x))

    notes, files = [], {}
    with tempfile.TemporaryDirectory(prefix="int8-isa-") as scratch:
        scratch = Path(scratch)
        # "torch": fp32 eager, the base of every ratio
        runners = {"torch": torch_runner("fp32"), "torch bf16 channels-last": torch_runner("bf16")}
        files["ort fp32"] = export(model, "onnx", scratch / "fp32.onnx")
        if card.task == "detection":
            files["int8 vnni (export: decode + stem fp32)"] = export(model, "onnx-int8", scratch / "det.int8.onnx",
                                                             calib_dir=args.calib_dir, max_images=args.max_images,
                                                             tuned_for="vnni")
            for label, options in (("int8 generic (export)", {"tuned_for": "generic"}),
                                   ("int8 avx2 (export)", {"tuned_for": "avx2"}),
                                   ("int8 vnni, SiLU int8 (export before fuse_silu)",
                                    {"tuned_for": "vnni", "fuse_silu": False})):
                try:   # the exports an AVX2-only CPU may get (the gate may refuse one: noted)
                    files[label] = export(model, "onnx-int8", scratch / f"det{len(files)}.int8.onnx",
                                          calib_dir=args.calib_dir, max_images=args.max_images, **options)
                except ExportError as e:
                    notes.append(f"{label}: refused ({e})"[:300])
            files.update(detector_variants(files["ort fp32"], args, scratch, card))
        else:
            for label, options in VARIANTS.items():
                try:
                    files[label] = export(model, "onnx-int8", scratch / f"{len(files)}.int8.onnx",
                                          calib_dir=args.calib_dir, max_images=args.max_images, **options)
                except ExportError as e:
                    notes.append(f"{label}: refused ({e})"[:300])
        files.update(keep_op_variants(model, files["ort fp32"], args, scratch, notes))
        runners.update({label: onnx_runner(path) for label, path in files.items()})
        size = card.data_config.input_size
        x = np.random.default_rng(0).standard_normal((args.batch, 3, size, size)).astype(np.float32)
        rows = time_cell(runners, x, args.seconds, args.rounds)
        fp32_p50 = next(r["p50_ms"] for r in rows if r["backend"] == "ort fp32")
        for r in rows:
            r["vs_ort_fp32"] = round(fp32_p50 / r["p50_ms"], 2)
        accuracy = measure_accuracy(model, runners, args)
        if card.task == "detection" and args.data:
            accuracy["map50"] = detector_map50(model, files, args.data)
        kernels = {label: kernel_shares(session(path, str(scratch / f"prof{i}")), x)
                   for i, (label, path) in enumerate(files.items())}
    report = {"model": card.name, "task": card.task, "batch": args.batch, "threads": args.threads, "rows": rows,
              "accuracy": accuracy, "kernels": kernels, "notes": notes, "hardware": hardware(),
              "versions": versions(), "load_average": os.getloadavg(),
              "command": " ".join(["python -m benchmarks.int8_isa", *(argv if argv is not None else sys.argv[1:])]),
              "wall_seconds": round(time.perf_counter() - start, 1)}
    print(markdown(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


def keep_op_variants(model, fp32: Path, args, scratch: Path, notes: list) -> dict[str, Path]:
    """The vnni export with the nodes of each :data:`KEEP_OP_VARIANTS` op-type set in fp32, where the graph has
    any (the export's own gate applies: a refusal is noted)."""
    import onnx

    from vision.export import ExportError, export

    nodes = onnx.load(str(fp32)).graph.node
    files = {}
    for i, (label, ops) in enumerate(KEEP_OP_VARIANTS.items()):
        names = sorted(n.name for n in nodes if n.op_type in ops)
        if not names:
            continue
        try:
            files[label] = export(model, "onnx-int8", scratch / f"ops{i}.int8.onnx", calib_dir=args.calib_dir,
                                  max_images=args.max_images, tuned_for="vnni", keep_fp32=names, fuse_silu=False)
        except ExportError as e:
            notes.append(f"{label}: refused ({e})"[:300])
    return files


def detector_variants(fp32: Path, args, scratch: Path, card) -> dict[str, Path]:
    """INT8 detector graphs with the box decode and the first modules in fp32 (see the module docstring)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from vision.export.calibration import CalibrationSet
    from vision.export.quantize import INT8_SETTINGS, _Reader, detector_decode_nodes, fuse_silu_file

    prepared = scratch / "prepared.onnx"
    cwd = os.getcwd()
    os.chdir(scratch)  # onnxruntime's shape inference writes temporary files into the working folder
    try:
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    finally:
        os.chdir(cwd)
    fuse_silu_file(prepared)   # as the export does
    graph = onnx.load(str(prepared)).graph
    decode = detector_decode_nodes(graph)
    calib = CalibrationSet.from_folder(args.calib_dir, card.data_config, max_images=args.max_images)
    vnni = INT8_SETTINGS["vnni"]
    files = {}
    for i, (label, (first, percentile)) in enumerate(DETECTOR_VARIANTS.items()):
        keep = decode | {n.name for n in graph.node
                         if any(n.name.startswith(f"/model/model.{m}/") for m in range(first))}
        path = scratch / f"det{i}.onnx"
        quantize_static(str(prepared), str(path), _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        reduce_range=vnni["reduce_range"], nodes_to_exclude=sorted(keep),
                        calibrate_method=CalibrationMethod.MinMax if percentile is None else
                        CalibrationMethod.Percentile,
                        extra_options={"ActivationSymmetric": vnni["activations_symmetric"], "WeightSymmetric": True,
                                       **({} if percentile is None else {"CalibPercentile": percentile})})
        files[label] = path
    return files


def detector_map50(model, files: dict, data: Path) -> dict:
    """mAP50 (and mAP50-95) of torch and of the exports (files with a parity record: the variants, quantised here
    without one, are judged by box agreement only) on the val split of the YOLO ``data`` yaml."""
    from vision import evaluate
    from vision.export.onnx import parity_report_path

    found = {}
    exports = {name: path for name, path in files.items() if parity_report_path(path).exists()}
    for name, source in {"torch": model, **exports}.items():
        metrics = evaluate(source, data, workers=0, device="cpu", progress=False)
        found[name] = {k: metrics[k] for k in ("mAP50", "mAP50-95", "precision", "recall")}
    return {"data": str(data), **found}


def measure_accuracy(model, runners: dict, args) -> dict:
    """Top-1 (classifiers), Recall@1 (embedders) or box agreement with torch (detector) per backend."""
    import numpy as np

    from vision.benchmarking import top1_per_backend
    from vision.data.inputs import to_batch
    from vision.data.io import list_images, load_image
    from vision.data.transforms import build_eval_transform

    card = model.card
    transform = build_eval_transform(card.data_config)

    def outputs(files: list[Path]) -> dict:
        out: dict[str, list] = {name: [] for name in runners}
        for i in range(0, len(files), 64):
            x = to_batch([load_image(p) for p in files[i:i + 64]], transform).numpy()
            for name, run in runners.items():
                out[name].append(run(x))
        return {name: np.concatenate(v) for name, v in out.items()}

    if card.task == "classification" and args.data:
        return top1_per_backend(runners, model, args.data)
    if card.task == "embedding" and args.data:
        gallery, query = list_images(args.data / "gallery"), list_images(args.data / "query")
        g_ids = np.array([p.parent.name for p in gallery])
        q_ids = np.array([p.parent.name for p in query])
        g, q = outputs(gallery), outputs(query)
        result = {"data": str(args.data), "gallery": len(gallery), "queries": len(query)}
        for name in runners:
            gn = g[name] / np.linalg.norm(g[name], axis=1, keepdims=True)
            qn = q[name] / np.linalg.norm(q[name], axis=1, keepdims=True)
            result[name] = {"recall_at_1": round(float((g_ids[(qn @ gn.T).argmax(1)] == q_ids).mean()), 4)}
        return result
    if card.task == "detection":
        from vision.export.onnx import compare_outputs

        images = list_images(args.calib_dir)
        out = outputs(images)
        ref = out["torch"]
        return {"images": len(images), **{name: {k: (round(float(v), 4) if v is not None else None)
                                                  for k, v in compare_outputs(ref, got, "predictions").items()
                                                  if k in ("box_agreement", "deployed_box_agreement",
                                                           "min_cosine", "max_rel_diff")}
                                           for name, got in out.items()}}
    return {}


def kernel_shares(session, x) -> dict[str, float]:
    """Share of kernel time per onnxruntime op type over 3 runs (its profiler), largest first."""
    for _ in range(3):
        session.run(None, {"images": x})
    events = json.loads(Path(session.end_profiling()).read_text())
    spent: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e["args"]["op_name"]
            spent[op] = spent.get(op, 0.0) + e["dur"]
    total = sum(spent.values()) or 1.0
    return {op: round(d / total, 3) for op, d in sorted(spent.items(), key=lambda kv: -kv[1])}


def markdown(report: dict) -> str:
    acc = report["accuracy"]
    found = {k for v in acc.values() if isinstance(v, dict) for k in v}
    metric = next((k for k in ("top1", "recall_at_1", "deployed_box_agreement") if k in found), None)
    lines = [f"### {report['model']} ({report['task']}), batch {report['batch']}, {report['threads']} thread(s)", "",
             f"| backend | images/s | p50 ms | vs torch eager fp32 | vs ORT fp32 | {metric or 'accuracy'} | "
             "top kernels |",
             "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        k = report["kernels"].get(r["backend"], {})
        top = ", ".join(f"{op} {share:.0%}" for op, share in list(k.items())[:4]) or "-"
        value = acc.get(r["backend"], {}).get(metric, "-") if metric else "-"
        lines.append(f"| {r['backend']} | {r['images_per_s']:.1f} | {r['p50_ms']:.1f} | {r['vs_torch']:.2f}x | "
                     f"{r['vs_ort_fp32']:.2f}x | {value} | {top} |")
    for name, m in acc.get("map50", {}).items():
        if isinstance(m, dict):
            lines.append(f"mAP50 {name}: {m['mAP50']} (mAP50-95 {m['mAP50-95']}) on {acc['map50']['data']}")
    lines += [f"note: {n}" for n in report["notes"]]
    lines.append(f"hardware: {report['hardware']}; versions {report['versions']}; load average "
                 f"{[round(v, 1) for v in report['load_average']]}; wall {report['wall_seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
