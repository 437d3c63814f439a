"""Batch samplers for metric learning that know about distributed training."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import DistributedSampler


class DistributedMPerClassSampler(DistributedSampler):
    """``m`` images of each of ``batch_size / m`` classes per batch (pytorch-metric-learning's ``MPerClassSampler``
    layout), with distinct batches on every rank and a fresh draw each epoch.

    All ranks draw the same epoch plan from ``seed + epoch`` and rank ``r`` takes batches ``r, r + W, ...``, so a
    ``W``-process epoch covers the same ``length`` samples as a one-process epoch. Lightning calls
    :meth:`set_epoch` every epoch and leaves a ``DistributedSampler`` in place instead of wrapping it.
    Without a process group it is a plain one-rank sampler.

    Example::

        sampler = DistributedMPerClassSampler(labels, m=4, batch_size=64, length=len(labels))
        DataLoader(dataset, batch_size=64, sampler=sampler, drop_last=True)
    """

    def __init__(self, labels: Sequence[int], m: int, batch_size: int, length: int,
                 num_replicas: int | None = None, rank: int | None = None, seed: int = 0):
        if m < 1 or batch_size % m:
            raise ValueError(f"batch_size ({batch_size}) must be a multiple of m ({m})")
        running = dist.is_available() and dist.is_initialized()
        num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if running else 1)
        rank = rank if rank is not None else (dist.get_rank() if running else 0)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        labels = np.asarray(labels)
        classes = np.unique(labels)
        if len(classes) * m < batch_size:
            raise ValueError(f"{len(classes)} classes x m {m} cannot fill a batch of {batch_size}")
        # no super().__init__: it would ask for a dataset and a process group; set what DistributedSampler reads
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, 0
        self.shuffle, self.drop_last = True, True
        self.m, self.batch_size = m, batch_size
        self.by_class = [np.flatnonzero(labels == c) for c in classes]
        self.batches_per_rank = length // (batch_size * num_replicas)
        if self.batches_per_rank == 0:
            raise ValueError(f"length {length} is less than one batch of {batch_size} per rank "
                             f"({num_replicas} rank(s))")
        self.num_samples = self.total_size = self.batches_per_rank * batch_size

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        per_batch = self.batch_size // self.m
        for b in range(self.batches_per_rank * self.num_replicas):
            chosen = rng.choice(len(self.by_class), per_batch, replace=False)
            if b % self.num_replicas != self.rank:
                # draw the other ranks' batches too, so every rank's generator stays in step
                for c in chosen:
                    self._pick(rng, c)
                continue
            for c in chosen:
                yield from self._pick(rng, c).tolist()

    def _pick(self, rng: np.random.Generator, c: int) -> np.ndarray:
        members = self.by_class[c]
        return rng.choice(members, self.m, replace=len(members) < self.m)


def eval_sampler(dataset) -> DistributedSampler | None:
    """For validation/test loaders: under DDP each rank reads a distinct part and no image twice (Lightning's own
    ``DistributedSampler`` pads uneven splits with repeats, which would count some images twice in the metrics);
    ``None`` (a plain sequential loader) without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler

    return UnrepeatedDistributedSampler(dataset, shuffle=False)
