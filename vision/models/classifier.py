"""Product classifier: a timm backbone with a fine head and an optional coarse head."""

from __future__ import annotations

import torch
from torch import nn

from vision.models.backbones import create_backbone


class ProductClassifier(nn.Module):
    """timm backbone + linear fine-class head (+ optional coarse head for hierarchical labels).

    It answers timm's small interface, so feature extraction needs nothing special:
    ``forward_features`` (unpooled map), ``forward_head(x, pre_logits=True)`` (pooled features),
    ``num_features`` and ``reset_classifier``. ``forward`` returns fine logits only (what export and
    inference need); ``forward_train`` returns ``(fine_logits, coarse_logits or None)``.
    """

    def __init__(self, backbone: str, num_classes: int, num_coarse_classes: int | None = None,
                 pretrained: bool | str = False, drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        extra = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
        self.backbone = create_backbone(backbone, pretrained, **extra)
        self.num_features = self.backbone.num_features
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes)
        self.coarse_head = nn.Linear(self.num_features, num_coarse_classes) if num_coarse_classes else None

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = self.backbone.forward_head(x, pre_logits=True)
        return pooled if pre_logits else self.head(self.drop(pooled))

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        pooled = self.drop(self.backbone.forward_head(self.forward_features(x), pre_logits=True))
        coarse = self.coarse_head(pooled) if self.coarse_head is not None else None
        return self.head(pooled), coarse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int, num_coarse_classes: int | None = None) -> None:
        self.head = nn.Linear(self.num_features, num_classes)
        self.coarse_head = nn.Linear(self.num_features, num_coarse_classes) if num_coarse_classes else None


class PooledFeatures(nn.Module):
    """Wraps a timm-interface model so ``forward`` returns pooled backbone features (``pre_logits``).

    Used by ONNX export (``output="features"``) and by :class:`vision.features.FeatureExtractor`, so both
    backends compute the same thing.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.num_features = model.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)
