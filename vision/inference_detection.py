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

import numpy as np
import torch
from PIL import Image
from torch import nn

from vision import ultralytics_compat as ulc
from vision.data.inputs import ImageInput, to_rgb_array
from vision.results import BOX_COLOR, draw_boxes


def letterbox_to_original(boxes: torch.Tensor, letterboxed_hw: tuple[int, int],
                          original_hw: tuple[int, int]) -> torch.Tensor:
    """xyxy boxes in a centred letterbox of ``original_hw`` back to original pixels (clipped); a new tensor."""
    return ulc.ops().scale_boxes(tuple(letterboxed_hw), boxes.clone().float(), tuple(original_hw))


class LogoDetector:
    """A YOLO detector from the zoo; preprocessing (``input_size``) comes from ``model.card``."""

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", conf: float = 0.25, iou: float = 0.7,
                 max_det: int = 300):
        card = getattr(model, "card", None)
        if card is None or card.task != "detection":
            raise ValueError("LogoDetector needs a detection model with a .card (use vision.load_model)")
        self.model, self.card = model.to(device).eval(), card
        self.device, self.conf, self.iou, self.max_det = torch.device(device), conf, iou, max_det
        self.imgsz = card.data_config.input_size
        self.class_names = list(card.class_names)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, zoo_dir: str | os.PathLike | None = None,
                        device: str | torch.device = "cpu", **kwargs) -> "LogoDetector":
        from vision.zoo import load_model

        return cls(load_model(name_or_path, zoo_dir=zoo_dir, device=device), device=device, **kwargs)

    def preprocess(self, images: Sequence[ImageInput]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Letterboxed ``(N, 3, imgsz, imgsz)`` float batch in [0, 1] and each image's original ``(h, w)``."""
        letterbox = ulc.letterbox(self.imgsz, auto=False, scaleup=True)
        batch, shapes = [], []
        for image in images:
            rgb = to_rgb_array(image)
            shapes.append(rgb.shape[:2])
            batch.append(torch.from_numpy(np.ascontiguousarray(letterbox(image=rgb).transpose(2, 0, 1))))
        return torch.stack(batch).to(self.device).float() / 255, shapes

    @torch.inference_mode()
    def raw_outputs(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """The network's decoded predictions ``(N, 4 + num_classes, anchors)`` before NMS."""
        x, _ = self.preprocess(list(images))
        out = self.model(x)
        return out[0] if isinstance(out, (tuple, list)) else out

    @torch.inference_mode()
    def predict(self, images: ImageInput | Sequence[ImageInput], conf: float | None = None,
                iou: float | None = None) -> list[list[dict]]:
        """Per image (a single image counts as a list of one) a list of
        ``{"box": [x1, y1, x2, y2], "score", "label", "class_id"}`` in original pixels, best score first."""
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        x, shapes = self.preprocess(items)
        out = self.model(x)
        preds = out[0] if isinstance(out, (tuple, list)) else out
        kept = ulc.non_max_suppression(preds, conf=self.conf if conf is None else conf,
                                       iou=self.iou if iou is None else iou, max_det=self.max_det)
        results = []
        for det, shape in zip(kept, shapes):
            boxes = letterbox_to_original(det[:, :4], x.shape[2:], shape).cpu()
            results.append([{"box": [round(float(v), 2) for v in box], "score": float(score),
                             "label": self.class_names[int(c)], "class_id": int(c)}
                            for box, score, c in zip(boxes, det[:, 4].cpu(), det[:, 5].cpu())])
        return results


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
