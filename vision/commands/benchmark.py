"""``vision benchmark``: inference speed of zoo models per backend and batch size through the predictor interface,
side by side in one process, plus (optionally) end-to-end speed on real images and the top-1 of each backend on a
labelled split. Prints Markdown tables and writes JSON.

    vision benchmark --model grocery_resnet10t --calib-dir ../shared/datasets/grocery_store/train \
        --data ../shared/datasets/grocery_store/val.txt --out runs/benchmark/grocery.json
    vision benchmark --model grocery_resnet10t,logo_yolo11n,brand_resnet10t --batch-sizes 1,8,32 \
        --calib-dir data/grocery_sample/train --images data/logo_sample/images/val --out runs/benchmark/all.json

Backends: ``torch`` (eager fp32; ``--precision fp32,bf16`` adds ``torch-bf16``), ``ort-fp32``, ``ort-int8`` (static
QDQ tuned for this CPU, needs ``--calib-dir``; a warning on a CPU it does not suit), ``trt-fp32``,
``trt-fp16`` (need the [tensorrt] extra and a GPU; skipped with a note otherwise). Each (batch, backend) cell is
measured in ``--rounds`` interleaved rounds of ``--seconds`` / rounds, after warm-up; latency is per call
(p50/p99), throughput is batch / p50, and the ratio is to torch eager at the same batch. Inputs are random
tensors of the model's input shape (speed does not depend on pixel values); accuracy uses the real images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vision.commands import add_no_progress, add_zoo_dir, command_parser


def parser() -> argparse.ArgumentParser:
    ap = command_parser("vision benchmark", __doc__)
    ap.add_argument("--model", required=True, help="zoo name(s), comma-separated: one table per model")
    add_zoo_dir(ap)
    ap.add_argument("--output-kind", "--output", dest="output", metavar="KIND",
                    help="what to time (classification: logits | features); default per task")
    ap.add_argument("--backends", default="torch,ort-fp32,ort-int8,trt-fp32,trt-fp16")
    ap.add_argument("--batch-sizes", "--batch", dest="batch_sizes", metavar="N,N,...", default="1,8,16,32",
                    help="comma-separated batch sizes, one table row each; the TensorRT profile max is added")
    ap.add_argument("--profile", default="1,8,64", metavar="MIN,OPT,MAX",
                    help="TensorRT optimisation profile: min,opt,max batch size")
    ap.add_argument("--device", default="cpu",
                    help="where the torch eager backend runs (default cpu, beside ONNX Runtime's CPU provider; "
                         "cuda to compare with TensorRT)")
    ap.add_argument("--precision", default="fp32", metavar="P,P",
                    help="torch eager precision(s), comma-separated: fp32 and/or bf16 (bf16 autocast, channels-last: "
                         "a 'torch-bf16' row timed beside the others; ratios stay to fp32 eager)")
    ap.add_argument("--calib-dir", type=Path, help="INT8 calibration images (ort-int8)")
    ap.add_argument("--int8-format", default="qdq", choices=["qdq", "qoperator"], help="ort-int8 graph format")
    # a string, not a Path: Path("") would be the current folder, and an empty path must be refused
    ap.add_argument("--images", "--end-to-end", dest="images", metavar="FOLDER",
                    help="also time the whole predictor (decode, preprocess, network, postprocess incl. NMS) on "
                         "the images of this folder")
    ap.add_argument("--data", "--accuracy", dest="data", type=Path, metavar="MANIFEST",
                    help="labelled data (classifiers: a 'path, label' manifest): top-1 of every backend on it")
    ap.add_argument("--seconds", type=float, default=4.0, help="measuring time per cell")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, help="torch and ONNX Runtime threads (default: torch's)")
    ap.add_argument("--workers", type=int, default=1, metavar="N",
                    help="with --images: also time each ONNX Runtime backend end to end with N batches at once "
                         "(vision.predictor(..., workers=N), the cores shared out), a row each")
    ap.add_argument("--out", type=Path, default=Path("runs/benchmark/benchmark.json"))
    add_no_progress(ap)
    return ap


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    from vision.benchmarking import run

    return run(args, argv)
