"""``vision eval``: metrics of any zoo model (name, .safetensors or Lightning .ckpt) on a labelled split.

``--data`` is labelled data (images with their answers), unlike the unlabelled ``--images`` of predict, extract and
recognize; its form depends on the model's task:

    vision eval --model grocery_resnet10t --data ../shared/datasets/grocery_store/val.txt \\
        --classes ../shared/datasets/grocery_store/classes.csv              # classifier: top-1/5, confusion PNG
    vision eval --model logo_yolo11n --data data/logo_sample/data.yaml      # detector: mAP50, mAP50-95 on 'val'
    vision eval --model logo.int8.onnx --data data/logo_sample/data.yaml    # a detector's ONNX export (INT8 too)
    vision eval --model brand_resnet10t --data runs/brands/val              # embedder: gallery/ and query/ folders

Classifiers: a manifest (``path, label[, coarse]`` lines) or an ImageFolder tree; top-1/top-5 fine
and coarse, mean per-class accuracy, per-class accuracies and a confusion-matrix PNG under ``--out``. Detectors:
a YOLO ``data.yaml``; mAP50, mAP50-95, precision, recall on its val split (ultralytics' matching and
``DetMetrics``, as in training). Embedders: a folder holding ``gallery/<brand>/*`` and ``query/<brand>/*``;
Recall@1/5, precision@1 and MAP@R of queries against the gallery. Prints one JSON object and writes it to
``<out>/metrics.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vision.commands import add_device, add_no_progress, add_zoo_dir, command_parser


def parser() -> argparse.ArgumentParser:
    ap = command_parser("vision eval", __doc__)
    ap.add_argument("--model", required=True,
                    help="zoo name, .safetensors file or Lightning .ckpt; for a detector also an .onnx export "
                         "(fp32 or INT8, run by ONNX Runtime on the CPU)")
    ap.add_argument("--data", type=Path, required=True,
                    help="labelled data, by the model's task: classifier: a manifest ('path, label' lines) or an "
                         "ImageFolder tree; detector: a YOLO data.yaml (its val split); embedder: a folder with "
                         "gallery/<id>/ and query/<id>/")
    ap.add_argument("--classes", type=Path, help="classifier: class table to check against the model's classes")
    ap.add_argument("--root", type=Path, help="classifier: folder manifest paths are relative to")
    ap.add_argument("--batch-size", type=int, default=64, help="images per batch")
    ap.add_argument("--workers", type=int, default=2, help="image-decoding worker processes (classifier, detector)")
    add_device(ap)
    add_zoo_dir(ap)
    ap.add_argument("--out", "--out-dir", dest="out", type=Path, default=Path("runs/eval"),
                    help="folder for metrics.json (and the confusion matrix)")
    ap.add_argument("--strict", action="store_true", help="unreadable images are an error, not a skip")
    add_no_progress(ap)
    return ap


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    from vision.commands import UsageError
    from vision.evaluation import EvaluationError, evaluate

    try:
        report = evaluate(args.model, args.data, zoo_dir=args.zoo_dir, classes=args.classes, root=args.root,
                          batch_size=args.batch_size, workers=args.workers, device=args.device, out=args.out,
                          strict=args.strict, progress=not args.no_progress)
    except EvaluationError as e:
        raise UsageError(str(e)) from None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))
    return report
