"""``vision predict``: predictions of any zoo model or export (classifier, detector, embedder), as JSON lines.

    vision predict --model grocery_resnet10t --images data/grocery_sample/val --topk 3
    vision predict --model logo_yolo11n --images 'shelf/*.jpg' --conf 0.25 --out logos.jsonl --draw runs/drawn
    vision predict --model export/grocery_resnet10t.logits.onnx --images photos/      # ONNX Runtime
    vision predict --model grocery_resnet10t --images data/grocery_sample/val.txt   # a manifest's images

One line per image: ``{"image", "task", ...}`` with ``topk`` (classifiers), ``width``/``height``/``detections``
in original pixels (detectors) or ``dim``/``vector`` (embedders). ``--draw DIR`` saves each image annotated as a
PNG (the full file name is kept: ``shelf.1.jpg`` -> ``shelf.1.jpg.png``). Unreadable files are skipped and listed
on stderr (``--strict`` makes them an error); an empty folder, or nothing readable at all, exits non-zero.
Image sizes are read from headers before decoding: a batch ends early rather than hold more than
``--max-batch-pixels`` decoded pixels, and a larger image is skipped. A manifest may list only paths inside its own
folder unless ``--allow-outside-paths`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vision.commands import add_device, add_images, add_no_progress, add_zoo_dir, command_parser, pixel_count

# options that configure one task's head; given to the head that has them
HEAD_OPTIONS = ("topk", "conf", "iou")


def parser() -> argparse.ArgumentParser:
    ap = command_parser("vision predict", __doc__)
    ap.add_argument("--model", required=True, help="zoo name, .safetensors, .ckpt, .onnx or TensorRT .plan")
    add_images(ap)
    ap.add_argument("--out", type=Path, help="JSON lines file (default: stdout); written as <out>.partial until the "
                                             "run finishes; a folder gets results.jsonl inside")
    add_device(ap)
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                    help="bf16 autocast (channels-last) on the torch runtime: 1.8-3x fp32 with batches on CPUs "
                         "with AMX or AVX-512 BF16, slower elsewhere and at batch 1")
    ap.add_argument("--batch-size", type=int, default=32, help="images read and run at a time")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads the network runs on (ONNX Runtime's and torch's; default: every core); fewer "
                         "than the cores leaves one to read the next batch meanwhile, faster at small batches")
    ap.add_argument("--workers", type=int, default=1,
                    help="ONNX Runtime: batches run at once, each in its own thread on --threads threads (default: "
                         "the cores shared out); results stay in input order. Faster for small batches of a small "
                         "network, e.g. the logo detector at --batch-size 1 on 2 workers")
    ap.add_argument("--max-batch-pixels", type=pixel_count, default=None, metavar="N",
                    help="decoded pixels one batch may hold (e.g. 64M): a batch ends early rather than pass it, and "
                         "a larger image is skipped (an error with --strict); default 128M, about 0.4 GB of RGB")
    add_zoo_dir(ap)
    ap.add_argument("--topk", type=int, default=5, help="classifiers: classes per image")
    ap.add_argument("--conf", type=float, default=0.25, help="detectors: minimum box score")
    ap.add_argument("--iou", type=float, default=0.7, help="detectors: NMS IoU threshold")
    ap.add_argument("--draw", type=Path, help="folder for annotated PNGs (classifiers and detectors)")
    ap.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    add_no_progress(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from vision.commands import UsageError, image_inputs

    unlisted: list[tuple[str, str]] = []  # folder entries that could not be listed: reported with the skips
    # before the model loads: a mistyped folder fails at once
    files = image_inputs(args.images, allow_outside=args.allow_outside_paths, skipped=unlisted)
    from vision.predictors import DEFAULT_MAX_BATCH_PIXELS, predictor
    from vision.progress import progress_bar

    if args.precision != "fp32" and args.backend not in ("auto", "torch"):
        raise UsageError(f"--precision {args.precision} runs on torch; drop --backend {args.backend} or the precision")
    if args.workers < 1:
        raise UsageError(f"--workers must be 1 or more, got {args.workers}")
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be 1 or more, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)   # this process's torch, as ONNX Runtime's session gets the same count
    try:
        p = predictor(args.model, backend=args.backend, device=args.device, zoo_dir=args.zoo_dir,
                      precision=args.precision, max_batch_pixels=args.max_batch_pixels or DEFAULT_MAX_BATCH_PIXELS,
                      threads=args.threads, workers=args.workers)
    except ValueError as e:  # options that do not fit the model's runtime (--workers on torch, ...)
        if isinstance(e, UsageError) or type(e) is not ValueError:
            raise
        raise UsageError(str(e)) from None
    for option in HEAD_OPTIONS:
        if hasattr(p.head, option):
            setattr(p.head, option, getattr(args, option))
    from vision.results import Result, result_type

    if args.draw and result_type(p.card.task, p.output).plot is Result.plot:  # a result with nothing to draw
        raise UsageError(f"--draw needs a classifier or a detector; {args.model} gives feature vectors ({p.output})")
    from vision.commands import results_output

    drawn: set[str] = set()
    count = 0
    with results_output(args.out) as out:
        results = p.stream(files, batch_size=args.batch_size, on_error="raise" if args.strict else "skip")
        # (no bar when the results go to stdout: it would interleave with them on a terminal)
        for result in progress_bar(results, enabled=bool(args.out) and not args.no_progress, total=len(files),
                                   desc="predict", unit="image"):
            out.write(json.dumps(result.to_dict()) + "\n")
            count += 1
            if args.draw:
                result.save(args.draw / drawing_name(Path(result.source), drawn))
    if unlisted:
        print(f"skipped {len(unlisted)} path(s) that could not be listed: "
              + "; ".join(f"{path} ({why})" for path, why in unlisted), file=sys.stderr)
    if p.skipped:
        print(f"skipped {len(p.skipped)} of {len(files)} unreadable image(s): "
              + "; ".join(f"{path} ({why})" for path, why in p.skipped), file=sys.stderr)
    if count == 0:
        print(f"error: none of the {len(files)} image(s) could be read; nothing was predicted", file=sys.stderr)
        return 1
    print(f"predicted {count} image(s) with {args.model} ({p.backend})", file=sys.stderr)
    return 0


def drawing_name(path: Path, taken: set[str]) -> str:
    """A PNG name for ``path`` that no earlier drawing has: ``shelf.1.jpg`` -> ``shelf.1.jpg.png``.

    The full file name is kept because stems collide (``shelf.1.jpg`` / ``shelf.1.png``); same-named images
    from different folders get ``_1``, ``_2``, ... Names are compared case-insensitively for macOS/Windows disks.
    """
    name, n = path.name, 1
    while name.lower() in taken:
        name, n = f"{path.stem}_{n}{path.suffix}", n + 1
    taken.add(name.lower())
    return name + ".png"
