"""Brand metric-learning data: simple-icons gallery/query sets and folder-per-brand crops.

Layout written by :func:`write_brand_dataset` (and read by :class:`BrandDataModule`; users' own data is the same
folder-per-brand layout)::

    out/train/<slug>/*.jpg            train brands: clean renders + logos "in the wild"
    out/{val,test}/gallery/<slug>/    unseen brands: clean canonical renders (what a gallery is built from)
    out/{val,test}/query/<slug>/      the same unseen brands composited onto product photos and cropped
    out/brands.json                   the brand split, titles, licences, parameters

Logos in the wild reuse the detector data's rendering and compositing (:mod:`vision.data.logos`); a query is the
square crop around the composited logo's box (:func:`square_crop`), the same crop the recogniser takes around a
detected box, so training, evaluation and inference see logos framed alike.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from vision.data.datasets import ClassTable, LabeledImages, ManifestError, Sample, scan_image_folder
from vision.data.io import ImageLoadError, list_images, load_image
from vision.data.samplers import DistributedMPerClassSampler, eval_sampler
from vision.data.logos import (Brand, LogoDatasetWarning, LogoRenderError, _package_version, _unit_hash,
                               composite_logos, list_brands, random_logo_style, random_resized_background,
                               render_logo, split_brands)
from vision.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, build_eval_transform, \
    build_train_transform

__all__ = ["BrandDataModule", "GalleryQueryImages", "canonical_logo", "parse_render_colors", "render_color",
           "simple_icons_renders", "square_crop", "wild_logo_crop", "write_brand_dataset"]

_JPEG_QUALITY = 92
_LIGHT_LUMA = 0.8            # brand colours lighter than this are drawn on a dark canvas in the canonical render
_DARK_CANVAS = (32, 32, 32)


# ---------------------------------------------------------------------------------------------------------------
# crops and renders
# ---------------------------------------------------------------------------------------------------------------

def square_crop(image: np.ndarray, box: Sequence[float], margin: float = 0.15, size: int | None = None) -> np.ndarray:
    """The square region centred on ``box`` (``x1, y1, x2, y2``) with side ``max(w, h) * (1 + 2 * margin)``.

    Parts outside the image are filled by replicating the border, so a wide wordmark is never cut by the model's
    centre crop. ``size`` resizes the result to ``size x size``.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"box must have x2 > x1 and y2 > y1, got {list(box)}")
    side = max(2, int(round(max(x2 - x1, y2 - y1) * (1 + 2 * margin))))
    left, top = int(round((x1 + x2 - side) / 2)), int(round((y1 + y2 - side) / 2))
    height, width = image.shape[:2]
    pad = max(0, -left, -top, left + side - width, top + side - height)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = image[top + pad:top + pad + side, left + pad:left + pad + side]
    if size is not None:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    return np.ascontiguousarray(crop)


def canonical_logo(brand: Brand, size: int, color: tuple[int, int, int] | None = None,
                   margin: float = 0.1) -> np.ndarray:
    """The clean gallery image of ``brand``: its mark (brand colour by default) centred on a square canvas.

    White, or dark grey for light brand colours, so the mark always shows. ``HxWx3`` uint8, ``size x size``.
    """
    rgba = render_logo(brand, max(1, round(size * (1 - 2 * margin))), color=color)
    fill = np.asarray(color if color is not None else brand.rgb, np.float32) / 255
    luma = float(fill @ np.array([0.299, 0.587, 0.114], np.float32))
    canvas = np.empty((size, size, 3), np.float32)
    canvas[:] = _DARK_CANVAS if luma > _LIGHT_LUMA else (255, 255, 255)
    h, w = rgba.shape[:2]
    top, left = (size - h) // 2, (size - w) // 2
    alpha = rgba[..., 3:4].astype(np.float32) / 255
    region = canvas[top:top + h, left:left + w]
    region[:] = rgba[..., :3] * alpha + region * (1 - alpha)
    return np.rint(canvas).astype(np.uint8)


def wild_logo_crop(brand: Brand, background: np.ndarray, rng: np.random.Generator, size: int,
                   scale_range: tuple[float, float] = (0.2, 0.6), margin_range: tuple[float, float] = (0.05, 0.3)
                   ) -> np.ndarray | None:
    """``brand`` composited once onto ``background`` (random style, perspective, colour, blur, occlusion, JPEG),
    cut out with :func:`square_crop` and resized to ``size``; ``None`` when the logo found no place."""
    style = random_logo_style(brand, rng)
    render_side = math.ceil(scale_range[1] * min(background.shape[:2]))
    rgba = render_logo(brand, render_side, color=style.color, background=style.background)
    image, boxes = composite_logos(background, [(rgba, 0)], rng, scale_range=scale_range)
    if len(boxes) == 0:
        return None
    return square_crop(image, boxes[0, 1:], margin=float(rng.uniform(*margin_range)), size=size)


RENDER_COLORS: dict[str, tuple[int, int, int] | None] = {"brand": None, "black": (0, 0, 0),
                                                        "white": (255, 255, 255)}


def render_color(name: str) -> tuple[int, int, int] | None:
    """A render colour by name: ``brand`` (the brand's own, ``None``), ``black``, ``white`` or ``#rrggbb``."""
    if name in RENDER_COLORS:
        return RENDER_COLORS[name]
    text = name[1:] if name.startswith("#") else name
    if len(text) == 6 and all(c in "0123456789abcdefABCDEF" for c in text):
        return tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))
    raise ValueError(f"render colour {name!r}: use brand, black, white or #rrggbb")


def parse_render_colors(text: str) -> tuple[str, ...]:
    """``"brand,black,white"`` -> ``("brand", "black", "white")``, each checked by :func:`render_color`."""
    colors = tuple(c.strip() for c in text.split(",") if c.strip())
    if not colors:
        raise ValueError(f"no render colour in {text!r}; use e.g. brand,black,white")
    for color in colors:
        render_color(color)
    return colors


def simple_icons_renders(size: int, brands: Sequence[str] | None = None, colors: Sequence[str] = ("brand",),
                         progress: Callable[..., Iterable] | None = None) -> dict[str, list[np.ndarray]]:
    """``{slug: [canonical_logo per colour]}`` for every simple-icons brand (or the listed slugs), gallery images.

    A brand the renderer cannot draw is skipped with a :class:`LogoDatasetWarning` naming it and why.
    """
    fills = [render_color(c) for c in colors]
    wanted = None if brands is None else set(brands)
    catalogue = [b for b in list_brands() if wanted is None or b.slug in wanted]
    images: dict[str, list[np.ndarray]] = {}
    for brand in progress(catalogue, desc="render", unit="brand") if progress else catalogue:
        try:
            images[brand.slug] = [canonical_logo(brand, size, color=fill) for fill in fills]
        except LogoRenderError as e:
            warnings.warn(f"skipping brand {e.name!r}: {e.reason}", LogoDatasetWarning, stacklevel=2)
    return images


# ---------------------------------------------------------------------------------------------------------------
# dataset writer
# ---------------------------------------------------------------------------------------------------------------

def write_brand_dataset(out_dir: str | os.PathLike, backgrounds: Sequence[str | os.PathLike], *,
                        val_backgrounds: Sequence[str | os.PathLike] | None = None, size: int = 96,
                        train_clean: int = 2, train_wild: int = 6, queries: int = 3,
                        splits: Sequence[str] = ("train", "val", "test"), max_brands: int | None = None,
                        brands: Sequence[Brand] | None = None, seed: int = 0, background_size: int = 224,
                        workers: int = 1, overwrite: bool = False,
                        progress: Callable[..., Iterable] | None = None) -> dict:
    """Write the simple-icons metric-learning set under ``out_dir`` (layout in the module docstring).

    Brands are split by :func:`vision.data.logos.split_brands` with ``seed`` (the detector data's split, so test
    brands stay unseen by both). Train brands get ``train_clean`` clean renders (brand colour, then black, white
    ...) and ``train_wild`` composites on ``backgrounds``; val/test brands get one canonical render (gallery) and
    ``queries`` composites on ``val_backgrounds`` (default: ``backgrounds``). ``max_brands`` caps each split.
    Each brand is generated from its own seeded generator, so the output depends only on the arguments and any
    brand can be regenerated alone. Brands whose SVG does not render are skipped with a warning.
    """
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    if min(train_clean, train_wild, queries) < 0 or train_clean + train_wild < 2:
        raise ValueError("need train_clean + train_wild >= 2 images per train brand (metric learning needs "
                         f"positive pairs) and non-negative counts, got {train_clean} + {train_wild}")
    unknown = set(splits) - {"train", "val", "test"}
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; choose from train, val, test")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    catalogue = list(brands) if brands is not None else list_brands()
    by_slug = {b.slug: b for b in catalogue}
    split = split_brands(catalogue, seed=seed)
    photos = {"train": _photos(backgrounds), "eval": _photos(val_backgrounds or backgrounds)}
    jobs = []
    for name in splits:
        slugs = sorted(split[name], key=lambda s: _unit_hash(seed, "brand-pick", s))[:max_brands]
        pool = photos["train" if name == "train" else "eval"]
        jobs += [_BrandJob(name, by_slug[s], pool, out, size, train_clean, train_wild, queries, seed,
                           background_size) for s in sorted(slugs)]
    wrap = progress or (lambda iterable, **_: iterable)
    written: dict[str, list[str]] = {name: [] for name in splits}
    skipped: list[tuple[str, str]] = []
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(wrap(pool.map(_run_job, jobs, chunksize=8), total=len(jobs), desc="brands"))
    else:
        results = [_run_job(job) for job in wrap(jobs, total=len(jobs), desc="brands")]
    for job, error in zip(jobs, results):
        if error is None:
            written[job.split].append(job.brand.slug)
        else:
            warnings.warn(f"skipping brand {job.brand.slug!r}: {error}", LogoDatasetWarning, stacklevel=2)
            skipped.append((job.brand.slug, error))
    used = sorted(s for names in written.values() for s in names)
    record = {
        "generator": "vision.data.brands.write_brand_dataset",
        "packages": {n: _package_version(n) for n in ("simple-icons-pack", "resvg-py", "albumentations")},
        "parameters": dict(size=size, train_clean=train_clean, train_wild=train_wild, queries=queries, seed=seed,
                           max_brands=max_brands, background_size=background_size,
                           backgrounds=[str(b) for b in backgrounds],
                           val_backgrounds=[str(b) for b in (val_backgrounds or backgrounds)]),
        "split": split,
        "brands": {name: sorted(slugs) for name, slugs in written.items()},
        "titles": {s: by_slug[s].title for s in used},
        "licenses": {s: by_slug[s].license for s in used if by_slug[s].license},
        "skipped": [list(s) for s in skipped],
    }
    (out / "brands.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return {"out_dir": str(out), "brands": {k: len(v) for k, v in written.items()}, "skipped": skipped}


@dataclass(frozen=True)
class _BrandJob:
    """One brand's images to write (picklable, for the worker processes)."""

    split: str
    brand: Brand
    photos: list[Path]
    out: Path
    size: int
    train_clean: int
    train_wild: int
    queries: int
    seed: int
    background_size: int


_CLEAN_COLORS: tuple[tuple[int, int, int] | None, ...] = (None, (0, 0, 0), (255, 255, 255))


def _run_job(job: _BrandJob) -> str | None:
    """Write one brand's images; returns why it was skipped, or ``None``."""
    rng = np.random.default_rng([job.seed, int(_unit_hash(job.seed, "brand", job.brand.slug) * 2**62)])
    try:
        if job.split == "train":
            folder = job.out / "train" / job.brand.slug
            clean = [canonical_logo(job.brand, job.size, color=_clean_color(i, rng)) for i in range(job.train_clean)]
            wild = _wild(job, job.train_wild, rng)
            _save_all(folder, [("clean", clean), ("wild", wild)])
        else:
            _save_all(job.out / job.split / "gallery" / job.brand.slug,
                      [("canonical", [canonical_logo(job.brand, job.size)])])
            _save_all(job.out / job.split / "query" / job.brand.slug, [("wild", _wild(job, job.queries, rng))])
    except LogoRenderError as e:
        return e.reason
    return None


def _clean_color(index: int, rng: np.random.Generator) -> tuple[int, int, int] | None:
    if index < len(_CLEAN_COLORS):
        return _CLEAN_COLORS[index]
    return tuple(int(c) for c in rng.integers(0, 256, size=3))


def _wild(job: _BrandJob, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    crops: list[np.ndarray] = []
    for _ in range(count * 4):   # a logo that finds no place is retried on another photo
        if len(crops) == count:
            break
        background = _background(job.photos, rng, job.background_size)
        crop = wild_logo_crop(job.brand, background, rng, job.size)
        if crop is not None:
            crops.append(crop)
    return crops


def _background(photos: list[Path], rng: np.random.Generator, size: int) -> np.ndarray:
    for _ in range(20):
        path = photos[int(rng.integers(len(photos)))]
        try:
            return random_resized_background(load_image(path, draft_size=size), size, rng)
        except ImageLoadError:
            continue
    raise ValueError(f"20 background photos in a row were unreadable (last: {path})")


def _save_all(folder: Path, groups: list[tuple[str, list[np.ndarray]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, images in groups:
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{prefix}_{i:02d}.jpg", quality=_JPEG_QUALITY)


def _photos(folders: Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    photos = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"background folder {folder} does not exist")
        photos += list_images(folder)
    if not photos:
        raise ValueError(f"no images under the background folders {[str(f) for f in folders]}")
    return photos


# ---------------------------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------------------------

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

    Example::

        dm = BrandDataModule(train="runs/brands/train", val="runs/brands/val", input_size=96)
    """

    def __init__(self, train: str, val: str | None = None, test: str | None = None, m_per_class: int = 4,
                 batch_size: int = 128, eval_batch_size: int | None = None, train_preset: str = "logo",
                 input_size: int = 96, crop_pct: float = 1.0, mean: tuple[float, float, float] = IMAGENET_MEAN,
                 std: tuple[float, float, float] = IMAGENET_STD, interpolation: str = "bilinear",
                 epoch_length: int | None = None, num_workers: int | None = None):
        super().__init__()
        self.save_hyperparameters()
        if m_per_class < 2 or batch_size % m_per_class:
            raise ValueError(f"batch_size ({batch_size}) must be a multiple of m_per_class ({m_per_class}) and "
                             "m_per_class >= 2")
        self.preprocessing = Preprocessing(input_size, crop_pct, tuple(mean), tuple(std), interpolation)
        build_train_transform(train_preset, self.preprocessing)   # fail on a bad preset now
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
                                                                        self.preprocessing),
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
