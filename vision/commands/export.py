"""``vision export``: export a zoo model for deployment (ONNX, INT8 ONNX, TensorRT plan, Triton repository),
each artifact carrying its model card and a parity report beside it; an export that fails its parity gate is
refused with the numbers.

    vision export --model grocery_resnet10t --format onnx --output-kind features   # into $VISION_HOME/exports
    vision export --model grocery_resnet10t --format onnx-int8 --calib-dir TRAIN_IMAGES --parity-dir VAL_IMAGES
    vision export --model grocery_resnet10t --format onnx-int8 --calib-dir TRAIN_IMAGES --tuned-for avx2  # for AVX2
    vision export --model grocery_resnet10t --format tensorrt --precision fp16 --profile 1,8,32   # GPU
    vision export --model grocery_resnet10t --format triton --out triton_repo    # image bytes in, JSON out
    vision export --model logo_yolo11n --format ultralytics      # a .pt that ultralytics' YOLO() loads

``--out`` defaults to ``<exports>/<model>.<output kind><suffix>`` (``<exports>/triton`` for triton), where
``<exports>`` is ``$VISION_EXPORT_DIR``, else ``$VISION_HOME/exports`` (``~/.local/share/vision/exports``): the
one place ``backend="auto"`` predictors look, whatever the current folder; the path written is printed. An
``--out`` that is an existing folder gets that file name inside it. Options a format does not take are refused
(see ``vision.export.FORMATS``). ``--calib-images`` adds a few real images to the random inputs of the fp32 parity
check. Every artifact's sha256 is recorded as written (parity report, plan sidecar, ``vision.sha256`` in a Triton
model folder) and checked before it is served:

    vision export --verify model.features.onnx     # or a .plan, or a Triton repository
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vision.commands import add_zoo_dir, command_parser

SAMPLE_IMAGES = 16
# (vision.export.FORMATS; spelled out so that --help loads no torch: tests/test_commands.py checks they agree)
FORMAT_NAMES = ("onnx", "onnx-int8", "tensorrt", "triton", "ultralytics")
# (vision.export.quantize.TUNED_FOR, spelled out for the same reason and checked the same way)
INT8_TARGETS = ("auto", "vnni", "avx2", "generic", "tensorrt")


def main(argv: list[str] | None = None) -> int:
    ap = command_parser("vision export", __doc__)
    ap.add_argument("--model", help="zoo name, .safetensors file or Lightning .ckpt")
    add_zoo_dir(ap)
    ap.add_argument("--verify", type=Path, help="check an export (.onnx, .plan, Triton repository) against its "
                                                "recorded sha256 instead of exporting")
    ap.add_argument("--format", default="onnx", choices=sorted(FORMAT_NAMES))
    ap.add_argument("--output-kind", "--output", dest="output", metavar="KIND",
                    help="what the artifact computes (classification: logits | features); default per task")
    ap.add_argument("--out", type=Path, help="artifact path (a repository folder for --format triton); an existing "
                                             "folder gets the default file name <model>.<output kind><suffix>")
    ap.add_argument("--device", help="tensorrt, triton with --serving tensorrt: the GPU to build on (cuda or cuda:N; "
                                     "default: the current one); ONNX always traces on the CPU")
    ap.add_argument("--precision", choices=["fp32", "fp16", "int8"], help="tensorrt / triton")
    ap.add_argument("--profile", "--batch", dest="batch", metavar="MIN,OPT,MAX",
                    help="TensorRT optimisation profile: min,opt,max batch size (default 1,8,32)")
    ap.add_argument("--calib-dir", type=Path, help="representative images for INT8 calibration")
    ap.add_argument("--parity-dir", type=Path, help="held-out images for the INT8 parity gate")
    ap.add_argument("--tuned-for", choices=INT8_TARGETS,
                    help="onnx-int8: the CPU that will serve it, when it is not this one: vnni (AVX-512 VNNI, "
                         "AVX-VNNI, AMX), avx2 (x86 without VNNI), generic (other CPUs), tensorrt (symmetric int8 "
                         "for TensorRT); default auto, this CPU")
    ap.add_argument("--calib-images", type=Path, help="folder of images added to the fp32 parity check")
    ap.add_argument("--serving", choices=["python", "onnxruntime", "tensorrt"],
                    help="triton: the network step: python (ONNX Runtime in the Python backend, what vision serve "
                         "runs; default), onnxruntime (Triton's ONNX Runtime backend) or tensorrt (GPU)")
    ap.add_argument("--max-batch-size", type=int, help="triton: max_batch_size (plans: at most the profile max)")
    ap.add_argument("--instance-kind", choices=["KIND_CPU", "KIND_GPU"], help="triton instance group kind")
    ap.add_argument("--name", help="triton: the served model's name (default: the model's; its steps are "
                                   "<name>_pre, <name>_net, <name>_post)")
    ap.add_argument("--opset", type=int)
    ap.add_argument("--no-simplify", action="store_true")
    args = ap.parse_args(argv)
    from vision.data.io import list_images
    from vision.export import ExportError, export, verify_artifact
    from vision.export.onnx import default_output
    from vision.names import check_plain_name
    from vision.zoo import ZooError, load_model

    if args.verify is not None:
        try:
            checked = verify_artifact(args.verify)
        except ExportError as e:
            raise SystemExit(f"error: {e}") from None
        print(f"ok: {len(checked)} file(s) match their recorded sha256: {', '.join(map(str, checked))}",
              file=sys.stderr)
        return 0
    if args.model is None:
        ap.error("--model is required (or --verify PATH)")
    if args.name is not None:  # refused before the model is loaded and exported
        try:
            check_plain_name(args.name, "Triton model name", ExportError)
        except ExportError as e:
            raise SystemExit(f"error: --name: {e}") from None

    given = {"output": args.output, "precision": args.precision, "batch": args.batch, "calib_dir": args.calib_dir,
             "parity_dir": args.parity_dir, "tuned_for": args.tuned_for, "serving": args.serving,
             "max_batch_size": args.max_batch_size, "instance_kind": args.instance_kind, "name": args.name,
             "opset": args.opset,
             "simplify": False if args.no_simplify else None,
             "sample_images": list_images(args.calib_images)[:SAMPLE_IMAGES] if args.calib_images else None}
    options = {k: v for k, v in given.items() if v is not None}
    if args.format == "onnx-int8" and args.calib_dir is None:
        ap.error("--format onnx-int8 needs --calib-dir FOLDER (32+ representative images for calibration)")
    if args.format == "ultralytics" and args.out is not None and args.out.suffix != ".pt":
        ap.error(f"--format ultralytics writes a .pt file; --out {args.out} has another suffix")
    builds_plan = args.format == "tensorrt" or (args.format == "triton" and args.serving == "tensorrt")
    if args.device is not None:
        kind, _, index = args.device.partition(":")
        if not builds_plan or kind != "cuda" or not (index.isdigit() or not index):
            ap.error(f"--device {args.device}: only a TensorRT build takes a device (cuda or cuda:N); ONNX exports "
                     "trace on the CPU")
        if index:
            import torch

            torch.cuda.set_device(int(index))  # TensorRT builds and checks the plan on the current device
    try:
        model = load_model(args.model, zoo_dir=args.zoo_dir)
        out = default_out(model.card.name, args.format, args.output or default_output(model.card))
        if args.out is not None:  # an existing folder (not for triton): the default file name inside it
            out = args.out / out.name if args.format != "triton" and args.out.is_dir() else args.out
        path = export(model, args.format, out, **options)
    except (ExportError, ZooError) as e:
        raise SystemExit(f"error: {e}") from None
    verify_artifact(path)  # what was written is what its record says
    report = path / "vision.json" if path.is_dir() else path.with_name(path.name + ".parity.json")
    parity = json.loads(report.read_text())
    parity = parity.get("parity", parity)
    print(f"wrote {path}; parity: {json.dumps(parity)}", file=sys.stderr)
    return 0


def default_out(name: str, format: str, output: str) -> Path:
    """``<exports>/<model>.<output kind><suffix>`` in :func:`vision.predictors.default_export_dir`: where
    ``backend="auto"`` predictors look for a zoo model's export."""
    from vision.export import FORMATS
    from vision.predictors import default_export_dir

    if format == "triton":
        return default_export_dir() / "triton"
    return default_export_dir() / f"{name}.{output}{FORMATS[format].suffix}"
