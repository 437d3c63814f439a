"""Lightning plumbing shared by every task's training: optimiser groups and schedule, crash-safe checkpoint
writing, gathering across ranks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import TorchCheckpointIO

from vision.fileio import atomic_path


class CheckpointError(ValueError):
    """A checkpoint given to ``--resume`` that cannot be read as plain tensors and numbers."""


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
        try:
            checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as e:  # noqa: BLE001 - damaged bytes surface as pickle, zip, EOF, runtime or value errors
            from vision.zoo.registry import checkpoint_load_error

            raise CheckpointError(checkpoint_load_error(path, e)) from None
        if not isinstance(checkpoint, dict):
            raise CheckpointError(f"{path}: not a Lightning checkpoint (the top level is a "
                                  f"{type(checkpoint).__name__}, not a dict)")
        return checkpoint


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


def weight_decay_groups(module: torch.nn.Module) -> list[dict]:
    """Optimiser parameter groups: weights decay, norms and biases (1-d tensors) do not."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, trainer: pl.Trainer, warmup_epochs: float,
                           min_lr_ratio: float) -> dict:
    """Lightning's optimiser dict: linear warmup then cosine decay, stepped per batch (shared by every task)."""
    total = max(1, int(trainer.estimated_stepping_batches))
    steps_per_epoch = total / max(1, trainer.max_epochs or 1)
    warmup = min(total - 1, int(round(warmup_epochs * steps_per_epoch)))
    # Always the same SequentialLR shape (a no-op ramp when warmup is 0), so a checkpoint's
    # scheduler state loads whatever the resumed run's warmup works out to.
    ramp_steps = max(1, warmup)
    base_lr = optimizer.param_groups[0]["lr"]  # read before the ramp scales it down
    ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01 if warmup > 0 else 1.0,
                                             total_iters=ramp_steps)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - ramp_steps),
                                                        eta_min=base_lr * min_lr_ratio)
    scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[ramp_steps])
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def frozen_ema(model: torch.nn.Module, decay: float):
    """timm's ``ModelEmaV3`` of ``model`` whose parameters take no gradient.

    The EMA is a submodule (checkpointed and moved with the task) but it is never trained: with
    ``requires_grad`` off, DDP leaves it out of gradient reduction, so no ``find_unused_parameters`` is needed.
    """
    from timm.utils import ModelEmaV3

    ema = ModelEmaV3(model, decay=decay, use_warmup=True)
    ema.requires_grad_(False)
    return ema


def default_optimizer(params):
    """The tasks' optimiser when a config names none: AdamW, lr 1e-3, weight decay 0.05 (no-decay groups apply)."""
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)


class TaskModule(pl.LightningModule):
    """What every task's LightningModule shares: the network in ``self.model``, an optional EMA of it
    (``eval_model`` is what validates, exports and ships), the warmup+cosine optimiser recipe, the zoo card and
    the checkpoint's task tag. A task module sets ``task``, builds ``self.model``, calls :meth:`init_ema` and keeps
    only its own loss and metrics.

    DDP rule kept here: anything that talks to the other ranks (``trainer.log_dir`` broadcasts, metric
    ``compute`` all-reduces, :func:`gather_lists`) runs on every rank; only plain file writing is left to rank 0.
    """

    task: str = ""

    def init_optimizer(self, optimizer) -> None:
        """Keep the ``optimizer`` argument's factory; ``None`` (a config without ``model.init_args.optimizer``)
        is :func:`default_optimizer`. The default is ``None``, not the function itself: LightningCLI writes a
        callable default into the config as its import path and hands that string back to the module."""
        if optimizer is None:
            optimizer = default_optimizer
        if not callable(optimizer):
            raise TypeError(f"model.init_args.optimizer must be an optimiser (class_path: torch.optim.AdamW, "
                            f"init_args: {{lr: ...}}), got {type(optimizer).__name__} {optimizer!r}")
        self.optimizer_factory = optimizer

    def init_ema(self, decay: float | None) -> None:
        self.ema = frozen_ema(self.model, decay) if decay else None

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights used for validation and export: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.model

    def forward(self, x: torch.Tensor):
        return self.eval_model(x)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.ema is not None:
            self.ema.update(self.model, step=self.global_step)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(weight_decay_groups(self.model))
        return self.schedule(optimizer)

    def schedule(self, optimizer: torch.optim.Optimizer) -> dict:
        return warmup_cosine_schedule(optimizer, self.trainer, self.hparams.warmup_epochs, self.hparams.min_lr_ratio)

    def run_dir(self) -> Path:
        """The run's output folder (the logger's, else ``default_root_dir``). Call it on every rank: reading
        ``trainer.log_dir`` is a broadcast under DDP, so calling it on rank 0 alone would hang the others."""
        return Path(self.trainer.log_dir or self.trainer.default_root_dir)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vision_task"] = self.task
