"""Labelled image datasets: a manifest of ``path, label[, coarse_label]`` lines, or an ImageFolder tree.

Both produce the same :class:`LabeledImages` dataset. Lines and labels are checked when the
dataset is built (errors name the file and line); unreadable images are found by a cheap decode
pass and either skipped with a counted warning or, with ``strict=True``, turned into an error.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from vision.data.io import IMG_EXTENSIONS, ImageLoadError, find_unreadable, load_image
from vision.names import text_line

log = logging.getLogger(__name__)


class ManifestError(ValueError):
    """A manifest or class table is malformed; the message names the file and line."""


def read_text(path: Path) -> str:
    """The text of a manifest or class table: UTF-8 with or without a BOM (Excel and Notepad write one).

    Any other encoding raises :class:`ManifestError` naming the file, line and column of the first bad byte.
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            found = "the file is UTF-16"
        else:
            found = f"byte 0x{data[e.start]:02x} at column {column} is not UTF-8, e.g. Latin-1 or cp1252 text"
        raise ManifestError(f"{path}:{line}: {found}; save the file as UTF-8") from None


def manifest_images(manifest, *, allow_outside: bool = False) -> list:
    """The image paths of a manifest (``path[, ...]`` lines; blank lines and ``#`` comments ignored).

    Paths are relative to the manifest's folder. An absolute entry, or one whose ``..`` parts climb out of that
    folder, is refused (:class:`ManifestError` naming the manifest and line) unless
    ``allow_outside=True`` (CLI: ``--allow-outside-paths``): a manifest may come from someone who must not make
    this process read ``/etc/passwd`` or another user's files. The check is on the written path, not on where
    symlinks inside the folder lead (a data folder that is a symlink to another disk stays usable).
    """
    manifest = Path(manifest)
    folder, paths = manifest.parent, []
    for lineno, line in enumerate(read_text(manifest).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = line.split(",")[0].strip()
        path = Path(entry)
        if not allow_outside and (path.is_absolute() or os.path.normpath(entry).split(os.sep)[0] == os.pardir):
            where = "an absolute path" if path.is_absolute() else "a path outside the manifest's folder"
            raise ManifestError(f"{manifest}:{lineno}: {entry!r} is {where}; list images relative to "
                                f"{folder}, or pass allow_outside=True (--allow-outside-paths) if the "
                                "manifest is trusted")
        paths.append(path if path.is_absolute() else folder / path)
    return paths


@dataclass
class ClassTable:
    """Fine class names, optionally with a coarse level (``fine_to_coarse[i]`` = coarse id of fine class i)."""

    names: list[str]
    coarse_names: list[str] | None = None
    fine_to_coarse: list[int] | None = None

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("a class table needs at least one class")
        if (self.coarse_names is None) != (self.fine_to_coarse is None):
            raise ValueError("coarse_names and fine_to_coarse must be given together")
        if self.fine_to_coarse is not None:
            if len(self.fine_to_coarse) != len(self.names):
                raise ValueError(f"fine_to_coarse has {len(self.fine_to_coarse)} entries for {len(self.names)} classes")
            bad = [c for c in self.fine_to_coarse if not 0 <= c < len(self.coarse_names)]
            if bad:
                raise ValueError(f"fine_to_coarse refers to coarse ids {bad} outside 0..{len(self.coarse_names) - 1}")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def num_coarse_classes(self) -> int | None:
        return None if self.coarse_names is None else len(self.coarse_names)

    @classmethod
    def read(cls, path: str | Path) -> "ClassTable":
        """Read a class table.

        ``.csv``: a header row, then one row per class. Column names are matched loosely, so the
        Grocery Store ``classes.csv`` (``Class Name (str), Class ID (int), Coarse Class Name (str),
        Coarse Class ID (int), ...``) reads as-is, as does a plain ``name,id[,coarse_name,coarse_id]``.
        Anything else: one class name per line, the line order giving the id.
        """
        path = Path(path)
        if not path.is_file():
            raise ManifestError(f"class table {path} not found")
        text = read_text(path)
        if path.suffix.lower() != ".csv":
            names = [ln.strip() for ln in text.splitlines() if ln.strip()]
            if not names:
                raise ManifestError(f"{path}: empty class table")
            _check_unique_names(path, names)
            return cls(names)
        # each row with the line it starts on: a quoted field may span lines, so rows and lines can differ
        reader = csv.reader(io.StringIO(text, newline=""))
        rows, starts, end = [], [], 0
        try:
            for row in reader:
                rows.append(row)
                starts.append(end + 1)
                end = reader.line_num
        except csv.Error as e:
            raise ManifestError(f"{path}: not a valid CSV file: {e}") from None
        if not rows:
            raise ManifestError(f"{path}: empty class table")
        header = [h.strip().lower() for h in rows[0]]

        def column(*prefixes: str) -> int | None:
            for i, h in enumerate(header):
                if any(h == p or h.startswith(p + " ") for p in prefixes):
                    return i
            return None

        c_name, c_id = column("class name", "name"), column("class id", "id")
        c_cname, c_cid = column("coarse class name", "coarse_name"), column("coarse class id", "coarse_id")
        if c_name is None or c_id is None:
            raise ManifestError(f"{path}:1: header needs a class name and a class id column, got {rows[0]}")
        fine: dict[int, tuple[str, int | None, str | None]] = {}
        for lineno, row in zip(starts[1:], rows[1:]):
            if not row or not any(cell.strip() for cell in row):
                continue
            try:
                fid = int(row[c_id])
                name = row[c_name].strip()
                cid = int(row[c_cid]) if c_cid is not None else None
                cname = row[c_cname].strip() if c_cname is not None else None
            except (ValueError, IndexError) as e:
                raise ManifestError(f"{path}:{lineno}: cannot parse class row {row}: {e}") from None
            # a quoted field may hold a line break: the name would later split labels.txt into two lines
            text_line(name, f"{path}:{lineno}: class name", ManifestError)
            if cname is not None:
                text_line(cname, f"{path}:{lineno}: coarse class name", ManifestError)
            if fid in fine:
                raise ManifestError(f"{path}:{lineno}: class id {fid} appears twice")
            fine[fid] = (name, cid, cname)
        if not fine:
            raise ManifestError(f"{path}: no class rows after the header")
        if sorted(fine) != list(range(len(fine))):
            raise ManifestError(f"{path}: class ids must be 0..{len(fine) - 1} without gaps")
        names = [fine[i][0] for i in range(len(fine))]
        _check_unique_names(path, names)
        if c_cid is None:
            return cls(names)
        coarse: dict[int, str] = {}
        for _name, cid, cname in fine.values():
            if coarse.setdefault(cid, cname or str(cid)) != (cname or str(cid)):
                raise ManifestError(f"{path}: coarse id {cid} has two names ({coarse[cid]!r}, {cname!r})")
        if sorted(coarse) != list(range(len(coarse))):
            raise ManifestError(f"{path}: coarse class ids must be 0..{len(coarse) - 1} without gaps")
        return cls(names, [coarse[i] for i in range(len(coarse))], [fine[i][1] for i in range(len(fine))])


def _check_unique_names(path: Path, names: list[str]) -> None:
    if "" in names:
        raise ManifestError(f"{path}: class {names.index('')} has an empty name")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ManifestError(f"{path}: class name {name!r} is used by class ids {seen[name]} and {i}")
        seen[name] = i


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    coarse_label: int = -1  # -1: no coarse label
    where: str | None = field(default=None, compare=False)  # "manifest:line" for messages; None for folders


def read_manifest(manifest: str | Path, root: str | Path | None = None,
                  classes: ClassTable | None = None) -> list[Sample]:
    """Parse ``path, label[, coarse_label]`` lines (blank lines and ``#`` comments ignored).

    The file is UTF-8 (a BOM is fine). Paths are relative to ``root`` (default: the manifest's folder).
    A label may be an integer id or, with a class table, a class name. Missing files, out-of-range labels and
    one image listed with two different labels raise :class:`ManifestError` naming the line(s). An image
    listed twice with the same label is kept once, and the repeats are counted in one warning.
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ManifestError(f"manifest {manifest} not found")
    root = Path(root) if root is not None else manifest.parent
    name_to_id = {n: i for i, n in enumerate(classes.names)} if classes else {}
    samples = []
    by_real_path: dict[str, Sample] = {}  # the same image may be spelled two ways (a.jpg, ./a.jpg, a symlink)
    repeats: list[tuple[str, str]] = []
    for lineno, line in enumerate(read_text(manifest).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        where = f"{manifest}:{lineno}"
        if len(fields) not in (2, 3):
            raise ManifestError(f"{where}: expected 'path, label[, coarse_label]', got {len(fields)} fields: {line!r}")
        path = root / fields[0]
        try:
            exists = path.is_file()
        except (OSError, ValueError) as e:  # a name too long for the file system, a NUL byte
            raise ManifestError(f"{where}: bad image path {fields[0]!r}: {e}") from None
        if not exists:
            raise ManifestError(f"{where}: image file {path} does not exist")
        label = _parse_label(fields[1], name_to_id, where)
        coarse = _parse_label(fields[2], {}, where) if len(fields) == 3 else -1
        if classes is not None:
            if not 0 <= label < classes.num_classes:
                raise ManifestError(f"{where}: label {label} out of range 0..{classes.num_classes - 1}")
            if coarse >= 0 and classes.fine_to_coarse is not None and classes.fine_to_coarse[label] != coarse:
                raise ManifestError(f"{where}: coarse label {coarse} contradicts the class table "
                                    f"({classes.names[label]} -> {classes.fine_to_coarse[label]})")
        sample = Sample(path, label, coarse, where)
        first = by_real_path.setdefault(os.path.realpath(path), sample)
        if first is sample:
            samples.append(sample)
        elif (first.label, first.coarse_label) == (label, coarse):
            repeats.append((where, first.where))
        else:
            raise ManifestError(f"{where}: image {path} is labelled {_label_text(sample)} here but "
                                f"{_label_text(first)} at {first.where}; one image needs one label")
    if not samples:
        raise ManifestError(f"{manifest}: no samples")
    if repeats:
        examples = "; ".join(f"line {w.rsplit(':', 1)[1]} repeats line {f.rsplit(':', 1)[1]}" for w, f in repeats[:5])
        warnings.warn(f"{manifest}: {len(repeats)} duplicate line(s) (same image, same label) were ignored "
                      f"({examples}{'; ...' if len(repeats) > 5 else ''})", stacklevel=2)
    return samples


def _label_text(s: Sample) -> str:
    return f"{s.label}" if s.coarse_label < 0 else f"{s.label} (coarse {s.coarse_label})"


def _parse_label(text: str, name_to_id: dict[str, int], where: str) -> int:
    if text in name_to_id:
        return name_to_id[text]
    try:
        value = int(text)
    except ValueError:
        raise ManifestError(f"{where}: label {text!r} is neither an integer nor a known class name") from None
    if value < 0:
        raise ManifestError(f"{where}: negative label {value}")
    return value


def scan_image_folder(root: str | Path) -> tuple[list[Sample], ClassTable]:
    """``root/<class name>/**/<image>``: classes are the sorted sub-folder names (torchvision's convention)."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"image folder {root} not found")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise ManifestError(f"{root}: no class sub-folders")
    samples = [Sample(p, i) for i, d in enumerate(class_dirs) for p in sorted(d.rglob("*"))
               if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS]
    if not samples:
        raise ManifestError(f"{root}: no images with extensions {IMG_EXTENSIONS}")
    return samples, ClassTable([d.name for d in class_dirs])


class LabeledImages(Dataset):
    """Images with fine (and optional coarse) labels; yields ``(image_tensor, label, coarse_label)``."""

    def __init__(self, samples: Sequence[Sample], classes: ClassTable, transform: Callable | None = None,
                 *, strict: bool = False, verify: bool = True, name: str = "dataset"):
        self.classes = classes
        self.transform = transform
        self.skipped: list[tuple[str, str]] = []
        bad = [s for s in samples if not 0 <= s.label < classes.num_classes]
        if bad:
            raise ManifestError(f"{name}: {len(bad)} label(s) out of range 0..{classes.num_classes - 1}, "
                                f"first: {bad[0].path} -> {bad[0].label}")
        if classes.fine_to_coarse is not None:
            # derive coarse labels from the table so both levels always agree
            samples = [replace(s, coarse_label=classes.fine_to_coarse[s.label]) for s in samples]
        if verify:
            self.skipped = find_unreadable([str(s.path) for s in samples])
            if self.skipped:
                listing = "; ".join(f"{p} ({why})" for p, why in self.skipped[:20])
                more = f"; ... and {len(self.skipped) - 20} more" if len(self.skipped) > 20 else ""
                msg = f"{name}: {len(self.skipped)} of {len(samples)} images are unreadable: {listing}{more}"
                if strict:
                    raise ImageLoadError(self.skipped[0][0], msg)
                warnings.warn(msg + " (skipped; pass strict=True to make this an error)", stacklevel=2)
                bad_paths = {p for p, _ in self.skipped}
                samples = [s for s in samples if str(s.path) not in bad_paths]
        if not samples:
            raise ManifestError(f"{name}: no readable images left")
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        s = self.samples[index]
        image = load_image(s.path)
        if self.transform is not None:
            image = self.transform(image=image)["image"]
        return image, s.label, s.coarse_label

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([s.label for s in self.samples])
