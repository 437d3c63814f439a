"""The brand metric-learning dataset: clean renders and logos in the wild, by brand split, in one or many styles.

Layout written by :func:`write_brand_dataset` (read by :class:`vision.data.brands.BrandDataModule`)::

    out/train/<slug>/*.jpg            train brands: clean renders + logos "in the wild"
    out/{val,test}/gallery/<slug>/    unseen brands: clean canonical renders (what a gallery is built from)
    out/{val,test}/query/<slug>/      the same unseen brands composited onto product photos and cropped
    out/brands.json                   the brand split, titles, licences, parameters

With ``icon_sets`` (Iconify sets, :mod:`vision.synth.styles`) the set is **cross-style**:

    train/<slug>/                     simple-icons + every training style the brand has, all one class
    {val,test}/gallery/<slug>/        every split brand, in simple-icons and the training styles (several
                                      references per brand)
    {val,test}/query/<slug>/          only brands drawn in a held-out style (``EVAL_STYLES``): that style,
                                      composited on photos; no training image is ever in a held-out style

and file names say what each image is: ``<style>__<icon>__<variant>_<nn>.jpg`` (style ``simple-icons`` with the
brand slug as icon, or an Iconify prefix and icon name; variant ``clean``, ``wild`` or ``canonical``), read back
by :func:`parse_image_name`. ``brands.json`` then records each style's licence and version, how names matched,
and which styles were held out.

With ``wordmarks`` (:mod:`vision.synth.wordmarks`, either layout) each brand's title set as text is one more training
style, ``wordmark``: train brands get that many wordmarks (fonts, letter cases, colours drawn per brand), each one
clean render and ``style_wild`` composites (``wordmark__<font>-<case>-<colours>__clean_00.jpg``); val/test galleries
get ``gallery_wordmarks`` references (the title as written, brand colour). Queries are never wordmark renders.

Logos in the wild are the detector data's rendering and compositing (:func:`vision.synth.composite.wild_logo_crop`);
a query is the square crop around the composited logo's box (:func:`vision.crops.square_crop`), the same crop the
recogniser takes around a detected box, so training, evaluation and inference see logos framed alike.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

from vision.data.io import ImageLoadError, list_images, load_image
from vision.data.style_augment import MarkStyles
from vision.synth.catalog import Brand, Color, list_brands, split_brands, unit_hash
from vision.synth.composite import PRINT_CONDITIONS, PrintConditions, random_resized_background, wild_logo_crop
from vision.synth.record import LogoDatasetWarning, package_versions, write_record
from vision.synth.render import LogoRenderError, canonical_logo, is_monochrome, random_logo_style, render_logo
from vision.synth.styles import EVAL_STYLES, IconSet, StyleIcon, icon_svg, load_icon_sets, style_catalogue
from vision.synth.wordmarks import (
    WORDMARK_STYLE,
    FontError,
    FontFace,
    Wordmark,
    canonical_wordmark,
    gallery_wordmarks,
    load_fonts,
    render_wordmark,
    wordmark_variants,
)

__all__ = ["SIMPLE_ICONS_STYLE", "parse_image_name", "write_brand_dataset"]

SIMPLE_ICONS_STYLE = "simple-icons"
_NAME = re.compile(r"^(?P<style>[a-z0-9-]+)__(?P<icon>.+)__(?P<variant>[a-z]+)_(?P<index>\d+)\.jpg$")

_JPEG_QUALITY = 92


def write_brand_dataset(out_dir: str | os.PathLike, backgrounds: Sequence[str | os.PathLike], *,
                        val_backgrounds: Sequence[str | os.PathLike] | None = None, size: int = 96,
                        train_clean: int = 2, train_wild: int = 6, queries: int = 3,
                        splits: Sequence[str] = ("train", "val", "test"), max_brands: int | None = None,
                        brands: Sequence[Brand] | None = None, seed: int = 0, background_size: int = 224,
                        workers: int = 1, overwrite: bool = False,
                        icon_sets: str | os.PathLike | dict[str, IconSet] | None = None,
                        eval_styles: Sequence[str] = EVAL_STYLES, style_clean: int = 1, style_wild: int = 3,
                        icons_per_style: int = 2, print_conditions: PrintConditions | None = PRINT_CONDITIONS,
                        wordmarks: int = 0, gallery_wordmark_count: int = 2,
                        fonts: str | os.PathLike | Sequence[FontFace] | None = None,
                        mark_styles: MarkStyles | Mapping[str, float] | str | None = None,
                        progress: Callable[..., Iterable] | None = None) -> dict:
    """Write the brand metric-learning set under ``out_dir`` (layout in the module docstring).

    Brands are split by :func:`vision.synth.catalog.split_brands` with ``seed`` (the detector data's split, so test
    brands stay unseen by both). Train brands get ``train_clean`` clean renders (brand colour, then black, white
    ...) and ``train_wild`` composites on ``backgrounds``; val/test brands get one canonical render (gallery) and
    ``queries`` composites on ``val_backgrounds`` (default: ``backgrounds``). ``max_brands`` caps each split.
    Each brand is generated from its own seeded generator, so the output depends only on the arguments and any
    brand can be regenerated alone. Brands whose SVG does not render are skipped with a warning.

    ``icon_sets`` (a folder of Iconify sets, or loaded sets) makes it cross-style: each train brand also gets, for
    up to ``icons_per_style`` icons of every training style it has (wordmark and icon variants first),
    ``style_clean`` clean renders and ``style_wild`` composites; val/test galleries hold every training-style
    render; val/test queries are ``queries`` composites of the ``eval_styles`` icons (cycling through a brand's
    icons and wordmarks) and exist only for brands drawn in those styles. ``eval_styles`` never reach train.
    ``print_conditions`` (default on; ``None``: the composites of datasets made before them) go to every
    composite (:class:`vision.synth.composite.PrintConditions`).

    ``wordmarks`` > 0 adds the wordmark style (module docstring): that many per train brand, and
    ``gallery_wordmark_count`` references per val/test brand, in ``fonts`` (faces, or a folder of fetched
    ``@fontsource`` fonts added to the built-in ones; default: the built-in ones). Wordmarks draw from their own
    per-brand generator, so every other image is the same as without them.

    ``mark_styles`` (:class:`vision.data.style_augment.MarkStyles`, a mapping or ``"fill_to_outline=0.2,mono=0.1"``;
    off by default) turns each *training* composite's mark, with those probabilities (at most one per mark), into
    its outline, filled silhouette or one-ink version before it is pasted; marks cut out of or printed on a plate
    and the clean renders stay as they are, and val/test queries never get them.
    """
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    if not isinstance(mark_styles, MarkStyles):
        mark_styles = MarkStyles.parse(mark_styles)
    elif not mark_styles.active:
        mark_styles = None
    if min(train_clean, train_wild, queries, style_clean, style_wild) < 0 or train_clean + train_wild < 2:
        raise ValueError("need train_clean + train_wild >= 2 images per train brand (metric learning needs "
                         f"positive pairs) and non-negative counts, got {train_clean} + {train_wild}")
    unknown = set(splits) - {"train", "val", "test"}
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; choose from train, val, test")
    catalogue = list(brands) if brands is not None else list_brands()
    # inputs are read before anything is written, so a bad --icon-sets or background folder with --overwrite
    # never costs an existing dataset
    styles = _Styles.build(icon_sets, catalogue, eval_styles, icons_per_style) if icon_sets is not None else None
    if wordmarks < 0 or gallery_wordmark_count < 0:
        raise ValueError(f"wordmarks and gallery_wordmark_count must be >= 0, got {wordmarks}, "
                         f"{gallery_wordmark_count}")
    faces = (list(fonts) if isinstance(fonts, (list, tuple)) else load_fonts(fonts)) if wordmarks else []
    photos = {"train": _photos(backgrounds), "eval": _photos(val_backgrounds or backgrounds)}
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    by_slug = {b.slug: b for b in catalogue}
    split = split_brands(catalogue, seed=seed)
    jobs = []
    for name in splits:
        slugs = sorted(split[name], key=lambda s: unit_hash(seed, "brand-pick", s))[:max_brands]
        pool = photos["train" if name == "train" else "eval"]
        jobs += [_BrandJob(name, by_slug[s], pool, out, size, train_clean, train_wild, queries, seed,
                           background_size, style_clean, style_wild, print_conditions,
                           mark_styles=mark_styles if name == "train" else None,
                           train_icons=styles.train_icons.get(s, ()) if styles else (),
                           eval_icons=styles.eval_icons.get(s, ()) if styles else None,
                           wordmarks=_brand_wordmarks(by_slug[s], name, faces, wordmarks, gallery_wordmark_count,
                                                      seed))
                 for s in sorted(slugs)]
    wrap = progress or (lambda iterable, **_: iterable)
    written: dict[str, list[str]] = {name: [] for name in splits}
    skipped: list[tuple[str, str]] = []
    skipped_icons: list[tuple[str, str, str]] = []   # (slug, prefix:icon, reason): the brand keeps its other styles
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(wrap(pool.map(_run_job, jobs, chunksize=8), total=len(jobs), desc="brands"))
    else:
        results = [_run_job(job) for job in wrap(jobs, total=len(jobs), desc="brands")]
    for job, (error, icons_left_out) in zip(jobs, results):
        for key, reason in icons_left_out:
            warnings.warn(f"brand {job.brand.slug!r}: leaving out icon {key}: {reason}", LogoDatasetWarning,
                          stacklevel=2)
            skipped_icons.append((job.brand.slug, key, reason))
        if error is None:
            written[job.split].append(job.brand.slug)
        else:
            warnings.warn(f"skipping brand {job.brand.slug!r}: {error}", LogoDatasetWarning, stacklevel=2)
            skipped.append((job.brand.slug, error))
    used = sorted(s for names in written.values() for s in names)
    parameters = dict(size=size, train_clean=train_clean, train_wild=train_wild, queries=queries, seed=seed,
                      max_brands=max_brands, background_size=background_size,
                      print_conditions=vars(print_conditions) if print_conditions else None,
                      backgrounds=[str(b) for b in backgrounds],
                      val_backgrounds=[str(b) for b in (val_backgrounds or backgrounds)])
    if mark_styles is not None:
        parameters.update(mark_styles={**mark_styles.probabilities(), "outline_width": list(mark_styles.outline_width),
                                       "mono_invert": mark_styles.mono_invert})
    if styles is not None:
        parameters.update(icon_sets=str(icon_sets) if isinstance(icon_sets, (str, os.PathLike)) else None,
                          eval_styles=list(styles.eval_styles), style_clean=style_clean, style_wild=style_wild,
                          icons_per_style=icons_per_style)
    record = {
        "generator": "vision.synth.brand_dataset.write_brand_dataset",
        "packages": package_versions(),
        "parameters": parameters,
        "split": split,
        "brands": {name: sorted(slugs) for name, slugs in written.items()},
        "titles": {s: by_slug[s].title for s in used},
        "licenses": {s: by_slug[s].license for s in used if by_slug[s].license},
        "skipped": [list(s) for s in skipped],
    }
    summary = {"out_dir": str(out), "brands": {k: len(v) for k, v in written.items()}, "skipped": skipped}
    if styles is not None:
        record["styles"] = styles.record(written)
        record["skipped_icons"] = [list(s) for s in skipped_icons]
        summary["skipped_icons"] = skipped_icons
        summary["queries_brands"] = {name: sum(1 for s in slugs if styles.eval_icons.get(s))
                                     for name, slugs in written.items() if name != "train"}
    if wordmarks:
        parameters.update(wordmarks=wordmarks, gallery_wordmark_count=gallery_wordmark_count,
                          fonts=str(fonts) if isinstance(fonts, (str, os.PathLike)) else None)
        with_marks = {job.brand.slug for job in jobs if job.wordmarks}
        record["wordmarks"] = {
            "style": WORDMARK_STYLE, "fonts": {f.key: f.record() for f in faces},
            "brands": {name: sum(1 for s in slugs if s in with_marks) for name, slugs in written.items()},
            "without_wordmark": sorted(s for s in used if s not in with_marks)}
        summary["wordmark_brands"] = record["wordmarks"]["brands"]
    write_record(out, record)
    return summary


def _brand_wordmarks(brand: Brand, split: str, faces: Sequence[FontFace], count: int, gallery_count: int,
                     seed: int) -> tuple[Wordmark, ...]:
    """A brand's wordmarks: drawn at random for a train brand, the fixed gallery references for val/test."""
    if not faces or not count:
        return ()
    if split != "train":
        return tuple(gallery_wordmarks(brand, faces, gallery_count))
    return tuple(wordmark_variants(brand, faces, count, _wordmark_rng(seed, "wordmark", brand.slug)))


def _wordmark_rng(seed: int, purpose: str, slug: str) -> np.random.Generator:
    # apart from the brand's own generator, so adding wordmarks leaves every other image as it was
    return np.random.default_rng([seed, int(unit_hash(seed, purpose, slug) * 2**62)])


@dataclass(frozen=True)
class _Styles:
    """The Iconify styles of a cross-style dataset: which icons each brand gets, for training and as queries."""

    sets: dict[str, IconSet]
    eval_styles: tuple[str, ...]
    train_icons: dict[str, tuple[StyleIcon, ...]]    # slug -> training-style icons (never an eval style)
    eval_icons: dict[str, tuple[StyleIcon, ...]]     # slug -> held-out-style icons (queries)
    reports: dict[str, dict]

    @classmethod
    def build(cls, icon_sets, brands: Sequence[Brand], eval_styles: Sequence[str], per_style: int) -> "_Styles":
        sets = dict(icon_sets) if isinstance(icon_sets, dict) else load_icon_sets(icon_sets)
        eval_styles = tuple(eval_styles)
        missing = [p for p in eval_styles if p not in sets]
        if missing:
            raise ValueError(f"held-out style(s) {missing} are not among the icon sets {sorted(sets)}; the "
                             "cross-style queries need them")
        if per_style < 1:
            raise ValueError(f"icons_per_style must be >= 1, got {per_style}")
        catalogue, reports = style_catalogue(sets, brands)
        train_icons, eval_icons = {}, {}
        for slug, by_style in catalogue.items():
            train = [i for p, icons in by_style.items() if p not in eval_styles for i in _pick(icons, per_style)]
            held = [i for p, icons in by_style.items() if p in eval_styles for i in _variants_first(icons)]
            if train:
                train_icons[slug] = tuple(train)
            if held:
                eval_icons[slug] = tuple(held)
        return cls(sets, eval_styles, train_icons, eval_icons, {p: r.summary() for p, r in reports.items()})

    def record(self, written: dict[str, list[str]]) -> dict:
        """What ``brands.json`` says about the styles: licences, versions, matching, what each split used."""
        def used(slugs, icons):
            return {s: [f"{i.key} ({i.kind})" for i in icons[s]] for s in slugs if s in icons}
        return {
            "sets": {p: {**s.record(), "matching": self.reports[p], "held_out": p in self.eval_styles}
                     for p, s in self.sets.items()},
            "simple_icons": {"package": "simple-icons-pack", "license": "CC0-1.0 (per-brand exceptions in "
                                                                         "'licenses')"},
            "eval_styles": list(self.eval_styles),
            "train_icons": used(written.get("train", []), self.train_icons),
            "gallery_icons": {n: used(written.get(n, []), self.train_icons) for n in ("val", "test") if n in written},
            "query_icons": {n: used(written.get(n, []), self.eval_icons) for n in ("val", "test") if n in written},
        }


def _variants_first(icons: Sequence[StyleIcon]) -> list[StyleIcon]:
    """A brand's icons of one set with one of each kind (icon, wordmark) first, then the rest, by name."""
    ordered = sorted(icons, key=lambda i: i.name)
    firsts = list({i.kind: i for i in reversed(ordered)}.values())
    firsts.sort(key=lambda i: i.kind)
    return firsts + [i for i in ordered if i not in firsts]


def _pick(icons: Sequence[StyleIcon], count: int) -> list[StyleIcon]:
    return _variants_first(icons)[:count]


def parse_image_name(name: str) -> dict | None:
    """``"devicon__nodejs-wordmark__wild_02.jpg"`` -> ``{"style": "devicon", "icon": "nodejs-wordmark",
    "variant": "wild", "index": 2}``; ``None`` for a name of the simple-icons-only layout (``wild_02.jpg``)."""
    match = _NAME.match(Path(name).name)
    if match is None:
        return None
    return {**match.groupdict(), "index": int(match["index"])}


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
    style_clean: int = 0
    style_wild: int = 0
    print_conditions: PrintConditions | None = PRINT_CONDITIONS
    train_icons: tuple[StyleIcon, ...] = ()
    eval_icons: tuple[StyleIcon, ...] | None = None     # None: the simple-icons-only layout
    wordmarks: tuple[Wordmark, ...] = ()
    mark_styles: MarkStyles | None = None     # only ever set on train jobs

    @property
    def styled(self) -> bool:
        return self.eval_icons is not None


_CLEAN_COLORS: tuple[Color | None, ...] = (None, (0, 0, 0), (255, 255, 255))
_WILD_SCALE = (0.2, 0.6)    # wild_logo_crop's default scale range: icons are rendered at its upper end


def _run_job(job: _BrandJob) -> tuple[str | None, list[tuple[str, str]]]:
    """Write one brand's images; returns why the brand was skipped (or ``None``) and the ``(icon, reason)`` of
    other-style icons left out."""
    rng = np.random.default_rng([job.seed, int(unit_hash(job.seed, "brand", job.brand.slug) * 2**62)])
    left_out: list[tuple[str, str]] = []
    try:
        if job.styled:
            left_out = _run_styled(job, rng)
        elif job.split == "train":
            folder = job.out / "train" / job.brand.slug
            clean = [canonical_logo(job.brand, job.size, color=_clean_color(i, rng)) for i in range(job.train_clean)]
            wild = _wild(job, job.train_wild, rng)
            _save_all(folder, [("clean", clean), ("wild", wild)])
        else:
            _save_all(job.out / job.split / "gallery" / job.brand.slug,
                      [("canonical", [canonical_logo(job.brand, job.size)])])
            _save_all(job.out / job.split / "query" / job.brand.slug, [("wild", _wild(job, job.queries, rng))])
    except LogoRenderError as e:
        return e.reason, left_out
    return None, left_out + _write_wordmarks(job)


def _write_wordmarks(job: _BrandJob) -> list[tuple[str, str]]:
    """The brand's wordmark images (train: one clean render and ``style_wild`` composites each; val/test: gallery
    references); returns the ``(wordmark:<name>, reason)`` of those that did not render."""
    rng = _wordmark_rng(job.seed, "wordmark-composite", job.brand.slug)
    left_out, groups = [], []
    for mark in job.wordmarks:
        prefix = f"{WORDMARK_STYLE}__{mark.name}"
        try:
            if job.split == "train":
                rgba = render_wordmark(mark, math.ceil(_WILD_SCALE[1] * job.background_size))
                wild = []
                for _ in range(job.style_wild * 4):
                    if len(wild) == job.style_wild:
                        break
                    crop = wild_logo_crop(rgba, _background(job.photos, rng, job.background_size), rng, job.size,
                                          scale_range=_WILD_SCALE, print_conditions=job.print_conditions,
                                          mark_style=job.mark_styles if mark.plate is None else None)
                    if crop is not None:
                        wild.append(crop)
                groups += [(f"{prefix}__clean", [canonical_wordmark(mark, job.size)]), (f"{prefix}__wild", wild)]
            else:
                groups.append((f"{prefix}__canonical", [canonical_wordmark(mark, job.size)]))
        except FontError as e:
            left_out.append((f"{WORDMARK_STYLE}:{mark.name}", str(e)))
    if groups:
        folder = job.out / "train" / job.brand.slug if job.split == "train" else \
            job.out / job.split / "gallery" / job.brand.slug
        _save_all(folder, groups)
    return left_out


def _run_styled(job: _BrandJob, rng: np.random.Generator) -> list[tuple[str, str]]:
    """One brand of the cross-style layout (module docstring). An icon of another style that does not render is
    left out and returned with the reason (the brand keeps its other styles); simple-icons failing still skips
    the brand, as in the plain layout."""
    slug, si = job.brand.slug, SIMPLE_ICONS_STYLE
    left_out: list[tuple[str, str]] = []
    if job.split == "train":
        groups = [(f"{si}__{slug}__clean", [canonical_logo(job.brand, job.size, color=_clean_color(i, rng))
                                           for i in range(job.train_clean)]),
                  (f"{si}__{slug}__wild", _wild(job, job.train_wild, rng))]
        for icon in job.train_icons:
            try:
                svg, mono = _icon_source(icon)
                # a single-colour icon is drawn like a simple-icons mark (brand colour, black, white, ...); a
                # full-colour one in its own colours
                clean = [canonical_logo(svg, job.size, color=_clean_color(i, rng) if mono else None)
                         for i in range(job.style_clean)]
                wild = _wild_icon(job, svg, mono, job.style_wild, rng)
            except LogoRenderError as e:
                left_out.append((icon.key, e.reason))
                continue
            groups += [(f"{icon.prefix}__{icon.name}__clean", clean), (f"{icon.prefix}__{icon.name}__wild", wild)]
        _save_all(job.out / "train" / slug, groups)
        return left_out
    groups = [(f"{si}__{slug}__canonical", [canonical_logo(job.brand, job.size)])]
    for icon in job.train_icons:
        try:
            svg, mono = _icon_source(icon)
            groups.append((f"{icon.prefix}__{icon.name}__canonical",
                           [canonical_logo(svg, job.size, color=job.brand.rgb if mono else None)]))
        except LogoRenderError as e:
            left_out.append((icon.key, e.reason))
    queries: list[tuple[str, list[np.ndarray]]] = []
    renderable = []
    for icon in job.eval_icons:
        try:
            renderable.append((icon, *_icon_source(icon)))
        except LogoRenderError as e:
            left_out.append((icon.key, e.reason))
    for i in range(job.queries if renderable else 0):   # cycle through the brand's icons and wordmarks
        icon, svg, mono = renderable[i % len(renderable)]
        queries.append((f"{icon.prefix}__{icon.name}__wild", _wild_icon(job, svg, mono, 1, rng)))
    _save_all(job.out / job.split / "gallery" / slug, groups)
    (job.out / job.split / "query").mkdir(parents=True, exist_ok=True)   # there even when no brand has queries
    if queries:
        _save_all(job.out / job.split / "query" / slug, _number_groups(queries))
    return left_out


def _icon_source(icon: StyleIcon) -> tuple[str, bool]:
    """``(svg text, single-colour?)``; raises :class:`LogoRenderError` when the icon does not render."""
    svg = icon_svg(icon)
    return svg, is_monochrome(render_logo(svg, 32))


def _wild_icon(job: _BrandJob, svg: str, mono: bool, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` composites of an icon: single-colour icons in a random simple-icons colour style, full-colour
    ones in their own colours (a fifth of them printed in one ink, black or white)."""
    render_side = math.ceil(_WILD_SCALE[1] * job.background_size)
    crops: list[np.ndarray] = []
    for _ in range(count * 4):
        if len(crops) == count:
            break
        mark_style = job.mark_styles
        if mono:
            style = random_logo_style(job.brand, rng)
            rgba = render_logo(svg, render_side, color=style.color, background=style.background)
            if style.background is not None:   # a plate: its alpha is not the mark's
                mark_style = None
        else:
            ink = None if rng.random() < 0.8 else ((0, 0, 0), (255, 255, 255))[int(rng.integers(2))]
            rgba = render_logo(svg, render_side, color=ink)
        crop = wild_logo_crop(rgba, _background(job.photos, rng, job.background_size), rng, job.size,
                              scale_range=_WILD_SCALE, print_conditions=job.print_conditions, mark_style=mark_style)
        if crop is not None:
            crops.append(crop)
    return crops


def _number_groups(groups: list[tuple[str, list[np.ndarray]]]) -> list[tuple[str, list[np.ndarray]]]:
    """Merge groups of one name so their images are numbered 0, 1, ... in order (queries cycle over icons)."""
    merged: dict[str, list[np.ndarray]] = {}
    for prefix, images in groups:
        merged.setdefault(prefix, []).extend(images)
    return list(merged.items())


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
        crop = wild_logo_crop(job.brand, background, rng, job.size, print_conditions=job.print_conditions,
                              mark_style=job.mark_styles)
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
