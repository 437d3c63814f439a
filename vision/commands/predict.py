"""``vision predict``: predictions of any zoo model or export (classifier, detector, embedder), as JSON lines.

    vision predict --model grocery_resnet10t --images data/grocery_sample/val --topk 3
    vision predict --model logo_yolo11n --images 'shelf/*.jpg' --conf 0.25 --out logos.jsonl --draw runs/drawn
    vision predict --model export/grocery_resnet10t.logits.onnx --images photos/      # ONNX Runtime

One line per image: ``{"image", "task", ...}`` with ``topk`` (classifiers), ``width``/``height``/``detections``
in original pixels (detectors) or ``dim``/``vector`` (embedders). ``--draw DIR`` saves each image annotated as a
PNG (the full file name is kept: ``shelf.1.jpg`` -> ``shelf.1.jpg.png``). Unreadable files are skipped and listed
on stderr (``--strict`` makes them an error); an empty folder, or nothing readable at all, exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# options that configure one task's head; given to the head that has them
HEAD_OPTIONS = ("topk", "conf", "iou")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vision predict", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="zoo name, .safetensors, .ckpt, .onnx or TensorRT .plan")
    ap.add_argument("--images", nargs="+", required=True, help="image files, folders (recursive) and/or globs")
    ap.add_argument("--out", type=Path, help="JSON lines file (default: stdout)")
    ap.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when available)")
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--zoo-dir", help="look model names up in this zoo folder only")
    ap.add_argument("--topk", type=int, default=5, help="classifiers: classes per image")
    ap.add_argument("--conf", type=float, default=0.25, help="detectors: minimum box score")
    ap.add_argument("--iou", type=float, default=0.7, help="detectors: NMS IoU threshold")
    ap.add_argument("--draw", type=Path, help="folder for annotated PNGs (classifiers and detectors)")
    ap.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from vision.data.io import collect_images

    files = collect_images(_expand_globs(args.images))  # before the model loads: a mistyped folder fails at once
    from tqdm import tqdm

    from vision.commands import UsageError
    from vision.predictors import predictor

    p = predictor(args.model, backend=args.backend, device=args.device, zoo_dir=args.zoo_dir)
    for option in HEAD_OPTIONS:
        if hasattr(p.head, option):
            setattr(p.head, option, getattr(args, option))
    if args.draw and p.card.task == "embedding":
        raise UsageError(f"--draw needs a classifier or a detector; {args.model} is an embedding model")
    out = args.out.open("w", encoding="utf-8") if args.out else sys.stdout
    drawn: set[str] = set()
    count = 0
    try:
        results = p.stream(files, batch_size=args.batch_size, on_error="raise" if args.strict else "skip")
        for result in tqdm(results, total=len(files), desc="predict", unit="image", disable=not args.out,
                           file=sys.stderr):
            out.write(json.dumps(result.to_dict()) + "\n")
            count += 1
            if args.draw:
                result.save(args.draw / drawing_name(Path(result.source), drawn))
    finally:
        if args.out:
            out.close()
    if p.skipped:
        print(f"skipped {len(p.skipped)} of {len(files)} unreadable image(s): "
              + "; ".join(f"{path} ({why})" for path, why in p.skipped), file=sys.stderr)
    if count == 0:
        print(f"error: none of the {len(files)} image(s) could be read; nothing was predicted", file=sys.stderr)
        return 1
    print(f"predicted {count} image(s) with {args.model} ({p.backend})", file=sys.stderr)
    return 0


def _expand_globs(items: list[str]) -> list[str]:
    import glob

    expanded = []
    for item in items:
        if glob.has_magic(item) and not Path(item).exists():
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise FileNotFoundError(f"no file matches {item!r}")
            expanded += matches
        else:
            expanded.append(item)
    return expanded


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
