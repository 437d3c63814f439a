#!/usr/bin/env python
"""Metrics of a classifier (zoo name, .safetensors or Lightning .ckpt) on any labelled split.

    python tools/eval.py --model grocery_resnet10t --data ../shared/datasets/grocery_store/val.txt \
        --classes ../shared/datasets/grocery_store/classes.csv

``--data`` is a manifest (``path, label[, coarse]`` lines) or an ImageFolder tree. Prints one JSON
object (top-1/top-5 fine and coarse, mean per-class accuracy) and writes it, the per-class
accuracies and a confusion-matrix PNG under ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytorch_lightning as pl  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from vision.data.datasets import ClassTable, LabeledImages, ManifestError, Sample, read_manifest, scan_image_folder  # noqa: E402,E501
from vision.data.transforms import build_eval_transform  # noqa: E402
from vision.tasks.classification import ClassificationModule  # noqa: E402
from vision.zoo import load_model  # noqa: E402


def module_from_model(model) -> ClassificationModule:
    """Wrap a loaded zoo classifier in the training module so evaluation shares its metrics code."""
    card = model.card
    module = ClassificationModule(
        backbone=card.architecture, num_classes=card.config["num_classes"],
        num_coarse_classes=len(card.coarse_names) if card.coarse_names else None,
        class_names=card.class_names, coarse_names=card.coarse_names, fine_to_coarse=card.fine_to_coarse,
        preprocessing=card.preprocessing, coarse_head=card.config.get("num_coarse_classes") is not None)
    module.model.load_state_dict(model.state_dict())
    return module


def read_split(data: Path, root: Path | None, table: ClassTable, classes_file: Path | None):
    if classes_file is not None:
        given = ClassTable.read(classes_file)
        if given.names != table.names:
            raise ManifestError(f"{classes_file}: class names differ from the model's "
                                f"({len(given.names)} vs {len(table.names)} classes)")
    if data.is_dir():
        samples, folder_table = scan_image_folder(data)
        unknown = [n for n in folder_table.names if n not in table.names]
        if unknown:
            raise ManifestError(f"{data}: class folders {unknown[:5]} are not classes of the model")
        return [Sample(s.path, table.names.index(folder_table.names[s.label])) for s in samples]
    return read_manifest(data, root, table)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", type=Path, required=True, help="manifest file or ImageFolder root")
    ap.add_argument("--classes", type=Path, help="class table to check against the model's classes")
    ap.add_argument("--root", type=Path, help="folder manifest paths are relative to (default: its folder)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out-dir", type=Path, default=Path("runs/eval"))
    ap.add_argument("--strict", action="store_true", help="unreadable images are an error, not a skip")
    args = ap.parse_args(argv)

    model = load_model(args.model)
    card = model.card
    table = ClassTable(card.class_names, card.coarse_names, card.fine_to_coarse)
    samples = read_split(args.data, args.root, table, args.classes)
    dataset = LabeledImages(samples, table, build_eval_transform(card.data_config), strict=args.strict,
                            name=str(args.data))
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    trainer = pl.Trainer(accelerator="auto", devices=1, logger=False, default_root_dir=args.out_dir,
                         enable_progress_bar=False, enable_model_summary=False)
    results = trainer.test(module_from_model(model), dataloaders=loader, verbose=False)[0]
    report = {"model": card.name, "data": str(args.data), "images": len(dataset), "skipped": len(dataset.skipped),
              **{k.split("/", 1)[1]: round(float(v), 4) for k, v in results.items() if k != "test/loss"}}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
