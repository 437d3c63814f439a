"""The model of an extraction, resolved once on the driver and rebuilt the same way on every worker.

Example::

    spec = FeatureModel.resolve("grocery_resnet10t")       # a classifier: its pooled "features"
    predictor = spec.predictor("cuda")                     # on a worker; refuses another version of the model
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vision.features import ExtractError


@dataclass(frozen=True)
class FeatureModel:
    """Where the model comes from (``source``: a zoo name, weights file or the resolved ``.onnx``), which runtime
    runs it, its card (name, sha256, recorded preprocessing), the vector output kind and its size."""

    source: str
    backend: str
    output: str
    card: Any
    dim: int

    @classmethod
    def resolve(cls, model, backend: str = "auto") -> "FeatureModel":
        """The feature output of ``model`` as :class:`~vision.features.FeatureExtractor` picks it (a classifier's
        pooled ``features``, an embedder's ``embedding``), with ``backend="auto"`` resolved to one concrete file
        and runtime, so every worker runs the same thing."""
        from vision.features import FeatureExtractor

        if backend == "tensorrt" or str(model).lower().endswith((".plan", ".engine")):
            raise ExtractError("the scale engines run torch or onnxruntime; a TensorRT plan is built for one GPU "
                               "model, so run it with vision extract --engine local on that machine")
        extractor = FeatureExtractor.from_pretrained(model, backend=backend, device="cpu")
        p = extractor.predictor
        return cls(str(getattr(p.runtime, "path", model)), p.backend, p.output, p.card, extractor.dim)

    @property
    def input_size(self) -> int:
        return self.card.data_config.input_size

    def identity(self) -> dict[str, str]:
        """What makes two vectors comparable: the same model bytes and output kind (backends agree to fp32)."""
        return {"model": self.card.name, "model_sha256": self.card.sha256, "output": self.output}

    def predictor(self, device=None):
        """This model's predictor on ``device``; raises when this machine resolves another version of it."""
        from vision.predictors import predictor

        p = predictor(self.source, backend=self.backend, device=device, output=self.output)
        if p.card.sha256 != self.card.sha256:
            raise ExtractError(f"{self.source}: this worker loads sha256 {p.card.sha256[:12]}, the driver planned "
                               f"with {self.card.sha256[:12]}; give every node the same model file")
        return p

    def head(self):
        """The pre/post-processing of the output kind (no network): what CPU workers need."""
        from vision.predictors import head_for

        return head_for(self.card, self.output)


def vectors_of(p, batch: np.ndarray) -> np.ndarray:
    """Unit-norm float32 vectors of a preprocessed batch, computed by the predictor's runtime."""
    import torch

    return unit_vectors(p.head, p.runtime(torch.from_numpy(np.ascontiguousarray(batch))))


def unit_vectors(head, output: np.ndarray) -> np.ndarray:
    """The network's output normalised by the predictor head (one normalisation for every engine)."""
    results = head.postprocess(output, None, [""] * len(output))
    return np.stack([r.vector for r in results]).astype(np.float32, copy=False)
