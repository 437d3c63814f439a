"""Self-supervised copy-detection data (SSCD / SimCLR style): every photo is its own class, and each training item
is two strong, independent edits of it; the loss (e.g. pytorch-metric-learning's ``NTXentLoss``) pulls the two views
together and pushes every other photo in the batch away.

A batch of ``B`` photos reaches the model as ``2B`` images and ``2B`` labels (``labels[i] == labels[i + B]``: the
photo's index), so :class:`~vision.tasks.embedding.BrandEmbeddingModule` trains on it unchanged. Validation is copy
retrieval on held-out photos: the gallery holds the originals, each query is one fixed edit of one of them, and
recall@1 is the share of edits whose nearest gallery photo is their own original.

The edits model how a re-uploaded photo changes (resized crop, mirror, rotation, colour, greyscale, blur, JPEG,
downscale, text and sticker overlays, borders, screenshot-style letterbox); they are written here independently of
the dedup benchmark's edit generator (:mod:`vision.dedup.edits`), which only evaluates.

Example::

    dm = CopyDetectionDataModule("data/grocery_store/train.txt", exclude=["configs/embedding/copydetect_holdout.txt"])
"""

from __future__ import annotations

import logging
import os
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from vision.data.datasets import ManifestError, read_text
from vision.data.io import IMG_EXTENSIONS, find_unreadable, list_images, load_image
from vision.data.samplers import DistributedMPerClassSampler, eval_sampler
from vision.data.transforms import IMAGENET_MEAN, IMAGENET_STD, A, Preprocessing, _finish, build_eval_transform

__all__ = ["CopyDetectionDataModule", "TwoViews", "CopyQueries", "copy_edit_transform", "read_image_list",
           "two_view_collate"]

log = logging.getLogger(__name__)

_OVERLAY_TEXT = ("SALE", "-30%", "NEW", "@shop", "www.example.com", "BEST PRICE", "2 for 1", "seller_42", "HOT",
                 "free shipping", "ORIGINAL", "(c) photo")
_COLOURS = ((255, 255, 255), (0, 0, 0), (255, 0, 0), (255, 220, 0), (0, 120, 255), (200, 200, 200), (30, 30, 30))


class TextOverlay(A.ImageOnlyTransform):
    """A line or two of caption text (price stickers, watermarks, seller handles) at a random place."""

    def get_params_dependent_on_data(self, params, data) -> dict:
        h, w = params["shape"][:2]
        r = self.py_random
        lines = [(r.choice(_OVERLAY_TEXT), r.uniform(0.4, 1.6) * h / 300, r.choice(_COLOURS),
                  (r.randint(0, max(1, w // 2)), r.randint(h // 10, h)), r.choice((1, 2, 3)))
                 for _ in range(r.randint(1, 2))]
        return {"lines": lines}

    def apply(self, img: np.ndarray, lines=(), **params) -> np.ndarray:
        img = img.copy()
        for text, scale, colour, origin, thickness in lines:
            cv2.putText(img, text, origin, cv2.FONT_HERSHEY_SIMPLEX, max(0.3, scale), colour, thickness, cv2.LINE_AA)
        return img


class StickerOverlay(A.ImageOnlyTransform):
    """A few filled shapes (emoji-like stickers, badges) covering a small part of the photo."""

    def get_params_dependent_on_data(self, params, data) -> dict:
        h, w = params["shape"][:2]
        r = self.py_random
        shapes = [(r.choice(("circle", "box")), r.randint(0, w - 1), r.randint(0, h - 1),
                   max(3, int(min(h, w) * r.uniform(0.04, 0.12))), r.choice(_COLOURS)) for _ in range(r.randint(1, 3))]
        return {"shapes": shapes}

    def apply(self, img: np.ndarray, shapes=(), **params) -> np.ndarray:
        img = img.copy()
        for kind, x, y, size, colour in shapes:
            if kind == "circle":
                cv2.circle(img, (x, y), size, colour, -1, cv2.LINE_AA)
            else:
                cv2.rectangle(img, (x - size, y - size), (x + size, y + size), colour, -1)
        return img


class RandomFrame(A.ImageOnlyTransform):
    """A plain border (3-15% of the side, per side) or a screenshot letterbox: the photo on a canvas of another
    aspect ratio (tall phone screen or wide desktop) in a flat colour."""

    def get_params_dependent_on_data(self, params, data) -> dict:
        h, w = params["shape"][:2]
        r = self.py_random
        colour = r.choice(_COLOURS)
        if r.random() < 0.6:
            pads = [int(min(h, w) * r.uniform(0.03, 0.15)) for _ in range(4)]
        else:
            if r.random() < 0.7:   # tall screenshot
                extra = int(w * r.uniform(1.5, 2.2)) - h
                top = int(max(0, extra) * r.uniform(0.3, 0.7))
                pads = [top, max(0, extra) - top, 0, 0]
            else:
                extra = int(h * r.uniform(1.5, 1.9)) - w
                left = max(0, extra) // 2
                pads = [0, 0, left, max(0, extra) - left]
        return {"pads": pads, "colour": colour}

    def apply(self, img: np.ndarray, pads=(0, 0, 0, 0), colour=(0, 0, 0), **params) -> np.ndarray:
        top, bottom, left, right = pads
        return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=colour)


def copy_edit_transform(pre: Preprocessing, strength: float = 1.0) -> A.Compose:
    """One random copy-style edit of a photo, ending in a normalised ``input_size`` square tensor.

    ``strength`` scales how often each edit is applied (1: the training recipe)."""
    size = (pre.input_size, pre.input_size)

    def p(x: float) -> float:
        return min(1.0, x * strength)

    return A.Compose([
        RandomFrame(p=p(0.25)),
        TextOverlay(p=p(0.3)),
        StickerOverlay(p=p(0.15)),
        A.RandomResizedCrop(size=size, scale=(0.3, 1.0), ratio=(0.6, 1.67)),
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-25, 25), fill=(255, 255, 255), p=p(0.3)),
        A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.5, hue=0.05, p=p(0.8)),
        A.ToGray(p=p(0.2)),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.Downscale(scale_range=(0.3, 0.7))], p=p(0.25)),
        A.ImageCompression(quality_range=(25, 90), p=p(0.5)),
        *_finish(pre),
    ])


def read_image_list(source: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Path]:
    """Image paths of a folder (recursive) or of a manifest of ``path[, ...]`` lines (relative to ``root``, by
    default the manifest's folder; ``#`` comments), as absolute paths. A manifest line naming no image file is a
    :class:`ManifestError` naming file and line."""
    path = Path(source)
    if path.is_dir():
        return [p.resolve() for p in list_images(path)]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such folder or manifest")
    out = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        rel = Path(line.split(",")[0].strip())
        if rel.suffix.lower() not in IMG_EXTENSIONS:
            raise ManifestError(f"{path}:{n}: {str(rel)!r} is not an image file name ({sorted(IMG_EXTENSIONS)})")
        out.append((rel if rel.is_absolute() else Path(root or path.parent) / rel).resolve())
    return out


class TwoViews(Dataset):
    """``(views, index)``: two independent edits of photo ``index``, stacked as a ``(2, 3, H, W)`` tensor."""

    def __init__(self, paths: list[Path], transform):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = load_image(self.paths[index])
        return torch.stack([self.transform(image=image)["image"] for _ in range(2)]), index


def two_view_collate(batch):
    """``B`` items of :class:`TwoViews` -> ``(2B, 3, H, W)`` images (every first view, then every second view) and
    ``2B`` labels, so a view's positive is the other view of its photo and everything else is a negative."""
    views = torch.stack([v for v, _ in batch])                 # (B, 2, 3, H, W)
    labels = torch.tensor([i for _, i in batch])
    return torch.cat([views[:, 0], views[:, 1]]), torch.cat([labels, labels])


class CopyQueries(Dataset):
    """Copy retrieval for validation: ``(image, label, is_query)`` with the photos themselves as the gallery
    (``is_query`` 0) and one edit of each as a query (``is_query`` 1); the edit of photo ``i`` is fixed (seeded
    by ``i``), so every epoch scores the same queries."""

    def __init__(self, paths: list[Path], eval_transform, edit_transform, seed: int = 0):
        self.paths, self.eval_transform, self.edit_transform, self.seed = paths, eval_transform, edit_transform, seed

    def __len__(self) -> int:
        return 2 * len(self.paths)

    def __getitem__(self, i: int):
        n = len(self.paths)
        image = load_image(self.paths[i % n])
        if i < n:
            return self.eval_transform(image=image)["image"], i, 0
        self.edit_transform.set_random_seed(self.seed * 1_000_003 + i)
        return self.edit_transform(image=image)["image"], i - n, 1


class CopyDetectionDataModule(pl.LightningDataModule):
    """Photos as their own classes, two copy-style edits per photo per batch; held-out photos for copy retrieval.

    Args:
        images: a folder of photos (recursive) or a manifest of ``path[, ...]`` lines (e.g. Grocery Store's
            ``train.txt``; labels in it are ignored).
        exclude: manifests (or folders) of photos never to use, e.g. the photos a benchmark evaluates on; their
            relative paths are relative to the folder ``images`` lists (the manifest's folder, or the folder).
        val_fraction: share of the photos held out for validation (chosen by a hash of the file name, so a photo's
            side does not change when others are added); ``val_max`` caps their number.
        batch_size: photos per batch (the model sees ``2 * batch_size`` views).
        m_per_class: photos of one folder per batch (:class:`DistributedMPerClassSampler` over the photos' parent
            folders): other shots of the same product become in-batch negatives, the ones dedup must tell apart
            from copies; 0 draws batches uniformly.
        input_size, crop_pct, mean, std, interpolation: the eval preprocessing stored with the model; ``crop_pct``
            defaults to 1 so borders, captions and corners of a photo stay in view.

    Unreadable photos are counted, logged and left out.
    """

    def __init__(self, images: str, exclude: list[str] | None = None, val_fraction: float = 0.1, val_max: int = 400,
                 batch_size: int = 64, m_per_class: int = 0, eval_batch_size: int | None = None,
                 input_size: int = 112,
                 crop_pct: float = 1.0, mean: tuple[float, float, float] = IMAGENET_MEAN,
                 std: tuple[float, float, float] = IMAGENET_STD, interpolation: str = "bilinear",
                 num_workers: int | None = None, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (a batch needs negatives), got {batch_size}")
        self.preprocessing = Preprocessing(input_size, crop_pct, tuple(mean), tuple(std), interpolation)
        paths = read_image_list(images)
        base = Path(images) if Path(images).is_dir() else Path(images).parent
        excluded = {p for source in (exclude or []) for p in read_image_list(source, root=base)}
        kept = [p for p in paths if p not in excluded]
        self.excluded = len(paths) - len(kept)
        self.unreadable = find_unreadable(kept)
        if self.unreadable:
            log.warning("%s: %d unreadable photo(s) left out, e.g. %s", images, len(self.unreadable),
                        "; ".join(f"{p} ({why})" for p, why in self.unreadable[:3]))
            bad = {Path(p) for p, _ in self.unreadable}
            kept = [p for p in kept if p not in bad]
        in_val = [zlib.crc32(f"{seed}:{p.name}".encode()) % 10_000 < val_fraction * 10_000 for p in kept]
        self.val_paths = [p for p, v in zip(kept, in_val) if v][:val_max]
        self.train_paths = [p for p, v in zip(kept, in_val) if not v]
        if len(self.train_paths) < batch_size:
            raise ValueError(f"{images}: {len(self.train_paths)} training photo(s) after exclusions, fewer than "
                             f"one batch of {batch_size}")
        self._datasets: dict[str, Dataset] = {}

    @property
    def num_classes(self) -> int:
        return len(self.train_paths)

    @property
    def preprocessing_dict(self) -> dict:
        return self.preprocessing.to_dict()

    def setup(self, stage: str | None = None) -> None:
        if "train" not in self._datasets:
            self._datasets["train"] = TwoViews(self.train_paths, copy_edit_transform(self.preprocessing))
        if "val" not in self._datasets and self.val_paths:
            self._datasets["val"] = CopyQueries(self.val_paths, build_eval_transform(self.preprocessing),
                                                copy_edit_transform(self.preprocessing), self.hparams.seed)

    def _workers(self) -> int:
        n = self.hparams.num_workers
        return n if n is not None else min(8, os.cpu_count() or 1)

    def train_dataloader(self) -> DataLoader:
        hp, workers = self.hparams, self._workers()
        sampler = None
        if hp.m_per_class:
            folders = {f: i for i, f in enumerate(sorted({p.parent for p in self.train_paths}))}
            sampler = DistributedMPerClassSampler([folders[p.parent] for p in self.train_paths], hp.m_per_class,
                                                  hp.batch_size, len(self.train_paths),
                                                  seed=int(os.environ.get("PL_GLOBAL_SEED", 0)))  # same on all ranks
        return DataLoader(self._datasets["train"], batch_size=hp.batch_size, shuffle=sampler is None, sampler=sampler,
                          drop_last=True, collate_fn=two_view_collate, num_workers=workers,
                          persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader | list:
        if "val" not in self._datasets:
            return []
        data, workers = self._datasets["val"], self._workers()
        return DataLoader(data, batch_size=self.hparams.eval_batch_size or self.hparams.batch_size,
                          sampler=eval_sampler(data), num_workers=workers, persistent_workers=workers > 0)
