"""The task table: every task the zoo knows is declared here once, and every other lookup reads it.

An entry names its parts as ``"module:attribute"`` strings, imported only when asked for (the idea of ultralytics'
``task_map`` and timm's registry), so reading the table loads nothing heavy:

* ``network``: builds the bare ``nn.Module`` from a :class:`~vision.zoo.ModelCard` (zoo loading);
* ``card``: the card from a LightningModule's hyper-parameters (checkpoints, zoo saves); imports no Lightning;
* ``module`` / ``datamodule``: the LightningModule and LightningDataModule that train it (configs' class paths);
* ``config``: the keys a card's ``config`` must hold, with the check each must pass (see ``vision.zoo.card``);
* ``outputs``: the export output kinds, default first: a wrapper giving that output and what it means (and,
  where it differs from the task's, its own head and result type: a classifier's ``features`` are embeddings);
* ``head``: the predictor head (pre- and post-processing shared by every runtime) of the task's outputs;
* ``result``: the typed result (:mod:`vision.results`) that head gives, one per image;
* ``evaluator``: ``(model, data, EvalOptions) -> metrics`` (:func:`vision.evaluate`);
* ``headline``: the card metric and its label that ``vision zoo`` shows;
* ``report_metrics``: the logged metrics a training run's report lists first, with their labels;
* ``feature_output``: the output kind that is the task's feature vector (feature extraction), if any;
* ``links``: datamodule properties linked into the module's arguments by ``vision train``;
* ``head_defaults``: the predictor head's default settings (a detector's deployed score ``conf``, ``iou``,
  ``max_det``): what a user gets, so the export's INT8 gate judges the boxes kept at them.

Adding a task is one new package plus one entry here: predict, evaluate, export and the zoo read everything
per-task from the entry (``tests/test_toy_task.py`` registers a toy task and runs them all).

Example::

    from vision.tasks import get_task
    task = get_task("detection")
    task.default_output                 # 'predictions'
    task.load("card")(name, hparams)    # imports vision.tasks.cards only now
    task.output_head("predictions")     # vision.predictors.DetectionHead
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Output:
    wrapper: str   # "module:attr": model -> nn.Module whose forward returns this output
    meaning: str
    head: str = ""     # "module:attr" of this output's predictor head; "" for the task's own
    result: str = ""   # "module:attr" of the result type that head gives; "" for the task's own


@dataclass(frozen=True)
class Task:
    name: str
    network: str
    card: str
    module: str
    datamodule: str
    config: dict[str, tuple[str, bool]]
    outputs: dict[str, Output]
    feature_output: str | None = None
    links: tuple[tuple[str, str], ...] = ()
    evaluator: str = ""
    headline: tuple[str, str] = ("", "")
    report_metrics: tuple[tuple[str, str], ...] = ()
    head: str = ""
    result: str = ""
    head_defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def default_output(self) -> str:
        return next(iter(self.outputs))

    def load(self, part: str) -> Any:
        """The object a part names (``"network"``, ``"card"``, ``"module"``, ``"datamodule"``, ``"evaluator"``,
        ``"head"``, ``"result"``), imported now."""
        target = getattr(self, part)
        if not target:
            raise ValueError(f"task {self.name!r} names no {part!r} in the task table (vision.tasks.TASKS)")
        return resolve(target)

    def output_wrapper(self, kind: str) -> Any:
        return resolve(self._output(kind).wrapper)

    def output_head(self, kind: str) -> Any:
        """The predictor head class of output ``kind``: the output's own, else the task's."""
        return resolve(self._output(kind).head) if self._output(kind).head else self.load("head")

    def output_result(self, kind: str) -> Any:
        """The result type output ``kind`` gives: the output's own, else the task's."""
        return resolve(self._output(kind).result) if self._output(kind).result else self.load("result")

    def _output(self, kind: str) -> Output:
        if kind not in self.outputs:
            raise ValueError(f"task {self.name!r} has no output {kind!r}; it has {list(self.outputs)}")
        return self.outputs[kind]


def resolve(target: str) -> Any:
    """``"package.module:attr"`` -> the attribute, importing the module."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


_DATA = "data.{}"
_MODEL = "model.init_args.{}"


def _links(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((_DATA.format(src), _MODEL.format(dst)) for src, dst in (n.split("->") if "->" in n else (n, n)
                                                                          for n in names))


TASKS: dict[str, Task] = {
    "classification": Task(
        name="classification",
        network="vision.tasks.networks:classifier",
        card="vision.tasks.cards:classification_card",
        module="vision.tasks.classification:ClassificationModule",
        datamodule="vision.data.datamodule:ClassificationDataModule",
        config={"num_classes": ("int>0", True), "num_coarse_classes": ("int>0|null", False)},
        outputs={"logits": Output("vision.models.outputs:identity",
                                  "class scores before softmax, one per card.class_names entry"),
                 "features": Output("vision.models.classifier:PooledFeatures",
                                    "pooled backbone features (not normalised; predictors L2-normalise them)",
                                    head="vision.predictors:EmbeddingHead", result="vision.results:Embedding")},
        feature_output="features",
        links=_links("num_classes", "num_coarse_classes", "class_names", "coarse_names", "fine_to_coarse",
                     "preprocessing_dict->preprocessing"),
        evaluator="vision.evaluation:evaluate_classifier",
        headline=("val_top1", "top-1"),
        report_metrics=(("val/top1", "top-1"), ("val/top5", "top-5"), ("val/coarse_top1", "coarse top-1")),
        head="vision.predictors:ClassificationHead",
        result="vision.results:Classification",
    ),
    "detection": Task(
        name="detection",
        network="vision.tasks.networks:detector",
        card="vision.tasks.cards:detection_card",
        module="vision.tasks.detection:LogoDetectionModule",
        datamodule="vision.data.detection:YoloDataModule",
        config={"yaml": ("yaml name", True), "num_classes": ("int>0", True)},
        outputs={"predictions": Output("vision.models.outputs:DetectorPredictions",
                                       "decoded boxes (cx, cy, w, h in input pixels) then one score per class, shape "
                                       "(N, 4 + classes, anchors), before NMS")},
        links=_links("num_classes", "class_names", "preprocessing_dict->preprocessing"),
        evaluator="vision.evaluation:evaluate_detector",
        headline=("val_mAP50", "mAP50"),
        report_metrics=(("val/mAP50", "mAP50"), ("val/mAP50-95", "mAP50-95")),
        head="vision.predictors:DetectionHead",
        result="vision.results:Detections",
        head_defaults={"conf": 0.25, "iou": 0.7, "max_det": 300},
    ),
    "embedding": Task(
        name="embedding",
        network="vision.tasks.networks:embedder",
        card="vision.tasks.cards:embedding_card",
        module="vision.tasks.embedding:BrandEmbeddingModule",
        datamodule="vision.data.brands:BrandDataModule",
        config={"embedding_size": ("int>0", True)},
        outputs={"embedding": Output("vision.models.outputs:identity",
                                     "L2-normalised embedding for cosine retrieval")},
        feature_output="embedding",
        links=_links("num_classes", "preprocessing_dict->preprocessing"),
        evaluator="vision.evaluation:evaluate_embedder",
        headline=("val_recall_at_1", "recall@1"),
        report_metrics=(("val/recall_at_1", "recall@1"),),
        head="vision.predictors:EmbeddingHead",
        result="vision.results:Embedding",
    ),
}


def get_task(name: str) -> Task:
    """The table entry of ``name``; an unknown name is a ``ValueError`` listing the known ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[name]


def output_meaning(kind: str) -> str:
    """What an export output kind means (for sidecars and serving configs)."""
    for task in TASKS.values():
        if kind in task.outputs:
            return task.outputs[kind].meaning
    return kind


def all_links() -> list[tuple[str, str]]:
    """Every task's data -> model links, once each (LightningCLI builds its parser before it knows the task;
    a module without an argument simply does not receive it)."""
    return list(dict.fromkeys(link for task in TASKS.values() for link in task.links))
