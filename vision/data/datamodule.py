"""LightningDataModule for classification: owns the class table, splits, transforms and loaders."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from vision.data.datasets import ClassTable, LabeledImages, ManifestError, Sample, read_manifest, scan_image_folder
from vision.data.samplers import eval_sampler
from vision.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessing,
    build_eval_transform,
    build_train_transform,
)


class ClassificationDataModule(pl.LightningDataModule):
    """Classification data from manifests (``path, label[, coarse]`` lines) or ImageFolder trees.

    Args:
        train: manifest file or ImageFolder root for training.
        val: same for validation; if omitted, ``val_fraction`` of ``train`` is held out (stratified, seeded).
        test: optional third split for ``vision eval`` / ``trainer.test``.
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
        self._overlap_checked = False

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
        if not self._overlap_checked:
            self._overlap_checked = True
            self._warn_split_overlap()
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in wanted.get(stage, ("train", "val", "test")):
            if split in self._samples and split not in self._datasets:
                self._datasets[split] = self.dataset(split)

    def _warn_split_overlap(self) -> None:
        # in setup, not __init__: hashing same-sized files reads them, which printing a config should not do
        for split in ("val", "test"):
            if split not in self._samples:
                continue
            pairs = find_split_overlap(self._samples["train"], self._samples[split])
            if pairs:
                examples = "; ".join(f"{a} = {b}" for a, b in pairs[:3]) + ("; ..." if len(pairs) > 3 else "")
                warnings.warn(f"train and {split} splits share {len(pairs)} image(s) (same file or same content), "
                              f"so {split} metrics are optimistic: {examples}", stacklevel=3)

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
        data = self._datasets[split]
        return DataLoader(
            data, batch_size=hp.batch_size if train else (hp.eval_batch_size or hp.batch_size),
            shuffle=train, drop_last=train and len(data) > hp.batch_size,
            sampler=None if train else eval_sampler(data),  # under DDP: each val image scored once
            num_workers=workers, persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)


def _table_from_labels(samples: list[Sample]) -> ClassTable:
    """Integer class names ``0..K-1`` for manifests read without a class table.

    Every id up to the largest must have a sample: otherwise one mistyped label (``999``) would silently
    make a 1000-class model.
    """
    num = _check_contiguous([(s.label, s) for s in samples], "label")
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
    num_coarse = _check_contiguous([(s.coarse_label, s) for s in samples if s.coarse_label >= 0], "coarse label")
    return ClassTable(names, [str(i) for i in range(num_coarse)], [mapping[i] for i in range(num)])


def _check_contiguous(labelled: list[tuple[int, Sample]], kind: str) -> int:
    """The number of ids in use, when they are exactly ``0..K-1``; else :class:`ManifestError` at the first
    sample past the first unused id."""
    used = {label for label, _ in labelled}
    num = next(i for i in range(len(used) + 1) if i not in used)
    if num == len(used):
        return num
    label, sample = next((label, s) for label, s in labelled if label > num)
    where = sample.where or str(sample.path)
    if num == 0:
        raise ManifestError(f"{where}: no sample has {kind} 0: labels are 0-based class ids (1-based labels "
                            f"need 1 subtracted), or pass a class table (data.classes)")
    raise ManifestError(f"{where}: {kind} {label} is out of range 0..{num - 1}: without a class table the "
                        f"number of classes is inferred from the labels, which must be 0..K-1 with every id used, "
                        f"and no sample has {kind} {num}. Fix the label or pass a class table (data.classes)")


def find_split_overlap(first: list[Sample], second: list[Sample]) -> list[tuple[Path, Path]]:
    """Pairs ``(path in first, path in second)`` that are the same image: the same real file, or files with
    the same size and content hash (a copy under another name). Only size collisions are hashed."""
    real_first = {os.path.realpath(s.path): s.path for s in first}
    pairs, by_size = [], {}
    for s in second:
        real = os.path.realpath(s.path)
        if real in real_first:
            pairs.append((real_first[real], s.path))
    shared = {p for _, p in pairs}
    for s in first:
        by_size.setdefault(_file_size(s.path), []).append(s.path)
    hashes: dict[Path, str] = {}
    for s in second:
        if s.path in shared:
            continue
        for other in by_size.get(_file_size(s.path), ()):
            if _digest(other, hashes) == _digest(s.path, hashes):
                pairs.append((other, s.path))
                break
    return pairs


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1  # unreadable files are reported by LabeledImages; -1 never matches a hash below


def _digest(path: Path, cache: dict[Path, str]) -> str:
    if path not in cache:
        h = hashlib.blake2b(digest_size=16)
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            cache[path] = h.hexdigest()
        except OSError:
            cache[path] = f"unreadable:{path}"
    return cache[path]


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
