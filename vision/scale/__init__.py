"""Feature extraction past one machine: a folder, manifest or Parquet table of image paths in, Parquet shards of
unit-norm vectors out, on Ray Data (:func:`extract_with_ray`) or a Lightning cluster (:func:`extract_with_lightning`).

Both engines share one plan and one shard format (:mod:`vision.scale.shards`): sorted image ids cut into shards of
``shard_size``, each shard written once under a temporary name and renamed, so a rerun skips finished shards and
no image is lost or doubled. Unreadable images are listed in their shard and in ``manifest.json``.

Example::

    from vision.scale import extract_with_ray, read_shards
    summary = extract_with_ray("brand_resnet10t", "photos/", "runs/photos_vectors", shard_size=10_000)
    ids, vectors, meta = read_shards("runs/photos_vectors")

Implementations are imported when first used, so ``import vision.scale`` needs neither Ray nor Lightning.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "extract": "vision.scale.engines",
    "ENGINES": "vision.scale.engines",
    "extract_with_ray": "vision.scale.ray_extract",
    "extract_with_lightning": "vision.scale.lightning_extract",
    "read_shards": "vision.scale.shards",
    "MixedModelsError": "vision.scale.shards",
    "plan_shards": "vision.scale.inputs",
    "list_image_refs": "vision.scale.inputs",
    "FeatureModel": "vision.scale.model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vision.scale' has no attribute {name!r}")
