"""Python inference API for classifiers: images in (any size, mode or container), top-k out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from vision.data.inputs import ImageInput, to_batch, to_rgb_array  # noqa: F401  (public here too)
from vision.predictors import DEFAULT_MAX_BATCH_PIXELS, read_batches
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
