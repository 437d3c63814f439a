"""Hard-negative mining for the logo detector: the brand-free photos a detector fires on, read from impostors.

``vision make-impostors`` (:func:`vision.synth.negatives.write_impostors`) runs a detector over the brand-free
Grocery Store photos and lists every false detection it crops in ``manifest.csv`` (``split, file, kind, source,
x1..y2, score``; ``source`` relative to the dataset root recorded in ``impostors.json``). The photos of one split
with a detection at or above ``min_score`` are the hardest brand-free photos for that detector: used whole as
negatives (``vision make-logo-dataset --mined-negatives``) they put the training signal where the detector errs,
instead of on random brand-free photos it already leaves alone.

Example::

    photos, report = mined_negative_photos("runs/impostors", min_score=0.25)   # train photos only
    write_yolo_dataset(..., negatives=photos, negative_fraction=0.3)

Only the ``train`` split may be mined for training (``val`` measures the detector; the Grocery Store ``test`` split
is held out and refused everywhere).
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from vision.synth.negatives import MANIFEST_FIELDS
from vision.synth.record import LogoDatasetWarning

__all__ = ["MinedNegatives", "mined_negative_photos"]

MINABLE_SPLITS: tuple[str, ...] = ("train",)


@dataclass
class MinedNegatives:
    """What :func:`mined_negative_photos` read: photos of the split, those kept (a detection >= ``min_score``),
    missing photos ``(path, why)`` (skipped with a warning)."""

    impostors_dir: str
    detector: str | None
    split: str
    min_score: float
    photos_in_split: int = 0
    photos_kept: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)

    def record(self) -> dict:
        return {"impostors_dir": self.impostors_dir, "detector": self.detector, "split": self.split,
                "min_score": self.min_score, "photos_in_split": self.photos_in_split,
                "photos_kept": self.photos_kept, "missing": [list(m) for m in self.missing]}


def mined_negative_photos(impostors_dir: str | os.PathLike, min_score: float = 0.25,
                          split: str = "train") -> tuple[list[Path], MinedNegatives]:
    """``(photos, report)``: the ``split`` photos of an impostors folder whose detector scored a false detection
    ``>= min_score``, sorted, as absolute paths under the root recorded in ``impostors.json``.

    Malformed files are a ``ValueError`` naming the file and line or field. Photos that no longer exist are
    skipped with a :class:`~vision.synth.record.LogoDatasetWarning` and listed in ``report.missing``.
    """
    if split not in MINABLE_SPLITS:
        raise ValueError(f"only the {MINABLE_SPLITS} split(s) may be mined for training images, got {split!r} "
                         "(val measures the detector; the Grocery Store test split is held out)")
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(f"min_score must be in [0, 1], got {min_score}")
    folder = Path(impostors_dir)
    record_path, manifest_path = folder / "impostors.json", folder / "manifest.csv"
    for path in (record_path, manifest_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist (write it with `vision make-impostors --out {folder}`)")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        root = Path(record["parameters"]["root"])
        detector = record["parameters"].get("detector")
        conf = float(record["parameters"].get("conf", 0.0))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{record_path}: expected JSON with parameters.root (the photo root): {e}") from None
    if min_score < conf:
        raise ValueError(f"min_score {min_score} is below the confidence the impostors were cropped at ({conf}, "
                         f"{record_path}): photos scoring in between were never listed")
    report = MinedNegatives(impostors_dir=str(folder), detector=detector, split=split, min_score=min_score)
    in_split: set[str] = set()
    kept: set[str] = set()
    with manifest_path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not set(MANIFEST_FIELDS) <= set(reader.fieldnames):
            raise ValueError(f"{manifest_path}:1: expected the columns {','.join(MANIFEST_FIELDS)}, "
                             f"got {reader.fieldnames}")
        for line, row in enumerate(reader, 2):
            if row["split"] != split:
                continue
            source = PurePosixPath(row["source"] or "")
            if source.is_absolute() or ".." in source.parts or not source.parts or source.parts[0] != split:
                raise ValueError(f"{manifest_path}:{line}: source {row['source']!r} is not a photo of the "
                                 f"{split!r} split under the root")
            in_split.add(row["source"])
            if row["kind"] != "detection":
                continue
            try:
                score = float(row["score"])
            except ValueError:
                raise ValueError(f"{manifest_path}:{line}: score {row['score']!r} is not a number") from None
            if not math.isfinite(score):
                raise ValueError(f"{manifest_path}:{line}: score {row['score']!r} is not finite")
            if score >= min_score:
                kept.add(row["source"])
    photos = []
    for source in sorted(kept):
        path = root / source
        if not path.is_file():
            warnings.warn(f"skipping mined negative {path}: file not found", LogoDatasetWarning, stacklevel=2)
            report.missing.append((str(path), "file not found"))
            continue
        photos.append(path)
    report.photos_in_split, report.photos_kept = len(in_split), len(photos)
    if not photos:
        raise ValueError(f"{manifest_path}: no {split} photo has a detection >= {min_score}")
    return photos, report
