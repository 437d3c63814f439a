"""What the dedup stages read: per image its id, the sha256 of its bytes, its pHashes, its size, and optionally a
feature vector with the model that made it.

Example::

    cat = scan_images("photos/", model="grocery_resnet10t")    # folder, manifest ('path, ...' lines) or paths
    cat = scan_images("photos/", features="photos.npy")        # vectors from vision extract (+ .model.json)
"""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

WINDOW = 512  # images read ahead by the worker threads
# the keypoint check's grey thumbnails the scan keeps, at most (256 x 256 bytes each: 16k images); beyond it the
# check decodes the rest again
THUMBNAIL_BYTES = 1 << 30
CALIBRATION_KEY = "dedup_thresholds"  # card.config key holding the thresholds calibrated for a model


class DedupError(ValueError):
    """Input that cannot be deduplicated as asked: nothing to read, features from two models, an index made by
    another model."""


@dataclass(frozen=True)
class ModelId:
    """The model whose vectors these are; two catalogs are comparable only if both fields agree."""

    name: str
    sha256: str = ""

    def __str__(self) -> str:
        return f"{self.name} (sha256 {self.sha256[:12] or 'unknown'})"

    def to_dict(self) -> dict:
        return {"name": self.name, "sha256": self.sha256}


def check_same_model(a: ModelId | None, b: ModelId | None, what_a: str, what_b: str) -> None:
    """Refuse to compare vectors of two different models (their cosine similarities mean nothing)."""
    if a is not None and b is not None and (a.name != b.name or (a.sha256 and b.sha256 and a.sha256 != b.sha256)):
        raise DedupError(f"{what_a} has features of model {a}, {what_b} of model {b}: vectors of different models "
                         "cannot be compared; extract both with one model")


@dataclass
class Catalog:
    """Images ready for the dedup stages (rows aligned); ``skipped`` lists ``(id, reason)`` of unreadable ones."""

    ids: list[str]
    sha256: list[str]
    hashes: np.ndarray            # (N,) uint64 pHash
    mirrored: np.ndarray          # (N,) uint64 pHash of the left-right mirror image
    pixels: np.ndarray            # (N,) int64 width * height
    nbytes: np.ndarray            # (N,) int64 file size
    vectors: np.ndarray | None = None
    model: ModelId | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    calibrated: dict | None = None  # the thresholds calibrated for ``model`` (its card's config.dedup_thresholds)
    timings: dict = field(default_factory=dict)  # scan stage -> {"seconds"}: read (decode, sha256, pHash), embed
    thumbnails: dict | None = None  # id -> the keypoint check's thumbnail (vision.dedup.verify.thumbnail)

    def __len__(self) -> int:
        return len(self.ids)


def image_sources(source, allow_outside: bool = False) -> list[str]:
    """Image paths from a folder (recursive), a manifest (``path, ...`` lines relative to its folder; ``#``
    comments; entries outside its folder only with ``allow_outside``, see
    :func:`vision.data.datasets.manifest_images`) or an iterable of paths. An input with no image is a
    :class:`DedupError`."""
    from vision.data.datasets import manifest_images
    from vision.data.io import list_images

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            paths = [str(p) for p in list_images(path)]
        elif path.is_file():
            paths = [str(p) for p in manifest_images(path, allow_outside=allow_outside)]
        else:
            raise FileNotFoundError(f"{source}: no such folder or manifest")
    else:
        paths = [str(p) for p in source]
    if not paths:
        raise DedupError(f"{source}: no images to deduplicate (empty folder or manifest)")
    return paths


def unlistable_name(path) -> str | None:
    """Why an image cannot go into a one-per-line list (ids.txt, keep.txt): its name holds a line break. Such a
    name is legal on disk, so scanners skip the file with this reason (counted and reported) instead of failing."""
    from vision.names import text_line

    try:
        text_line(str(path), "image path")
    except ValueError:
        return "file name contains a line break: it cannot be listed one per line; rename it"
    return None


def scan_images(source, model: str | None = None, features: str | os.PathLike | Sequence | None = None,
                features_model: ModelId | None = None, backend: str = "auto", device: str | None = None,
                batch_size: int = 64, draft_size: int = 256, progress: bool = False,
                workers: int | None = None, thumbnails: bool = False) -> Catalog:
    """Read every image once: sha256, pHash pair and size; feature vectors from ``model`` (a zoo name or export)
    or from ``features`` files (``.npy`` + ``.ids.txt``, each with a ``.model.json`` sidecar, else from
    ``features_model``; ``source=None`` reads the images their ids name). Unreadable images are listed in
    ``skipped``; none readable is a :class:`DedupError`. ``progress``: a bar on stderr when it is a terminal.
    ``workers``: threads reading, hashing and decoding images (default: one per CPU core, at most 8); the order of
    the catalog is the order of the input either way. ``thumbnails``: also keep each image's grey thumbnail for the
    keypoint check (up to :data:`THUMBNAIL_BYTES`; with the check's ``draft_size`` only), so it decodes nothing
    again."""

    from vision.data.io import ImageLoadError, load_image_and_size
    from vision.dedup.hashing import phash
    from vision.dedup.verify import SIDE, thumbnail
    from vision.fileio import sha256_file
    from vision.progress import progress_bar

    if model is not None and features is not None:
        raise DedupError("give either a model to extract features or features files, not both")
    if source is None and features is None:
        raise DedupError("nothing to deduplicate: give images (a folder, manifest or paths) or features files")
    given = load_feature_files(features, features_model) if features is not None else None
    paths = image_sources(source) if source is not None else list(given[0])
    extractor = None
    if model is not None:
        from vision.features import FeatureExtractor
        from vision.predictors import available_cores

        # ONNX Runtime gets every core, beside the reading threads: on 2 cores of an AVX2-only EPYC 1.07-1.08x
        # faster end to end than 1 thread, idle and beside two busy loops (reading leaves a core partly idle while
        # the network runs); on a VNNI Xeon, where the network is faster, the two measured the same
        # (benchmarks/results/dedup.md)
        extractor = FeatureExtractor.from_pretrained(model, backend=backend, device=device,
                                                     threads=available_cores())
    ids, shas, hashes, pixels, nbytes, chunks, skipped, pending = [], [], [], [], [], [], [], []
    # the same decode as the check's own (draft_size=SIDE), so a kept thumbnail is the one it would make
    thumbs: dict | None = {} if thumbnails and draft_size == SIDE else None
    room = [thumbs is not None]   # workers stop making thumbnails once the budget is spent
    kept_bytes = 0

    embed_s = 0.0

    def flush():
        nonlocal embed_s
        if pending:
            t0 = time.perf_counter()
            chunks.append(extractor.embed_prepared(pending))
            embed_s += time.perf_counter() - t0
            pending.clear()

    def read(path):
        """Everything the stages need of one image, or the reason it cannot be read (runs in a worker thread:
        decoding, hashing the bytes, the DCT and the network's preprocessing release the GIL)."""
        unlistable = unlistable_name(path)
        if unlistable:  # legal on disk, but keep.txt and ids files list one path per line
            return path, unlistable
        try:
            image, size = load_image_and_size(path, draft_size=draft_size)
            thumb = thumbnail(image) if room[0] else None
            prepared = extractor.prepare(image) if extractor is not None else None
            return path, (prepared, size, sha256_file(path), phash(image), os.path.getsize(path), thumb)
        except ImageLoadError as e:
            return path, e.reason
        except OSError as e:
            return path, f"cannot read: {e.strerror or e}"

    workers = default_workers() if workers is None else max(1, int(workers))
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool, progress_bar(total=len(paths), enabled=progress, desc="scan",
                                                            unit="img") as bar:
        for path, got in read_ahead(pool, read, paths, WINDOW):
            bar.update(1)
            if isinstance(got, str):
                skipped.append((path, got))
                continue
            prepared, size, sha, pair, size_bytes, thumb = got
            if thumb is not None and room[0]:
                thumbs[path] = thumb
                kept_bytes += thumb[0].nbytes
                room[0] = kept_bytes < THUMBNAIL_BYTES
            ids.append(path)
            shas.append(sha)
            hashes.append(pair)
            pixels.append(size[0] * size[1])
            nbytes.append(size_bytes)
            if extractor is not None:
                pending.append(prepared)
                if len(pending) >= batch_size:
                    flush()
    if not ids:
        why = "; ".join(f"{p} ({r})" for p, r in skipped[:3])
        raise DedupError(f"{source}: none of its {len(paths)} image(s) could be read ({why})")
    vectors, model_id, calibrated = None, None, None
    if extractor is not None:
        flush()
    # the reading threads run while the embedding does: "read" is the scan's time not spent embedding
    timings = {"read": {"seconds": time.perf_counter() - started - embed_s}}
    if extractor is not None:
        timings["embed"] = {"seconds": embed_s, "backend": extractor.backend.backend}
        vectors = np.concatenate(chunks)
        model_id = ModelId(extractor.card.name, extractor.card.sha256)
        calibrated = extractor.card.config.get(CALIBRATION_KEY)
    elif given is not None:
        given_ids, given_vectors, model_id = given
        row = {os.path.abspath(i): k for k, i in enumerate(given_ids)}
        missing = [i for i in ids if os.path.abspath(i) not in row]
        if missing:
            raise DedupError(f"{len(missing)} image(s) have no row in the features files (e.g. {missing[0]}); "
                             "extract features for every image")
        vectors = given_vectors[[row[os.path.abspath(i)] for i in ids]]
        calibrated = zoo_calibration(model_id)
    h = np.asarray(hashes, np.uint64).reshape(-1, 2)
    return Catalog(ids, shas, h[:, 0].copy(), h[:, 1].copy(), np.asarray(pixels, np.int64),
                   np.asarray(nbytes, np.int64), vectors, model_id, skipped, calibrated, timings, thumbs)


def read_ahead(pool, fn, items, window: int):
    """``fn(item)`` for each item in input order, run on ``pool`` with at most ``window`` items in flight."""
    ahead: deque = deque()
    for item in items:
        ahead.append(pool.submit(fn, item))
        if len(ahead) >= window:
            yield ahead.popleft().result()
    while ahead:
        yield ahead.popleft().result()


def default_workers() -> int:
    """Threads for reading images: one per CPU core this process may use, at most 8."""
    from vision.predictors import available_cores

    return max(1, min(8, available_cores()))


def zoo_calibration(model: ModelId) -> dict | None:
    """The dedup thresholds stored in the card of zoo model ``model`` (same sha256), if any."""
    from vision.zoo.registry import find_card

    found = find_card(model.name)
    if found is None or (model.sha256 and found[0].sha256 != model.sha256):
        return None
    return found[0].config.get(CALIBRATION_KEY)


def model_sidecar(features: str | os.PathLike) -> Path:
    """``<features>.model.json``: the model that wrote a features file (``{"name", "sha256"}``)."""
    from vision.features import model_sidecar as sidecar

    return sidecar(features)


def write_model_sidecar(features: str | os.PathLike, model: ModelId) -> Path:
    """Name the model of a features ``.npy`` next to it (``<features>.model.json``), atomically."""
    from vision.features import write_model_sidecar as write

    return write(features, model.name, model.sha256)


def load_feature_files(files, model: ModelId | None = None) -> tuple[list[str], np.ndarray, ModelId]:
    """Image paths, unit vectors and model of one or several outputs of ``vision extract``: ``.npy`` (+ ``.ids.txt``
    and ``.model.json``), ``.parquet`` tables, or folders of ``vision.scale`` shards (Ray or Lightning engines).

    Each file's model comes from the file (sidecar or Parquet metadata), or ``model`` for files that do not name
    one; files of two models are refused, naming both."""
    from vision.features import read_features

    files = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    if not files:
        raise DedupError("no features files given")
    all_ids, blocks, first, first_file = [], [], None, None
    for f in files:
        if Path(f).is_dir():  # shards of vision extract --engine ray/lightning, the model in their metadata
            from vision.scale.shards import read_shards

            ids, vectors, meta = read_shards(f, key="path")
            named = {"name": meta["model"], "sha256": meta["model_sha256"]}
        else:
            ids, vectors, named = read_features(f)
        if named is not None:
            file_model = ModelId(named["name"], named.get("sha256", ""))
        elif model is not None:
            file_model = model
        else:
            raise DedupError(f"{f}: which model made these features is unknown (no {model_sidecar(f).name} and no "
                             "model in its metadata); name it (--features-model NAME) so features of different "
                             "models are never mixed")
        check_same_model(first, file_model, str(first_file), str(f))
        first, first_file = first or file_model, first_file or f
        all_ids += ids
        blocks.append(vectors)
    if len({b.shape[1] for b in blocks}) > 1:
        raise DedupError(f"{', '.join(map(str, files))}: vectors of different widths "
                         f"{sorted({b.shape[1] for b in blocks})}")
    vectors = np.concatenate(blocks).astype(np.float32)
    if len(vectors) == 0:
        raise DedupError(f"{', '.join(map(str, files))}: no feature rows")
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return all_ids, vectors, first


def select(catalog: Catalog, rows: Iterable[int]) -> Catalog:
    """A catalog of the given rows (same model)."""
    rows = list(rows)
    return Catalog([catalog.ids[r] for r in rows], [catalog.sha256[r] for r in rows], catalog.hashes[rows],
                   catalog.mirrored[rows], catalog.pixels[rows], catalog.nbytes[rows],
                   None if catalog.vectors is None else catalog.vectors[rows], catalog.model, [], catalog.calibrated)
