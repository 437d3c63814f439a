"""What to extract: image references from a folder, a manifest or a Parquet table, cut into a deterministic plan
of shards, and the read -> sha256 -> decode -> preprocess step every engine runs on each image.

The plan depends only on the input: ids sorted, then chunked into shards of ``shard_size``; shard ``i`` is always
``part-<i>.parquet`` holding the same ids, so a rerun (or another engine) finds what is already done.

Example::

    plan = plan_shards("photos/", shard_size=10_000)      # ids are paths relative to photos/
    plan.shards[0].refs[0]                                # ImageRef(id='aisle1/001.jpg', path='photos/aisle1/001.jpg')
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from vision.data.io import ImageLoadError, load_image
from vision.features import ExtractError

DEFAULT_SHARD_SIZE = 10_000


@dataclass(frozen=True)
class ImageRef:
    """One input image: ``id`` (stable across machines: the path relative to the source's folder when it lies
    under it, or a Parquet table's ``id`` column) and ``path`` (where a worker reads it)."""

    id: str
    path: str


@dataclass(frozen=True)
class Shard:
    index: int
    refs: tuple[ImageRef, ...]

    @property
    def file_name(self) -> str:
        return f"part-{self.index:06d}.parquet"

    @cached_property
    def ids_sha256(self) -> str:
        """Digest of the shard's ids: a finished shard file is only reused when it holds exactly these."""
        return ids_digest(ref.id for ref in self.refs)


@dataclass(frozen=True)
class ShardPlan:
    source: str
    shard_size: int
    shards: tuple[Shard, ...]
    duplicates: int = 0  # repeated (id, path) input lines, extracted once

    @property
    def images(self) -> int:
        return sum(len(s.refs) for s in self.shards)


def ids_digest(ids) -> str:
    h = hashlib.sha256()
    for i in ids:
        h.update(i.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()


def list_image_refs(source: str | Path) -> tuple[list[ImageRef], int]:
    """``(refs sorted by id, number of repeated lines dropped)`` for a folder (recursive), a manifest (``path, ...``
    lines, relative to its folder) or a ``.parquet`` table with a ``path`` column (and optionally ``id``)."""
    source = Path(source)
    if source.suffix.lower() == ".parquet" and source.is_file():
        pairs = _parquet_pairs(source)
    else:
        from vision.features import image_sources  # the folder / manifest reading of single-process extraction

        root = source if source.is_dir() else source.parent
        pairs = [(_id_under(root, p), str(p)) for p in image_sources(source)]
    by_id: dict[str, str] = {}
    duplicates = 0
    for id_, path in pairs:
        if id_ in by_id:
            if by_id[id_] != path:
                raise ExtractError(f"{source}: id {id_!r} names two images ({by_id[id_]} and {path}); ids must be "
                                   "unique")
            duplicates += 1
            continue
        by_id[id_] = path
    return [ImageRef(i, by_id[i]) for i in sorted(by_id)], duplicates


def plan_shards(source: str | Path, shard_size: int = DEFAULT_SHARD_SIZE) -> ShardPlan:
    """Sorted ids chunked into shards of ``shard_size``: the same input always gives the same shards."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    refs, duplicates = list_image_refs(source)
    if not refs:
        raise ExtractError(f"{source}: no images to extract features from (nothing with an image suffix)")
    shards = tuple(Shard(i, tuple(refs[start:start + shard_size]))
                   for i, start in enumerate(range(0, len(refs), shard_size)))
    return ShardPlan(str(source), shard_size, shards, duplicates)


def read_and_preprocess(paths: Sequence[str], head, input_size: int) -> tuple[np.ndarray, list[str], list[str]]:
    """``(batch (N, 3, S, S) float32, sha256 per image, error per image)``: each file is decoded with
    :func:`~vision.data.io.load_image`, hashed, and the readable ones preprocessed together by the predictor
    head (the card's recorded preprocessing). An unreadable image gets an error reason and a zero row, never a
    silent drop."""
    images, digests, errors = [], [], []
    for path in paths:
        try:
            image = load_image(path)
            digest = _sha256_of(path)
        except ImageLoadError as e:
            images.append(None)
            digests.append("")
            errors.append(e.reason)
            continue
        images.append(image)
        digests.append(digest)
        errors.append("")
    batch = np.zeros((len(paths), 3, input_size, input_size), np.float32)
    good = [i for i, image in enumerate(images) if image is not None]
    if good:
        batch[good] = head.preprocess([images[i] for i in good])[0].numpy()
    return batch, digests, errors


def _sha256_of(path: str) -> str:
    from vision.fileio import sha256_file

    try:
        return sha256_file(path)  # a second read of a file just decoded: served from the page cache
    except OSError as e:
        raise ImageLoadError(path, f"cannot read file ({e.strerror or e})") from None


def _id_under(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _parquet_pairs(table_path: Path) -> list[tuple[str, str]]:
    import pyarrow.parquet as pq

    names = pq.read_schema(table_path).names
    if "path" not in names:
        raise ExtractError(f"{table_path}: a table of images needs a 'path' column; it has {names}")
    table = pq.read_table(table_path, columns=["path", "id"] if "id" in names else ["path"])
    paths = [table_path.parent / p for p in table.column("path").to_pylist()]  # absolute paths stay absolute
    if "id" in names:
        return [(str(i), str(p)) for i, p in zip(table.column("id").to_pylist(), paths)]
    return [(_id_under(table_path.parent, p), str(p)) for p in paths]
