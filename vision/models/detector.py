"""YOLO detection networks (ultralytics ``DetectionModel``) built from a YAML name, and their ``.pt`` export.

The name is the only architecture record a card or checkpoint carries, and it is trusted no further than
:func:`vision.ultralytics_compat.model_yaml` allows: a bare name of a YAML shipped with ultralytics, checked
against a schema that leaves nothing for ultralytics to ``eval()``. Anything else is an :class:`ArchitectureError`.

Example::

    model = build_detection_model("yolo11n.yaml", num_classes=1, class_names=["logo"])
    export_ultralytics_pt(model, "logo.pt", imgsz=320)   # ultralytics.YOLO("logo.pt") loads it
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from vision import ultralytics_compat as ulc
from vision.fileio import atomic_path
from vision.ultralytics_compat import ArchitectureError

__all__ = ["ArchitectureError", "build_detection_model", "export_ultralytics_pt"]

DEFAULT_LOSS_GAINS = {"box": 7.5, "cls": 0.5, "dfl": 1.5}


def build_detection_model(yaml: str, num_classes: int, class_names: list[str] | None = None,
                          weights: str | os.PathLike | None = None) -> nn.Module:
    """A ``DetectionModel`` from a YAML shipped with ultralytics (``yolo11n.yaml``: the letter picks the scale).

    ``yaml`` is a bare name, never a path: every load path (zoo cards, checkpoints, lone files) comes through
    here, and a model YAML from elsewhere could run code. ``weights``: optional local ultralytics ``.pt`` whose
    matching tensors initialise the network (the class head is skipped when the class count differs); its own
    architecture record is checked too. Only files the caller names are read.
    """
    model = ulc.detection_model(ulc.model_yaml(yaml), num_classes)
    if weights is not None:
        source = ulc.load_ultralytics_pt(weights).state_dict()
        own = model.state_dict()
        matched = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
        if len(matched) < len(own) // 2:
            raise ValueError(f"{weights}: only {len(matched)}/{len(own)} tensors match {yaml}; wrong architecture?")
        model.load_state_dict(matched, strict=False)
    names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    model.names = dict(enumerate(names))  # ultralytics reads names/nc/args from the module itself
    model.nc = num_classes
    model.args = SimpleNamespace(**DEFAULT_LOSS_GAINS)
    return model


def export_ultralytics_pt(model: nn.Module, path: str | os.PathLike, imgsz: int = 640) -> Path:
    """Write ``model`` in the checkpoint layout ``ultralytics.YOLO(path)`` loads (``nn/tasks.py load_checkpoint``).

    The file is a full pickle of the module (as every ultralytics ``.pt``), so loading it needs
    ultralytics installed and trust in the file.
    """
    net = copy.deepcopy(model).float().cpu().eval()
    if hasattr(net, "card"):
        del net.card  # our ModelCard would make the pickle depend on vision
    net.criterion = None  # rebuilt by ultralytics when it trains
    net.args = {"task": "detect", "imgsz": imgsz, **DEFAULT_LOSS_GAINS}
    for p in net.parameters():
        p.requires_grad_(False)
    ckpt = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "version": ulc.ULTRALYTICS_VERSION,
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "epoch": -1,
        "best_fitness": None,
        "model": net,
        "ema": None,
        "updates": None,
        "optimizer": None,
        "train_args": {"task": "detect", "imgsz": imgsz, "single_cls": False},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path
