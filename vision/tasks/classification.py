"""LightningModule for fine-grained product classification.

The recipe (all switchable from config): label smoothing, mixup/cutmix, an EMA of the weights
(used for validation and for the weights that ship), linear warmup + cosine LR per step, AdamW or
SGD with weight decay kept off norms and biases, and an optional coarse head trained as an
auxiliary task.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from timm.data.mixup import cutmix_bbox_and_lam, mixup_target
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from vision.models.classifier import ProductClassifier
from vision.training import TaskModule

if TYPE_CHECKING:
    from vision.zoo import ModelCard


class ClassificationModule(TaskModule):
    """Trains a :class:`ProductClassifier`.

    ``num_classes``, the class names, the coarse table and ``preprocessing`` are normally linked
    from the datamodule by ``vision train``; they are saved as hyper-parameters so a checkpoint
    is self-describing.
    """

    task = "classification"

    def __init__(
        self,
        backbone: str = "resnet18",
        pretrained: bool | str = False,
        num_classes: int = 2,
        num_coarse_classes: int | None = None,
        class_names: list[str] | None = None,
        coarse_names: list[str] | None = None,
        fine_to_coarse: list[int] | None = None,
        preprocessing: dict | None = None,
        coarse_head: bool = True,
        coarse_loss_weight: float = 0.3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        label_smoothing: float = 0.1,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mix_prob: float = 1.0,
        mixup_off_epochs: int = 0,
        ema_decay: float | None = None,
        optimizer: OptimizerCallable | None = None,  # None: vision.training.default_optimizer
        warmup_epochs: float = 1.0,
        min_lr_ratio: float = 0.01,
        save_confusion_matrix: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer"])
        self.init_optimizer(optimizer)
        with_coarse = coarse_head and bool(num_coarse_classes)
        self.model = ProductClassifier(backbone, num_classes, num_coarse_classes if with_coarse else None,
                                       pretrained=pretrained, drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        self.init_ema(ema_decay)
        if fine_to_coarse is not None:
            self.register_buffer("fine_to_coarse_index", torch.tensor(fine_to_coarse), persistent=False)
        else:
            self.fine_to_coarse_index = None
        self.metrics = torch.nn.ModuleDict({stage: self._build_metrics() for stage in ("val", "test")})

    def _build_metrics(self) -> MetricCollection:
        hp = self.hparams
        metrics = {
            "top1": MulticlassAccuracy(hp.num_classes, top_k=1, average="micro"),
            "top5": MulticlassAccuracy(hp.num_classes, top_k=min(5, hp.num_classes), average="micro"),
            "confmat": MulticlassConfusionMatrix(hp.num_classes),
        }
        if hp.num_coarse_classes:
            metrics["coarse_top1"] = MulticlassAccuracy(hp.num_coarse_classes, top_k=1, average="micro")
            metrics["coarse_top5"] = MulticlassAccuracy(hp.num_coarse_classes,
                                                        top_k=min(5, hp.num_coarse_classes), average="micro")
        return MetricCollection(metrics, compute_groups=False)

    # --- training
    def _mix(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        hp = self.hparams
        active = (hp.mixup_alpha > 0 or hp.cutmix_alpha > 0) and \
            self.current_epoch < self.trainer.max_epochs - hp.mixup_off_epochs
        if not active or torch.rand(()).item() >= hp.mix_prob:
            return x, 1.0
        use_cutmix = hp.cutmix_alpha > 0 and (hp.mixup_alpha <= 0 or torch.rand(()).item() < 0.5)
        alpha = hp.cutmix_alpha if use_cutmix else hp.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        if use_cutmix:
            (yl, yh, xl, xh), lam = cutmix_bbox_and_lam(x.shape, lam)
            x = x.clone()
            x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
        else:
            x = x * lam + x.flip(0) * (1.0 - lam)
        return x, lam

    def _soft_ce(self, logits: torch.Tensor, labels: torch.Tensor, lam: float) -> torch.Tensor:
        target = mixup_target(labels, logits.shape[1], lam, self.hparams.label_smoothing)
        return torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()

    def training_step(self, batch, batch_idx):
        x, y, y_coarse = batch
        x, lam = self._mix(x)
        logits, coarse_logits = self.model.forward_train(x)
        loss = fine_loss = self._soft_ce(logits, y, lam)
        if coarse_logits is not None:
            coarse_loss = self._soft_ce(coarse_logits, y_coarse, lam)
            loss = fine_loss + self.hparams.coarse_loss_weight * coarse_loss
            self.log("train/coarse_loss", coarse_loss)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/fine_loss", fine_loss)
        return loss

    # --- evaluation (one step for val and test)
    def coarse_logits(self, features: torch.Tensor, fine_logits: torch.Tensor) -> torch.Tensor | None:
        """Coarse logits from the coarse head, else by marginalising the fine distribution per coarse group."""
        model = self.eval_model
        if model.coarse_head is not None:
            return model.coarse_head(features)
        if self.fine_to_coarse_index is None:
            return None
        probs = fine_logits.float().softmax(-1)
        coarse = torch.zeros(probs.shape[0], self.hparams.num_coarse_classes, device=probs.device)
        return coarse.index_add_(1, self.fine_to_coarse_index, probs).clamp_min(1e-12).log()

    def _eval_step(self, batch, stage: str) -> None:
        x, y, y_coarse = batch
        model = self.eval_model
        features = model.forward_head(model.forward_features(x), pre_logits=True)
        logits = model.head(features)
        self.log(f"{stage}/loss", F.cross_entropy(logits.float(), y), sync_dist=True)
        metrics = self.metrics[stage]
        for name in ("top1", "top5", "confmat"):
            metrics[name].update(logits, y)
        if self.hparams.num_coarse_classes and (y_coarse >= 0).all():
            coarse = self.coarse_logits(features, logits)
            metrics["coarse_top1"].update(coarse, y_coarse)
            metrics["coarse_top5"].update(coarse, y_coarse)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_eval_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics("test")

    def _log_eval_metrics(self, stage: str) -> None:
        metrics = self.metrics[stage]
        # which metrics saw data on ANY rank (compute() is a collective: every rank must call it or none)
        counts = self.trainer.strategy.reduce(
            torch.tensor([float(m.update_count) for m in metrics.values()], device=self.device), reduce_op="sum")
        updated = {name for name, count in zip(metrics.keys(), counts.tolist()) if count > 0}
        if "top1" not in updated:
            return
        results = {name: metrics[name].compute() for name in metrics.keys() if name in updated}
        confmat = results.pop("confmat").cpu()
        per_class = per_class_accuracy(confmat)
        present = [v for v in per_class.values() if v is not None]
        results["mean_class_acc"] = torch.tensor(sum(present) / max(1, len(present)))
        # compute() already reduced the states over all ranks, so every rank logs the same value; sync_dist
        # keeps Lightning from treating them as per-rank numbers
        for name, value in results.items():
            self.log(f"{stage}/{name}", value.float(), prog_bar=name == "top1", sync_dist=True)
        metrics.reset()
        if self.trainer.sanity_checking or not self.hparams.save_confusion_matrix:
            return
        out = self.run_dir() / "confusion"  # on every rank: a collective under DDP
        if not self.trainer.is_global_zero:
            return
        tag = f"{stage}_epoch{self.current_epoch:03d}"
        names = self.hparams.class_names or [str(i) for i in range(self.hparams.num_classes)]
        save_confusion_png(confmat, names, out / f"{tag}.png", title=f"{stage} epoch {self.current_epoch}")
        (out / f"{tag}_per_class.json").write_text(json.dumps(
            {names[i]: acc for i, acc in per_class.items()}, indent=1))

    def model_card(self, name: str, **extra) -> "ModelCard":
        """The zoo card for :attr:`eval_model` (see ``vision.zoo.save_model``)."""
        from vision.tasks.cards import classification_card

        return classification_card(name, dict(self.hparams), **extra)


def per_class_accuracy(confmat: torch.Tensor) -> dict[int, float | None]:
    """Recall per true class from a confusion matrix; ``None`` for classes with no samples."""
    support = confmat.sum(1)
    return {i: (float(confmat[i, i] / support[i]) if support[i] > 0 else None) for i in range(confmat.shape[0])}


def save_confusion_png(confmat: torch.Tensor, names: list[str], path: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix as a PNG (rows: true class, columns: predicted)."""
    # the object API with the Agg canvas: no pyplot, so no process-wide backend switch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path.parent.mkdir(parents=True, exist_ok=True)
    norm = confmat.float() / confmat.sum(1, keepdim=True).clamp_min(1)
    n = len(names)
    size = max(6.0, min(30.0, 0.18 * n + 3))
    fig = Figure(figsize=(size, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    font = max(3.0, min(9.0, 300.0 / max(n, 1)))
    # class names are data, not mathtext: 'a$b$c' must neither render as math nor fail the draw
    ax.set_xticks(range(n), names, rotation=90, fontsize=font, parse_math=False, usetex=False)
    ax.set_yticks(range(n), names, fontsize=font, parse_math=False, usetex=False)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, parse_math=False, usetex=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
