"""Logo detection inference: images of any size in, boxes in original pixel coordinates out.

Example::

    detector = LogoDetector.from_pretrained("logo_yolo11n")
    dets = detector.predict(["shelf.jpg"], conf=0.3)[0]   # [{"box": [x1, y1, x2, y2], "score", "label", "class_id"}]
    draw_detections("shelf.jpg", dets, "shelf_logos.png")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torch import nn

from vision.data.inputs import ImageInput, to_rgb_array
from vision.predictors import (  # letterbox_to_original: public here too (the head's box mapping)
    DEFAULT_MAX_BATCH_PIXELS,
    letterbox_to_original,  # noqa: F401
)
from vision.results import BOX_COLOR, draw_boxes


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
