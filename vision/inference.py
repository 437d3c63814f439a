"""Python inference API for classifiers: images in (any size, mode or container), top-k out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from vision.data.inputs import ImageInput, to_batch, to_rgb_array  # noqa: F401  (public here too)
from vision.data.transforms import build_eval_transform
from vision.zoo import load_model

class ImageClassifier:
    """Top-k classification with a zoo model; preprocessing comes from the model's card.

    Example::

        clf = ImageClassifier.from_pretrained("grocery_resnet10t")
        clf.predict(["photo.jpg"], topk=3)[0]["topk"][0]   # {'label': 'Oatly-Oat-Milk', 'index': 45, 'score': 0.48}
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None):
        if not hasattr(model, "card"):
            raise TypeError("model has no .card; load it with vision.load_model")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.card = model.card
        self.transform = build_eval_transform(self.card.data_config)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str | None = None) -> "ImageClassifier":
        return cls(load_model(name_or_path), device)

    def preprocess(self, images: Sequence[ImageInput]) -> torch.Tensor:
        return to_batch(images, self.transform)

    @torch.inference_mode()
    def logits(self, images: Sequence[ImageInput], batch_size: int = 32) -> torch.Tensor:
        out = [self.model(self.preprocess(images[i:i + batch_size]).to(self.device)).float().cpu()
               for i in range(0, len(images), batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.model.num_classes)

    def predict(self, images: Sequence[ImageInput] | ImageInput, topk: int = 5, batch_size: int = 32
                ) -> list[dict[str, Any]]:
        """One dict per image: ``topk`` (label, index, score) and, when the model has coarse classes,
        ``coarse`` (the coarse class of the top fine prediction)."""
        if not isinstance(images, (list, tuple)):
            images = [images]
        probs = self.logits(images, batch_size).softmax(-1)
        k = min(topk, probs.shape[1])
        scores, indices = probs.topk(k, dim=-1)
        names, coarse_names, f2c = self.card.class_names, self.card.coarse_names, self.card.fine_to_coarse
        results = []
        for s_row, i_row in zip(scores.tolist(), indices.tolist()):
            item = {"topk": [{"label": names[i], "index": i, "score": round(s, 6)} for s, i in zip(s_row, i_row)]}
            if coarse_names and f2c:
                item["coarse"] = coarse_names[f2c[i_row[0]]]
            results.append(item)
        return results
