"""``vision eval``: metrics of any zoo model (name, .safetensors or Lightning .ckpt) on a labelled split.

``--data`` is labelled data (images with their answers), unlike the unlabelled ``--images`` of predict, extract and
recognize; its form depends on the model's task:

    vision eval --model grocery_resnet10t --data ../shared/datasets/grocery_store/val.txt \\
        --classes ../shared/datasets/grocery_store/classes.csv              # classifier: top-1/5, confusion PNG
    vision eval --model logo_yolo11n --data data/logo_sample/data.yaml      # detector: mAP50, mAP50-95 on 'val'
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
    ap.add_argument("--model", required=True, help="zoo name, .safetensors file or Lightning .ckpt")
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
    from vision.zoo import load_model

    model = load_model(args.model, zoo_dir=args.zoo_dir)
    evaluate = {"classification": _classification, "detection": _detection, "embedding": _embedding}
    report = {"model": model.card.name, "task": model.card.task, "data": str(args.data),
              **evaluate[model.card.task](model, args)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))
    return report


def _trainer(args):
    import pytorch_lightning as pl

    from vision.progress import progress_wanted

    accelerator, devices = _lightning_device(args.device)
    # Lightning's own bar writes to stdout, where the JSON report goes: ours writes to stderr
    callbacks = [_progress_callback()] if progress_wanted(not args.no_progress) else []
    return pl.Trainer(accelerator=accelerator, devices=devices, logger=False, default_root_dir=args.out,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)


def _lightning_device(device: str | None) -> tuple[str, list[int] | int]:
    """``--device`` as Lightning's ``accelerator``/``devices``: ``cuda:1`` -> ``("gpu", [1])``."""
    if device is None:
        return "auto", 1
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return "cpu", 1
    if kind == "cuda":
        return "gpu", [int(index)] if index else 1
    from vision.commands import UsageError

    raise UsageError(f"--device {device}: expected cpu, cuda or cuda:N")


def _progress_callback():
    """A validation/test progress bar on stderr (one per evaluation loop)."""
    import pytorch_lightning as pl

    from vision.progress import progress_bar

    class EvalProgress(pl.Callback):
        bar = None

        def _start(self, batches) -> None:
            self.bar = progress_bar(total=int(sum(batches)), desc="eval", unit="batch")

        def _step(self, *_) -> None:
            self.bar.update(1)

        def _end(self, *_) -> None:
            self.bar.close()

        def on_validation_epoch_start(self, trainer, *_):
            self._start(trainer.num_val_batches)

        def on_test_epoch_start(self, trainer, *_):
            self._start(trainer.num_test_batches)

        on_validation_batch_end = on_test_batch_end = _step
        on_validation_epoch_end = on_test_epoch_end = _end

    return EvalProgress()


def _classification(model, args) -> dict:
    from torch.utils.data import DataLoader

    from vision.data.datasets import ClassTable, LabeledImages
    from vision.data.transforms import build_eval_transform
    from vision.tasks.classification import ClassificationModule

    card = model.card
    table = ClassTable(card.class_names, card.coarse_names, card.fine_to_coarse)
    samples = read_split(args.data, args.root, table, args.classes)
    dataset = LabeledImages(samples, table, build_eval_transform(card.data_config), strict=args.strict,
                            name=str(args.data))
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    module = ClassificationModule(
        backbone=card.architecture, num_classes=card.config["num_classes"],
        num_coarse_classes=len(card.coarse_names) if card.coarse_names else None,
        class_names=card.class_names, coarse_names=card.coarse_names, fine_to_coarse=card.fine_to_coarse,
        preprocessing=card.preprocessing, coarse_head=card.config.get("num_coarse_classes") is not None)
    module.model.load_state_dict(model.state_dict())  # evaluation shares the training module's metrics code
    results = _trainer(args).test(module, dataloaders=loader, verbose=False)[0]
    return {"images": len(dataset), "skipped": len(dataset.skipped),
            **{k.split("/", 1)[1]: round(float(v), 4) for k, v in results.items() if k != "test/loss"}}


def read_split(data: Path, root: Path | None, table, classes_file: Path | None):
    """A classifier's labelled samples from a manifest or an ImageFolder tree, in the model's class order.

    A manifest's labels index its own class table (``--classes``, else a ``classes.csv`` beside it, as the Grocery
    Store and the shipped sample have): that table may be a subset of the model's classes in another order, and
    its labels are mapped onto the model's by class name. Without a table, labels are the model's own ids."""
    from vision.data.datasets import ClassTable, ManifestError, Sample, read_manifest, scan_image_folder

    if data.is_dir():
        samples, folder_table = scan_image_folder(data)
        unknown = [n for n in folder_table.names if n not in table.names]
        if unknown:
            raise ManifestError(f"{data}: class folders {unknown[:5]} are not classes of the model (an ImageFolder "
                                "tree holds one folder per class; pass a manifest and its classes.csv instead)")
        return [Sample(s.path, table.names.index(folder_table.names[s.label])) for s in samples]
    if classes_file is None and (data.parent / "classes.csv").is_file():
        classes_file = data.parent / "classes.csv"
    if classes_file is None:
        return read_manifest(data, root, table)
    given = ClassTable.read(classes_file)
    unknown = [n for n in given.names if n not in table.names]
    if unknown:
        raise ManifestError(f"{classes_file}: classes {unknown[:5]} are not classes of the model "
                            f"({len(unknown)} of {len(given.names)})")
    to_model = [table.names.index(n) for n in given.names]
    return [Sample(s.path, to_model[s.label], -1, s.where) for s in read_manifest(data, root, given)]


def _detection(model, args) -> dict:
    from vision.commands import UsageError

    if args.data.suffix not in (".yaml", ".yml"):
        raise UsageError(f"{args.model} is a detector: --data must be a YOLO data.yaml, got {args.data}")
    from vision.data.detection import YoloDataModule
    from vision.tasks.detection import LogoDetectionModule

    card = model.card
    module = LogoDetectionModule(yaml=card.config["yaml"], num_classes=card.config["num_classes"],
                                 class_names=card.class_names, preprocessing=card.preprocessing)
    module.model.load_state_dict(model.state_dict())
    data = YoloDataModule(str(args.data), imgsz=card.data_config.input_size, batch_size=args.batch_size,
                          num_workers=args.workers)
    if data.num_classes != card.config["num_classes"]:
        raise UsageError(f"{args.data} has {data.num_classes} classes, {card.name} detects "
                         f"{card.config['num_classes']}")
    results = _trainer(args).validate(module, datamodule=data, verbose=False)[0]
    return {k.split("/", 1)[1]: round(float(v), 4) for k, v in results.items()}


def _embedding(model, args) -> dict:
    from vision.commands import UsageError

    if not ((args.data / "gallery").is_dir() and (args.data / "query").is_dir()):
        raise UsageError(f"{args.model} is an embedding model: --data must hold gallery/<brand>/* and "
                         f"query/<brand>/* folders, {args.data} does not")
    import numpy as np

    from vision.data.datasets import scan_image_folder
    from vision.features import FeatureExtractor
    from vision.predictors import Predictor, TorchRuntime
    from vision.progress import progress_bar
    from vision.retrieval import retrieval_metrics

    fx = FeatureExtractor(Predictor(TorchRuntime(model, "embedding", args.device)))
    parts = {}
    for part in ("gallery", "query"):
        samples, table = scan_image_folder(args.data / part)
        starts = range(0, len(samples), args.batch_size)
        vectors = np.concatenate([fx([str(s.path) for s in samples[i:i + args.batch_size]])
                                  for i in progress_bar(starts, enabled=not args.no_progress, desc=f"eval {part}",
                                                        unit="batch")])
        parts[part] = (vectors, [table.names[s.label] for s in samples])
    names = sorted(set(parts["gallery"][1]) | set(parts["query"][1]))
    labels = {part: [names.index(n) for n in owners] for part, (_, owners) in parts.items()}
    metrics = retrieval_metrics(parts["query"][0], labels["query"], parts["gallery"][0], labels["gallery"])
    return {"gallery": len(labels["gallery"]), "queries": len(labels["query"]),
            **{k.replace("@", "_at_"): round(float(v), 4) for k, v in metrics.items()}}
