"""LightningModule for brand embeddings by metric learning (pytorch-metric-learning losses and miners).

Validation embeds the gallery and query images of brands never seen in training and reports recall@1/5,
precision@1 and MAP@R of queries against the gallery (:func:`vision.retrieval.retrieval_metrics`).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch
from pytorch_lightning.cli import OptimizerCallable

from vision.models.embedder import EmbeddingNet
from vision.tasks.cards import embedding_card
from vision.training import TaskModule, gather_lists, weight_decay_groups

if TYPE_CHECKING:
    from vision.zoo import ModelCard


def build_loss(name: str, num_classes: int, embedding_size: int, **kwargs) -> torch.nn.Module:
    """A pytorch-metric-learning loss by class name; ``num_classes``/``embedding_size`` go to losses that own
    weights (ArcFace, SubCenterArcFace, CosFace, ProxyAnchor, NormalizedSoftmax, ...) and not to pair losses."""
    from pytorch_metric_learning import losses

    cls = _pml_class(losses, name, "loss")
    if _accepts(cls, "num_classes"):
        kwargs = {"num_classes": num_classes, "embedding_size": embedding_size, **kwargs}
    return cls(**kwargs)


def build_miner(name: str | None, **kwargs) -> torch.nn.Module | None:
    """A pytorch-metric-learning miner by class name (``MultiSimilarityMiner``, ...), or ``None``."""
    from pytorch_metric_learning import miners

    return None if not name else _pml_class(miners, name, "miner")(**kwargs)


def _pml_class(module, name: str, what: str) -> type:
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        known = sorted(n for n in dir(module) if n[0].isupper() and ("Loss" in n or "Miner" in n))
        raise ValueError(f"unknown pytorch-metric-learning {what} {name!r}; known: {known}")
    return cls


def _accepts(cls: type, arg: str) -> bool:
    # ArcFace-style losses take num_classes through *args of a parent's __init__
    return any(arg in inspect.signature(k.__init__).parameters for k in cls.__mro__ if "__init__" in vars(k))


def init_embedder(model: EmbeddingNet, source: str, backbone: str, embedding_size: int) -> None:
    """Copy a trained embedder's weights (zoo name, ``.safetensors`` or ``.ckpt``) into ``model``; a
    different task, backbone or embedding size is a :class:`ValueError` naming both. A classifier of the same
    backbone gives its backbone only (the projection neck starts fresh)."""
    from vision.zoo import load_model

    trained = load_model(source)
    card = trained.card
    if card.task == "classification" and card.architecture == backbone:
        model.backbone.load_state_dict(trained.backbone.state_dict())
        return
    _check_embedder(trained, "init_from", source, backbone, embedding_size)
    model.load_state_dict(trained.state_dict())


def _check_embedder(trained, what: str, source: str, backbone: str | None, embedding_size: int) -> None:
    """A ``ValueError`` naming every field in which a loaded model is not an embedder of this shape (``backbone``
    None: any backbone)."""
    card = trained.card
    fields = [("task", card.task, "embedding"), ("embedding_size", card.config.get("embedding_size"), embedding_size)]
    if backbone is not None:
        fields.insert(1, ("backbone", card.architecture, backbone))
    mismatch = [f"{name} {theirs!r} != {ours!r}" for name, theirs, ours in fields if theirs != ours]
    if mismatch:
        raise ValueError(f"{what} {source!r} does not fit this model: {'; '.join(mismatch)}")


def load_teacher(source: str, embedding_size: int, preprocessing: dict | None = None) -> EmbeddingNet:
    """A frozen, eval-mode embedder (zoo name, ``.safetensors`` or ``.ckpt``; sha256-checked) whose embeddings
    a fine-tune is held near (``distill_from``). Any backbone; the embedding size must be the student's, and so
    must the input normalisation where the student's ``preprocessing`` is known (the teacher sees the student's
    batches)."""
    from vision.data.preprocessing import Preprocessing
    from vision.zoo import load_model

    teacher = load_model(source)
    _check_embedder(teacher, "distill_from", source, None, embedding_size)
    if preprocessing is not None:
        ours, theirs = Preprocessing.from_dict(preprocessing), teacher.card.data_config
        bad = [f"{k} {getattr(theirs, k)!r} != {getattr(ours, k)!r}" for k in ("mean", "std")
               if getattr(theirs, k) != getattr(ours, k)]
        if bad:
            raise ValueError(f"distill_from {source!r} expects other inputs than this model's: {'; '.join(bad)}")
    return teacher.requires_grad_(False).eval()


class BrandEmbeddingModule(TaskModule):
    """Trains an :class:`EmbeddingNet` with a pytorch-metric-learning ``loss`` (and optional ``miner``).

    ``loss`` / ``miner`` are class names in ``pytorch_metric_learning.losses`` / ``.miners`` with their keyword
    arguments in ``loss_kwargs`` / ``miner_kwargs``, e.g. ``ArcFaceLoss`` {margin: 28.6, scale: 30},
    ``SubCenterArcFaceLoss``, ``ProxyAnchorLoss``, ``MultiSimilarityLoss`` + ``MultiSimilarityMiner``. The loss is a
    submodule, so its weights (class centres, proxies) are optimised, at ``loss_lr_multiplier`` times the learning
    rate, and checkpointed. ``num_classes`` and ``preprocessing`` are linked from :class:`BrandDataModule`.

    ``init_from`` starts from a trained embedder (a zoo name such as ``brand_resnet10t``, a zoo ``.safetensors``
    file or a Lightning ``.ckpt``; sha256-checked like any zoo load) to fine-tune it on your own brands or to train
    it longer under a fresh schedule. Its backbone and embedding size must match. A classifier of the same backbone
    (e.g. ``grocery_resnet10t``) is accepted too: its backbone starts the embedder (copy detection does).

    ``distill_from`` (an embedder of the same embedding size, any backbone; usually the one in ``init_from``)
    holds the fine-tune's embeddings near that model's: ``distill_weight`` times the mean of ``1 - cos(student,
    teacher)`` over each training batch is added to the loss (logged as ``train/distill``). The teacher is frozen,
    stays in eval mode and is neither trained nor checkpointed (a resumed run loads it again from its source).
    Fine-tunes that learn new artwork styles otherwise drift from what the starting model already recognised.

    Under DDP the loss and miner see the embeddings of every rank's batch (pytorch-metric-learning's distributed
    wrappers), and validation scores the union of all ranks' gallery and query images.
    """

    task = "embedding"

    def __init__(
        self,
        backbone: str = "resnet10t",
        pretrained: bool | str = False,
        embedding_size: int = 128,
        num_classes: int = 2,
        preprocessing: dict | None = None,
        loss: str = "ArcFaceLoss",
        loss_kwargs: dict[str, Any] | None = None,
        miner: str | None = None,
        miner_kwargs: dict[str, Any] | None = None,
        loss_lr_multiplier: float = 10.0,
        drop_path_rate: float = 0.0,
        ema_decay: float | None = None,
        optimizer: OptimizerCallable | None = None,  # None: vision.training.default_optimizer
        warmup_epochs: float = 1.0,
        min_lr_ratio: float = 0.01,
        init_from: str | None = None,
        distill_from: str | None = None,
        distill_weight: float = 1.0,
    ):
        super().__init__()
        if distill_weight < 0:
            raise ValueError(f"distill_weight must be >= 0, got {distill_weight}")
        self.save_hyperparameters(ignore=["optimizer"])
        self.init_optimizer(optimizer)
        self.model = EmbeddingNet(backbone, embedding_size, pretrained=pretrained, drop_path_rate=drop_path_rate)
        if init_from:
            init_embedder(self.model, init_from, backbone, embedding_size)
        self.loss_fn = build_loss(loss, num_classes, embedding_size, **(loss_kwargs or {}))
        self.miner = build_miner(miner, **(miner_kwargs or {}))
        self.init_ema(ema_decay)
        # a plain tuple, not a submodule: the teacher is neither optimised, nor checkpointed, nor put in train mode
        self._teacher = (load_teacher(distill_from, embedding_size, preprocessing),) if distill_from else None
        self._eval_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._wrapped: tuple | None = None

    # --- training
    def training_step(self, batch, batch_idx):
        x, labels = batch[0], batch[1]
        embeddings = self.model(x)
        loss_fn, miner = self._distributed_loss()
        pairs = miner(embeddings, labels) if miner is not None else None
        loss = loss_fn(embeddings, labels, pairs)
        if self._teacher is not None:
            distill = self._distillation(x, embeddings)
            self.log("train/distill", distill)
            loss = loss + self.hparams.distill_weight * distill
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _distillation(self, x: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """Mean ``1 - cos`` between the student's embeddings and the frozen teacher's of the same images."""
        teacher = self._teacher[0]
        if next(teacher.parameters()).device != x.device:
            teacher.to(x.device)
        with torch.no_grad():
            target = teacher(x).float()
        return (1.0 - (embeddings.float() * target).sum(dim=1)).mean()

    def _distributed_loss(self):
        """The loss and miner, wrapped to work on all ranks' embeddings when a process group of > 1 runs."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self.loss_fn, self.miner
        if self._wrapped is None:
            from pytorch_metric_learning.utils import distributed as pml_dist

            # a plain tuple, not submodules: the wrapped loss's weights stay registered once, as self.loss_fn
            self._wrapped = (pml_dist.DistributedLossWrapper(self.loss_fn),
                             pml_dist.DistributedMinerWrapper(self.miner) if self.miner is not None else None)
        return self._wrapped

    # --- evaluation: gallery and queries of unseen brands, retrieval metrics at the end of the epoch
    def _eval_step(self, batch) -> None:
        x, labels, is_query = batch
        self._eval_outputs.append((self.eval_model(x).float().cpu(), labels.cpu(), is_query.cpu()))

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch)

    def test_step(self, batch, batch_idx):
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_retrieval("val")

    def on_test_epoch_end(self) -> None:
        self._log_retrieval("test")

    def _log_retrieval(self, stage: str) -> None:
        from vision.retrieval import retrieval_metrics

        # retrieval ranks every query against the whole gallery: each rank scores the union of all ranks' images
        outputs, self._eval_outputs = gather_lists(self._eval_outputs), []
        if not outputs:
            return
        embeddings, labels, is_query = (torch.cat(t).numpy() for t in zip(*outputs))
        queries, gallery = is_query == 1, is_query == 0
        if not queries.any() or not gallery.any():
            return   # e.g. a sanity check that saw only gallery images
        metrics = retrieval_metrics(embeddings[queries], labels[queries], embeddings[gallery], labels[gallery])
        for name, value in metrics.items():
            self.log(f"{stage}/{name.replace('@', '_at_')}", float(value), prog_bar=name == "recall@1",
                     sync_dist=True)  # the same value on every rank (computed from the gathered outputs)

    # --- optimisation: the classifier's recipe plus a param group for the loss's own weights
    def configure_optimizers(self):
        groups = weight_decay_groups(self.model)
        loss_params = [p for p in self.loss_fn.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(groups)
        if loss_params:
            lr = optimizer.param_groups[0]["lr"] * self.hparams.loss_lr_multiplier
            optimizer.add_param_group({"params": loss_params, "lr": lr, "initial_lr": lr, "weight_decay": 0.0})
        return self.schedule(optimizer)

    def model_card(self, name: str, **extra) -> "ModelCard":
        """The zoo card for :attr:`eval_model` (see ``vision.zoo.save_model``)."""
        return embedding_card(name, dict(self.hparams), **extra)

