"""``vision benchmark``: inference speed of zoo models per backend and batch size through the predictor interface,
side by side in one process, plus (optionally) end-to-end speed on real images and the top-1 of each backend on a
labelled split. Prints Markdown tables and writes JSON.

    vision benchmark --model grocery_resnet10t --calib-dir ../shared/datasets/grocery_store/train \
        --accuracy ../shared/datasets/grocery_store/val.txt --out runs/benchmark/grocery.json
    vision benchmark --model grocery_resnet10t,logo_yolo11n,brand_resnet10t --batch 1,8,32 \
        --calib-dir data/grocery_sample/train --end-to-end data/logo_sample/images/val --out runs/benchmark/all.json

Backends: ``torch`` (eager fp32), ``ort-fp32``, ``ort-int8`` (static QDQ, needs ``--calib-dir``), ``trt-fp32``,
``trt-fp16`` (need the [tensorrt] extra and a GPU; skipped with a note otherwise). Each (batch, backend) cell is
measured in ``--rounds`` interleaved rounds of ``--seconds`` / rounds, after warm-up; latency is per call
(p50/p99), throughput is batch / p50, and the ratio is to torch eager at the same batch. Inputs are random
tensors of the model's input shape (speed does not depend on pixel values); accuracy uses the real images.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vision benchmark", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="zoo name(s), comma-separated: one table per model")
    ap.add_argument("--output", help="output kind to time (default per task: logits for classifiers)")
    ap.add_argument("--backends", default="torch,ort-fp32,ort-int8,trt-fp32,trt-fp16")
    ap.add_argument("--batch", default="1,8,16,32", help="batch sizes; the TensorRT profile max is added")
    ap.add_argument("--profile", default="1,8,64", help="TensorRT min,opt,max batch profile")
    ap.add_argument("--calib-dir", type=Path, help="INT8 calibration images (ort-int8)")
    ap.add_argument("--int8-format", default="qdq", choices=["qdq", "qoperator"], help="ort-int8 graph format")
    ap.add_argument("--accuracy", type=Path, help="labelled manifest: top-1 of every backend on it (classifiers)")
    ap.add_argument("--end-to-end", type=Path, metavar="IMAGES",
                    help="also time the whole predictor (decode, preprocess, network, postprocess incl. NMS) on "
                         "the images of this folder")
    ap.add_argument("--seconds", type=float, default=4.0, help="measuring time per cell")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, help="torch and ONNX Runtime threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=Path("runs/benchmark/benchmark.json"))
    return ap


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    from vision.benchmarking import run

    return run(args, argv)
