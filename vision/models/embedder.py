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


ENSEMBLE = "ensemble"   # a card's architecture for :class:`EmbeddingEnsemble`


class EmbeddingEnsemble(nn.Module):
    """Several embedders as one: each member's unit vector times ``sqrt(weight)``, concatenated (weights summing to
    1, so the result is a unit vector and its cosine is the weighted mean of the members' cosines).

    The input is preprocessed once, by the ensemble card's preprocessing (``input_size``, ``mean``, ``std``); each
    member gets it in its own normalisation and size inside the network (bilinear resampling, as the members' own
    eval resize), so the ensemble exports, quantises and serves as a single-input embedder. ``members``: one dict a
    member, ``{"architecture", "embedding_size", "input_size", "mean", "std", "weight"}``, as its card's
    ``config["members"]`` stores them (:func:`ensemble_config`).

    Example::

        net = EmbeddingEnsemble([{"architecture": "resnet10t", "embedding_size": 128, "input_size": 64,
                                  "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "weight": 0.7},
                                 {"architecture": "efficientnet_lite0", "embedding_size": 128, "input_size": 96,
                                  "mean": [0.5] * 3, "std": [0.5] * 3, "weight": 0.3}],
                                input_size=96, mean=[0.5] * 3, std=[0.5] * 3)
        net(torch.rand(2, 3, 96, 96)).shape   # torch.Size([2, 256])
    """

    def __init__(self, members: list[dict], input_size: int, mean, std):
        super().__init__()
        weights = check_ensemble_weights([float(m["weight"]) for m in members])
        self.members = nn.ModuleList(EmbeddingNet(m["architecture"], int(m["embedding_size"])) for m in members)
        self.sizes = [int(m["input_size"]) for m in members]
        self.input_size = int(input_size)
        # x_member = x * scale + shift: undo the ensemble's normalisation, apply the member's
        mean_in, std_in = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        for i, m in enumerate(members):
            mean_m, std_m = torch.tensor(m["mean"], dtype=torch.float32), torch.tensor(m["std"], dtype=torch.float32)
            self.register_buffer(f"scale{i}", (std_in / std_m).view(1, 3, 1, 1), persistent=False)
            self.register_buffer(f"shift{i}", ((mean_in - mean_m) / std_m).view(1, 3, 1, 1), persistent=False)
            self.register_buffer(f"gain{i}", torch.tensor(weights[i]).sqrt(), persistent=False)
        self.num_features = sum(int(m["embedding_size"]) for m in members)

    def member_input(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """The ensemble's input ``x`` as member ``i`` is fed: renormalised, resampled to its input size."""
        x = x * getattr(self, f"scale{i}") + getattr(self, f"shift{i}")
        size = self.sizes[i]
        if size != self.input_size:   # the card's size, not the tensor's: a constant in an exported graph
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([net(self.member_input(x, i)) * getattr(self, f"gain{i}")
                          for i, net in enumerate(self.members)], dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x   # the members pool their own features: forward_head does the work

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.forward(x)


def check_ensemble_weights(weights: list[float]) -> list[float]:
    """``weights``, one per member, if they make an ensemble: at least 2, each > 0, summing to 1; else a
    ``ValueError`` saying which."""
    if len(weights) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(weights)}")
    if min(weights) <= 0 or abs(sum(weights) - 1) > 1e-6:
        raise ValueError(f"ensemble member weights must be > 0 and sum to 1, got {weights}")
    return weights


def ensemble_config(cards: list, weights: list[float]) -> dict:
    """The ``config`` of an ensemble card from its members' zoo cards (embedders, each with its preprocessing)."""
    members = []
    for card, weight in zip(cards, weights):
        pre = card.preprocessing
        if card.task != "embedding" or card.architecture == ENSEMBLE:
            raise ValueError(f"ensemble member {card.name!r}: not a single embedder (task {card.task!r}, "
                             f"architecture {card.architecture!r})")
        if float(pre.get("crop_pct", 1.0)) != 1.0:
            raise ValueError(f"ensemble member {card.name!r}: crop_pct {pre['crop_pct']}, only 1.0 is supported")
        members.append({"name": card.name, "sha256": card.sha256, "architecture": card.architecture,
                        "embedding_size": int(card.config["embedding_size"]), "input_size": int(pre["input_size"]),
                        "mean": list(pre["mean"]), "std": list(pre["std"]), "weight": float(weight)})
    return {"embedding_size": sum(m["embedding_size"] for m in members), "members": members}
