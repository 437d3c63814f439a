"""Lightning plumbing shared by every task's training: crash-safe checkpoint writing."""

from __future__ import annotations

from typing import Any

import torch
from lightning_fabric.plugins import TorchCheckpointIO

from vision.fileio import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file and renames it into place.

    A run killed while saving keeps its previous ``last.ckpt`` intact, so ``--resume`` always
    finds a loadable checkpoint. Loading stays ``weights_only=True`` (no arbitrary pickle).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = None) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)
