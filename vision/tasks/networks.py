"""Bare networks rebuilt from a zoo card (``vision.load_model``), one builder per task of the table."""

from __future__ import annotations

from torch import nn

from vision.zoo.card import ModelCard


def classifier(card: ModelCard) -> nn.Module:
    from vision.models.classifier import ProductClassifier

    cfg = card.config
    return ProductClassifier(card.architecture, cfg["num_classes"], cfg.get("num_coarse_classes"), pretrained=False)


def detector(card: ModelCard) -> nn.Module:
    from vision.models.detector import build_detection_model

    return build_detection_model(card.config["yaml"], card.config["num_classes"], card.class_names or None)


def embedder(card: ModelCard) -> nn.Module:
    from vision.models.embedder import ENSEMBLE, EmbeddingEnsemble, EmbeddingNet

    if card.architecture == ENSEMBLE:
        pre = card.preprocessing
        return EmbeddingEnsemble(card.config["members"], pre["input_size"], pre["mean"], pre["std"])
    return EmbeddingNet(card.architecture, card.config["embedding_size"], pretrained=False)
