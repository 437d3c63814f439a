"""A saved catalog for incremental dedup: build once, then check new uploads against it without rebuilding.

A catalog folder holds ``catalog.json`` (model name and sha256, thresholds, counts), ``catalog.npz`` (ids,
sha256s, pHashes, sizes) and ``vectors.faiss`` (the embedding index, when a model was used).

Example::

    CatalogIndex.build(scan_images("catalog/", model="grocery_resnet10t"), Thresholds()).save("cat_index/")
    matches = CatalogIndex.load("cat_index/").query(scan_images("uploads/", model="grocery_resnet10t"))
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from vision.dedup.catalog import Catalog, DedupError, ModelId, check_same_model
from vision.dedup.hashing import HASH_BITS, hamming_distance
from vision.dedup.graph import STAGE_ORDER, Edge
from vision.dedup.search import EXACT_INDEX_LIMIT, Pair, Thresholds

FORMAT = "vision.dedup.catalog/1"


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
            self.index.add(np.ascontiguousarray(new.vectors, np.float32))
        self.catalog = Catalog(c.ids + new.ids, c.sha256 + new.sha256, np.concatenate([c.hashes, new.hashes]),
                               np.concatenate([c.mirrored, new.mirrored]), np.concatenate([c.pixels, new.pixels]),
                               np.concatenate([c.nbytes, new.nbytes]), None, c.model)
        self.paths = self.paths + [os.path.abspath(i) for i in new.ids]

    def save(self, folder: str | os.PathLike) -> Path:
        import faiss

        from vision.fileio import atomic_path, atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        c = self.catalog
        with atomic_path(folder / "catalog.npz") as tmp:
            with open(tmp, "wb") as f:
                # absolute paths too: the verification stage re-reads catalog images from any working folder
                np.savez(f, ids=np.asarray(c.ids, dtype=str), paths=np.asarray(self.paths, dtype=str),
                         sha256=np.asarray(c.sha256, dtype=str), hashes=c.hashes, mirrored=c.mirrored,
                         pixels=c.pixels, nbytes=c.nbytes)
        if self.index is not None:
            with atomic_path(folder / "vectors.faiss") as tmp:
                faiss.write_index(self.index, str(tmp))
        meta = {"format": FORMAT, "count": len(c), "model": c.model.to_dict() if c.model else None,
                "dim": None if c.vectors is None else int(c.vectors.shape[1]),
                "thresholds": asdict(self.thresholds), "has_vectors": self.index is not None}
        atomic_write_text(folder / "catalog.json", json.dumps(meta, indent=1) + "\n")  # last: marks it complete
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "CatalogIndex":
        import faiss

        folder = Path(folder)
        meta_path = folder / "catalog.json"
        if not meta_path.is_file():
            raise DedupError(f"{folder}: not a catalog index (no catalog.json); build one with tools/dedup.py "
                             "--images CATALOG --save-index DIR")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise DedupError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        with np.load(folder / "catalog.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if len(arrays["ids"]) != meta["count"]:
            raise DedupError(f"{folder}: catalog.npz has {len(arrays['ids'])} rows, catalog.json says "
                             f"{meta['count']}: written by different runs; build it again")
        index = faiss.read_index(str(folder / "vectors.faiss")) if meta["has_vectors"] else None
        if index is not None and index.ntotal != meta["count"]:
            raise DedupError(f"{folder}: vectors.faiss holds {index.ntotal} vectors for {meta['count']} ids")
        model = ModelId(**meta["model"]) if meta["model"] else None
        catalog = Catalog(arrays["ids"].tolist(), arrays["sha256"].tolist(), arrays["hashes"].astype(np.uint64),
                          arrays["mirrored"].astype(np.uint64), arrays["pixels"], arrays["nbytes"], None, model)
        return cls(catalog, Thresholds(**meta["thresholds"]), index, arrays["paths"].tolist())

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
            match = self._best(pairs, t, verifier, new.ids[q])
            out.append({"id": new.ids[q], "match": None if match is None else c.ids[match.i],
                        "reason": "new" if match is None else match.reason,
                        "score": 0.0 if match is None else round(match.score, 6)})
        return out

    def _best(self, pairs: list[Pair], t: Thresholds, verifier, query_id: str) -> Edge | None:
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
            if not close or p.i in tried:
                continue
            tried.add(p.i)
            p.inliers, p.ncc, p.containment, p.local = verifier.score(self.paths[p.i], query_id)
            edge = p.edge(t)
            if edge is not None:
                return edge
        return None
