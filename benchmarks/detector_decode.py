"""The detector's box decode in the exported graph, side by side in one process: ultralytics' ``DFL`` as it traces
(softmax over the bins on a transposed tensor, expectation by a 1x1 convolution) against the form ``vision export``
traces (``DetectorPredictions.for_export``: max, exp, bin-weighted sum and sum along the bin axis; the same values).

Exports the zoo detector both ways in fp32 and INT8 (the "before" export with ``for_export`` switched off), checks
that the two fp32 graphs give the same output on the sample images, then times each graph's network alone in
onnxruntime (interleaved rounds, medians) and, with its profiler, the share of the decode's operators.

    python -m benchmarks.detector_decode --calib-dir data/logo_sample/images --threads 2 --batch-sizes 1,8
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def export_both(model_name: str, calib_dir: Path, out: Path) -> dict[str, Path]:
    """``{label: path}`` for the fp32 and INT8 exports with ultralytics' decode ("before") and ours."""
    import vision
    from vision.export import export
    from vision.models.outputs import DetectorPredictions

    model = vision.load_model(model_name)
    paths = {}
    ours = DetectorPredictions.for_export
    for label, for_export in (("before", lambda self: contextlib.nullcontext(self)), ("after", ours)):
        DetectorPredictions.for_export = for_export
        try:
            paths[f"fp32 {label}"] = export(model, "onnx", out / f"{label}.onnx")
            paths[f"int8 {label}"] = export(model, "onnx-int8", out / f"{label}.int8.onnx", calib_dir=calib_dir)
        finally:
            DetectorPredictions.for_export = ours
    return paths


def session(path: Path, threads: int, profile_prefix: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as vision.predictor ships
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def decode_share(path: Path, threads: int, batch: np.ndarray, scratch: Path) -> dict:
    """onnxruntime's profiler over 50 runs: the decode module's (``/dfl/``) share of node time, and the top ops."""
    s = session(path, threads, str(scratch / path.stem))
    for _ in range(50):
        s.run(None, {"images": batch})
    events = json.loads(Path(s.end_profiling()).read_text())
    by_op, dfl, total = collections.Counter(), 0, 0
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"]["op_name"]] += e["dur"]
            total += e["dur"]
            dfl += e["dur"] if "/dfl/" in e["name"] else 0
    return {"dfl_share": round(dfl / total, 3),
            "top_ops": {op: round(t / total, 3) for op, t in by_op.most_common(5)}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="logo_yolo11n")
    ap.add_argument("--calib-dir", type=Path, default=Path("data/logo_sample/images"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=1.5, help="per graph and round")
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    print("python -m benchmarks.detector_decode " + " ".join(argv if argv is not None else sys.argv[1:]))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from vision.data.io import list_images
    from vision.export.calibration import CalibrationSet
    from vision.export.quantize import cpu_isa
    from vision.zoo import load_model

    card = load_model(args.model).card
    images = CalibrationSet.from_folder(args.calib_dir, card.data_config, min_images=1, max_images=8).array(8)
    with tempfile.TemporaryDirectory(prefix="detector-decode-") as scratch:
        scratch = Path(scratch)
        t = time.perf_counter()
        paths = export_both(args.model, args.calib_dir, scratch)
        print(f"exports: {time.perf_counter() - t:.0f} s")
        before, after = (session(paths[f"fp32 {k}"], args.threads).run(None, {"images": images})[0]
                         for k in ("before", "after"))
        diff = float(np.abs(before - after).max() / np.abs(before).max())
        rows = {"model": args.model, "threads": args.threads, "fp32_max_rel_diff": diff,
                "cpu_isa": cpu_isa(), "images": len(list_images(args.calib_dir)), "runs": {}}
        for b in (int(x) for x in args.batch_sizes.split(",")):
            batch = np.ascontiguousarray(np.resize(images, (b, *images.shape[1:])))
            sessions = {label: session(p, args.threads) for label, p in paths.items()}
            times = {label: [] for label in sessions}
            for _ in range(args.rounds):
                for label, s in sessions.items():
                    s.run(None, {"images": batch})
                    n, start = 0, time.perf_counter()
                    while time.perf_counter() - start < args.seconds:
                        s.run(None, {"images": batch})
                        n += 1
                    times[label].append((time.perf_counter() - start) / n * 1e3)
            for label, ts in times.items():
                share = decode_share(paths[label], args.threads, batch, scratch)
                rows["runs"][f"{label}, batch {b}"] = {"ms": round(statistics.median(ts), 3), **share}
            for precision in ("fp32", "int8"):
                rows["runs"][f"{precision} after, batch {b}"]["speedup"] = round(
                    rows["runs"][f"{precision} before, batch {b}"]["ms"]
                    / rows["runs"][f"{precision} after, batch {b}"]["ms"], 3)
    print(f"\n{args.model}: {args.threads} onnxruntime thread(s), median of {args.rounds} interleaved rounds; "
          f"fp32 outputs before/after differ by {diff:.1e} of the largest value\n")
    print("| graph | batch | network ms | after / before speed | decode's share of node time | top ops |")
    print("|---|---|---|---|---|---|")
    for label, r in rows["runs"].items():
        graph, b = label.split(", batch ")
        ops = ", ".join(f"{op} {share:.0%}" for op, share in r["top_ops"].items())
        print(f"| {graph} | {b} | {r['ms']:.2f} | {r.get('speedup', '')} | {r['dfl_share']:.0%} | {ops} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
