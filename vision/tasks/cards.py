"""Zoo cards from a task module's hyper-parameters (checkpoints and zoo saves). Imports neither Lightning nor
ultralytics, so a checkpoint's card is read without the training stack."""

from __future__ import annotations

from vision.data.preprocessing import Preprocessing, yolo_preprocessing
from vision.zoo.card import ModelCard


def classification_card(name: str, hparams: dict, **extra) -> ModelCard:
    """A card for a ``ClassificationModule``'s network."""
    with_coarse = hparams.get("coarse_head", True) and bool(hparams.get("num_coarse_classes"))
    return ModelCard(
        name=name, task="classification", architecture=hparams["backbone"],
        config={"num_classes": hparams["num_classes"],
                "num_coarse_classes": hparams["num_coarse_classes"] if with_coarse else None},
        preprocessing=hparams.get("preprocessing") or Preprocessing().to_dict(),
        class_names=list(hparams.get("class_names") or [str(i) for i in range(hparams["num_classes"])]),
        coarse_names=hparams.get("coarse_names"), fine_to_coarse=hparams.get("fine_to_coarse"), **extra)


def detection_card(name: str, hparams: dict, **extra) -> ModelCard:
    """A card for a ``LogoDetectionModule``'s network."""
    pre = hparams.get("preprocessing") or yolo_preprocessing(hparams.get("imgsz", 640))
    names = list(hparams.get("class_names") or [str(i) for i in range(hparams["num_classes"])])
    return ModelCard(name=name, task="detection", architecture=hparams["yaml"],
                     config={"num_classes": hparams["num_classes"], "yaml": hparams["yaml"]},
                     preprocessing=pre, class_names=names, **extra)


def embedding_card(name: str, hparams: dict, **extra) -> ModelCard:
    """A card for a ``BrandEmbeddingModule``'s network."""
    return ModelCard(name=name, task="embedding", architecture=hparams["backbone"],
                     config={"embedding_size": hparams["embedding_size"], "loss": hparams.get("loss"),
                             "train_classes": hparams.get("num_classes")},
                     preprocessing=hparams.get("preprocessing") or Preprocessing(input_size=96, crop_pct=1.0).to_dict(),
                     **extra)
