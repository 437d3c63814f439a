"""Typed prediction results, one per image, for every task (see :func:`vision.predictor`).

Each result knows where its image came from (``source``: a path, or ``"<input N>"`` for in-memory images) and
offers ``to_dict()`` (one JSON line), ``plot()`` (an annotated PIL image) and ``save(path)`` (that image as PNG).
Results hold no pixels, so streaming a million images keeps memory flat; ``plot`` reads a path-sourced image
again, or takes the image as an argument.

Which type a task's predictions are is the task table's ``result`` (per output kind: a classifier's ``features``
give :class:`Embedding`); :func:`result_type` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BOX_COLOR = (255, 32, 32)


@dataclass
class Result:
    source: str
    task: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.source, "task": self.task}

    def _image(self, image=None):
        from PIL import Image

        from vision.data.io import load_image

        if image is None:
            if self.source.startswith("<input"):
                raise ValueError(f"{self.source} was an in-memory image: pass it to plot(image=...)")
            image = self.source
        return Image.fromarray(load_image(image) if not isinstance(image, np.ndarray) else image)

    def plot(self, image=None):
        """The image with this result drawn on it (a PIL image)."""
        return self._image(image)

    def save(self, path: str | Path, image=None) -> Path:
        """Write :meth:`plot` as a PNG (``.png`` appended unless ``path`` ends in it: ``shelf.1`` and ``shelf.2``
        stay two files); returns the path written."""
        path = Path(path)
        path = path if path.suffix.lower() == ".png" else path.with_name(path.name + ".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.plot(image).save(path, format="PNG")
        return path


@dataclass
class Classification(Result):
    """Top-k classes (``label``, ``index``, ``score`` = softmax probability), best first; ``coarse`` is the coarse
    class of the best fine class when the model has a coarse table."""

    topk: list[dict] = field(default_factory=list)
    coarse: str | None = None
    task: str = "classification"

    @property
    def label(self) -> str:
        return self.topk[0]["label"]

    def to_dict(self) -> dict[str, Any]:
        out = {**super().to_dict(), "topk": self.topk}
        if self.coarse is not None:
            out["coarse"] = self.coarse
        return out

    def plot(self, image=None):
        from PIL import ImageDraw

        canvas = self._image(image)
        draw = ImageDraw.Draw(canvas)
        lines = [f"{t['label']}  {t['score']:.2f}" for t in self.topk[:3]]
        width = max((draw.textbbox((0, 0), line)[2] for line in lines), default=0)
        draw.rectangle([0, 0, 8 + width, 6 + 12 * len(lines)], fill=(0, 0, 0))
        for i, line in enumerate(lines):
            draw.text((4, 3 + 12 * i), line, fill=(255, 255, 255))
        return canvas


@dataclass
class Detections(Result):
    """Boxes in original image pixels: ``{"box": [x1, y1, x2, y2], "score", "label", "class_id"}``, best first."""

    boxes: list[dict] = field(default_factory=list)
    width: int = 0
    height: int = 0
    task: str = "detection"

    def __len__(self) -> int:
        return len(self.boxes)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "width": self.width, "height": self.height, "detections": self.boxes}

    def plot(self, image=None):
        return draw_boxes(self._image(image), self.boxes)


@dataclass
class Recognitions(Detections):
    """Logos with their brands: ``{"box", "brand" (or "unknown"), "score" (gallery similarity), "best" (the
    nearest brand even when unknown), "detection_score"}`` per logo, in original image pixels."""

    task: str = "recognition"

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.source, "task": self.task, "width": self.width, "height": self.height,
                "logos": self.boxes}


@dataclass
class Embedding(Result):
    """A unit-norm feature vector (``float32``) for cosine search."""

    vector: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    task: str = "embedding"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "dim": int(self.vector.shape[0]),
                "vector": [round(float(v), 6) for v in self.vector]}


def result_type(task: str, output: str | None = None) -> type[Result]:
    """The result type output kind ``output`` (default: the task's first) of ``task`` gives, as the task table names
    it; a ``ValueError`` naming the known tasks or outputs otherwise."""
    from vision.tasks import get_task

    entry = get_task(task)
    return entry.output_result(output or entry.default_output)


def draw_boxes(canvas, boxes: list[dict], color: tuple[int, int, int] = BOX_COLOR):
    """Draw labelled boxes on a PIL image in place (PIL's built-in bitmap font: nothing is downloaded)."""
    from PIL import ImageDraw, ImageFont

    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default_imagefont() if hasattr(ImageFont, "load_default_imagefont") else None
    width = max(1, round(max(canvas.size) / 300))
    for det in boxes:
        x1, y1, x2, y2 = det["box"]
        draw.rectangle([x1, y1, x2, y2], outline=color, width=width)
        text = f"{det.get('brand', det.get('label'))} {det['score']:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        y = max(0, y1 - (bottom - top) - 2)
        draw.rectangle([x1, y, x1 + right - left + 2, y + bottom - top + 2], fill=color)
        draw.text((x1 + 1, y + 1), text, fill=(255, 255, 255), font=font)
    return canvas
