"""Brand metric-learning data: folder-per-brand training crops and gallery/query folders of unseen brands.

Layout read by :class:`BrandDataModule` (written for simple-icons by
:func:`vision.synth.brand_dataset.write_brand_dataset`; users' own data is the same folder-per-brand layout)::

    train/<brand>/*.jpg               train brands, at least two images each
    {val,test}/gallery/<brand>/       unseen brands: clean images (what a gallery is built from)
    {val,test}/query/<brand>/         the same unseen brands as they appear in photos
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from vision.data.datasets import ClassTable, LabeledImages, ManifestError, Sample, scan_image_folder
from vision.data.samplers import DistributedMPerClassSampler, eval_sampler
from vision.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessing,
    build_eval_transform,
    build_train_transform,
)

__all__ = ["BrandDataModule", "GalleryQueryImages"]


class GalleryQueryImages(Dataset):
    """Gallery and query folders of the same brands as one dataset of ``(image, label, is_query)``.

    Labels index the union of both folders' brand names, so a query's label matches its gallery brand's.
    """

    def __init__(self, gallery: str | os.PathLike, query: str | os.PathLike, transform: Callable | None = None):
        g_samples, g_table = scan_image_folder(gallery)
        q_samples, q_table = scan_image_folder(query)
        self.names = sorted(set(g_table.names) | set(q_table.names))
        index = {n: i for i, n in enumerate(self.names)}
        table = ClassTable(self.names)
        g = [Sample(s.path, index[g_table.names[s.label]]) for s in g_samples]
        q = [Sample(s.path, index[q_table.names[s.label]]) for s in q_samples]
        self.parts = ConcatDataset([LabeledImages(g, table, transform, name=f"gallery {gallery}"),
                                    LabeledImages(q, table, transform, name=f"queries {query}")])
        self.num_gallery = len(self.parts.datasets[0])

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, i: int):
        image, label, _ = self.parts[i]
        return image, label, int(i >= self.num_gallery)


class BrandDataModule(pl.LightningDataModule):
    """Folder-per-brand training crops, m-per-class batches; gallery/query folders of unseen brands for val/test.

    Args:
        train: ``<train>/<brand>/*`` images (at least two per brand).
        val, test: folders holding ``gallery/<brand>/*`` and ``query/<brand>/*`` (brands unseen in training).
        m_per_class: images of each brand in a batch (:class:`DistributedMPerClassSampler`: distinct batches on
            every DDP rank, redrawn each epoch); ``batch_size`` must be a multiple of it. ``epoch_length`` (default:
            the number of training images) counts the samples of one epoch over all ranks together.
        train_preset, input_size, crop_pct, mean, std, interpolation: as for classification; ``crop_pct`` is 1 by
            default because crops are already square and framed around the logo.
        style_augment: style-removing augmentations of the training crops by name and probability (at most one
            per crop; :mod:`vision.data.style_augment`), e.g. ``{"fill_to_outline": 0.15, "mono": 0.1}``. Off
            (None) by default.

    Example::

        dm = BrandDataModule(train="runs/brands/train", val="runs/brands/val", input_size=96)
    """

    def __init__(self, train: str, val: str | None = None, test: str | None = None, m_per_class: int = 4,
                 batch_size: int = 128, eval_batch_size: int | None = None, train_preset: str = "logo",
                 input_size: int = 96, crop_pct: float = 1.0, mean: tuple[float, float, float] = IMAGENET_MEAN,
                 std: tuple[float, float, float] = IMAGENET_STD, interpolation: str = "bilinear",
                 epoch_length: int | None = None, num_workers: int | None = None,
                 style_augment: dict[str, float] | None = None):
        super().__init__()
        self.save_hyperparameters()
        if m_per_class < 2 or batch_size % m_per_class:
            raise ValueError(f"batch_size ({batch_size}) must be a multiple of m_per_class ({m_per_class}) and "
                             "m_per_class >= 2")
        self.preprocessing = Preprocessing(input_size, crop_pct, tuple(mean), tuple(std), interpolation)
        build_train_transform(train_preset, self.preprocessing, style_augment)   # fail on a bad preset now
        self.train_samples, self.classes = scan_image_folder(train)
        self._check_pairs()
        for name in ("val", "test"):
            folder = getattr(self.hparams, name)
            if folder is not None:
                _check_gallery_query(Path(folder), self.classes.names)
        self._datasets: dict[str, Dataset] = {}

    def _check_pairs(self) -> None:
        counts = np.bincount([s.label for s in self.train_samples], minlength=self.classes.num_classes)
        lonely = [self.classes.names[i] for i in np.flatnonzero(counts < 2)]
        if lonely:
            raise ManifestError(f"{self.hparams.train}: {len(lonely)} brand folder(s) hold fewer than 2 images, "
                                f"so they have no positive pair: {lonely[:10]}")
        if self.classes.num_classes * self.hparams.m_per_class < self.hparams.batch_size:
            raise ValueError(f"{self.classes.num_classes} brands x m_per_class {self.hparams.m_per_class} cannot "
                             f"fill a batch of {self.hparams.batch_size}")

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    @property
    def preprocessing_dict(self) -> dict:
        return self.preprocessing.to_dict()

    def setup(self, stage: str | None = None) -> None:
        eval_tf = build_eval_transform(self.preprocessing)
        if stage in ("fit", None) and "train" not in self._datasets:
            self._datasets["train"] = LabeledImages(
                self.train_samples, self.classes, build_train_transform(self.hparams.train_preset,
                                                                        self.preprocessing,
                                                                        self.hparams.style_augment),
                name=f"train brands ({self.hparams.train})")
        for name in ("val", "test"):
            folder = getattr(self.hparams, name)
            if folder is not None and name not in self._datasets and stage in ("fit", "validate", "test", None):
                self._datasets[name] = GalleryQueryImages(Path(folder) / "gallery", Path(folder) / "query", eval_tf)

    def _workers(self) -> int:
        n = self.hparams.num_workers
        return n if n is not None else min(8, os.cpu_count() or 1)

    def train_dataloader(self) -> DataLoader:
        hp, data = self.hparams, self._datasets["train"]
        labels = [s.label for s in data.samples]
        sampler = DistributedMPerClassSampler(labels, hp.m_per_class, hp.batch_size, hp.epoch_length or len(labels),
                                              seed=int(os.environ.get("PL_GLOBAL_SEED", 0)))  # same on all ranks
        workers = self._workers()
        return DataLoader(data, batch_size=hp.batch_size, sampler=sampler, drop_last=True, num_workers=workers,
                          persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())

    def _eval_loader(self, name: str) -> DataLoader:
        if name not in self._datasets:
            raise ValueError(f"no {name!r} folder configured (set data.{name})")
        workers = self._workers()
        data = self._datasets[name]
        return DataLoader(data, batch_size=self.hparams.eval_batch_size or self.hparams.batch_size,
                          sampler=eval_sampler(data), num_workers=workers, persistent_workers=workers > 0)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


def _check_gallery_query(folder: Path, train_names: list[str]) -> None:
    for part in ("gallery", "query"):
        if not (folder / part).is_dir():
            raise ManifestError(f"{folder}: expected gallery/<brand>/ and query/<brand>/ sub-folders, "
                                f"{folder / part} is missing")
    names = {d.name for d in (folder / "gallery").iterdir() if d.is_dir()} | \
        {d.name for d in (folder / "query").iterdir() if d.is_dir()}
    leaked = sorted(names & set(train_names))
    if leaked:
        # evaluation must measure brands the model never saw
        raise ManifestError(f"{folder}: {len(leaked)} brand(s) also appear in the training folder: {leaked[:10]}")
