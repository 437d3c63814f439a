"""Real non-logo negatives: brand-free photos for the detector and impostor crops for open-set calibration.

The Grocery Store Fruit and Vegetables photos show loose produce with PLU stickers, price labels, handwriting,
printed text, barcodes, crates and textures, but no brand marks: every detection on them is a false one. They
serve twice:

* whole photos, as hard-negative images (empty label files) in the detector data (:mod:`vision.synth.yolo`);
* crops, as the impostor queries a brand gallery's threshold is calibrated against: around the shipped
  detector's own false detections (exactly what the recogniser embeds) plus text/sticker-sized crops of
  busy regions, framed like the recogniser frames a box (:func:`vision.crops.square_crop`).

Example::

    photos = brand_free_photos("../shared/datasets/grocery_store", "train")
    summary = write_impostors("runs/impostors", "../shared/datasets/grocery_store", detect)

Layout written by :func:`write_impostors`: ``train/*.jpg``, ``val/*.jpg``, ``manifest.csv`` (one row per crop:
``split,file,kind,source,x1,y1,x2,y2,score``; ``kind`` is ``detection`` or ``textured``, ``score`` the detector
confidence, empty for textured crops) and ``impostors.json`` (parameters, counts, skipped photos).
The Grocery Store ``test`` split is held out: it is refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import cv2
import numpy as np
from PIL import Image

from vision.crops import CROP_MARGIN, check_margin, square_crop
from vision.data.io import ImageLoadError, list_images, load_image
from vision.fileio import atomic_write_text
from vision.synth.record import LogoDatasetWarning, clear_outputs, package_versions

__all__ = ["BRAND_FREE_CATEGORIES", "IMPOSTOR_KINDS", "ImpostorSummary", "VerifierDataSummary", "brand_free_photos",
           "textured_boxes", "write_impostors", "write_verifier_data"]

BRAND_FREE_CATEGORIES: tuple[str, ...] = ("Fruit", "Vegetables")   # Packages (juice, milk cartons) carry brands
IMPOSTOR_KINDS: tuple[str, ...] = ("detection", "textured")
HELD_OUT_SPLITS: tuple[str, ...] = ("test",)
MANIFEST_FIELDS: tuple[str, ...] = ("split", "file", "kind", "source", "x1", "y1", "x2", "y2", "score")
_JPEG_QUALITY = 92

# a photo-level detector: a list of RGB arrays in, per image a list of {"box": [x1, y1, x2, y2], "score"} out
Detect = Callable[[Sequence[np.ndarray]], list[list[dict]]]


@dataclass
class ImpostorSummary:
    """What :func:`write_impostors` wrote, per split: photos read, crops per kind, skipped photos ``(path, why)``."""

    out_dir: Path
    photos: dict[str, int] = field(default_factory=dict)
    crops: dict[str, dict[str, int]] = field(default_factory=dict)
    photos_with_detection: dict[str, int] = field(default_factory=dict)
    skipped_photos: list[tuple[str, str]] = field(default_factory=list)


def brand_free_photos(root: str | os.PathLike, split: str,
                      categories: Sequence[str] = BRAND_FREE_CATEGORIES) -> list[Path]:
    """The brand-free photos of one split of a Grocery Store layout (``root/<split>/<category>/**``), sorted.

    ``root`` may also be a split folder itself (``.../grocery_store/train``). The held-out ``test`` split is refused.
    """
    if split in HELD_OUT_SPLITS:
        raise ValueError(f"split {split!r} is held out for final evaluation; use train (training, calibration) "
                         "or val (evaluation)")
    base = Path(root)
    folder = base if base.name == split else base / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (expected <root>/{split}/{{{','.join(categories)}}})")
    photos: list[Path] = []
    for category in categories:
        if not (folder / category).is_dir():
            raise FileNotFoundError(f"{folder / category} does not exist: no {category!r} photos in the "
                                    f"{split!r} split")
        photos += list_images(folder / category)
    if not photos:
        raise FileNotFoundError(f"no images under {folder} ({', '.join(categories)})")
    return sorted(photos)


def textured_boxes(image: np.ndarray, count: int, rng: np.random.Generator, *,
                   side_range: tuple[float, float] = (0.06, 0.3), aspect_range: tuple[float, float] = (0.4, 2.5),
                   candidates: int = 8) -> list[tuple[int, int, int, int]]:
    """``count`` text/sticker-sized boxes ``(x1, y1, x2, y2)`` on the busiest parts of ``image``.

    Each is the one of ``candidates`` random boxes (longer side a log-uniform ``side_range`` fraction of the
    image's shorter side, aspect log-uniform in ``aspect_range``) with the most edges: labels, stickers, text and
    barcodes rather than smooth fruit skin, which a detector rarely confuses with a logo anyway.
    """
    height, width = image.shape[:2]
    edges = cv2.Canny(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 80, 160) > 0
    integral = cv2.integral(edges.astype(np.uint8))
    boxes = []
    for _ in range(count):
        best, best_density = None, -1.0
        for _ in range(candidates):
            side = float(np.exp(rng.uniform(*np.log(side_range)))) * min(height, width)
            aspect = float(np.exp(rng.uniform(*np.log(aspect_range))))
            w, h = (side, side / aspect) if aspect >= 1 else (side * aspect, side)
            w, h = max(4, min(width, round(w))), max(4, min(height, round(h)))
            x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            total = integral[y + h, x + w] - integral[y, x + w] - integral[y + h, x] + integral[y, x]
            density = float(total) / (w * h)
            if density > best_density:
                best, best_density = (x, y, x + w, y + h), density
        boxes.append(best)
    return boxes


def write_impostors(out_dir: str | os.PathLike, root: str | os.PathLike, detect: Detect | None, *,
                    splits: Sequence[str] = ("train", "val"), max_photos: int | Mapping[str, int | None] | None = None,
                    categories: Sequence[str] = BRAND_FREE_CATEGORIES,
                    detections_per_photo: int = 4, textured_per_photo: int = 2, conf: float = 0.1,
                    margin: float = CROP_MARGIN, size: int = 128, seed: int = 0, detector_name: str | None = None,
                    batch_size: int = 16, overwrite: bool = False,
                    progress: Callable[..., Iterable] | None = None) -> ImpostorSummary:
    """Write impostor crops of the brand-free photos of ``splits`` under ``out_dir`` (layout in the module doc).

    Per photo: the ``detections_per_photo`` most confident boxes ``detect`` finds at or above ``conf`` (all false,
    the photos carry no brand) and ``textured_per_photo`` :func:`textured_boxes`, each cut out with
    :func:`~vision.crops.square_crop` and ``margin`` (the recogniser's framing) and resized to ``size``.
    ``detect=None`` writes textured crops only. ``max_photos`` caps the photos per split (a seeded choice; a
    mapping gives each split its own cap). ``categories``: the brand-free folders of each split.
    Same arguments and detector, same files. Unreadable photos are skipped with a warning and listed.
    """
    if detections_per_photo < 0 or textured_per_photo < 0 or detections_per_photo + textured_per_photo == 0:
        raise ValueError("detections_per_photo and textured_per_photo must be >= 0, not both 0")
    if detect is None and textured_per_photo == 0:
        raise ValueError("no detector and textured_per_photo=0: nothing to crop")
    out = Path(out_dir)
    _prepare(out, splits, overwrite)
    summary = ImpostorSummary(out_dir=out)
    rows: list[dict] = []
    wrap = progress or (lambda iterable, **_: iterable)
    for split_index, split in enumerate(splits):
        photos = brand_free_photos(root, split, categories)
        limit = max_photos.get(split) if isinstance(max_photos, Mapping) else max_photos
        if limit is not None and limit < len(photos):
            keep = np.random.default_rng([seed, split_index]).choice(len(photos), size=limit, replace=False)
            photos = [photos[i] for i in sorted(keep)]
        (out / split).mkdir(parents=True, exist_ok=True)
        summary.photos[split] = summary.photos_with_detection[split] = 0
        summary.crops[split] = dict.fromkeys(IMPOSTOR_KINDS, 0)
        for start in wrap(range(0, len(photos), batch_size), total=-(-len(photos) // batch_size), desc=split):
            batch, arrays = [], []
            for index in range(start, min(start + batch_size, len(photos))):
                try:
                    arrays.append(load_image(photos[index]))
                    batch.append(index)
                except ImageLoadError as e:
                    warnings.warn(f"skipping photo {e.path}: {e.reason}", LogoDatasetWarning, stacklevel=2)
                    summary.skipped_photos.append((str(e.path), e.reason))
            detections = detect(arrays) if detect is not None and detections_per_photo else [[] for _ in arrays]
            for index, image, dets in zip(batch, arrays, detections):
                rng = np.random.default_rng([seed, split_index, index])
                found = sorted((d for d in dets if d["score"] >= conf), key=lambda d: -d["score"])
                found = [d for d in found if d["box"][2] - d["box"][0] >= 1 and d["box"][3] - d["box"][1] >= 1]
                chosen = [("detection", d["box"], float(d["score"])) for d in found[:detections_per_photo]]
                chosen += [("textured", box, None) for box in textured_boxes(image, textured_per_photo, rng)]
                summary.photos[split] += 1
                summary.photos_with_detection[split] += int(bool(found))
                source = os.path.relpath(photos[index], root)
                for k, (kind, box, score) in enumerate(chosen):
                    name = f"{index:05d}_{k}_{kind}.jpg"
                    crop = square_crop(image, box, margin=margin, size=size)
                    Image.fromarray(crop).save(out / split / name, quality=_JPEG_QUALITY)
                    summary.crops[split][kind] += 1
                    rows.append({"split": split, "file": f"{split}/{name}", "kind": kind, "source": source,
                                 **{c: round(float(v), 2) for c, v in zip(("x1", "y1", "x2", "y2"), box)},
                                 "score": "" if score is None else round(score, 6)})

    manifest = io.StringIO()
    writer = csv.DictWriter(manifest, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "manifest.csv", manifest.getvalue())
    record = {
        "generator": "vision.synth.negatives.write_impostors",
        "packages": package_versions(),
        "parameters": dict(root=str(root), splits=list(splits), categories=list(categories),
                           max_photos=dict(max_photos) if isinstance(max_photos, Mapping) else max_photos,
                           detector=detector_name, detections_per_photo=detections_per_photo,
                           textured_per_photo=textured_per_photo, conf=conf, margin=margin, size=size, seed=seed),
        "photos": summary.photos,
        "photos_with_detection": summary.photos_with_detection,
        "crops": summary.crops,
        "skipped_photos": [list(s) for s in summary.skipped_photos],
    }
    atomic_write_text(out / "impostors.json", json.dumps(record, indent=1) + "\n")
    return summary


def _prepare(out: Path, splits: Sequence[str], overwrite: bool) -> None:
    clear_outputs(out, [out / s for s in splits] + [out / "manifest.csv", out / "impostors.json"], "impostors",
                  overwrite)


def recorded_margin(folder: str | os.PathLike) -> tuple[Path, float] | None:
    """``(impostors.json, margin)``: the crop margin :func:`write_impostors` recorded for the crops under ``folder``
    (its ``impostors.json``, or the one in the folder above: ``<out>/train`` is a split of ``<out>``), or ``None``
    when neither folder holds one. A record without a finite ``parameters.margin`` from 0 to 1 is a
    :class:`ValueError` naming the file."""
    folder = Path(folder)
    for record in (folder / "impostors.json", folder.parent / "impostors.json"):
        if not record.is_file():
            continue
        try:
            margin = json.loads(record.read_text(encoding="utf-8"))["parameters"]["margin"]
        except (ValueError, KeyError, TypeError, IndexError, RecursionError) as e:
            raise ValueError(f"{record}: not a vision make-impostors record (parameters.margin: "
                             f"{type(e).__name__}: {str(e)[:200]})") from None
        try:   # NaN or Infinity (JSON literals Python reads) would pass any comparison of margins
            return record, check_margin(margin, "parameters.margin")
        except ValueError as e:
            raise ValueError(f"{record}: {str(e)[:300]}") from None
    return None


def check_recorded_margin(folder: str | os.PathLike, margin: float) -> None:
    """Refuse impostor crops under ``folder`` that :func:`write_impostors` recorded as framed with another margin
    than ``margin`` (a cohort and a threshold calibrated on crops framed one way do not hold for queries framed
    another): a :class:`ValueError` naming the record and both margins. Crops without a record pass."""
    found = recorded_margin(folder)
    if found is not None and abs(found[1] - margin) > 1e-9:
        record, recorded = found
        raise ValueError(f"{record}: parameters.margin is {recorded:g} but the gallery frames its queries at "
                         f"{margin:g}; cut the impostors at that margin (vision make-impostors --margin {margin:g})")


def impostor_groups(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The source photo of each impostor crop (the ``source`` column of the ``manifest.csv`` that
    :func:`write_impostors` put beside its split folder), else the crop's own path: crops of one photo are
    calibrated apart from each other's cohort (:meth:`vision.brands.gallery.BrandGallery.calibrate`)."""
    paths = [Path(p) for p in paths]
    sources: dict[Path, str] = {}
    for root in {p.parent.parent for p in paths}:
        manifest = root / "manifest.csv"
        if manifest.is_file():
            with open(manifest, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    if row.get("file") and row.get("source"):
                        sources[(root / row["file"]).resolve()] = row["source"]
    return [sources.get(p.resolve(), str(p)) for p in paths]


@dataclass
class VerifierDataSummary:
    """What :func:`write_verifier_data` wrote: counts per split and class, and the held-out source folders."""

    out_dir: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    held_out_folders: list[str] = field(default_factory=list)


def write_verifier_data(out_dir: str | os.PathLike, logos: str | os.PathLike, impostors: str | os.PathLike,
                        val_logos: str | os.PathLike | None = None, max_logos: int = 8000,
                        val_fraction: float = 0.125, seed: int = 0, pattern: str = "*wild*") -> VerifierDataSummary:
    """Manifests of a logo verifier (a two-class classifier: ``background`` / ``logo``,
    :mod:`vision.brands.verification`)
    for ``vision train`` with a :class:`~vision.data.datamodule.ClassificationDataModule`.

    ``logos``: a brand dataset's train folder (``<brand>/<style>__<icon>__<variant>_NN.jpg``,
    ``vision make-brand-dataset``): its composites on real photos (``pattern``) are the positives, at most
    ``max_logos`` (a seeded choice over every style). ``impostors``: ``vision make-impostors``' output; its
    ``train`` crops are the negatives, those of a ``val_fraction`` of the source class folders held out as the
    validation negatives (crops of one folder are near-copies, so they never straddle train and val). Validation
    positives: ``val_logos`` (e.g. the cross-style val queries: a style never trained on), else none. The val split
    of the impostors is left alone (it measures the recogniser). Writes ``train.txt``, ``val.txt`` (``path, label``
    lines, absolute paths), ``classes.txt`` and ``verifier_data.json``."""
    import random

    out, logos, impostors = Path(out_dir), Path(logos), Path(impostors)
    if not logos.is_dir():
        raise FileNotFoundError(f"logo folder {logos} not found (a brand dataset's train/ folder)")
    manifest = impostors / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: --impostors must be the output of vision make-impostors")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = random.Random(seed)
    positives = sorted(str(p.resolve()) for p in logos.glob(f"*/{pattern}") if p.is_file())
    if not positives:
        raise ValueError(f"no logo crops matching {pattern!r} under {logos}/<brand>/")
    rng.shuffle(positives)
    positives = sorted(positives[:max_logos])
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("split") == "train"]
    if not rows:
        raise ValueError(f"{manifest} lists no train crops")
    folders = sorted({str(Path(r["source"]).parent) for r in rows})
    rng.shuffle(folders)
    held = set(folders[:int(round(len(folders) * val_fraction))])
    negatives = {"train": [], "val": []}
    for r in rows:
        path = impostors / r["file"]
        if not path.is_file():
            raise FileNotFoundError(f"{manifest}: {r['file']} is listed but missing")
        negatives["val" if str(Path(r["source"]).parent) in held else "train"].append(str(path.resolve()))
    val_positives = [] if val_logos is None else sorted(
        str(p.resolve()) for p in Path(val_logos).glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    lines = {"train": [(p, 1) for p in positives] + [(p, 0) for p in negatives["train"]],
             "val": [(p, 1) for p in val_positives] + [(p, 0) for p in negatives["val"]]}
    summary = VerifierDataSummary(out, held_out_folders=sorted(held))
    out.mkdir(parents=True, exist_ok=True)
    for split, items in lines.items():
        atomic_write_text(out / f"{split}.txt", "".join(f"{p}, {label}\n" for p, label in items))
        summary.counts[split] = {"logo": sum(1 for _, label in items if label),
                                 "background": sum(1 for _, label in items if not label)}
    atomic_write_text(out / "classes.txt", "background\nlogo\n")
    atomic_write_text(out / "verifier_data.json", json.dumps(
        {"generator": "vision.synth.negatives.write_verifier_data", "logos": str(logos), "pattern": pattern,
         "impostors": str(impostors), "val_logos": None if val_logos is None else str(val_logos),
         "max_logos": max_logos, "val_fraction": val_fraction, "seed": seed, "counts": summary.counts,
         "held_out_folders": summary.held_out_folders}, indent=1))
    return summary
