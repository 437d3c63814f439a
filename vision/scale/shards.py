"""The shard format both engines write, its idempotent writer, the run's ``manifest.json`` and the reader.

A shard ``part-<i>.parquet`` has columns ``id`` (string), ``path`` (string), ``sha256`` (of the image file) and
``vector`` (fixed-size list of float32). Its schema metadata names the model (``vision.model``,
``vision.model_sha256``, ``vision.output``) and the shard (``vision.shard``: JSON with its index, the digest of its
planned ids, and the images of it that could not be read, with the reason). A shard is written under a temporary
name and renamed, so a file that exists is complete; a rerun skips it.

Example::

    ids, vectors, meta = read_shards("runs/photos_vectors")        # refuses shards of two models
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from vision.features import ExtractError
from vision.scale.inputs import Shard, ShardPlan

MANIFEST = "manifest.json"
SHARD_GLOB = "part-*.parquet"
MODEL_KEYS = ("model", "model_sha256", "output")
log = logging.getLogger(__name__)


class MixedModelsError(ExtractError):
    """Shards in one folder come from different models (or output kinds): their vectors are not comparable."""


def shard_schema(identity: dict[str, str], dim: int, shard_info: dict[str, Any]):
    import pyarrow as pa

    metadata = {f"vision.{k}": identity[k] for k in MODEL_KEYS}
    metadata |= {"vision.dim": str(dim), "vision.shard": json.dumps(shard_info, sort_keys=True)}
    return pa.schema([("id", pa.string()), ("path", pa.string()), ("sha256", pa.string()),
                      ("vector", pa.list_(pa.float32(), dim))], metadata=metadata)


def write_shard(out_dir: Path, shard: Shard, rows: dict[str, tuple[str, np.ndarray]],
                failures: dict[str, str], identity: dict[str, str], dim: int, engine: str) -> Path:
    """Write one shard atomically: ``rows`` maps id -> (sha256, vector), ``failures`` id -> reason; together they
    must cover the shard's ids exactly (checked, so an image can neither vanish nor appear twice)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vision.fileio import atomic_path

    planned = [ref.id for ref in shard.refs]
    got = set(rows) | set(failures)
    if got != set(planned) or set(rows) & set(failures):
        raise ExtractError(f"{shard.file_name}: results for {len(got)} ids, planned {len(planned)} (missing "
                           f"{sorted(set(planned) - got)[:3]}, unplanned {sorted(got - set(planned))[:3]})")
    good = [ref for ref in shard.refs if ref.id in rows]
    vectors = np.stack([rows[ref.id][1] for ref in good]).astype(np.float32) if good else np.zeros((0, dim), np.float32)
    info = {"index": shard.index, "ids_sha256": shard.ids_sha256, "images": len(planned), "engine": engine,
            "unreadable": [{"id": ref.id, "path": ref.path, "reason": failures[ref.id]}
                           for ref in shard.refs if ref.id in failures]}
    schema = shard_schema(identity, dim, info)
    table = pa.table([pa.array([r.id for r in good], pa.string()), pa.array([r.path for r in good], pa.string()),
                      pa.array([rows[r.id][0] for r in good], pa.string()),
                      pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)],
                     schema=schema)
    path = out_dir / shard.file_name
    with atomic_path(path) as tmp:
        # dictionary encoding only pays for repeated values: unique ids and float vectors would grow by half
        pq.write_table(table, tmp, use_dictionary=False, compression="zstd")
    return path


def shard_metadata(path: Path) -> dict[str, Any]:
    """The ``vision.*`` schema metadata of a shard file (its footer only), decoded and checked field by field: a
    malformed one is an :class:`ExtractError` naming the file and the field."""
    import pyarrow.parquet as pq

    try:
        raw = pq.read_schema(path).metadata or {}
    except Exception as e:  # pyarrow's errors for a file that is not Parquet
        raise ExtractError(f"{path}: not a readable Parquet shard ({e})") from None
    try:
        meta = {k.decode()[len("vision."):]: v.decode() for k, v in raw.items() if k.startswith(b"vision.")}
    except UnicodeDecodeError:
        raise ExtractError(f"{path}: its vision.* metadata is not UTF-8 text; not written by vision.scale") from None
    missing = [f"vision.{k}" for k in (*MODEL_KEYS, "dim", "shard") if k not in meta]
    if missing:
        raise ExtractError(f"{path}: not a vision.scale shard (metadata {missing} missing)")
    if not meta["model"]:
        raise ExtractError(f"{path}: metadata field 'vision.model' is empty")
    if not meta["dim"].isdigit() or not 1 <= int(meta["dim"]) <= 1 << 16:
        raise ExtractError(f"{path}: metadata field 'vision.dim' must be a vector length in 1-65536, got "
                           f"{meta['dim']!r:.40}")
    meta["dim"] = int(meta["dim"])
    meta["shard"] = _shard_info(path, meta["shard"])
    return meta


def _shard_info(path: Path, text: str) -> dict[str, Any]:
    """``vision.shard``: ``{"index", "ids_sha256", "images", "engine", "unreadable": [{"id", "path", "reason"}]}``."""
    def bad(field: str, want: str) -> ExtractError:
        return ExtractError(f"{path}: metadata field 'vision.shard' {field} must be {want}; the shard is damaged: "
                            "delete it and run the extraction again (finished shards are kept)")

    try:
        info = json.loads(text)
    except (ValueError, RecursionError):
        raise bad("", "a JSON object") from None
    if not isinstance(info, dict):
        raise bad("", "a JSON object")
    for key in ("index", "images"):
        if not isinstance(info.get(key), int) or isinstance(info.get(key), bool) or info[key] < 0:
            raise bad(f"field {key!r}", "a whole number >= 0")
    for key in ("ids_sha256", "engine"):
        if not isinstance(info.get(key), str):
            raise bad(f"field {key!r}", "a string")
    unreadable = info.get("unreadable")
    if not isinstance(unreadable, list) or len(unreadable) > info["images"] or not all(
            isinstance(u, dict) and all(isinstance(u.get(k), str) for k in ("id", "path", "reason"))
            for u in unreadable):
        raise bad("field 'unreadable'", "a list of at most 'images' objects with 'id', 'path' and 'reason' strings")
    return info


def pending_shards(plan: ShardPlan, out_dir: Path, identity: dict[str, str]) -> list[Shard]:
    """The shards of ``plan`` still to write. A finished shard of another model, or holding other images than
    planned (the input or ``shard_size`` changed), is an error rather than something to overwrite."""
    planned = {s.file_name: s for s in plan.shards}
    existing = sorted(out_dir.glob(SHARD_GLOB)) if out_dir.is_dir() else []
    extra = [p.name for p in existing if p.name not in planned]
    if extra:
        raise ExtractError(f"{out_dir}: shards {extra[:3]} are not in this plan of {len(plan.shards)} shard(s) "
                           f"(another input or shard size); write to a new folder")
    done = set()
    for path in existing:
        meta = shard_metadata(path)
        _check_same_model(identity, meta, f"this run ({identity['model']})", path)
        if meta["shard"]["ids_sha256"] != planned[path.name].ids_sha256:
            raise ExtractError(f"{path}: holds other images than this run plans for it (the input or --shard-size "
                               f"changed since it was written); write to a new folder or delete {out_dir}")
        done.add(path.name)
    return [s for s in plan.shards if s.file_name not in done]


class ShardAssembler:
    """Collects per-image results arriving in any order and batch size, and writes each shard as soon as all of
    its images are in. ``add`` takes column arrays: ``id``, ``sha256``, ``error`` ("" when read) and ``vector``."""

    def __init__(self, out_dir: Path, shards: Iterable[Shard], identity: dict[str, str], dim: int, engine: str):
        self.out_dir, self.identity, self.dim, self.engine = out_dir, identity, dim, engine
        self.shard_of = {ref.id: s for s in shards for ref in s.refs}
        self.open: dict[int, tuple[dict, dict]] = {}
        self.written: list[str] = []
        self.remaining = {s.index for s in self.shard_of.values()}

    def add(self, ids, sha256s, errors, vectors) -> None:
        for id_, digest, error, vector in zip(ids, sha256s, errors, vectors):
            id_ = str(id_)
            shard = self.shard_of.get(id_)
            if shard is None:
                raise ExtractError(f"result for id {id_!r}, which no pending shard holds")
            if shard.index not in self.remaining:
                continue  # a late repeat from a retried batch: its shard is already written
            rows, failures = self.open.setdefault(shard.index, ({}, {}))
            if error:
                failures[id_] = str(error)
            else:
                rows[id_] = (str(digest), np.asarray(vector, np.float32))
            if len(rows) + len(failures) == len(shard.refs):  # a retried batch may repeat ids: keyed, never doubled
                write_shard(self.out_dir, shard, rows, failures, self.identity, self.dim, self.engine)
                del self.open[shard.index]
                self.remaining.discard(shard.index)
                self.written.append(shard.file_name)

    def finish(self) -> None:
        if self.remaining:
            names = [f"part-{i:06d}.parquet" for i in sorted(self.remaining)]
            raise ExtractError(f"{self.out_dir}: {len(names)} shard(s) incomplete after the run ({names[:3]}); "
                               "run the command again to finish them")
        self.written.sort()   # shards finish in whatever order their batches come back: report them in order


def write_manifest(out_dir: Path, plan: ShardPlan, extra: dict[str, Any]) -> dict[str, Any]:
    """``manifest.json``: every shard with its counts, the totals and every unreadable image. Written last, and
    only when every planned shard is there."""
    from vision.fileio import atomic_write_text

    shards, unreadable, meta = [], [], None
    for shard in plan.shards:
        path = out_dir / shard.file_name
        if not path.is_file():
            raise ExtractError(f"{path}: missing; the extraction has not finished, run it again")
        meta = shard_metadata(path)
        info = meta["shard"]
        shards.append({"file": shard.file_name, "images": info["images"],
                       "vectors": info["images"] - len(info["unreadable"]), "unreadable": len(info["unreadable"]),
                       "ids_sha256": info["ids_sha256"], "engine": info["engine"]})
        unreadable += info["unreadable"]
    manifest = {"format": 1, **{k: meta[k] for k in MODEL_KEYS}, "dim": meta["dim"], "source": plan.source,
                "shard_size": plan.shard_size, "images": plan.images,
                "vectors": plan.images - len(unreadable), "unreadable_count": len(unreadable),
                "duplicate_inputs": plan.duplicates, **extra, "shards": shards, "unreadable": unreadable}
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_shards(out_dir: str | Path, partial: bool = False, key: str = "id"
                ) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """``(ids, vectors (N, D) float32, metadata)`` of every shard in ``out_dir``, in shard order; ``key="path"``
    gives the image paths instead of the ids.

    Refuses shards of two models (name + sha256, or output kind) with :class:`MixedModelsError` naming both. Without
    ``partial=True`` the run must have finished: ``manifest.json`` present and listing exactly the shards found.
    """
    out_dir = Path(out_dir)
    paths = sorted(out_dir.glob(SHARD_GLOB))
    if not partial:
        manifest_path = out_dir / MANIFEST
        if not manifest_path.is_file():
            raise ExtractError(f"{out_dir}: no {MANIFEST}, the extraction has not finished (rerun it: finished shards "
                               "are kept), or pass partial=True")
        listed = _manifest_files(manifest_path)
        if listed != [p.name for p in paths]:
            raise ExtractError(f"{out_dir}: {MANIFEST} lists {len(listed)} shard(s) but {len(paths)} are there; "
                               "rerun the extraction")
    if not paths:
        raise ExtractError(f"{out_dir}: no {SHARD_GLOB} shards")
    first = shard_metadata(paths[0])
    ids: list[str] = []
    vectors = []
    for path in paths:
        meta = shard_metadata(path)
        _check_same_model(first, meta, paths[0].name, path)
        if meta["dim"] != first["dim"]:
            raise ExtractError(f"{path}: metadata field 'vision.dim' is {meta['dim']}, {paths[0].name} says "
                               f"{first['dim']}; keep each run's shards in its own folder")
        shard_ids, shard_vectors = _read_shard_table(path, key, first["dim"])
        ids += shard_ids
        vectors.append(shard_vectors)
    metadata = {k: first[k] for k in (*MODEL_KEYS, "dim")} | {"shards": len(paths)}
    return ids, np.concatenate(vectors).astype(np.float32, copy=False), metadata


def _manifest_files(path: Path) -> list[str]:
    """The shard file names ``manifest.json`` lists, the file checked to be a manifest."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # ValueError: not JSON or not UTF-8
        raise ExtractError(f"{path}: not a readable manifest ({type(e).__name__}); rerun the extraction "
                           "(finished shards are kept)") from None
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if not isinstance(shards, list) or not all(isinstance(s, dict) and isinstance(s.get("file"), str)
                                               for s in shards):
        raise ExtractError(f"{path}: field 'shards' must be a list of objects with a 'file' name; rerun the "
                           "extraction (finished shards are kept)")
    return [s["file"] for s in shards]


def _read_shard_table(path: Path, key: str, dim: int) -> tuple[list[str], np.ndarray]:
    """The ``key`` column and the vectors of one shard, checked: strings, ``dim`` floats per row, all finite."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vision.features import check_finite

    try:
        table = pq.read_table(path, columns=[key, "vector"])
        ids = table.column(key)
        column = table.column("vector").combine_chunks()
        if not pa.types.is_string(ids.type) or ids.null_count:
            raise ExtractError(f"{path}: column {key!r} must hold a string for every row, it is {ids.type}")
        if not (pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type)) or column.null_count \
                or not pa.types.is_floating(column.type.value_type) or len(column.values) != len(table) * dim:
            raise ExtractError(f"{path}: column 'vector' must hold {dim} floats per row (metadata field "
                               f"'vision.dim'), it is {column.type} with {len(column.values)} values for "
                               f"{len(table)} rows")
        vectors = column.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(table), dim)
        ids = ids.to_pylist()
    except ExtractError:
        raise
    except Exception as e:  # pyarrow's errors for a damaged file or a missing column
        raise ExtractError(f"{path}: not a readable shard ({type(e).__name__}: {str(e)[:200]})") from None
    check_finite(vectors, ids, path)
    return ids, vectors


def _check_same_model(expected: dict, found: dict, expected_from: str, path: Path) -> None:
    if any(expected[k] != found[k] for k in MODEL_KEYS):
        def name(m):
            return f"{m['model']} (sha256 {m['model_sha256'][:12]}, output {m['output']})"
        raise MixedModelsError(f"{path}: written by {name(found)}, but {expected_from} is {name(expected)}; vectors "
                               "of different models are not comparable, keep each model's shards in its own folder")
