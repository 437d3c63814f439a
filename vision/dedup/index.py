"""A saved catalog for incremental dedup: build once, then check new uploads against it without rebuilding.

A catalog index is a :class:`vision.store.VersionedStore`: each save writes a new version folder holding
``catalog.json`` (model name and sha256, thresholds, counts), ``catalog.npz`` (ids, sha256s, pHashes, sizes) and
``vectors.faiss`` (the embedding index, when a model was used), then switches ``CURRENT`` (which records every
part's sha256) in one rename. A crash leaves the previous version current; a reader checks every part against
``CURRENT`` before parsing it, and every field after. :meth:`CatalogIndex.update` holds the store's lock from the
load to the save, so concurrent ``--add`` runs never lose each other's images. Folders written before versioning
(the three files at the top level) still load; their next save writes the versioned layout.

Example::

    CatalogIndex.build(scan_images("catalog/", model="grocery_resnet10t"), Thresholds()).save("cat_index/")
    matches = CatalogIndex.load("cat_index/").query(scan_images("uploads/", model="grocery_resnet10t"))
    with CatalogIndex.update("cat_index/") as index:     # locked read-modify-write
        index.add(new_images)
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from vision.dedup.catalog import Catalog, DedupError, ModelId, check_same_model
from vision.dedup.graph import STAGE_ORDER, Edge
from vision.dedup.hashing import HASH_BITS, hamming_distance
from vision.dedup.search import EXACT_INDEX_LIMIT, Pair, Thresholds

FORMAT = "vision.dedup.catalog/1"
META, ARRAYS, VECTORS = "catalog.json", "catalog.npz", "vectors.faiss"
META_KEYS = {"format", "count", "model", "dim", "thresholds", "has_vectors"}
TEXT_ARRAYS = ("ids", "paths", "sha256")
INT_ARRAYS = ("hashes", "mirrored", "pixels", "nbytes")
# faiss index kinds vision writes (vision.retrieval.build_index): flat, IVF-flat, HNSW-flat, all inner product
FAISS_FLAT, FAISS_IVF, FAISS_HNSW = b"IxFI", b"IwFl", b"IHNf"
_FAISS_HEADER = struct.Struct("<4siqqq?i")  # fourcc, d, ntotal, two dummies, is_trained, metric_type


def catalog_store(folder: str | os.PathLike):
    """The :class:`~vision.store.VersionedStore` behind a catalog index folder."""
    from vision.store import VersionedStore

    return VersionedStore(folder, error=DedupError, what="catalog index")


class CatalogIndex:
    def __init__(self, catalog: Catalog, thresholds: Thresholds, index=None, paths: list[str] | None = None):
        self.catalog, self.thresholds, self.index = catalog, thresholds, index
        self.paths = paths or [os.path.abspath(i) for i in catalog.ids]

    @classmethod
    def build(cls, catalog: Catalog, thresholds: Thresholds | None = None, index_kind: str = "auto") -> "CatalogIndex":
        from vision.retrieval import build_index

        index = None
        if catalog.vectors is not None:
            n = len(catalog)
            kind = ("flat" if n <= EXACT_INDEX_LIMIT else "ivf") if index_kind == "auto" else index_kind
            index = build_index(catalog.vectors, kind=kind)
        return cls(catalog, thresholds or Thresholds(), index)

    def __len__(self) -> int:
        return len(self.catalog)

    def add(self, new: Catalog) -> None:
        """Append ``new`` images (same model) to the catalog and its index, without rebuilding it."""
        c = self.catalog
        check_same_model(c.model, new.model, "the catalog index", "the added images")
        if (self.index is None) != (new.vectors is None):
            raise DedupError("the catalog index and the added images must both have vectors or both have none")
        if self.index is not None:
            if new.vectors.ndim != 2 or new.vectors.shape[1] != self.index.d:
                raise DedupError(f"the added images have vectors of shape {new.vectors.shape}, the catalog index "
                                 f"dimension {self.index.d}")
            self.index.add(np.ascontiguousarray(new.vectors, np.float32))
        self.catalog = Catalog(c.ids + new.ids, c.sha256 + new.sha256, np.concatenate([c.hashes, new.hashes]),
                               np.concatenate([c.mirrored, new.mirrored]), np.concatenate([c.pixels, new.pixels]),
                               np.concatenate([c.nbytes, new.nbytes]), None, c.model)
        self.paths = self.paths + [os.path.abspath(i) for i in new.ids]

    def save(self, folder: str | os.PathLike) -> Path:
        """Write a new version of the index at ``folder`` and make it current atomically; returns ``folder``."""
        store = catalog_store(folder)
        store.folder.mkdir(parents=True, exist_ok=True)
        with store.lock():
            self._commit(store)
        return store.folder

    @classmethod
    @contextlib.contextmanager
    def update(cls, folder: str | os.PathLike) -> Iterator["CatalogIndex"]:
        """Load the index at ``folder`` and save it when the block ends without an error, holding the store's lock
        from the load to the save: another process's update waits instead of being overwritten."""
        store = catalog_store(folder)
        with store.lock():
            index = cls._load(store)
            yield index
            index._commit(store)

    def _commit(self, store) -> None:
        store.commit(self._write_parts)
        # an index written before versioning: its top-level files are superseded once CURRENT exists
        for name in (META, ARRAYS, VECTORS):
            (store.folder / name).unlink(missing_ok=True)

    def _write_parts(self, folder: Path) -> None:
        import faiss

        c = self.catalog
        if self.index is not None and (self.index.ntotal != len(c) or self.index.d != self.dim):
            raise DedupError(f"the faiss index holds {self.index.ntotal} vectors of dimension {self.index.d} for "
                             f"{len(c)} images of dimension {self.dim}: not saved")
        with open(folder / ARRAYS, "wb") as f:
            # absolute paths too: the verification stage re-reads catalog images from any working folder
            np.savez(f, ids=np.asarray(c.ids, dtype=str), paths=np.asarray(self.paths, dtype=str),
                     sha256=np.asarray(c.sha256, dtype=str), hashes=c.hashes, mirrored=c.mirrored,
                     pixels=c.pixels, nbytes=c.nbytes)
        if self.index is not None:
            faiss.write_index(self.index, str(folder / VECTORS))
        meta = {"format": FORMAT, "count": len(c), "model": c.model.to_dict() if c.model else None,
                "dim": self.dim, "thresholds": asdict(self.thresholds), "has_vectors": self.index is not None}
        (folder / META).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")

    @property
    def dim(self) -> int | None:
        if self.index is not None:
            return int(self.index.d)
        return None if self.catalog.vectors is None else int(self.catalog.vectors.shape[1])

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "CatalogIndex":
        """The current version of the index at ``folder``, every part checked against its recorded sha256 and
        every field against the others; anything else is a :class:`DedupError` naming the file and the field."""
        return cls._load(catalog_store(folder))

    @classmethod
    def _load(cls, store) -> "CatalogIndex":
        record = store.pointer()
        folder = store.current_folder()  # every part's size and sha256 checked against CURRENT
        if folder is None:  # no version yet: an index written before versioning, or none at all
            folder = store.folder
            if not (folder / META).is_file():
                raise DedupError(f"{folder}: not a catalog index (no {store.folder / 'CURRENT'} and no {META}); "
                                 "build one with vision dedup --images CATALOG --save-index DIR")
        meta = _read_meta(folder / META)
        if record is not None and folder.name == record["version"]:  # every part read is one CURRENT vouches for
            for name in (META, ARRAYS) + ((VECTORS,) if meta["has_vectors"] else ()):
                if name not in record["parts"]:
                    raise DedupError(f"{store.folder / 'CURRENT'}: field 'parts' has no {name}: not a catalog "
                                     "index version; build it again")
        arrays = _read_arrays(folder / ARRAYS, meta["count"])
        index = _read_faiss(folder / VECTORS, meta) if meta["has_vectors"] else None
        model = ModelId(**meta["model"]) if meta["model"] else None
        catalog = Catalog(arrays["ids"].tolist(), arrays["sha256"].tolist(), arrays["hashes"].astype(np.uint64),
                          arrays["mirrored"].astype(np.uint64), arrays["pixels"].astype(np.int64),
                          arrays["nbytes"].astype(np.int64), None, model)
        return cls(catalog, meta["thresholds"], index, arrays["paths"].tolist())

    def query(self, new: Catalog, thresholds: Thresholds | None = None, verifier=None) -> list[dict]:
        """For each new image, its best match in the catalog: ``{"id", "match", "reason", "score"}`` (``match``
        None and reason ``new`` when it has none). The stages run as in :func:`~vision.dedup.find_duplicates`:
        exact copy, pHash, embedding similarity, then verification of the nearest candidates (the catalog's
        images must still be readable at their paths for that stage)."""
        t = thresholds or self.thresholds
        c = self.catalog
        if new.model is not None and c.model is not None:
            check_same_model(c.model, new.model, "the catalog index", "the query")
        if new.vectors is not None and self.index is not None and new.vectors.shape[1] != self.index.d:
            raise DedupError(f"query vectors have dimension {new.vectors.shape[1]}, the index {self.index.d}")
        if t.verify is not None and verifier is None:
            from vision.dedup.verify import Verifier

            verifier = Verifier()
        by_sha: dict[str, int] = {}
        for i, sha in enumerate(c.sha256):
            by_sha.setdefault(sha, i)
        sims = ids = None
        if new.vectors is not None and self.index is not None and len(c):
            sims, ids = self.index.search(np.ascontiguousarray(new.vectors, np.float32), min(t.k, len(c)))
        radius = max(t.phash_distance or 0, t.candidate_distance if t.verify is not None else 0)
        out = []
        for q in range(len(new)):
            pairs = []
            if new.sha256[q] in by_sha:
                pairs.append(Pair(by_sha[new.sha256[q]], q, exact=True))
            if len(c):
                d = np.minimum(hamming_distance(c.hashes, new.hashes[q]), hamming_distance(c.mirrored, new.hashes[q]))
                for j in np.argsort(d, kind="stable")[:t.k]:
                    if d[j] <= radius:
                        pairs.append(Pair(int(j), q, distance=int(d[j])))
            if sims is not None:
                for s, j in zip(sims[q], ids[q]):
                    if j >= 0:
                        pairs.append(Pair(int(j), q, similarity=float(s)))
            # the cosine gate as in find_duplicates: a catalog image outside the query's k nearest has a cosine at
            # most the k-th one's, so it is known to fall below the gate when the k-th does
            cosine = {int(j): float(s) for s, j in zip(sims[q], ids[q]) if j >= 0} if sims is not None else {}
            below = sims is not None and len(cosine) == len(sims[q]) > 0 and t.verify_similarity is not None and \
                float(sims[q][-1]) < t.verify_similarity
            match = self._best(pairs, t, verifier, new.ids[q], cosine, below)
            out.append({"id": new.ids[q], "match": None if match is None else c.ids[match.i],
                        "reason": "new" if match is None else match.reason,
                        "score": 0.0 if match is None else round(match.score, 6)})
        return out

    def _best(self, pairs: list[Pair], t: Thresholds, verifier, query_id: str, cosine: dict[int, float],
              others_below: bool) -> Edge | None:
        direct = replace(t, verify=None)
        edges = [e for e in (p.edge(direct) for p in pairs) if e is not None]
        if edges:
            return min(edges, key=lambda e: (STAGE_ORDER[e.reason], -e.score))
        if t.verify is None:
            return None
        tried = set()
        for p in sorted(pairs, key=lambda p: (p.distance if p.distance is not None else HASH_BITS,
                                              -(p.similarity or 0))):
            close = (p.distance is not None and p.distance <= t.candidate_distance) or \
                    (p.similarity is not None and p.similarity >= t.candidate_similarity)
            gated = t.verify_similarity is not None and not (p.distance is not None and p.distance <= t.gate_distance) \
                and (cosine[p.i] < t.verify_similarity if p.i in cosine else others_below)
            if not close or gated or p.i in tried:
                continue
            tried.add(p.i)
            p.inliers, p.ncc, p.containment, p.local = verifier.score(self.paths[p.i], query_id)
            edge = p.edge(t)
            if edge is not None:
                return edge
        return None


def _read_meta(path: Path) -> dict:
    """``catalog.json``, each field checked; ``thresholds`` becomes a :class:`Thresholds`."""
    def bad(field: str, want: str, got) -> DedupError:
        return DedupError(f"{path}: field {field!r} must be {want}, got {got!r:.80}; the index is damaged: "
                          "restore it or build it again")

    from vision.store import read_record

    meta = read_record(path, "catalog record", DedupError)
    if meta.get("format") != FORMAT:
        raise bad("format", repr(FORMAT), meta.get("format"))
    missing, unknown = sorted(META_KEYS - set(meta)), sorted(set(meta) - META_KEYS)
    if missing or unknown:
        raise DedupError(f"{path}: fields {missing} missing, {unknown} unknown; expected {sorted(META_KEYS)}")
    count, dim, has_vectors, model = meta["count"], meta["dim"], meta["has_vectors"], meta["model"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise bad("count", "a whole number >= 0", count)
    if not isinstance(has_vectors, bool):
        raise bad("has_vectors", "true or false", has_vectors)
    if has_vectors:
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 1 << 16:
            raise bad("dim", "a vector length in 1-65536 (has_vectors is true)", dim)
    elif dim is not None:
        raise bad("dim", "null (has_vectors is false)", dim)
    if model is not None and not (isinstance(model, dict) and set(model) == {"name", "sha256"}
                                  and all(isinstance(v, str) for v in model.values()) and model["name"]):
        raise bad("model", 'null or {"name": str, "sha256": str}', model)
    meta["thresholds"] = Thresholds.from_dict(meta["thresholds"], f"{path}: field 'thresholds'")
    return meta


def _read_arrays(path: Path, count: int) -> dict[str, np.ndarray]:
    """``catalog.npz``: every array present, one-dimensional, ``count`` rows, of its kind (bounded read)."""
    from vision.arrays import load_npz

    if not path.is_file():
        raise DedupError(f"{path}: missing; the index is incomplete: build it again")
    # vision writes it uncompressed: its arrays take about the file's size; a zip that claims more lies
    arrays = load_npz(path, DedupError, max_bytes=2 * path.stat().st_size + (1 << 20))
    for name in TEXT_ARRAYS + INT_ARRAYS:
        a = arrays.get(name)
        if a is None:
            raise DedupError(f"{path}: array {name!r} is missing; build the index again")
        kinds = "U" if name in TEXT_ARRAYS else "iu"
        if a.ndim != 1 or len(a) != count or (a.dtype.kind not in kinds and len(a)):
            raise DedupError(f"{path}: array {name!r} is {a.dtype} of shape {a.shape}; catalog.json field 'count' "
                             f"says {count} rows of {'text' if kinds == 'U' else 'integers'}: written by different "
                             "runs or damaged; build the index again")
    return arrays


def _read_faiss(path: Path, meta: dict):
    """``vectors.faiss``, its header checked against catalog.json (count, dim) and the file's size before faiss
    allocates what the header claims."""
    import faiss

    if not path.is_file():
        raise DedupError(f"{path}: missing, though catalog.json field 'has_vectors' is true; build the index again")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(_FAISS_HEADER.size + 16)
    if len(head) < _FAISS_HEADER.size:
        raise DedupError(f"{path}: {size} bytes, shorter than a faiss index header; build the index again")
    fourcc, d, ntotal, _, _, _, metric = _FAISS_HEADER.unpack_from(head)
    if fourcc not in (FAISS_FLAT, FAISS_IVF, FAISS_HNSW):
        raise DedupError(f"{path}: index type {fourcc!r} is not one vision writes (flat, ivf, hnsw); build the index "
                         "again")
    if d != meta["dim"] or ntotal != meta["count"]:
        raise DedupError(f"{path}: its header claims {ntotal} vectors of dimension {d}; catalog.json fields "
                         f"'count' and 'dim' say {meta['count']} of dimension {meta['dim']}: parts of different "
                         "saves or damaged; build the index again")
    need = ntotal * d * 4  # every kind vision writes stores the raw float32 vectors
    if fourcc == FAISS_FLAT:
        at = _FAISS_HEADER.size + (4 if metric > 1 else 0)
        exact = at + 8 + need
        (codes,) = struct.unpack_from("<Q", head, at) if len(head) >= at + 8 else (None,)
        if size != exact or codes != ntotal * d:  # faiss would allocate the length field's claim before reading
            raise DedupError(f"{path}: a flat index of {ntotal} x {d} vectors takes {exact} bytes and records "
                             f"{ntotal * d} floats; the file has {size} bytes and records {codes}: truncated or "
                             "damaged, build the index again")
    elif need > size:
        raise DedupError(f"{path}: its header claims {ntotal} x {d} vectors ({need} bytes) but the file holds "
                         f"{size}; damaged: build the index again")
    if fourcc == FAISS_IVF and len(head) >= _FAISS_HEADER.size + 8:
        (nlist,) = struct.unpack_from("<q", head, _FAISS_HEADER.size)
        if not 1 <= nlist or nlist * d * 4 > size:
            raise DedupError(f"{path}: its header claims {nlist} lists of dimension {d}, more than the file's "
                             f"{size} bytes hold; damaged: build the index again")
    try:
        index = faiss.read_index(str(path))
    except (RuntimeError, MemoryError) as e:  # faiss raises RuntimeError for every malformed file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DedupError(f"{path}: not a readable faiss index ({first}); build the index again") from None
    if index.ntotal != meta["count"] or index.d != meta["dim"]:
        raise DedupError(f"{path}: holds {index.ntotal} vectors of dimension {index.d}; catalog.json says "
                         f"{meta['count']} of dimension {meta['dim']}; build the index again")
    return index
