"""Feature extraction with ``trainer.predict`` for teams that already run DDP clusters: same plan, same shards.

Each rank takes the pending shards whose index modulo the world size is its rank (whole shards, never padded
like ``DistributedSampler``, so no image is doubled), reads + decodes + preprocesses them in DataLoader workers,
runs the predictor's torch network and writes its shards with a ``BasePredictionWriter``; rank 0 writes
``manifest.json`` once every rank is done.

Example (one process per GPU, e.g. under ``torchrun`` or SLURM)::

    extract_with_lightning("brand_resnet10t", "photos/", "runs/vectors", devices=8, shard_size=10_000)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from vision.scale.inputs import DEFAULT_SHARD_SIZE, ImageRef, ShardPlan, plan_shards, read_and_preprocess
from vision.scale.model import FeatureModel, unit_vectors
from vision.scale.shards import ShardAssembler, pending_shards, write_manifest


class ImageItems(Dataset):
    """Load + hash + preprocess one image per item; an unreadable one keeps its place with an ``error``."""

    def __init__(self, refs: list[ImageRef], spec: FeatureModel):
        self.refs, self.spec = refs, spec
        self.head = None  # built in the DataLoader worker that first needs it

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.head is None:
            self.head = self.spec.head()
        ref = self.refs[index]
        image, digests, errors = read_and_preprocess([ref.path], self.head, self.spec.input_size)
        return {"id": ref.id, "sha256": digests[0], "error": errors[0], "image": torch.from_numpy(image[0])}


class ShardData(pl.LightningDataModule):
    """The pending shards of this rank (known once the trainer has set up the processes)."""

    def __init__(self, plan: ShardPlan, out_dir: Path, spec: FeatureModel, batch_size: int, workers: int):
        super().__init__()
        self.plan, self.out_dir, self.spec = plan, out_dir, spec
        self.batch_size, self.workers = batch_size, workers
        self.shards: list = []

    def setup(self, stage: str) -> None:
        rank, world = self.trainer.global_rank, self.trainer.world_size
        self.shards = [s for s in pending_shards(self.plan, self.out_dir, self.spec.identity())
                       if s.index % world == rank]

    def predict_dataloader(self) -> DataLoader:
        refs = [ref for shard in self.shards for ref in shard.refs]
        return DataLoader(ImageItems(refs, self.spec), batch_size=self.batch_size, shuffle=False,
                          num_workers=self.workers, persistent_workers=False)


class FeatureNetwork(pl.LightningModule):
    """The predictor's torch network; vectors normalised by its head, unreadable rows passed through."""

    def __init__(self, spec: FeatureModel):
        super().__init__()
        predictor = spec.predictor("cpu")  # Lightning moves the network to this rank's device
        if predictor.backend != "torch":
            raise ValueError(f"the Lightning engine runs torch networks, got backend {predictor.backend!r}")
        self.network, self.head, self.dim = predictor.runtime.network, predictor.head, spec.dim

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        good = torch.tensor([not e for e in batch["error"]], dtype=torch.bool)
        vectors = np.zeros((len(good), self.dim), np.float32)
        if good.any():
            output = self.network(batch["image"][good.to(batch["image"].device)]).float().cpu().numpy()
            vectors[good.numpy()] = unit_vectors(self.head, output)
        return {"id": batch["id"], "sha256": batch["sha256"], "error": batch["error"], "vector": vectors}


class ShardWriter(BasePredictionWriter):
    """Writes each of this rank's shards as soon as all its images are predicted."""

    def __init__(self, out_dir: Path, spec: FeatureModel):
        super().__init__(write_interval="batch")
        self.out_dir, self.spec = out_dir, spec
        self.assembler: ShardAssembler | None = None

    def on_predict_start(self, trainer, pl_module) -> None:
        self.assembler = ShardAssembler(self.out_dir, trainer.datamodule.shards, self.spec.identity(), self.spec.dim,
                                        engine="lightning")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx) -> None:
        self.assembler.add(prediction["id"], prediction["sha256"], prediction["error"], prediction["vector"])


def extract_with_lightning(model, source, out_dir, *, backend: str = "torch", shard_size: int = DEFAULT_SHARD_SIZE,
                           batch_size: int = 64, workers: int = 0, accelerator: str = "auto", devices: int | str = 1,
                           strategy: str = "auto", num_nodes: int = 1, progress: bool = False) -> dict[str, Any]:
    """Extract vectors of ``source`` into the shard format of :mod:`vision.scale.shards` with ``trainer.predict``.

    Returns the manifest (plus ``written``/``skipped``) on rank 0 and ``{"rank", "written"}`` on the others.
    ``devices`` > 1 with ``strategy="auto"`` runs DDP (Lightning re-runs the calling script per rank).
    """
    out_dir = Path(out_dir)
    started = time.perf_counter()
    spec = FeatureModel.resolve(model, backend)
    plan = plan_shards(source, shard_size)
    skipped = len(plan.shards) - len(pending_shards(plan, out_dir, spec.identity()))
    writer = ShardWriter(out_dir, spec)
    several = num_nodes > 1 or (isinstance(devices, int) and devices > 1)
    trainer = pl.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes,
                         strategy="ddp" if strategy == "auto" and several else strategy, callbacks=[writer],
                         logger=False, enable_checkpointing=False, enable_progress_bar=progress,
                         enable_model_summary=False, use_distributed_sampler=False)
    data = ShardData(plan, out_dir, spec, batch_size, workers)
    trainer.predict(FeatureNetwork(spec), datamodule=data, return_predictions=False)
    written = []
    if writer.assembler is not None:  # None: this rank had no batch to predict
        writer.assembler.finish()
        written = writer.assembler.written
    else:
        ShardAssembler(out_dir, data.shards, spec.identity(), spec.dim, "lightning").finish()
    trainer.strategy.barrier("shards written")
    if trainer.global_rank != 0:
        return {"rank": trainer.global_rank, "written": written}
    manifest = write_manifest(out_dir, plan, {"backend": spec.backend})
    return manifest | {"written": written, "skipped": skipped,
                       "seconds": round(time.perf_counter() - started, 2)}
