"""The YOLO logo-detection dataset: real brand marks (simple-icons, other icon sets) pasted onto photos, boxes exact.

Example::

    summary = write_yolo_dataset("out/logos", "photos/train", train_images=1000, val_images=200)
    # several artwork styles, print conditions, brand-free photos as hard negatives
    sets = training_styles(load_icon_sets("runs/iconify"))
    write_yolo_dataset("out/styles", "photos/train", icon_sets=sets, print_conditions=PRINT_CONDITIONS,
                       negatives="photos/train", negative_fraction=0.15)
    # cross-style val: test-split brands in the held-out style only
    write_yolo_dataset("out/xstyle", "photos/val", train_images=0, val_images=300, val_brand_split="test",
                       val_icon_sets=load_icon_sets("runs/iconify", EVAL_STYLES), negatives="photos/val",
                       negative_fraction=0.25)
"""

from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import yaml
from PIL import Image

from vision.data.io import ImageLoadError, list_images, load_image
from vision.synth.catalog import Brand, list_brands, split_brands, unit_hash
from vision.synth.composite import SCALE_RANGE, PrintConditions, composite_logos, random_resized_background
from vision.synth.record import RECORD_NAME, LogoDatasetWarning, clear_outputs, package_versions, write_record
from vision.synth.render import LogoRenderError, check_renderable, random_logo_style, render_logo
from vision.synth.styles import EVAL_STYLES, IconSet, StyleIcon, icon_svg, style_catalogue

__all__ = ["MODES", "LogoDatasetSummary", "find_images", "write_yolo_dataset"]

MODES: tuple[str, ...] = ("agnostic", "per_brand")
SIMPLE_ICONS = "simple-icons"   # the style name of the simple-icons renders in counts and records
_JPEG_QUALITY = 90


@dataclass
class LogoDatasetSummary:
    """What :func:`write_yolo_dataset` wrote, per image split.

    ``brands_available`` counts the brands an image split could draw, ``brands_used`` those that ended up visible
    in at least one image; ``background_only`` counts the images with an empty label file, ``hard_negatives`` those
    of them that are whole brand-free photos; ``styles_used`` counts visible logos per artwork style;
    ``skipped_*`` list ``(slug, icon, file or path, reason)``.
    """

    out_dir: Path
    mode: str
    names: dict[int, str]
    images: dict[str, int] = field(default_factory=dict)
    background_only: dict[str, int] = field(default_factory=dict)
    hard_negatives: dict[str, int] = field(default_factory=dict)
    styles_used: dict[str, dict[str, int]] = field(default_factory=dict)
    logos_pasted: dict[str, int] = field(default_factory=dict)
    brands_available: dict[str, int] = field(default_factory=dict)
    brands_used: dict[str, int] = field(default_factory=dict)
    skipped_svgs: list[tuple[str, str]] = field(default_factory=list)
    skipped_backgrounds: list[tuple[str, str]] = field(default_factory=list)


def find_images(folder: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Image files under ``folder`` (or each of several folders; recursively, by extension), sorted so runs are
    reproducible. An image file in the list is taken as itself (e.g. mined hard negatives,
    :mod:`vision.synth.mined`)."""
    folders = [folder] if isinstance(folder, (str, os.PathLike)) else list(folder)
    images = []
    for root in map(Path, folders):
        if root.is_file():
            images.append(root)
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"background folder {root} does not exist")
        images += list_images(root)
    return sorted(set(images))


PathArg = str | os.PathLike | Sequence[str | os.PathLike]


def write_yolo_dataset(out_dir: str | os.PathLike, backgrounds: PathArg, *,
                       val_backgrounds: PathArg | None = None, train_images: int = 1000,
                       val_images: int = 200, imgsz: int = 416, mode: str = "agnostic",
                       brands: Sequence[Brand] | None = None, max_brands: int | None = None,
                       logos_per_image: tuple[int, int] = (1, 4), seed: int = 0,
                       split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
                       background_only_fraction: float = 0.05, icon_sets: Mapping[str, IconSet] | None = None,
                       style_fraction: float = 0.5, val_icon_sets: Mapping[str, IconSet] | None = None,
                       val_brand_split: str = "val", negatives: PathArg | None = None,
                       val_negatives: PathArg | None = None, negative_fraction: float = 0.0,
                       print_conditions: PrintConditions | None = None, overwrite: bool = False,
                       progress: Callable[..., Iterable] | None = None,
                       record_extra: Mapping | None = None, wordmark_fraction: float = 0.0,
                       fonts: Sequence | None = None) -> LogoDatasetSummary:
    """Write an ultralytics YOLO detection dataset of brand logos pasted on photos under ``out_dir``.

    Layout: ``images/{train,val}/*.jpg``, ``labels/{train,val}/*.txt`` (``class cx cy w h``, normalised),
    ``data.yaml`` and ``brands.json`` (the brand split, the brands used, licences and every generation parameter).

    Brands (default: all of :func:`list_brands`) are split by :func:`split_brands` with ``seed``. In ``agnostic``
    mode (one class, ``logo``) train images only show train-split brands and val images only val-split brands, so
    val measures unseen brands and test brands stay unseen for later work. In ``per_brand`` mode the classes are the
    train-split brands and both image splits show them (a closed-set detector needs its classes in val too).
    ``max_brands`` caps the brands drawn from each split used (a seeded choice). Backgrounds are every image under
    ``backgrounds`` (``val_backgrounds`` for val, if given; a folder or a list of folders), random-resized-cropped
    to ``imgsz x imgsz``; about ``background_only_fraction`` of the images get no logo and an empty label file.

    Artwork styles: with ``icon_sets`` (Iconify sets, :mod:`vision.synth.styles`; the held-out
    :data:`~vision.synth.styles.EVAL_STYLES` are refused) a ``style_fraction`` of the logos are brands a set
    matches by name, drawn as one of their icons in a random set; the rest are simple-icons renders.
    ``val_icon_sets`` makes a cross-style val split: val images draw only brands those sets have, only in those
    styles, from the ``val_brand_split`` brand split (``"test"``: brands never used for training anything).
    Hard negatives: about ``negative_fraction`` of the images are whole brand-free photos from ``negatives``
    (``val_negatives`` for val; default ``negatives``) with an empty label file. ``print_conditions``
    (:class:`~vision.synth.composite.PrintConditions`): curved packaging, glare, low contrast, small size, blur
    and stickers while compositing.

    Output depends only on the arguments: the same seed gives byte-identical files. Broken SVGs and unreadable
    backgrounds are skipped with a :class:`LogoDatasetWarning` and listed in the returned summary.
    ``progress`` wraps the per-image loop, e.g. ``tqdm``; it is called as ``progress(iterable, total=n, desc=split)``.
    ``record_extra``: more generation parameters for ``brands.json`` (e.g. how hard negatives were mined).
    Wordmarks: with ``fonts`` (:func:`vision.synth.wordmarks.load_fonts`) a ``wordmark_fraction`` of the logos are
    the brand's title set in one of them (:func:`~vision.synth.wordmarks.wordmark_variants`), half of them as a
    lockup beside or under the brand's simple-icons mark (one box), counted as the style ``wordmark``; a title no
    font covers falls back to the other styles. Not in a styles-only (cross-style) val split.
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
    if not 0.0 <= negative_fraction <= 1.0 or not 0.0 <= style_fraction <= 1.0:
        raise ValueError(f"negative_fraction and style_fraction must be in [0, 1], got {negative_fraction}, "
                         f"{style_fraction}")
    if not 0.0 <= wordmark_fraction <= 1.0 or (wordmark_fraction > 0 and not fonts):
        raise ValueError(f"wordmark_fraction must be in [0, 1] and needs fonts, got {wordmark_fraction}")
    if negative_fraction > 0 and negatives is None:
        raise ValueError("negative_fraction > 0 needs a folder of brand-free photos (negatives=, --negatives)")
    held_out = sorted(set(icon_sets or ()) & set(EVAL_STYLES))
    if held_out:
        raise ValueError(f"icon set(s) {held_out} are the held-out evaluation style (EVAL_STYLES) and may not be "
                         "used for training images; pass them as val_icon_sets for a cross-style val split")
    if val_brand_split not in ("train", "val", "test"):
        raise ValueError(f"val_brand_split must be train, val or test, got {val_brand_split!r}")
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)

    catalogue = list(brands) if brands is not None else list_brands()
    by_slug = {b.slug: b for b in catalogue}
    split = split_brands(catalogue, split_fractions, seed)
    summary = LogoDatasetSummary(out_dir=out, mode=mode, names={})
    styles = {"train": _styles(icon_sets, catalogue), "val": _styles(icon_sets, catalogue)}
    if val_icon_sets is not None:
        styles["val"] = _styles(val_icon_sets, catalogue)
    if mode == "agnostic":
        brand_splits = {"train": split["train"], "val": split[val_brand_split]}
        if val_icon_sets is not None:
            brand_splits["val"] = [slug for slug in brand_splits["val"] if slug in styles["val"]]
        pools = {name: _pick_brands(brand_splits[name], by_slug, seed, max_brands, summary,
                                    styles[name] if name == "val" and val_icon_sets is not None else None)
                 for name in ("train", "val")}
        summary.names = {0: "logo"}
    else:
        classes = sorted(_pick_brands(split["train"], by_slug, seed, max_brands, summary))
        pools = {"train": classes, "val": classes}
        summary.names = dict(enumerate(classes))
    class_ids = {slug: i for i, slug in enumerate(summary.names.values())} if mode == "per_brand" else None

    background_dirs = {"train": backgrounds, "val": val_backgrounds if val_backgrounds is not None else backgrounds}
    negative_dirs = {"train": negatives, "val": val_negatives if val_negatives is not None else negatives}
    counts = {"train": train_images, "val": val_images}
    used: dict[str, set[str]] = {"train": set(), "val": set()}
    styled_pools: dict[str, list[str]] = {}   # the brands of each pool that another artwork style has
    render_side = math.ceil(SCALE_RANGE[1] * imgsz)   # the compositor then only ever scales renders down
    wrap = progress or (lambda iterable, **_: iterable)
    for split_index, split_name in enumerate(("train", "val")):
        n_images = counts[split_name]
        summary.images[split_name] = summary.background_only[split_name] = summary.logos_pasted[split_name] = 0
        summary.hard_negatives[split_name] = 0
        style_counts: Counter = Counter()
        summary.brands_available[split_name] = len(pools[split_name])
        (out / "images" / split_name).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split_name).mkdir(parents=True, exist_ok=True)
        if n_images == 0:
            continue
        if not pools[split_name]:
            raise ValueError(f"no usable brands in the {split_name!r} brand split ({len(catalogue)} brands given); "
                             "pass more brands or use mode='per_brand'")
        styled_pools[split_name] = [slug for slug in pools[split_name] if slug in styles[split_name]]
        photos = find_images(background_dirs[split_name])
        negative_photos = find_images(negative_dirs[split_name]) if negative_fraction > 0 else []
        only_styles = split_name == "val" and val_icon_sets is not None
        for index in wrap(range(n_images), total=n_images, desc=split_name):
            # one generator per image: any image can be regenerated alone, and a change to one leaves the rest
            rng = np.random.default_rng([seed, split_index, index])
            # (drawn only when asked for, so datasets without negatives stay as they were)
            hard_negative = negative_fraction > 0 and rng.random() < negative_fraction
            if hard_negative:
                photo = _load_background(negative_photos, rng, imgsz, summary, negative_dirs[split_name])
            else:
                photo = _load_background(photos, rng, imgsz, summary, background_dirs[split_name])
            drawn: list[tuple[Brand, str]] = []
            logos: list[tuple[np.ndarray, int]] = []
            if not hard_negative and rng.random() >= background_only_fraction:
                count = min(int(rng.integers(low, high + 1)), len(pools[split_name]))
                for slug, styled in _draw_brands(pools[split_name], styled_pools[split_name], count, rng,
                                                 1.0 if only_styles else style_fraction):
                    brand = by_slug[slug]
                    try:
                        # (drawn only when asked for, so datasets without wordmarks stay as they were)
                        wordmark = (wordmark_fraction > 0 and not only_styles and rng.random() < wordmark_fraction
                                    and _render_wordmark(brand, fonts, render_side, rng))
                        rgba, style_name = wordmark or _render_brand(
                            brand, styles[split_name].get(slug) if styled else None, render_side, rng,
                            fallback=not only_styles)
                    except LogoRenderError as e:  # it rendered when checked, at another size: rare
                        _skip_svg(summary, e)
                        pools[split_name].remove(brand.slug)
                        continue
                    # the compositor's class id is the index into `drawn`, so each box maps back to its brand
                    logos.append((rgba, len(drawn)))
                    drawn.append((brand, style_name))
            # background-only images are degraded too, or "clean image" would tell the detector "no logo"
            image, boxes = composite_logos(photo, logos, rng, print_conditions=print_conditions)
            for row in boxes:
                brand, style_name = drawn[row[0]]
                used[split_name].add(brand.slug)
                style_counts[style_name] += 1
                row[0] = class_ids[brand.slug] if class_ids is not None else 0
            stem = f"{split_name}_{index:06d}"
            Image.fromarray(image).save(out / "images" / split_name / f"{stem}.jpg", quality=_JPEG_QUALITY)
            (out / "labels" / split_name / f"{stem}.txt").write_text(_yolo_lines(boxes, imgsz, imgsz))
            summary.images[split_name] += 1
            summary.logos_pasted[split_name] += len(boxes)
            summary.background_only[split_name] += int(len(boxes) == 0)
            summary.hard_negatives[split_name] += int(hard_negative)
        summary.brands_used[split_name] = len(used[split_name])
        summary.styles_used[split_name] = dict(sorted(style_counts.items()))

    _write_metadata(out, summary, split, pools, used, by_slug, dict(
        seed=seed, mode=mode, imgsz=imgsz, train_images=train_images, val_images=val_images,
        max_brands=max_brands, logos_per_image=[low, high], split_fractions=list(split_fractions),
        background_only_fraction=background_only_fraction,
        backgrounds=_path_record(backgrounds), val_backgrounds=_path_record(val_backgrounds),
        icon_sets=sorted(icon_sets or ()), style_fraction=style_fraction,
        val_icon_sets=None if val_icon_sets is None else sorted(val_icon_sets), val_brand_split=val_brand_split,
        negatives=_path_record(negatives), val_negatives=_path_record(val_negatives),
        negative_fraction=negative_fraction,
        print_conditions=None if print_conditions is None else vars(print_conditions),
        **({"wordmark_fraction": wordmark_fraction, "fonts": {f.key: f.record() for f in fonts}}
           if wordmark_fraction > 0 else {}), **(record_extra or {})),
        {**(icon_sets or {}), **(val_icon_sets or {})})
    return summary


def _path_record(paths: PathArg | None):
    if paths is None:
        return None
    return str(paths) if isinstance(paths, (str, os.PathLike)) else [str(p) for p in paths]


def _styles(icon_sets: Mapping[str, IconSet] | None, brands: Sequence[Brand]) -> dict[str, dict[str, list[StyleIcon]]]:
    """``{slug: {prefix: [icons]}}`` for the brands the sets match by name (nothing without sets)."""
    return style_catalogue(icon_sets, brands)[0] if icon_sets else {}


def _draw_brands(pool: list[str], styled_pool: list[str], count: int, rng: np.random.Generator,
                 style_fraction: float) -> list[tuple[str, bool]]:
    """``count`` distinct slugs of ``pool``, each ``(slug, drawn in another style?)``: a ``style_fraction`` of the
    logos come from ``styled_pool`` (brands another icon set has), so that share holds however few brands it has."""
    if not styled_pool or style_fraction <= 0:
        return [(str(slug), False) for slug in rng.choice(pool, size=count, replace=False)]
    chosen: dict[str, bool] = {}
    for _ in range(count * 10):   # a few redraws when a slug comes twice; small pools may end with fewer logos
        if len(chosen) == count:
            break
        styled = style_fraction >= 1 or rng.random() < style_fraction
        source = styled_pool if styled else pool
        slug = str(source[int(rng.integers(len(source)))])
        if slug not in chosen:
            chosen[slug] = styled
    return list(chosen.items())


def _render_brand(brand: Brand, styles: Mapping[str, Sequence[StyleIcon]] | None, side: int,
                  rng: np.random.Generator, fallback: bool = True) -> tuple[np.ndarray, str]:
    """``(rgba, style name)``: one of ``styles``' icons (a random set, then icon) if given, else a simple-icons
    render in a random colour style. An icon that cannot be drawn falls back to simple-icons with a warning when
    ``fallback``, else raises :class:`LogoRenderError` (a styles-only split must not show simple-icons)."""
    if styles:
        prefix = sorted(styles)[int(rng.integers(len(styles)))]
        icon = styles[prefix][int(rng.integers(len(styles[prefix])))]
        # single-colour icons draw in currentColor: the brand's colour, as a print would
        color = f"#{brand.hex}" if rng.random() < 0.7 else "#000000"
        try:
            return render_logo(icon_svg(icon, color), side), prefix
        except LogoRenderError as e:
            if not fallback:
                raise LogoRenderError(brand.slug, f"{icon.key}: {e.reason}") from None
            warnings.warn(f"skipping icon {icon.key} of {brand.slug!r}: {e.reason}", LogoDatasetWarning,
                          stacklevel=3)
    style = random_logo_style(brand, rng)
    return render_logo(brand, side, color=style.color, background=style.background), SIMPLE_ICONS


def _join(a: np.ndarray, b: np.ndarray, gap: int, axis: int) -> np.ndarray:
    """RGBA ``a`` then ``b`` along ``axis`` (1: side by side, 0: one above the other), each centred across it, with
    ``gap`` transparent pixels between."""
    across = 1 - axis
    size = max(a.shape[across], b.shape[across])

    def centred(x):
        pad = size - x.shape[across]
        widths = [(0, 0)] * 3
        widths[across] = (pad // 2, pad - pad // 2)
        return np.pad(x, widths)

    spacer = [0, 0, 4]
    spacer[axis], spacer[across] = gap, size
    return np.concatenate([centred(a), np.zeros(spacer, np.uint8), centred(b)], axis=axis)


def _render_wordmark(brand: Brand, fonts: Sequence, side: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, str] | None:
    """``(rgba, "wordmark")``: the brand's title in a random font, case and colour scheme; half of the time a lockup
    with its simple-icons mark (mark left of or above the text, one box). ``None`` when no font sets the title."""
    from vision.synth.wordmarks import WORDMARK_STYLE, render_wordmark, wordmark_variants

    marks = wordmark_variants(brand, fonts, 1, rng)
    if not marks:
        return None
    text = render_wordmark(marks[0], side)
    if rng.random() < 0.5:
        beside = rng.random() < 0.6
        h, w = text.shape[:2]
        icon_side = max(4, int(h * 1.4) if beside else min(w, int(side * 0.6)))
        style = random_logo_style(brand, rng)
        icon = render_logo(brand, icon_side, color=style.color, background=style.background)
        gap = max(1, int(0.3 * (h if beside else icon.shape[0] * 0.3)))
        lockup = _join(icon, text, gap, axis=1 if beside else 0)
        scale = side / max(lockup.shape[:2])
        if scale < 1:
            import cv2

            size = (max(1, round(lockup.shape[1] * scale)), max(1, round(lockup.shape[0] * scale)))
            lockup = cv2.resize(lockup, size, interpolation=cv2.INTER_AREA)
        text = lockup
    return text, WORDMARK_STYLE


def _pick_brands(slugs: list[str], by_slug: dict[str, Brand], seed: int, max_brands: int | None,
                 summary: LogoDatasetSummary,
                 only_styles: Mapping[str, Mapping[str, Sequence[StyleIcon]]] | None = None) -> list[str]:
    """Up to ``max_brands`` renderable brands of ``slugs`` in a seeded order; broken SVGs are skipped and recorded.

    Checking before generation keeps the class list free of brands that cannot be drawn. With ``only_styles`` a
    brand is drawn only from those styles, so each of its icons there must render (broken ones are dropped).
    """
    chosen = []
    for slug in sorted(slugs, key=lambda s: unit_hash(seed, "pick", s)):
        if max_brands is not None and len(chosen) == max_brands:
            break
        if only_styles is not None:
            kept = _renderable_icons(only_styles.get(slug, {}), slug, summary)
            if kept:
                only_styles[slug] = kept   # (the caller's catalogue: later renders draw from the checked icons)
                chosen.append(slug)
            continue
        try:
            # parse and draw once, small: a full render_logo would cost seconds over the whole catalogue
            check_renderable(by_slug[slug])
        except LogoRenderError as e:
            _skip_svg(summary, e)
            continue
        chosen.append(slug)
    return chosen


def _renderable_icons(styles: Mapping[str, Sequence[StyleIcon]], slug: str,
                      summary: LogoDatasetSummary) -> dict[str, list[StyleIcon]]:
    kept: dict[str, list[StyleIcon]] = {}
    for prefix, icons in styles.items():
        for icon in icons:
            try:
                check_renderable(icon_svg(icon))
            except LogoRenderError as e:
                _skip_svg(summary, LogoRenderError(slug, f"{icon.key}: {e.reason}"))
                continue
            kept.setdefault(prefix, []).append(icon)
    return kept


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
    clear_outputs(out, [out / "images", out / "labels", out / "data.yaml", out / RECORD_NAME], "a dataset", overwrite)


def _write_metadata(out: Path, summary: LogoDatasetSummary, split: dict[str, list[str]],
                    pools: dict[str, list[str]], used: dict[str, set[str]], by_slug: dict[str, Brand],
                    parameters: dict, icon_sets: Mapping[str, IconSet]) -> None:
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
        "icon_sets": {prefix: icon_set.record() for prefix, icon_set in sorted(icon_sets.items())},
        "counts": {"images": summary.images, "background_only": summary.background_only,
                   "hard_negatives": summary.hard_negatives, "logos_pasted": summary.logos_pasted,
                   "styles_used": summary.styles_used},
        "skipped_svgs": [list(s) for s in summary.skipped_svgs],
        "skipped_backgrounds": [list(s) for s in summary.skipped_backgrounds],
    }
    write_record(out, record)
