"""A saved cluster index: assign new uploads to existing clusters (or open new ones) without re-clustering.

A :class:`vision.store.VersionedStore` like dedup's catalog index: each save writes a version folder holding
``cluster.json`` (format, model name and sha256, settings, counts), ``cluster.npz`` (ids, sha256s, pHashes,
cluster ids) and ``vectors.faiss``, then switches ``CURRENT`` (every part's sha256) in one rename; a reader checks
every part against ``CURRENT`` and every field against the others. :meth:`ClusterIndex.update` holds the lock
from the load to the save, so concurrent ``--add`` runs never lose each other's images.

Assignment follows the clustering's rules: an upload joins the cluster of its strongest edge (an exact copy, then
a pHash near copy, then the most similar k-NN neighbour at or above the similarity threshold); uploads with no
such edge are clustered among themselves (same settings, copies first, chaining guard), and each of their groups
joins the cluster its matched members joined or opens a new cluster.

Example::

    ClusterIndex.build(vision.cluster("catalog/", model="grocery_lite0")).save("runs/cluster_index")
    with ClusterIndex.update("runs/cluster_index") as index:            # locked read-modify-write
        rows = index.assign(scan_images("uploads/", model="grocery_lite0"), add=True)
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np

from vision.clustering.core import ClusterError, ClusterResult, ClusterSettings, cluster_catalog, cluster_id
from vision.dedup.catalog import Catalog, ModelId, check_same_model

FORMAT = "vision.clustering.index/1"
META, ARRAYS, VECTORS = "cluster.json", "cluster.npz", "vectors.faiss"
META_KEYS = {"format", "count", "model", "dim", "settings"}
TEXT_ARRAYS = ("ids", "sha256", "labels")
INT_ARRAYS = ("hashes", "mirrored")
# per cluster: its id and the sum of its members' (augmented) vectors: the mean cosine of an upload to a cluster
# (average linkage) without reading the members


def cluster_store(folder: str | os.PathLike):
    from vision.store import VersionedStore

    return VersionedStore(folder, error=ClusterError, what="cluster index")


class ClusterIndex:
    def __init__(self, catalog: Catalog, labels: list[str], settings: ClusterSettings, index,
                 sums: dict[str, np.ndarray] | None = None):
        self.catalog, self.labels, self.settings, self.index = catalog, list(labels), settings, index
        self.sums = sums or {}

    @classmethod
    def build(cls, result: ClusterResult, index_kind: str = "auto") -> "ClusterIndex":
        from vision.dedup.search import EXACT_INDEX_LIMIT
        from vision.retrieval import build_index

        c = result.catalog
        kind = ("flat" if len(c) <= EXACT_INDEX_LIMIT else "ivf") if index_kind == "auto" else index_kind
        index = build_index(c.vectors, kind=kind)
        if hasattr(index, "make_direct_map"):
            index.make_direct_map()
        vectors = result.vectors if result.vectors is not None else c.vectors
        return cls(c, result.labels, result.settings, index, cluster_sums(result.labels, vectors))

    def __len__(self) -> int:
        return len(self.catalog)

    @property
    def model(self) -> ModelId | None:
        return self.catalog.model

    def assign(self, new: Catalog, add: bool = False) -> list[dict]:
        """For each new image ``{"id", "cluster", "score", "reason", "new_cluster"}`` (``reason``: exact, phash,
        embedding (to the catalog), upload (grouped with other uploads), single); ``score``: its strongest edge's.
        ``add``: append the uploads with their clusters to the index (save it afterwards)."""
        from vision.dedup.graph import STAGE_ORDER
        from vision.dedup.hashing import HASH_BITS, hamming_distance

        s, c = self.settings, self.catalog
        check_same_model(c.model, new.model, "the cluster index", "the uploads")
        if new.vectors is None:
            raise ClusterError("the uploads have no feature vectors: scan them with the index's model "
                               f"({c.model.name if c.model else 'unknown'})")
        if new.vectors.ndim != 2 or new.vectors.shape[1] != self.index.d:
            raise ClusterError(f"the uploads have vectors of shape {new.vectors.shape}, the cluster index dimension "
                               f"{self.index.d}; extract them with the index's model")
        by_sha: dict[str, int] = {}
        for i, sha in enumerate(c.sha256):
            by_sha.setdefault(sha, i)
        sims, nn = (None, None)
        if len(c):
            sims, nn = self.index.search(np.ascontiguousarray(new.vectors, np.float32), min(s.k, len(c)))
        labels: list[str | None] = [None] * len(new)
        rows = []
        queries = self._augment(new.vectors, sims, nn)
        for q in range(len(new)):
            edges = []  # (stage, -score, catalog row, score, reason)
            if new.sha256[q] in by_sha:
                edges.append((STAGE_ORDER["exact"], -1.0, by_sha[new.sha256[q]], 1.0, "exact"))
            if s.phash_distance is not None and len(c):
                d = np.minimum(hamming_distance(c.hashes, new.hashes[q]), hamming_distance(c.mirrored, new.hashes[q]))
                j = int(np.argmin(d))
                if d[j] <= s.phash_distance:
                    score = 1 - int(d[j]) / HASH_BITS
                    edges.append((STAGE_ORDER["phash"], -score, j, score, "phash"))
            if sims is not None and s.method == "average":  # mean cosine to each neighbouring cluster
                for label in {self.labels[j] for j in nn[q] if j >= 0}:
                    total, count = self.sums[label]
                    score = float(queries[q] @ total) / count
                    if score >= s.similarity:
                        j = next(int(j) for j in nn[q] if j >= 0 and self.labels[j] == label)
                        edges.append((STAGE_ORDER["embedding"], -score, j, score, "embedding"))
            elif sims is not None:
                for score, j in zip(sims[q], nn[q]):
                    if j >= 0 and score >= s.similarity:
                        edges.append((STAGE_ORDER["embedding"], -float(score), int(j), float(score), "embedding"))
            if edges:
                _, _, j, score, reason = min(edges)
                labels[q] = self.labels[j]
                rows.append({"id": new.ids[q], "cluster": labels[q], "score": round(score, 6), "reason": reason,
                             "new_cluster": False})
            else:
                rows.append(None)
        # uploads among themselves: each group joins its matched members' cluster, else opens one
        own = cluster_catalog(new, s)
        best = own.grouping.best_edges()
        for rows_of_group in own.clusters().values():
            matched = Counter(labels[q] for q in rows_of_group if labels[q] is not None)
            if matched:
                label, opened = matched.most_common(1)[0][0], False
            else:
                label, opened = cluster_id([new.sha256[q] for q in rows_of_group]), True
            for q in rows_of_group:
                if rows[q] is None:
                    e = best[q]
                    labels[q] = label
                    rows[q] = {"id": new.ids[q], "cluster": label, "score": round(e.score, 6) if e else 1.0,
                               "reason": "upload" if e else "single", "new_cluster": opened}
        if add:
            self.add(new, [r["cluster"] for r in rows], queries)
        return rows

    def _augment(self, vectors: np.ndarray, sims, nn) -> np.ndarray:
        """The uploads' vectors augmented as the catalog's were (their nearest catalog neighbours)."""
        vectors = np.ascontiguousarray(vectors, np.float32)
        dba = self.settings.dba
        if sims is None or dba <= 1:
            return vectors
        near = nn[:, :dba - 1]
        stored = np.stack([self.index.reconstruct(int(j)) if j >= 0 else np.zeros(self.index.d, np.float32)
                           for j in near.ravel()]).reshape(*near.shape, -1)
        w = np.where(near >= 0, np.clip(sims[:, :dba - 1], 0, None) ** 3, 0).astype(np.float32)
        out = vectors + (stored * w[..., None]).sum(1)  # as vision.clustering.core.augment
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def add(self, new: Catalog, labels: list[str], augmented: np.ndarray | None = None) -> None:
        c = self.catalog
        check_same_model(c.model, new.model, "the cluster index", "the added images")
        if len(labels) != len(new):
            raise ClusterError(f"{len(new)} added images but {len(labels)} cluster ids")
        self.index.add(np.ascontiguousarray(new.vectors, np.float32))
        self.catalog = Catalog(c.ids + new.ids, c.sha256 + new.sha256, np.concatenate([c.hashes, new.hashes]),
                               np.concatenate([c.mirrored, new.mirrored]), np.concatenate([c.pixels, new.pixels]),
                               np.concatenate([c.nbytes, new.nbytes]), None, c.model)
        self.labels += list(labels)
        vectors = new.vectors if augmented is None else augmented
        for label, (total, count) in cluster_sums(labels, vectors).items():
            old = self.sums.get(label)
            self.sums[label] = (total, count) if old is None else (old[0] + total, old[1] + count)

    # --- store
    def save(self, folder: str | os.PathLike) -> Path:
        store = cluster_store(folder)
        store.folder.mkdir(parents=True, exist_ok=True)
        with store.lock():
            store.commit(self._write_parts)
        return store.folder

    @classmethod
    @contextlib.contextmanager
    def update(cls, folder: str | os.PathLike) -> Iterator["ClusterIndex"]:
        """Load, yield, and save when the block ends without an error, holding the store's lock throughout."""
        store = cluster_store(folder)
        with store.lock():
            index = cls._load(store)
            yield index
            store.commit(index._write_parts)

    def _write_parts(self, folder: Path) -> None:
        import faiss

        from vision.names import text_line

        c = self.catalog
        if self.index.ntotal != len(c) or len(self.labels) != len(c):
            raise ClusterError(f"the faiss index holds {self.index.ntotal} vectors and {len(self.labels)} cluster "
                               f"ids for {len(c)} images: not saved")
        for i in c.ids:
            text_line(i, "cluster index: image id", ClusterError)
        with open(folder / ARRAYS, "wb") as f:
            names = sorted(self.sums)
            np.savez(f, ids=np.asarray(c.ids, dtype=str), sha256=np.asarray(c.sha256, dtype=str),
                     labels=np.asarray(self.labels, dtype=str), hashes=c.hashes, mirrored=c.mirrored,
                     cluster_names=np.asarray(names, dtype=str),
                     cluster_sums=np.asarray([self.sums[k][0] for k in names], np.float32).reshape(-1, self.index.d),
                     cluster_counts=np.asarray([self.sums[k][1] for k in names], np.int64))
        faiss.write_index(self.index, str(folder / VECTORS))
        meta = {"format": FORMAT, "count": len(c), "model": c.model.to_dict() if c.model else None,
                "dim": int(self.index.d), "settings": asdict(self.settings)}
        (folder / META).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "ClusterIndex":
        """The current version at ``folder``, every part checked against ``CURRENT`` and every field against the
        others; anything else is a :class:`ClusterError` naming the file and the field."""
        return cls._load(cluster_store(folder))

    @classmethod
    def _load(cls, store) -> "ClusterIndex":
        from vision.arrays import load_npz

        folder = store.current_folder()
        if folder is None:
            raise ClusterError(f"{store.folder}: not a cluster index (no CURRENT); build one with vision cluster "
                               "--images CATALOG --model NAME --save-index DIR")
        record = store.pointer()
        for name in (META, ARRAYS, VECTORS):
            if name not in record["parts"]:
                raise ClusterError(f"{store.folder / 'CURRENT'}: field 'parts' has no {name}: not a cluster index "
                                   "version; build it again")
        meta = _read_meta(folder / META)
        path = folder / ARRAYS
        arrays = load_npz(path, ClusterError, max_bytes=2 * path.stat().st_size + (1 << 20))
        for name in TEXT_ARRAYS + INT_ARRAYS:
            a = arrays.get(name)
            kinds = "U" if name in TEXT_ARRAYS else "iu"
            if a is None or a.ndim != 1 or len(a) != meta["count"] or (a.dtype.kind not in kinds and len(a)):
                got = "missing" if a is None else f"{a.dtype} of shape {a.shape}"
                raise ClusterError(f"{path}: array {name!r} is {got}; cluster.json field 'count' says "
                                   f"{meta['count']} rows: damaged or parts of different saves; build the index again")
        names, sums, counts = arrays.get("cluster_names"), arrays.get("cluster_sums"), arrays.get("cluster_counts")
        if names is None or sums is None or counts is None or sums.shape != (len(names), meta["dim"]) or \
                counts.shape != (len(names),) or set(names.tolist()) != set(arrays["labels"].tolist()):
            raise ClusterError(f"{path}: arrays 'cluster_names', 'cluster_sums', 'cluster_counts' are missing or do "
                               "not match 'labels' and cluster.json field 'dim'; build the index again")
        index = _read_vectors(folder / VECTORS, meta)
        if hasattr(index, "make_direct_map"):
            index.make_direct_map()
        model = ModelId(**meta["model"]) if meta["model"] else None
        n = meta["count"]
        catalog = Catalog(arrays["ids"].tolist(), arrays["sha256"].tolist(), arrays["hashes"].astype(np.uint64),
                          arrays["mirrored"].astype(np.uint64), np.zeros(n, np.int64), np.zeros(n, np.int64),
                          None, model)
        return cls(catalog, arrays["labels"].tolist(), meta["settings"], index,
                   {k: (sums[i].astype(np.float32), int(counts[i])) for i, k in enumerate(names.tolist())})


def cluster_sums(labels: list[str], vectors: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
    out: dict[str, tuple[np.ndarray, int]] = {}
    for label, v in zip(labels, vectors):
        total, count = out.get(label, (np.zeros(len(v), np.float32), 0))
        out[label] = (total + v, count + 1)
    return out


def _read_meta(path: Path) -> dict:
    def bad(field: str, want: str, got) -> ClusterError:
        return ClusterError(f"{path}: field {field!r} must be {want}, got {got!r:.80}; the index is damaged: "
                            "restore it or build it again")

    from vision.store import read_record

    meta = read_record(path, "cluster index record", ClusterError)
    if meta.get("format") != FORMAT:
        raise bad("format", repr(FORMAT), meta.get("format"))
    missing, unknown = sorted(META_KEYS - set(meta)), sorted(set(meta) - META_KEYS)
    if missing or unknown:
        raise ClusterError(f"{path}: fields {missing} missing, {unknown} unknown; expected {sorted(META_KEYS)}")
    count, dim, model = meta["count"], meta["dim"], meta["model"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise bad("count", "a whole number >= 0", count)
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 1 << 16:
        raise bad("dim", "a vector length in 1-65536", dim)
    if model is not None and not (isinstance(model, dict) and set(model) == {"name", "sha256"}
                                  and all(isinstance(v, str) for v in model.values()) and model["name"]):
        raise bad("model", 'null or {"name": str, "sha256": str}', model)
    meta["settings"] = ClusterSettings.from_dict(meta["settings"], f"{path}: field 'settings'")
    if meta["settings"].similarity is None:
        raise bad("settings.similarity", "a number (the threshold the index was clustered at)", None)
    return meta


def _read_vectors(path: Path, meta: dict):
    """``vectors.faiss`` checked as dedup checks its catalog index's (header against count and dim, size)."""
    from vision.dedup.catalog import DedupError
    from vision.dedup.index import _read_faiss

    try:
        return _read_faiss(path, {"count": meta["count"], "dim": meta["dim"]})
    except DedupError as e:
        raise ClusterError(str(e).replace("catalog.json", META)) from None
