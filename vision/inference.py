"""The task-level inference API with dict results: :class:`ImageClassifier` (top-k) and :class:`LogoDetector`
(boxes in original pixels), each a thin layer over :func:`vision.predictor`.

Example::

    ImageClassifier.from_pretrained("grocery_lite0").predict(["photo.jpg"], topk=3)
    detector = LogoDetector.from_pretrained("logo_yolo11n")
    dets = detector.predict(["shelf.jpg"], conf=0.3)[0]   # [{"box": [x1, y1, x2, y2], "score", "label", "class_id"}]
    draw_detections("shelf.jpg", dets, "shelf_logos.png")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image
from torch import nn

from vision.data.inputs import ImageInput, to_batch, to_rgb_array  # noqa: F401  (public here too)
from vision.predictors import (  # letterbox_to_original: public here too (the head's box mapping)
    DEFAULT_MAX_BATCH_PIXELS,
    letterbox_to_original,  # noqa: F401
    read_batches,
)
from vision.results import BOX_COLOR, draw_boxes
from vision.zoo import load_model


class ImageClassifier:
    """Top-k classification with a zoo model: a :func:`vision.predictor` of its ``logits`` (preprocessing from the
    model's card, CUDA when available), with the dict results of earlier versions.

    Example::

        clf = ImageClassifier.from_pretrained("grocery_resnet10t")
        clf.predict(["photo.jpg"], topk=3)[0]["topk"][0]   # {'label': 'Oatly-Oat-Milk', 'index': 45, 'score': 0.48}
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None,
                 max_batch_pixels: int | None = DEFAULT_MAX_BATCH_PIXELS):
        from vision.predictors import Predictor, TorchRuntime

        if not hasattr(model, "card"):
            raise TypeError("model has no .card; load it with vision.load_model")
        if model.card.task != "classification":
            raise ValueError(f"ImageClassifier needs a classification model; {model.card.name!r} is a "
                             f"{model.card.task} model (use vision.predictor for any task)")
        self.predictor = Predictor(TorchRuntime(model, "logits", device), max_batch_pixels=max_batch_pixels)
        self.model, self.card, self.device = self.predictor.runtime.network, model.card, self.predictor.runtime.device

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str | None = None) -> "ImageClassifier":
        return cls(load_model(name_or_path), device)

    def preprocess(self, images: Sequence[ImageInput]) -> torch.Tensor:
        return self.predictor.head.preprocess([to_rgb_array(im) for im in images])[0]

    def logits(self, images: Sequence[ImageInput], batch_size: int = 32) -> torch.Tensor:
        # decoded batch by batch within the predictor's pixel budget, never all at once
        p = self.predictor
        out = [torch.from_numpy(p.runtime(p.head.preprocess(arrays)[0]))
               for _, arrays in read_batches(list(images), batch_size, max_batch_pixels=p.max_batch_pixels)]
        return torch.cat(out) if out else torch.empty(0, len(self.card.class_names))

    def predict(self, images: Sequence[ImageInput] | ImageInput, topk: int = 5, batch_size: int = 32
                ) -> list[dict[str, Any]]:
        """One dict per image: ``topk`` (label, index, score) and, when the model has coarse classes,
        ``coarse`` (the coarse class of the top fine prediction)."""
        if not isinstance(images, (list, tuple)):
            images = [images]
        self.predictor.head.topk = topk
        results = self.predictor(list(images), batch_size=batch_size)  # decoded a batch at a time, not all up front
        return [{k: v for k, v in r.to_dict().items() if k not in ("image", "task")} for r in results]


class LogoDetector:
    """A YOLO detector from the zoo: a :func:`vision.predictor` of its ``predictions`` (letterbox to the card's
    ``input_size``, NMS, boxes in original pixels; CUDA when available), with the dict results of earlier
    versions."""

    def __init__(self, model: nn.Module, device: str | torch.device | None = None, conf: float = 0.25,
                 iou: float = 0.7, max_det: int = 300, max_batch_pixels: int | None = DEFAULT_MAX_BATCH_PIXELS):
        from vision.predictors import Predictor, TorchRuntime

        card = getattr(model, "card", None)
        if card is None or card.task != "detection":
            raise ValueError("LogoDetector needs a detection model with a .card (use vision.load_model)")
        self.predictor = Predictor(TorchRuntime(model, "predictions", device), max_batch_pixels=max_batch_pixels,
                                   conf=conf, iou=iou, max_det=max_det)
        self.model, self.card, self.device = model, card, self.predictor.runtime.device
        self.conf, self.iou, self.max_det = conf, iou, max_det
        self.imgsz = card.data_config.input_size
        self.class_names = list(card.class_names)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, zoo_dir: str | os.PathLike | None = None,
                        device: str | torch.device | None = None, **kwargs) -> "LogoDetector":
        from vision.zoo import load_model

        return cls(load_model(name_or_path, zoo_dir=zoo_dir), device=device, **kwargs)

    def preprocess(self, images: Sequence[ImageInput]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Letterboxed ``(N, 3, imgsz, imgsz)`` float batch in [0, 1] and each image's original ``(h, w)``."""
        batch, shapes = self.predictor.head.preprocess([to_rgb_array(image) for image in images])
        return batch.to(self.device), shapes

    def raw_outputs(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """The network's decoded predictions ``(N, 4 + num_classes, anchors)`` before NMS."""
        batch, _ = self.predictor.head.preprocess([to_rgb_array(image) for image in images])
        return torch.from_numpy(self.predictor.runtime(batch))

    def predict(self, images: ImageInput | Sequence[ImageInput], conf: float | None = None,
                iou: float | None = None, batch_size: int = 32) -> list[list[dict]]:
        """Per image (a single image counts as a list of one) a list of
        ``{"box": [x1, y1, x2, y2], "score", "label", "class_id"}`` in original pixels, best score first."""
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        head = self.predictor.head
        head.conf = self.conf if conf is None else conf
        head.iou = self.iou if iou is None else iou
        # decoded a batch at a time within the pixel budget, not all up front
        return [r.boxes for r in self.predictor(items, batch_size=batch_size)]


def draw_detections(image: ImageInput, detections: list[dict], path: str | os.PathLike,
                    color: tuple[int, int, int] = BOX_COLOR) -> Path:
    """Write ``image`` with labelled boxes as a PNG (PIL's built-in bitmap font: nothing is downloaded).

    ``.png`` is appended unless ``path`` already ends in it (``shelf.1`` -> ``shelf.1.png``, never ``shelf.png``).
    """
    canvas = draw_boxes(Image.fromarray(to_rgb_array(image)), detections, color)
    path = Path(path)
    if path.suffix.lower() != ".png":  # with_suffix would turn shelf.1 and shelf.2 into one shelf.png
        path = path.with_name(path.name + ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    return path
