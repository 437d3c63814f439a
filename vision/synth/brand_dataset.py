"""The brand metric-learning dataset from simple-icons: clean renders and logos in the wild, by brand split.

Layout written by :func:`write_brand_dataset` (read by :class:`vision.data.brands.BrandDataModule`)::

    out/train/<slug>/*.jpg            train brands: clean renders + logos "in the wild"
    out/{val,test}/gallery/<slug>/    unseen brands: clean canonical renders (what a gallery is built from)
    out/{val,test}/query/<slug>/      the same unseen brands composited onto product photos and cropped
    out/brands.json                   the brand split, titles, licences, parameters

Logos in the wild are the detector data's rendering and compositing (:func:`vision.synth.composite.wild_logo_crop`);
a query is the square crop around the composited logo's box (:func:`vision.crops.square_crop`), the same crop the
recogniser takes around a detected box, so training, evaluation and inference see logos framed alike.
"""

from __future__ import annotations

import os
import shutil
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from vision.data.io import ImageLoadError, list_images, load_image
from vision.synth.catalog import Brand, Color, list_brands, split_brands, unit_hash
from vision.synth.composite import random_resized_background, wild_logo_crop
from vision.synth.record import LogoDatasetWarning, package_versions, write_record
from vision.synth.render import LogoRenderError, canonical_logo

__all__ = ["write_brand_dataset"]

_JPEG_QUALITY = 92


def write_brand_dataset(out_dir: str | os.PathLike, backgrounds: Sequence[str | os.PathLike], *,
                        val_backgrounds: Sequence[str | os.PathLike] | None = None, size: int = 96,
                        train_clean: int = 2, train_wild: int = 6, queries: int = 3,
                        splits: Sequence[str] = ("train", "val", "test"), max_brands: int | None = None,
                        brands: Sequence[Brand] | None = None, seed: int = 0, background_size: int = 224,
                        workers: int = 1, overwrite: bool = False,
                        progress: Callable[..., Iterable] | None = None) -> dict:
    """Write the simple-icons metric-learning set under ``out_dir`` (layout in the module docstring).

    Brands are split by :func:`vision.synth.catalog.split_brands` with ``seed`` (the detector data's split, so test
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
        slugs = sorted(split[name], key=lambda s: unit_hash(seed, "brand-pick", s))[:max_brands]
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
        "generator": "vision.synth.brand_dataset.write_brand_dataset",
        "packages": package_versions(),
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
    write_record(out, record)
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


_CLEAN_COLORS: tuple[Color | None, ...] = (None, (0, 0, 0), (255, 255, 255))


def _run_job(job: _BrandJob) -> str | None:
    """Write one brand's images; returns why it was skipped, or ``None``."""
    rng = np.random.default_rng([job.seed, int(unit_hash(job.seed, "brand", job.brand.slug) * 2**62)])
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


def _clean_color(index: int, rng: np.random.Generator) -> Color | None:
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
