"""YOLO-format detection data (ultralytics ``data.yaml``) for Lightning, with ultralytics' own augmentation.

Example::

    dm = YoloDataModule("data/logo_sample/data.yaml", imgsz=320, batch_size=16)
    dm.setup("fit"); batch = next(iter(dm.train_dataloader()))   # ultralytics' collated dict

``check_yolo_labels`` runs first and names every malformed label line (file:line); those lines are
dropped (ultralytics itself would drop the whole file), or raise with ``strict_labels=True``. Label files
without an image are counted and reported. Labels are read from the ``.txt`` files on every setup: ultralytics'
``labels/*.cache`` files are pickles, so they are neither loaded nor written (see ``vision.ultralytics_compat``).
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import yaml as pyyaml
from pytorch_lightning.utilities import rank_zero_info
from torch.utils.data import DataLoader

from vision import ultralytics_compat as ulc
from vision.data.samplers import eval_sampler

STRIDE = 32


class LabelError(ValueError):
    """A malformed YOLO dataset: label lines (``check_yolo_labels(strict=True)``) or its ``data.yaml``; the message
    names the file and the line or field."""


@dataclass
class LabelCheck:
    """What ``check_yolo_labels`` found: ``issues`` as ``"file:line: reason"``, cleaned text of bad files,
    label files that have no image (``without_image``; never read for training)."""

    files: int = 0
    boxes: int = 0
    backgrounds: int = 0
    issues: list[str] = field(default_factory=list)
    cleaned: dict[Path, str] = field(default_factory=dict)
    without_image: list[Path] = field(default_factory=list)


def check_yolo_labels(label_dir: str | os.PathLike, num_classes: int, strict: bool = False,
                      images_dir: str | os.PathLike | None = None) -> LabelCheck:
    """Check every ``*.txt`` under ``label_dir``: 5 finite fields, class id in ``[0, num_classes)``, coords in [0, 1].

    Each bad line is reported as ``path:line: reason`` (one warning) and left out of ``cleaned``;
    empty files count as backgrounds. ``strict=True`` raises :class:`LabelError` instead. With ``images_dir``,
    a label file with no image of the same relative name is listed in ``without_image`` (one warning) and
    not checked: ultralytics never reads it.
    """
    report = LabelCheck()
    images = _image_stems(Path(images_dir)) if images_dir is not None else None
    for path in sorted(Path(label_dir).rglob("*.txt")):
        if images is not None and path.relative_to(label_dir).with_suffix("") not in images:
            report.without_image.append(path)
            continue
        report.files += 1
        good, bad = [], False
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            reason = _label_line_problem(line.split(), num_classes)
            if reason:
                report.issues.append(f"{path}:{number}: {reason}")
                bad = True
            else:
                good.append(line.strip())
        report.boxes += len(good)
        report.backgrounds += not good
        if bad:
            report.cleaned[path] = "".join(f"{line}\n" for line in good)
    if report.issues:
        message = f"{len(report.issues)} malformed label line(s) in {label_dir}:\n  " + "\n  ".join(report.issues)
        if strict:
            raise LabelError(message)
        warnings.warn(message + "\n(these lines are skipped)", stacklevel=2)
    if report.without_image:
        shown = "\n  ".join(map(str, report.without_image[:20]))
        more = f"\n  ... and {len(report.without_image) - 20} more" if len(report.without_image) > 20 else ""
        warnings.warn(f"{len(report.without_image)} label file(s) in {label_dir} have no image in {images_dir} "
                      f"and are ignored:\n  {shown}{more}", stacklevel=2)
    return report


def _image_stems(images_dir: Path) -> set[Path]:
    """Relative paths without suffix of the images ultralytics would read under ``images_dir``."""
    suffixes = ulc.image_suffixes()
    return {p.relative_to(images_dir).with_suffix("") for p in images_dir.rglob("*")
            if p.suffix[1:].lower() in suffixes and p.is_file()}


def _label_line_problem(fields: list[str], num_classes: int) -> str | None:
    if len(fields) != 5:
        return f"expected 5 fields 'class x y w h', got {len(fields)}"
    try:
        cls, *coords = (float(v) for v in fields)
    except ValueError:
        return f"non-numeric field in {' '.join(fields)!r}"
    if not all(math.isfinite(v) for v in (cls, *coords)):  # float() accepts nan/inf; int(nan) would raise
        return f"non-finite value in {' '.join(fields)!r}"
    if cls != int(cls) or not 0 <= cls < num_classes:
        return f"class id {fields[0]} out of range [0, {num_classes})"
    if not all(0.0 <= c <= 1.0 for c in coords):
        return f"coordinates {' '.join(fields[1:])} outside [0, 1]"
    if coords[2] <= 0 or coords[3] <= 0:
        return f"non-positive box size {fields[3]} x {fields[4]}"
    return None


def read_data_yaml(path: str | os.PathLike) -> dict:
    """An ultralytics ``data.yaml`` with ``path`` resolved (relative or absent: against the yaml's folder).

    Read with ``yaml.safe_load``; anything malformed is a :class:`LabelError` naming the file and the field."""
    path = Path(path)
    try:
        data = pyyaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except UnicodeDecodeError as e:
        raise LabelError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except pyyaml.YAMLError as e:
        raise LabelError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except OSError as e:
        raise LabelError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not isinstance(data, dict):
        raise LabelError(f"{path}: expected a mapping with 'names', 'train' and 'val', got {type(data).__name__}")
    names = data.get("names")
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise LabelError(f"{path}: 'names' must be a non-empty list or mapping")
    try:
        data["names"] = {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError):
        raise LabelError(f"{path}: 'names' keys must be class ids (integers), got {sorted(map(str, names))[:5]}") \
            from None
    data["nc"] = len(data["names"])
    if not isinstance(data.get("path") or ".", str):
        raise LabelError(f"{path}: 'path' must be a folder name, got {data['path']!r}")
    root = Path(data.get("path") or ".")
    data["path"] = str(root if root.is_absolute() else (path.parent / root).resolve())
    for split in ("train", "val"):
        if split not in data:
            raise LabelError(f"{path}: missing '{split}'")
        if not isinstance(data[split], str):
            raise LabelError(f"{path}: '{split}' must be a folder name, got {data[split]!r}")
        data[split] = str(Path(data["path"]) / data[split])
    data.setdefault("channels", 3)
    return data


class YoloDataModule(pl.LightningDataModule):
    """Train/val loaders over ultralytics' ``YOLODataset`` (mosaic, random affine, HSV, flips from ultralytics).

    The switches map onto ultralytics hyper-parameters; ``False``/0 turns an augmentation off.
    ``close_mosaic``: train the last N epochs without mosaic (as ultralytics' ``close_mosaic``); the
    detection module calls :meth:`set_epoch` at each epoch start.
    """

    def __init__(self, data_yaml: str, imgsz: int = 640, batch_size: int = 16, num_workers: int = 2,
                 mosaic: float = 1.0, random_affine: bool = True, hsv: bool = True, fliplr: float = 0.5,
                 flipud: float = 0.0, close_mosaic: int = 0, strict_labels: bool = False):
        super().__init__()
        if imgsz % STRIDE:
            raise ValueError(f"imgsz must be a multiple of {STRIDE}, got {imgsz}")
        self.data_yaml, self.imgsz, self.batch_size, self.num_workers = data_yaml, imgsz, batch_size, num_workers
        self.augment = dict(mosaic=mosaic, random_affine=random_affine, hsv=hsv, fliplr=fliplr, flipud=flipud)
        if close_mosaic < 0:
            raise ValueError(f"close_mosaic must be >= 0 epochs, got {close_mosaic}")
        self.close_mosaic, self.mosaic_closed = close_mosaic, False
        self.strict_labels = strict_labels
        self.data = read_data_yaml(data_yaml)
        self.datasets: dict = {}
        self.label_checks: dict[str, LabelCheck] = {}  # per split, filled by setup
        self._cleaned_dir: tempfile.TemporaryDirectory | None = None

    @property
    def num_classes(self) -> int:
        return self.data["nc"]

    @property
    def class_names(self) -> list[str]:
        return [self.data["names"][i] for i in range(self.num_classes)]

    @property
    def preprocessing_dict(self) -> dict:
        from vision.data.preprocessing import yolo_preprocessing

        return yolo_preprocessing(self.imgsz)

    def hyperparameters(self):
        """ultralytics' default hyper-parameters with our switches applied."""
        hyp = ulc.default_hyperparameters()
        a = self.augment
        hyp.task, hyp.imgsz, hyp.rect, hyp.cache = "detect", self.imgsz, False, False
        hyp.single_cls, hyp.classes = False, None
        hyp.mosaic, hyp.mixup, hyp.cutmix, hyp.copy_paste = float(a["mosaic"]), 0.0, 0.0, 0.0
        hyp.fliplr, hyp.flipud = float(a["fliplr"]), float(a["flipud"])
        if not a["random_affine"]:
            hyp.degrees = hyp.translate = hyp.scale = hyp.shear = hyp.perspective = 0.0
        if not a["hsv"]:
            hyp.hsv_h = hyp.hsv_s = hyp.hsv_v = 0.0
        return hyp

    def setup(self, stage: str | None = None) -> None:
        # validate/test read only the val split: `vision eval` on a data.yaml needs no train images
        for split in ("val",) if stage in ("validate", "test") else ("train", "val"):
            if split in self.datasets:
                continue
            images = self._checked_images_dir(split)
            self.datasets[split] = ulc.build_yolo_dataset(
                self.hyperparameters(), str(images), self.batch_size, self.data,
                mode="train" if split == "train" else "val", stride=STRIDE, fraction=1.0)

    def _checked_images_dir(self, split: str) -> Path:
        """The split's image folder, or a mirror whose labels have the malformed lines removed."""
        images = Path(self.data[split])
        labels = _labels_dir(images)
        if not labels.is_dir():
            return images  # no labels at all: every image is a background
        report = check_yolo_labels(labels, self.num_classes, strict=self.strict_labels,
                                   images_dir=images if images.is_dir() else None)
        self.label_checks[split] = report
        rank_zero_info(f"{split} labels: {report.files} file(s), {report.boxes} box(es), {report.backgrounds} "
                       f"background(s), {len(report.issues)} malformed line(s) skipped, "
                       f"{len(report.without_image)} label file(s) without an image ignored")
        if not report.cleaned:
            return images
        # ultralytics finds labels by replacing 'images' with 'labels' in each image path, so mirror both
        if self._cleaned_dir is None:
            self._cleaned_dir = tempfile.TemporaryDirectory(prefix="vision-yolo-labels-")
        root = Path(self._cleaned_dir.name) / split
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "images" / images.name).symlink_to(images.resolve(), target_is_directory=True)
        for path in labels.rglob("*.txt"):
            target = root / "labels" / images.name / path.relative_to(labels)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(report.cleaned.get(path, path.read_text(encoding="utf-8", errors="replace")))
        return root / "images" / images.name

    def set_epoch(self, epoch: int, max_epochs: int | None) -> None:
        """Turn mosaic off once ``epoch`` is within the last ``close_mosaic`` of ``max_epochs`` (0-based epochs).

        An open-ended run (``max_epochs`` None or -1) has no last epochs and keeps mosaic.
        """
        if not self.close_mosaic or self.mosaic_closed or not max_epochs or max_epochs < 0:
            return
        if epoch >= max_epochs - self.close_mosaic:
            hyp = self.hyperparameters()
            self.datasets["train"].close_mosaic(hyp)
            self.mosaic_closed = True
            rank_zero_info(f"epoch {epoch}: mosaic off for the last {max_epochs - epoch} epoch(s) (close_mosaic)")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        # with close_mosaic the train workers must be re-created each epoch to see the switched transforms
        persistent = self.num_workers > 0 and not (split == "train" and self.close_mosaic)
        sampler = None if shuffle else eval_sampler(dataset)  # under DDP: no image scored twice
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, sampler=sampler,
                          num_workers=self.num_workers, collate_fn=type(dataset).collate_fn,
                          persistent_workers=persistent, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        if self.trainer is not None:  # a resumed run, or one shorter than close_mosaic, starts without mosaic
            self.set_epoch(self.trainer.current_epoch, self.trainer.max_epochs)
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)


def _labels_dir(images: Path) -> Path:
    """``.../images/train`` -> ``.../labels/train`` (the last ``images`` component, as ultralytics does)."""
    parts = list(images.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts)
    return images

