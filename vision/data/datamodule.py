"""LightningDataModule for classification: owns the class table, splits, transforms and loaders."""

from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from vision.data.datasets import ClassTable, LabeledImages, ManifestError, Sample, read_manifest, scan_image_folder
from vision.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, build_eval_transform, \
    build_train_transform


class ClassificationDataModule(pl.LightningDataModule):
    """Classification data from manifests (``path, label[, coarse]`` lines) or ImageFolder trees.

    Args:
        train: manifest file or ImageFolder root for training.
        val: same for validation; if omitted, ``val_fraction`` of ``train`` is held out (stratified, seeded).
        test: optional third split for ``tools/eval.py`` / ``trainer.test``.
        classes: class table (``.csv`` with fine and coarse columns, or one name per line). Without it,
            class names come from the folder names or are the integer ids of the manifest.
        root: folder that manifest paths are relative to (default: each manifest's folder).
        train_preset: a name from ``vision.data.transforms.TRAIN_PRESETS``.
        input_size, crop_pct, mean, std, interpolation: the eval preprocessing, recorded with the model.
        strict: unreadable images raise instead of being skipped with a warning.

    Example::

        dm = ClassificationDataModule(train="../shared/datasets/grocery_store/train.txt",
                                      val="../shared/datasets/grocery_store/val.txt",
                                      classes="../shared/datasets/grocery_store/classes.csv")
    """

    def __init__(
        self,
        train: str,
        val: str | None = None,
        test: str | None = None,
        classes: str | None = None,
        root: str | None = None,
        val_fraction: float = 0.1,
        train_preset: str = "fine_grained",
        input_size: int = 224,
        crop_pct: float = 0.875,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        interpolation: str = "bilinear",
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int | None = None,
        strict: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.preprocessing = Preprocessing(input_size, crop_pct, tuple(mean), tuple(std), interpolation)
        build_train_transform(train_preset, self.preprocessing)  # fail on a bad preset name now, not in setup
        self.classes, self._samples = self._read_splits()
        self._datasets: dict[str, LabeledImages] = {}

    # --- read at construction so bad manifests fail early and num_classes can be linked to the model
    def _read_splits(self) -> tuple[ClassTable, dict[str, list[Sample]]]:
        hp = self.hparams
        table = ClassTable.read(hp.classes) if hp.classes else None
        if table is None and Path(hp.train).is_dir():
            _, table = scan_image_folder(hp.train)
        splits = {}
        for split in ("train", "val", "test"):
            source = getattr(hp, split)
            if source is not None:
                splits[split] = self._read_source(source, table)
        if table is None:
            table = _table_from_labels([s for samples in splits.values() for s in samples])
        if "val" not in splits:
            splits["train"], splits["val"] = _stratified_split(splits["train"], hp.val_fraction, hp.seed)
        return table, splits

    def _read_source(self, source: str, table: ClassTable | None) -> list[Sample]:
        path = Path(source)
        if path.is_dir():
            samples, folder_table = scan_image_folder(path)
            if table is None:
                return samples
            unknown = [n for n in folder_table.names if n not in table.names]
            if unknown:
                raise ManifestError(f"{path}: class folders {unknown} are not in the class table")
            remap = [table.names.index(n) for n in folder_table.names]
            return [Sample(s.path, remap[s.label]) for s in samples]
        return read_manifest(path, self.hparams.root, table)

    # --- the values LightningCLI links into the model
    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    @property
    def num_coarse_classes(self) -> int | None:
        return self.classes.num_coarse_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.classes.names)

    @property
    def coarse_names(self) -> list[str] | None:
        return self.classes.coarse_names

    @property
    def fine_to_coarse(self) -> list[int] | None:
        return self.classes.fine_to_coarse

    @property
    def preprocessing_dict(self) -> dict:
        return self.preprocessing.to_dict()

    # --- Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in wanted.get(stage, ("train", "val", "test")):
            if split in self._samples and split not in self._datasets:
                self._datasets[split] = self.dataset(split)

    def dataset(self, split: str) -> LabeledImages:
        if split not in self._samples:
            raise ValueError(f"no {split!r} split configured (set data.{split})")
        transform = (build_train_transform(self.hparams.train_preset, self.preprocessing) if split == "train"
                     else build_eval_transform(self.preprocessing))
        return LabeledImages(self._samples[split], self.classes, transform, strict=self.hparams.strict,
                             name=f"{split} split ({getattr(self.hparams, split) or self.hparams.train})")

    def _loader(self, split: str, train: bool) -> DataLoader:
        hp = self.hparams
        workers = hp.num_workers if hp.num_workers is not None else min(8, os.cpu_count() or 1)
        return DataLoader(
            self._datasets[split], batch_size=hp.batch_size if train else (hp.eval_batch_size or hp.batch_size),
            shuffle=train, drop_last=train and len(self._datasets[split]) > hp.batch_size,
            num_workers=workers, persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)


def _table_from_labels(samples: list[Sample]) -> ClassTable:
    num = max(s.label for s in samples) + 1
    names = [str(i) for i in range(num)]
    pairs = {(s.label, s.coarse_label) for s in samples if s.coarse_label >= 0}
    if not pairs:
        return ClassTable(names)
    mapping: dict[int, int] = {}
    for fine, coarse in sorted(pairs):
        if mapping.setdefault(fine, coarse) != coarse:
            raise ManifestError(f"fine label {fine} appears with coarse labels {mapping[fine]} and {coarse}; "
                                "pass a class table")
    if len(mapping) != num:
        raise ManifestError("some fine labels have no coarse label; pass a class table")
    num_coarse = max(mapping.values()) + 1
    return ClassTable(names, [str(i) for i in range(num_coarse)], [mapping[i] for i in range(num)])


def _stratified_split(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1) when no val split is given, got {fraction}")
    gen = torch.Generator().manual_seed(seed)
    train, val = [], []
    by_label: dict[int, list[Sample]] = {}
    for s in samples:
        by_label.setdefault(s.label, []).append(s)
    for label in sorted(by_label):
        group = by_label[label]
        order = torch.randperm(len(group), generator=gen).tolist()
        n_val = int(round(len(group) * fraction)) if len(group) > 1 else 0
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return train, val
