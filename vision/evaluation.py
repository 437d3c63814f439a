"""Evaluating any zoo model on labelled data: :func:`evaluate` picks the task's evaluator from the task table.

    import vision
    vision.evaluate("grocery_lite0", "data/grocery_sample/val.txt")          # top-1/5, coarse top-1, per class
    vision.evaluate("logo_yolo11n", "data/logo_sample/data.yaml")            # mAP50, mAP50-95, precision, recall
    vision.evaluate("brand_resnet10t", "runs/brands/val")                    # Recall@1/5, MAP@R (gallery/, query/)

Classifiers read a manifest (``path, label[, coarse]`` lines; labels index a ``classes.csv`` beside it when there
is one, mapped onto the model's classes by name) or an ImageFolder tree; detectors a YOLO ``data.yaml`` (its val
split); embedders a folder holding ``gallery/<id>/*`` and ``query/<id>/*``. The classifier and detector share the
training modules' metric code (a Lightning ``test``/``validate`` loop), so a number here is the number training
logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class EvaluationError(ValueError):
    """Data that does not fit the model's task (a detector given a manifest, a folder without gallery/query)."""


@dataclass
class EvalOptions:
    """What every evaluator takes; :func:`evaluate` fills it from its keywords."""

    classes: Path | None = None      # classifier: class table of the manifest's labels
    root: Path | None = None         # classifier: folder manifest paths are relative to
    batch_size: int = 64
    workers: int = 2
    device: str | None = None        # cpu, cuda, cuda:N; None: Lightning's auto
    out: Path | None = None          # Lightning's scratch folder (default_root_dir)
    strict: bool = False             # unreadable images are an error, not a skip
    progress: bool = True


def evaluate(model, data, **options) -> dict:
    """Metrics of ``model`` (zoo name, ``.safetensors``, ``.ckpt`` or a loaded model) on labelled ``data``.

    Returns ``{"model", "task", "data", ...metrics}``; keywords are the fields of :class:`EvalOptions`.
    """
    from vision.tasks import get_task
    from vision.zoo import load_model

    if isinstance(model, (str, Path)) and Path(model).suffix == ".onnx":
        options.pop("zoo_dir", None)
        model = _exported_detector(Path(model))
    elif isinstance(model, (str, Path)):
        model = load_model(str(model), zoo_dir=options.pop("zoo_dir", None))
    opts = EvalOptions(**{k: (Path(v) if k in ("classes", "root", "out") and v is not None else v)
                          for k, v in options.items()})
    data = Path(data)
    evaluator = get_task(model.card.task).load("evaluator")
    return {"model": model.card.name, "task": model.card.task, "data": str(data), **evaluator(model, data, opts)}


class _ExportedNetwork:
    """An ``.onnx`` detector export in the place of the torch network: the same input (letterboxed, scaled
    images) and output (decoded boxes and class scores before NMS), run by ONNX Runtime on the CPU."""

    def __init__(self, path: Path):
        from vision.predictors import OnnxRuntime

        self.runtime = OnnxRuntime(path, "cpu")
        self.card = self.runtime.card

    def __call__(self, images):
        import torch

        return torch.from_numpy(self.runtime(images))


def _exported_detector(path: Path) -> _ExportedNetwork:
    network = _ExportedNetwork(path)
    if network.card.task != "detection" or network.runtime.output != "predictions":
        raise EvaluationError(f"{path}: evaluating an exported file is for detector exports (output "
                              f"'predictions'), this one is a {network.card.task} export of "
                              f"'{network.runtime.output}'; evaluate its zoo model instead")
    return network


def _trainer(args: EvalOptions):
    import pytorch_lightning as pl

    from vision.progress import progress_wanted

    accelerator, devices = _lightning_device(args.device)
    # Lightning's own bar writes to stdout, where the JSON report goes: ours writes to stderr
    callbacks = [_progress_callback()] if progress_wanted(args.progress) else []
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
    raise EvaluationError(f"device {device!r}: expected cpu, cuda or cuda:N")


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


def evaluate_classifier(model, data: Path, args: EvalOptions) -> dict:
    """Top-1/top-5 fine and coarse, mean per-class accuracy of a classifier on a manifest or ImageFolder tree."""
    from torch.utils.data import DataLoader

    from vision.data.datasets import ClassTable, LabeledImages
    from vision.data.transforms import build_eval_transform
    from vision.tasks.classification import ClassificationModule

    card = model.card
    table = ClassTable(card.class_names, card.coarse_names, card.fine_to_coarse)
    samples = read_split(data, args.root, table, args.classes)
    dataset = LabeledImages(samples, table, build_eval_transform(card.data_config), strict=args.strict,
                            name=str(data))
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


def evaluate_detector(model, data: Path, args: EvalOptions) -> dict:
    """mAP50, mAP50-95, precision and recall of a detector on the val split of a YOLO ``data.yaml``."""
    if data.suffix not in (".yaml", ".yml"):
        raise EvaluationError(f"{model.card.name} is a detector: its data must be a YOLO data.yaml, got {data}")
    from vision.data.detection import YoloDataModule
    from vision.tasks.detection import LogoDetectionModule

    card = model.card
    module = LogoDetectionModule(yaml=card.config["yaml"], num_classes=card.config["num_classes"],
                                 class_names=card.class_names, preprocessing=card.preprocessing)
    if isinstance(model, _ExportedNetwork):
        module.ema = None
        network = model

        def validation_forward(images):  # the exported graph runs in the torch network's place
            return network(images)

        module.model.forward = validation_forward
    else:
        module.model.load_state_dict(model.state_dict())
    datamodule = YoloDataModule(str(data), imgsz=card.data_config.input_size, batch_size=args.batch_size,
                                num_workers=args.workers)
    if datamodule.num_classes != card.config["num_classes"]:
        raise EvaluationError(f"{data} has {datamodule.num_classes} classes, {card.name} detects "
                              f"{card.config['num_classes']}")
    results = _trainer(args).validate(module, datamodule=datamodule, verbose=False)[0]
    return {k.split("/", 1)[1]: round(float(v), 4) for k, v in results.items()}


def evaluate_embedder(model, data: Path, args: EvalOptions) -> dict:
    """Recall@1/5, precision@1 and MAP@R of queries against a gallery (``gallery/<id>/*``, ``query/<id>/*``)."""
    if not ((data / "gallery").is_dir() and (data / "query").is_dir()):
        raise EvaluationError(f"{model.card.name} is an embedding model: its data must hold gallery/<brand>/* and "
                              f"query/<brand>/* folders, {data} does not")
    import numpy as np

    from vision.data.datasets import scan_image_folder
    from vision.features import FeatureExtractor
    from vision.predictors import Predictor, TorchRuntime
    from vision.progress import progress_bar
    from vision.retrieval import retrieval_metrics

    fx = FeatureExtractor(Predictor(TorchRuntime(model, "embedding", args.device)))
    parts = {}
    for part in ("gallery", "query"):
        samples, table = scan_image_folder(data / part)
        starts = range(0, len(samples), args.batch_size)
        vectors = np.concatenate([fx([str(s.path) for s in samples[i:i + args.batch_size]])
                                  for i in progress_bar(starts, enabled=args.progress, desc=f"eval {part}",
                                                        unit="batch")])
        parts[part] = (vectors, [table.names[s.label] for s in samples])
    names = sorted(set(parts["gallery"][1]) | set(parts["query"][1]))
    labels = {part: [names.index(n) for n in owners] for part, (_, owners) in parts.items()}
    metrics = retrieval_metrics(parts["query"][0], labels["query"], parts["gallery"][0], labels["gallery"])
    return {"gallery": len(labels["gallery"]), "queries": len(labels["query"]),
            **{k.replace("@", "_at_"): round(float(v), 4) for k, v in metrics.items()}}
