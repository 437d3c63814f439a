"""Wrappers that reduce a zoo network to one output kind (the task table's ``outputs``), shared by export, the
predictor's torch runtime and benchmarks, so every runtime computes the same thing."""

from __future__ import annotations

import torch
from torch import nn


def identity(model: nn.Module) -> nn.Module:
    """The network's own ``forward`` is the output (a classifier's logits, an embedder's embedding)."""
    return model


class DetectorPredictions(nn.Module):
    """A YOLO ``DetectionModel`` reduced to its decoded predictions ``(N, 4 + classes, anchors)``: NMS stays
    outside the graph (ultralytics' eval forward returns ``(predictions, raw feature maps)``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, (tuple, list)) else out
