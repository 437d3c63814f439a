"""Lightning plumbing shared by every task's training: crash-safe checkpoint writing, gathering across ranks."""

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


def gather_lists(items: list) -> list:
    """Concatenate a picklable per-rank list across all processes (every rank gets the whole list).

    Metrics that are not a sum of per-batch numbers (mAP needs every prediction ranked together)
    must see all ranks' validation outputs; without a process group this is the list itself.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return items
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]
