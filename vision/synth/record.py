"""What a synthetic dataset records about itself: ``brands.json``, the versions that made it, what it skipped."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

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
