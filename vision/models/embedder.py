"""Embedding network for brand recognition: a timm backbone and a BN-neck, L2-normalised output."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vision.models.backbones import create_backbone


class EmbeddingNet(nn.Module):
    """timm backbone -> linear projection -> BatchNorm1d ("BN-neck") -> L2 normalisation.

    It answers timm's small interface, so :class:`vision.models.classifier.PooledFeatures`, ONNX export and
    :class:`vision.features.FeatureExtractor` work unchanged: ``forward_head(x, pre_logits=True)`` and ``forward``
    both return the unit-norm embedding, and ``num_features`` is the embedding size.

    Example::

        net = EmbeddingNet("resnet10t", embedding_size=128)
        net(torch.rand(2, 3, 96, 96)).norm(dim=1)   # tensor([1., 1.])
    """

    def __init__(self, backbone: str, embedding_size: int = 128, pretrained: bool | str = False,
                 drop_path_rate: float = 0.0):
        super().__init__()
        if embedding_size < 2:
            raise ValueError(f"embedding_size must be >= 2, got {embedding_size}")
        extra = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
        self.backbone = create_backbone(backbone, pretrained, **extra)
        self.neck = nn.Sequential(nn.Linear(self.backbone.num_features, embedding_size, bias=False),
                                  nn.BatchNorm1d(embedding_size))
        self.num_features = embedding_size

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        # there are no logits: both views are the embedding
        return F.normalize(self.neck(self.backbone.forward_head(x, pre_logits=True)).float(), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
