"""The YOLO logo-detection dataset: real brand marks (simple-icons) pasted onto photos, boxes exact.

Example::

    summary = write_yolo_dataset("out/logos", "photos/train", train_images=1000, val_images=200)
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import yaml
from PIL import Image

from vision.data.io import ImageLoadError, list_images, load_image
from vision.synth.catalog import Brand, list_brands, split_brands, unit_hash
from vision.synth.composite import SCALE_RANGE, composite_logos, random_resized_background
from vision.synth.record import RECORD_NAME, LogoDatasetWarning, package_versions, write_record
from vision.synth.render import LogoRenderError, check_renderable, random_logo_style, render_logo

__all__ = ["MODES", "LogoDatasetSummary", "find_images", "write_yolo_dataset"]

MODES: tuple[str, ...] = ("agnostic", "per_brand")
_JPEG_QUALITY = 90


@dataclass
class LogoDatasetSummary:
    """What :func:`write_yolo_dataset` wrote, per image split.

    ``brands_available`` counts the brands an image split could draw, ``brands_used`` those that ended up visible
    in at least one image; ``skipped_*`` list ``(slug or path, reason)``.
    """

    out_dir: Path
    mode: str
    names: dict[int, str]
    images: dict[str, int] = field(default_factory=dict)
    background_only: dict[str, int] = field(default_factory=dict)
    logos_pasted: dict[str, int] = field(default_factory=dict)
    brands_available: dict[str, int] = field(default_factory=dict)
    brands_used: dict[str, int] = field(default_factory=dict)
    skipped_svgs: list[tuple[str, str]] = field(default_factory=list)
    skipped_backgrounds: list[tuple[str, str]] = field(default_factory=list)


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively, by extension), sorted so runs are reproducible."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"background folder {root} does not exist")
    return list_images(root)


def write_yolo_dataset(out_dir: str | os.PathLike, backgrounds: str | os.PathLike, *,
                       val_backgrounds: str | os.PathLike | None = None, train_images: int = 1000,
                       val_images: int = 200, imgsz: int = 416, mode: str = "agnostic",
                       brands: Sequence[Brand] | None = None, max_brands: int | None = None,
                       logos_per_image: tuple[int, int] = (1, 4), seed: int = 0,
                       split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
                       background_only_fraction: float = 0.05, overwrite: bool = False,
                       progress: Callable[..., Iterable] | None = None) -> LogoDatasetSummary:
    """Write an ultralytics YOLO detection dataset of brand logos pasted on photos under ``out_dir``.

    Layout: ``images/{train,val}/*.jpg``, ``labels/{train,val}/*.txt`` (``class cx cy w h``, normalised),
    ``data.yaml`` and ``brands.json`` (the brand split, the brands used, licences and every generation parameter).

    Brands (default: all of :func:`list_brands`) are split by :func:`split_brands` with ``seed``. In ``agnostic``
    mode (one class, ``logo``) train images only show train-split brands and val images only val-split brands, so
    val measures unseen brands and test brands stay unseen for later work. In ``per_brand`` mode the classes are the
    train-split brands and both image splits show them (a closed-set detector needs its classes in val too).
    ``max_brands`` caps the brands drawn from each split used (a seeded choice). Backgrounds are every image under
    ``backgrounds`` (``val_backgrounds`` for val, if given), random-resized-cropped to ``imgsz x imgsz``; about
    ``background_only_fraction`` of the images get no logo and an empty label file.

    Output depends only on the arguments: the same seed gives byte-identical files. Broken SVGs and unreadable
    backgrounds are skipped with a :class:`LogoDatasetWarning` and listed in the returned summary.
    ``progress`` wraps the per-image loop, e.g. ``tqdm``; it is called as ``progress(iterable, total=n, desc=split)``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    low, high = logos_per_image
    if not 1 <= low <= high:
        raise ValueError(f"logos_per_image must be (low, high) with 1 <= low <= high, got {logos_per_image}")
    if imgsz < 32:
        raise ValueError(f"imgsz must be >= 32, got {imgsz}")
    if max_brands is not None and max_brands < 1:
        raise ValueError(f"max_brands must be >= 1, got {max_brands}")
    if train_images < 0 or val_images < 0:
        raise ValueError("train_images and val_images must be >= 0")
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)

    catalogue = list(brands) if brands is not None else list_brands()
    by_slug = {b.slug: b for b in catalogue}
    split = split_brands(catalogue, split_fractions, seed)
    summary = LogoDatasetSummary(out_dir=out, mode=mode, names={})
    if mode == "agnostic":
        pools = {name: _pick_brands(split[name], by_slug, seed, max_brands, summary) for name in ("train", "val")}
        summary.names = {0: "logo"}
    else:
        classes = sorted(_pick_brands(split["train"], by_slug, seed, max_brands, summary))
        pools = {"train": classes, "val": classes}
        summary.names = dict(enumerate(classes))
    class_ids = {slug: i for i, slug in enumerate(summary.names.values())} if mode == "per_brand" else None

    background_dirs = {"train": backgrounds, "val": val_backgrounds if val_backgrounds is not None else backgrounds}
    counts = {"train": train_images, "val": val_images}
    used: dict[str, set[str]] = {"train": set(), "val": set()}
    render_side = math.ceil(SCALE_RANGE[1] * imgsz)   # the compositor then only ever scales renders down
    wrap = progress or (lambda iterable, **_: iterable)
    for split_index, split_name in enumerate(("train", "val")):
        n_images = counts[split_name]
        summary.images[split_name] = summary.background_only[split_name] = summary.logos_pasted[split_name] = 0
        summary.brands_available[split_name] = len(pools[split_name])
        (out / "images" / split_name).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split_name).mkdir(parents=True, exist_ok=True)
        if n_images == 0:
            continue
        if not pools[split_name]:
            raise ValueError(f"no usable brands in the {split_name!r} brand split ({len(catalogue)} brands given); "
                             "pass more brands or use mode='per_brand'")
        photos = find_images(background_dirs[split_name])
        for index in wrap(range(n_images), total=n_images, desc=split_name):
            # one generator per image: any image can be regenerated alone, and a change to one leaves the rest
            rng = np.random.default_rng([seed, split_index, index])
            photo = _load_background(photos, rng, imgsz, summary, background_dirs[split_name])
            drawn: list[Brand] = []
            logos: list[tuple[np.ndarray, int]] = []
            if rng.random() >= background_only_fraction:
                count = min(int(rng.integers(low, high + 1)), len(pools[split_name]))
                for slug in rng.choice(pools[split_name], size=count, replace=False):
                    brand = by_slug[str(slug)]
                    style = random_logo_style(brand, rng)
                    try:
                        rgba = render_logo(brand, render_side, color=style.color, background=style.background)
                    except LogoRenderError as e:  # it rendered when checked, at another size: rare
                        _skip_svg(summary, e)
                        pools[split_name].remove(brand.slug)
                        continue
                    # the compositor's class id is the index into `drawn`, so each box maps back to its brand
                    logos.append((rgba, len(drawn)))
                    drawn.append(brand)
            # background-only images are degraded too, or "clean image" would tell the detector "no logo"
            image, boxes = composite_logos(photo, logos, rng)
            for row in boxes:
                used[split_name].add(drawn[row[0]].slug)
                row[0] = class_ids[drawn[row[0]].slug] if class_ids is not None else 0
            stem = f"{split_name}_{index:06d}"
            Image.fromarray(image).save(out / "images" / split_name / f"{stem}.jpg", quality=_JPEG_QUALITY)
            (out / "labels" / split_name / f"{stem}.txt").write_text(_yolo_lines(boxes, imgsz, imgsz))
            summary.images[split_name] += 1
            summary.logos_pasted[split_name] += len(boxes)
            summary.background_only[split_name] += int(len(boxes) == 0)
        summary.brands_used[split_name] = len(used[split_name])

    _write_metadata(out, summary, split, pools, used, by_slug, dict(
        seed=seed, mode=mode, imgsz=imgsz, train_images=train_images, val_images=val_images,
        max_brands=max_brands, logos_per_image=[low, high], split_fractions=list(split_fractions),
        background_only_fraction=background_only_fraction,
        backgrounds=str(backgrounds), val_backgrounds=None if val_backgrounds is None else str(val_backgrounds)))
    return summary


def _pick_brands(slugs: list[str], by_slug: dict[str, Brand], seed: int, max_brands: int | None,
                 summary: LogoDatasetSummary) -> list[str]:
    """Up to ``max_brands`` renderable brands of ``slugs`` in a seeded order; broken SVGs are skipped and recorded.

    Checking before generation keeps the class list free of brands that cannot be drawn.
    """
    chosen = []
    for slug in sorted(slugs, key=lambda s: unit_hash(seed, "pick", s)):
        if max_brands is not None and len(chosen) == max_brands:
            break
        try:
            # parse and draw once, small: a full render_logo would cost seconds over the whole catalogue
            check_renderable(by_slug[slug])
        except LogoRenderError as e:
            _skip_svg(summary, e)
            continue
        chosen.append(slug)
    return chosen


def _skip_svg(summary: LogoDatasetSummary, error: LogoRenderError) -> None:
    warnings.warn(f"skipping brand {error.name!r}: {error.reason}", LogoDatasetWarning, stacklevel=3)
    summary.skipped_svgs.append((error.name, error.reason))


def _load_background(photos: list[Path], rng: np.random.Generator, imgsz: int, summary: LogoDatasetSummary,
                     folder) -> np.ndarray:
    """A random readable photo from ``photos``, cropped to ``imgsz``; unreadable ones are dropped from the list."""
    while photos:
        index = int(rng.integers(len(photos)))
        try:
            image = load_image(photos[index], draft_size=imgsz)
        except ImageLoadError as e:
            warnings.warn(f"skipping background {e.path}: {e.reason}", LogoDatasetWarning, stacklevel=3)
            summary.skipped_backgrounds.append((e.path, e.reason))
            del photos[index]
            continue
        return random_resized_background(image, imgsz, rng)
    raise ValueError(f"no readable background images under {folder}")


def _yolo_lines(boxes: np.ndarray, width: int, height: int) -> str:
    lines = []
    for class_id, x1, y1, x2, y2 in boxes.tolist():
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        lines.append(f"{class_id} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n")
    return "".join(lines)


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    ours = [out / "images", out / "labels", out / "data.yaml", out / RECORD_NAME]
    existing = [p for p in ours if p.exists()]
    if existing and not overwrite:
        # stale images from a bigger earlier run would silently join the new dataset
        raise FileExistsError(f"{out} already holds a dataset ({', '.join(p.name for p in existing)}); "
                              "pass overwrite=True (--overwrite) to replace it")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _write_metadata(out: Path, summary: LogoDatasetSummary, split: dict[str, list[str]],
                    pools: dict[str, list[str]], used: dict[str, set[str]], by_slug: dict[str, Brand],
                    parameters: dict) -> None:
    # ultralytics resolves a relative `path` against its own datasets folder, not this file: write it absolute
    data = {"path": str(out.resolve()), "train": "images/train", "val": "images/val", "names": summary.names}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    available = sorted(set(pools["train"]) | set(pools["val"]))
    record = {
        "generator": "vision.synth.yolo.write_yolo_dataset",
        "packages": package_versions(),
        "parameters": parameters,
        "split": split,
        "available": {name: sorted(pools[name]) for name in ("train", "val")},   # what each image split drew from
        "used": {name: sorted(used[name]) for name in ("train", "val")},         # visible in at least one image
        "names": {str(k): v for k, v in summary.names.items()},
        "titles": {slug: by_slug[slug].title for slug in available},
        "licenses": {slug: by_slug[slug].license for slug in available if by_slug[slug].license},
        "counts": {"images": summary.images, "background_only": summary.background_only,
                   "logos_pasted": summary.logos_pasted},
        "skipped_svgs": [list(s) for s in summary.skipped_svgs],
        "skipped_backgrounds": [list(s) for s in summary.skipped_backgrounds],
    }
    write_record(out, record)
