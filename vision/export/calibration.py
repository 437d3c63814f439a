"""Representative images for INT8 calibration, preprocessed exactly as the model's card says, and the key that
says when a calibration result may be reused.

Example::

    calib = CalibrationSet.from_folder("data/grocery_sample/val", card.data_config)
    for batch in calib.batches(16): ...                  # float32 NCHW, the card's eval transform
    calib.key(batch=16, tensorrt="10.16.1")               # sha256 over files, preprocessing, batch, versions
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from vision.data.inputs import to_batch
from vision.data.io import ImageLoadError, list_images, load_image
from vision.data.transforms import Preprocessing, build_eval_transform
from vision.export.onnx import ExportError

MIN_CALIB_IMAGES = 32
MAX_CALIB_IMAGES = 256


@dataclass(frozen=True)
class CalibrationSet:
    """Readable image files (a deterministic, evenly spread subset of a folder) and the preprocessing."""

    root: Path
    files: tuple[Path, ...]
    preprocessing: Preprocessing
    skipped: tuple[str, ...] = ()

    @classmethod
    def from_folder(cls, folder: str | Path, preprocessing: Preprocessing, *, min_images: int = MIN_CALIB_IMAGES,
                    max_images: int = MAX_CALIB_IMAGES) -> "CalibrationSet":
        """Every image under ``folder`` (recursive), thinned evenly to ``max_images``; fewer than ``min_images``
        readable ones is an :class:`ExportError` (a calibration on a handful of photos gives ranges that clip
        real inputs)."""
        root = Path(folder)
        if not root.is_dir():
            raise ExportError(f"calibration folder {root} does not exist or is not a folder")
        found = list_images(root)
        if len(found) > max_images:  # evenly spaced over the sorted list: every class folder is represented
            found = [found[i] for i in np.linspace(0, len(found) - 1, max_images).round().astype(int)]
        files, skipped = [], []
        for path in found:
            try:
                load_image(path)
                files.append(path)
            except ImageLoadError as e:
                skipped.append(f"{path} ({e.reason})")
        if len(files) < min_images:
            raise ExportError(f"calibration folder {root} has {len(files)} readable image(s)"
                              f"{f' ({len(skipped)} unreadable)' if skipped else ''}; INT8 calibration needs at "
                              f"least {min_images} representative images of the deployment data")
        return cls(root, tuple(files), preprocessing, tuple(skipped))

    def __len__(self) -> int:
        return len(self.files)

    def batches(self, batch_size: int, files: tuple[Path, ...] | None = None) -> Iterator[np.ndarray]:
        """Float32 NCHW batches through the card's eval transform (the last one may be smaller)."""
        transform = build_eval_transform(self.preprocessing)
        files = self.files if files is None else files
        for i in range(0, len(files), batch_size):
            images = [load_image(p) for p in files[i:i + batch_size]]
            yield to_batch(images, transform).numpy().astype(np.float32, copy=False)

    def array(self, limit: int | None = None) -> np.ndarray:
        """The first ``limit`` images (default all) as one batch."""
        return np.concatenate(list(self.batches(64, self.files[:limit])))

    def file_list_sha256(self) -> str:
        """Hash of the relative paths and sizes: adding, removing or replacing a file changes it."""
        h = hashlib.sha256()
        for path in self.files:
            h.update(f"{path.relative_to(self.root).as_posix()}\t{path.stat().st_size}\n".encode())
        return h.hexdigest()

    def key(self, **extra) -> str:
        """The cache key: files, preprocessing and whatever else decides the result (batch, versions, ...)."""
        record = {"files": self.file_list_sha256(), "count": len(self.files),
                  "preprocessing": self.preprocessing.to_dict(), **extra}
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict:
        return {"folder": str(self.root), "images": len(self.files), "skipped": len(self.skipped),
                "files_sha256": self.file_list_sha256()}
