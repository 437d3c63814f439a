"""What a synthetic dataset records about itself: ``brands.json``, the versions that made it, what it skipped."""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path
from typing import Sequence

__all__ = ["RECORD_NAME", "LogoDatasetWarning", "package_versions", "write_record"]

RECORD_NAME = "brands.json"
# the packages whose versions decide the pixels: the brand catalogue, the SVG renderer, the augmentations
_SYNTHESIS_PACKAGES = ("simple-icons-pack", "resvg-py", "albumentations")


class LogoDatasetWarning(UserWarning):
    """An input (brand SVG or background photo) was skipped while building a dataset."""


def package_versions() -> dict[str, str | None]:
    """``{package: installed version or None}`` for the packages that decide a synthetic dataset's pixels."""
    return {name: _installed_version(name) for name in _SYNTHESIS_PACKAGES}


def write_record(out_dir: Path, record: dict) -> None:
    """Write ``record`` as ``out_dir/brands.json`` (key order kept, non-ASCII brand titles as they are)."""
    (out_dir / RECORD_NAME).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def clear_outputs(out: Path, ours: Sequence[Path], what: str, overwrite: bool) -> None:
    """Make ``out`` ready for a new run: refuse if any of ``ours`` (this writer's outputs) exists unless
    ``overwrite`` (stale files of a bigger earlier run would silently join the new one), else remove them."""
    existing = [p for p in ours if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds {what} ({', '.join(p.name for p in existing)}); "
                              "pass overwrite=True (--overwrite) to replace it")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)
