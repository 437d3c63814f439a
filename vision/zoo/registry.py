"""The model zoo: a folder of safetensors files and a ``manifest.json`` describing them.

``load_model`` takes a zoo name, a ``.safetensors`` path or a Lightning ``.ckpt`` path and
returns an eval-mode ``nn.Module`` with its :class:`ModelCard` attached as ``model.card``.
Weights are read with safetensors (or ``torch.load(weights_only=True)`` for checkpoints) and
the sha256 recorded in the manifest is checked before any tensor is loaded.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import json
import os
import platform
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from vision.fileio import atomic_path, atomic_write_text, sha256_file
from vision.zoo.card import ModelCard

MANIFEST = "manifest.json"
_CARD_KEY = "vision.card"


class ZooError(ValueError):
    """A zoo lookup, file or manifest problem; the message names the model, file or field."""


def default_zoo_dir() -> Path:
    """``$VISION_ZOO_DIR`` if set, else the repository's ``weights/`` folder."""
    env = os.environ.get("VISION_ZOO_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "weights"


# --- task table: task name -> builder of the bare network from a card
def _build_classifier(card: ModelCard) -> nn.Module:
    from vision.models.classifier import ProductClassifier

    cfg = card.config
    return ProductClassifier(card.architecture, cfg["num_classes"], cfg.get("num_coarse_classes"), pretrained=False)


def _build_detector(card: ModelCard) -> nn.Module:
    from vision.models.detector import build_detection_model

    return build_detection_model(card.config["yaml"], card.config["num_classes"], card.class_names or None)


def _build_embedder(card: ModelCard) -> nn.Module:
    from vision.models.embedder import EmbeddingNet

    return EmbeddingNet(card.architecture, card.config["embedding_size"], pretrained=False)


TASK_BUILDERS: dict[str, Callable[[ModelCard], nn.Module]] = {"classification": _build_classifier,
                                                              "detection": _build_detector,
                                                              "embedding": _build_embedder}


def build_model(card: ModelCard) -> nn.Module:
    if card.task not in TASK_BUILDERS:
        raise ZooError(f"model {card.name!r}: unknown task {card.task!r}; known tasks: {sorted(TASK_BUILDERS)}")
    return TASK_BUILDERS[card.task](card)


# --- manifest
def read_manifest(zoo_dir: str | Path | None = None) -> dict[str, ModelCard]:
    path = Path(zoo_dir or default_zoo_dir()) / MANIFEST
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ZooError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from None
    if not isinstance(raw.get("models"), dict):
        raise ZooError(f"{path}: expected an object with a 'models' mapping")
    return {name: ModelCard.from_dict(entry, where=f"{path} models.{name}") for name, entry in raw["models"].items()}


def _write_manifest(cards: dict[str, ModelCard], zoo_dir: Path) -> None:
    body = {"format": 1, "models": {name: cards[name].to_dict() for name in sorted(cards)}}
    atomic_write_text(zoo_dir / MANIFEST, json.dumps(body, indent=1, sort_keys=True) + "\n")


def list_models(task: str | None = None, zoo_dir: str | Path | None = None) -> list[str]:
    """Names of the models in the zoo, optionally of one task."""
    return sorted(n for n, c in read_manifest(zoo_dir).items() if task is None or c.task == task)


def save_model(model: nn.Module, card: ModelCard, zoo_dir: str | Path | None = None, *,
               half: bool = False) -> ModelCard:
    """Write ``<zoo>/<card.name>.safetensors`` atomically, hash it and record it in the manifest.

    ``half=True`` stores float tensors as float16 (half the file size; loading casts back to float32).
    """
    zoo_dir = Path(zoo_dir or default_zoo_dir())
    card.file = f"{card.name}.safetensors"
    card.created = card.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    card.versions = card.versions or _versions()
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    card.sha256 = ""
    with atomic_path(zoo_dir / card.file) as tmp:
        save_file(state, str(tmp), metadata={_CARD_KEY: card.to_json()})
    card.sha256 = sha256_file(zoo_dir / card.file)
    cards = read_manifest(zoo_dir)
    cards[card.name] = card
    _write_manifest(cards, zoo_dir)
    return card


def _versions() -> dict[str, str]:
    import timm

    from vision import __version__

    return {"vision": __version__, "torch": torch.__version__, "timm": timm.__version__,
            "python": platform.python_version()}


# --- loading
def load_model(name_or_path: str | Path, zoo_dir: str | Path | None = None, device: str | torch.device = "cpu"
               ) -> nn.Module:
    """A ready, eval-mode model with ``model.card`` set.

    Example::

        model = vision.load_model("grocery_resnet10t")
        model.card.class_names[:3]
    """
    source = Path(name_or_path)
    if source.suffix == ".ckpt":
        model, card = _from_lightning_checkpoint(source)
    elif source.suffix == ".safetensors" or source.exists():
        model, card = _from_weights_file(source)
    else:
        model, card = _from_zoo(str(name_or_path), Path(zoo_dir or default_zoo_dir()))
    model.card = card
    return model.to(device).eval()


def _from_zoo(name: str, zoo_dir: Path) -> tuple[nn.Module, ModelCard]:
    cards = read_manifest(zoo_dir)
    if name not in cards:
        close = difflib.get_close_matches(name, list(cards), n=3)
        hint = f"; did you mean {close}?" if close else f"; available: {sorted(cards) or 'none'}"
        raise ZooError(f"no model named {name!r} in {zoo_dir / MANIFEST}{hint}")
    card = cards[name]
    return _load_verified(zoo_dir / card.file, card)


def _from_weights_file(path: Path) -> tuple[nn.Module, ModelCard]:
    if not path.is_file():
        raise ZooError(f"weights file {path} not found")
    # a file listed in a manifest beside it is checked against that manifest's hash
    for card in read_manifest(path.parent).values():
        if card.file == path.name:
            return _load_verified(path, card)
    return _load_state(path, read_card(path))


def read_card(path: str | Path) -> ModelCard:
    """The card embedded in a zoo ``.safetensors`` file's metadata."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise ZooError(f"{path}: not a readable safetensors file ({e})") from None
    if _CARD_KEY not in meta:
        raise ZooError(f"{path}: safetensors file has no '{_CARD_KEY}' metadata; it was not saved by vision.save_model")
    return ModelCard.from_dict(json.loads(meta[_CARD_KEY]), where=f"{path} metadata")


def _load_verified(path: Path, card: ModelCard) -> tuple[nn.Module, ModelCard]:
    if not path.is_file():
        raise ZooError(f"model {card.name!r}: weights file {path} is missing")
    actual = sha256_file(path)
    if actual != card.sha256:
        raise ZooError(f"model {card.name!r}: sha256 mismatch for {path} (manifest {card.sha256[:12]}..., "
                       f"file {actual[:12]}...); the file is corrupt or was replaced, refusing to load it")
    return _load_state(path, card)


def _load_state(path: Path, card: ModelCard) -> tuple[nn.Module, ModelCard]:
    model = build_model(card)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    _load_state_dict(model, state, str(path))
    return model, card


def _load_state_dict(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ZooError(f"{where}: weights do not match the architecture: missing {result.missing_keys[:5]}, "
                       f"unexpected {result.unexpected_keys[:5]}")


def _from_lightning_checkpoint(path: Path) -> tuple[nn.Module, ModelCard]:
    if not path.is_file():
        raise ZooError(f"checkpoint {path} not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    task = ckpt.get("vision_task")
    if task not in CHECKPOINT_CARDS:
        raise ZooError(f"{path}: not a vision checkpoint with a known task (vision_task={task!r})")
    card = CHECKPOINT_CARDS[task](path.stem, ckpt["hyper_parameters"])
    model = build_model(card)
    prefix = "ema.module." if any(k.startswith("ema.module.") for k in ckpt["state_dict"]) else "model."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    _load_state_dict(model, state, str(path))
    return model, card


def classifier_card(name: str, hparams: dict, **extra) -> ModelCard:
    """A card for a :class:`ClassificationModule`'s network from its hyper-parameters."""
    from vision.data.transforms import Preprocessing

    with_coarse = hparams.get("coarse_head", True) and bool(hparams.get("num_coarse_classes"))
    return ModelCard(
        name=name, task="classification", architecture=hparams["backbone"],
        config={"num_classes": hparams["num_classes"],
                "num_coarse_classes": hparams["num_coarse_classes"] if with_coarse else None},
        preprocessing=hparams.get("preprocessing") or Preprocessing().to_dict(),
        class_names=list(hparams.get("class_names") or [str(i) for i in range(hparams["num_classes"])]),
        coarse_names=hparams.get("coarse_names"), fine_to_coarse=hparams.get("fine_to_coarse"), **extra)


def _detection_card(name: str, hparams: dict, **extra) -> ModelCard:
    from vision.tasks.detection import detection_card  # imports ultralytics: only when needed

    return detection_card(name, hparams, **extra)


def _embedding_card(name: str, hparams: dict, **extra) -> ModelCard:
    from vision.tasks.brand import embedding_card

    return embedding_card(name, hparams, **extra)


# task -> card from a Lightning checkpoint's hyper-parameters (the counterpart of TASK_BUILDERS)
CHECKPOINT_CARDS: dict[str, Callable[..., ModelCard]] = {"classification": classifier_card,
                                                         "detection": _detection_card,
                                                         "embedding": _embedding_card}
