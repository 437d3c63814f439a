"""Product clusters from a catalog: copies first (sha256, pHash: dedup's stages), then a faiss k-NN graph of the
feature vectors thresholded at a cosine similarity, grouped by dedup's union-find with its chaining guard
(:func:`vision.dedup.graph.group_edges`): an edge that would join two multi-member clusters needs to be mutual
and supported by enough other edges, and a single bridge never holds two multi-member parts together.

The threshold is a property of the model (its cosines), not of the catalog: :data:`MODEL_DEFAULTS` holds the one
``benchmarks/cluster_eval.py`` chose on the Grocery Store validation split for each model it measured; other
models get :data:`GENERIC_SIMILARITY` unless ``similarity`` is given.

Example::

    from vision.dedup import scan_images
    result = cluster_catalog(scan_images("photos/", model="grocery_lite0"))
    result.rows()        # [{'id', 'cluster', 'score', 'reason'}, ...] one per image, singletons included
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from vision.dedup.catalog import Catalog, DedupError
from vision.dedup.graph import Edge, Grouping, UnionFind, group_edges

METHODS = ("average", "guarded", "components")
# model name -> settings chosen by benchmarks/cluster_eval.py on Grocery Store val (see docs/cluster.md)
MODEL_DEFAULTS: dict[str, dict] = {
    "grocery_lite0": {"similarity": 0.75},
    "pip:efficientnet_lite0": {"similarity": 0.82},
}
GENERIC_SIMILARITY = 0.75
EXACT_COMPONENT_LIMIT = 4000  # components up to this size get exact average linkage (a full similarity matrix)


class ClusterError(DedupError):
    """Input that cannot be clustered as asked (a DedupError, so callers of both catch one type)."""


@dataclass
class ClusterSettings:
    """``similarity``: least cosine of a k-NN edge (``None``: the model's default, :data:`MODEL_DEFAULTS`);
    ``k``: neighbours per image; ``dba``: each vector is first replaced by the weighted mean (weights cosine^3)
    of itself and its ``dba - 1`` nearest neighbours (database-side augmentation; 1 = off); ``method``:
    ``average`` (average linkage inside each connected component of the thresholded k-NN graph: two clusters
    merge only while their *mean* cosine is >= ``similarity``, so one ambiguous photo cannot join two products),
    ``guarded`` (union-find with dedup's chaining guard) or ``components`` (plain connected components, the
    baseline); ``min_support``/``min_cross_edges``: the guard's; ``phash_distance``: near copies merged first
    (most differing pHash bits of 64, ``None``: exact copies only)."""

    similarity: float | None = None
    k: int = 10
    dba: int = 3
    method: str = "average"
    min_support: float = 0.5
    min_cross_edges: int = 2
    phash_distance: int | None = 4

    def __post_init__(self):
        check_settings(asdict(self), "settings")

    @classmethod
    def from_dict(cls, d, where: str = "settings") -> "ClusterSettings":
        if not isinstance(d, dict):
            raise ClusterError(f"{where}: settings must be an object, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ClusterError(f"{where}: unknown setting(s) {unknown}; known: {sorted(f.name for f in fields(cls))}")
        check_settings(d, where)
        return cls(**d)

    def resolved(self, model_name: str | None) -> "ClusterSettings":
        """These settings with ``similarity`` filled in from the model's default when unset."""
        if self.similarity is not None:
            return self
        sim = MODEL_DEFAULTS.get(model_name or "", {}).get("similarity", GENERIC_SIMILARITY)
        return ClusterSettings(**{**asdict(self), "similarity": sim})


def check_settings(d: dict, where: str) -> None:
    for key, value in d.items():
        if key == "method":
            if value not in METHODS:
                raise ClusterError(f"{where}: method must be one of {list(METHODS)}, got {value!r}")
            continue
        optional = key in ("similarity", "phash_distance")
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ((value is None and optional) or number):
            raise ClusterError(f"{where}: setting {key!r} must be a finite number{' or null' if optional else ''}, "
                               f"got {value!r}")
        if key in ("k", "dba", "min_cross_edges", "phash_distance") and value is not None and \
                (value != int(value) or value < (1 if key in ("k", "dba") else 0)):
            raise ClusterError(f"{where}: setting {key!r} must be a whole number >= {int(key in ('k', 'dba'))}, "
                               f"got {value!r}")
        if key == "similarity" and value is not None and not -1 <= value <= 1:
            raise ClusterError(f"{where}: setting 'similarity' is a cosine in [-1, 1], got {value!r}")


def neighbours(vectors: np.ndarray, k: int, index_kind: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """``(scores, ids)`` of each vector's ``k`` nearest others (dedup's faiss k-NN: exact to 50k, IVF above)."""
    from vision.dedup.search import knn_graph

    if len(vectors) < 2:
        return np.zeros((len(vectors), 0), np.float32), np.zeros((len(vectors), 0), np.int64)
    return knn_graph(np.ascontiguousarray(vectors, np.float32), k, index_kind)


def copy_edges(catalog: Catalog, phash_distance: int | None) -> list[Edge]:
    """Exact copies (same sha256) and near copies (pHash within ``phash_distance`` bits): dedup's first stages."""
    from vision.dedup.hashing import HASH_BITS, hamming_pairs

    edges, first = [], {}
    for i, sha in enumerate(catalog.sha256):
        if sha in first:
            edges.append(Edge(first[sha], i, 1.0, "exact"))
        else:
            first[sha] = i
    if phash_distance is not None and len(catalog) > 1:
        exact = {(e.i, e.j) for e in edges}
        for i, j, d in hamming_pairs(catalog.hashes, catalog.mirrored, phash_distance):
            if (i, j) not in exact and catalog.sha256[i] != catalog.sha256[j]:
                edges.append(Edge(i, j, 1 - d / HASH_BITS, "phash"))
    return edges


def knn_edges(scores: np.ndarray, ids: np.ndarray, similarity: float) -> list[Edge]:
    """Undirected k-NN edges with cosine >= ``similarity``; ``mutual`` when each is among the other's k."""
    n = len(scores)
    rows, cols = np.nonzero((scores >= similarity) & (ids >= 0))
    directed = {(int(i), int(ids[i, c])): float(scores[i, c]) for i, c in zip(rows, cols) if ids[i, c] != i}
    out: dict[tuple[int, int], Edge] = {}
    for (i, j), s in directed.items():
        key = (min(i, j), max(i, j))
        if key not in out:
            mutual = (j, i) in directed
            out[key] = Edge(key[0], key[1], round(max(s, directed.get((j, i), s)), 6), "embedding", mutual)
    assert all(0 <= e.i < n and 0 <= e.j < n for e in out.values())
    return list(out.values())


def augment(vectors: np.ndarray, knn: tuple[np.ndarray, np.ndarray], dba: int) -> np.ndarray:
    """Database-side augmentation: each vector -> normalised sum of itself and its ``dba - 1`` nearest
    neighbours, weighted by cosine^3 (itself weight 1)."""
    if dba <= 1 or knn[0].shape[1] == 0:
        return vectors
    scores, ids = knn[0][:, :dba - 1], knn[1][:, :dba - 1]
    w = np.where(ids >= 0, np.clip(scores, 0, None) ** 3, 0).astype(np.float32)
    out = vectors + (vectors[np.maximum(ids, 0)] * w[..., None]).sum(1)
    return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def average_linkage(vectors: np.ndarray, edges: list[Edge], similarity: float) -> Grouping:
    """Average linkage at ``similarity`` inside each connected component of ``edges`` (exact up to
    :data:`EXACT_COMPONENT_LIMIT` members; a larger component is clustered with its k-NN edges as the allowed
    merges). Copy edges (exact, pHash) then join their images' clusters."""
    from sklearn.cluster import AgglomerativeClustering

    n = len(vectors)
    uf = UnionFind(n)
    for e in edges:
        uf.union(e.i, e.j)
    components: dict[int, list[int]] = {}
    for i in range(n):
        components.setdefault(uf.find(i), []).append(i)
    root = list(range(n))
    for rows in components.values():
        if len(rows) < 2:
            continue
        x = vectors[rows]
        connectivity = None
        if len(rows) > EXACT_COMPONENT_LIMIT:
            from scipy.sparse import coo_matrix

            at = {r: k for k, r in enumerate(rows)}
            pairs = [(at[e.i], at[e.j]) for e in edges if e.i in at]
            a, b = np.array(pairs).T
            connectivity = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(rows), len(rows))).tocsr()
        labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                         distance_threshold=1 - similarity, connectivity=connectivity).fit_predict(x)
        first: dict[int, int] = {}
        for r, label in zip(rows, labels):
            root[r] = first.setdefault(int(label), r)
    uf = UnionFind(n)
    for i, r in enumerate(root):
        uf.union(i, r)
    accepted = []
    for e in sorted(edges, key=lambda e: (e.reason == "embedding", -e.score)):
        if e.reason != "embedding" or uf.find(e.i) == uf.find(e.j):
            uf.union(e.i, e.j)
            accepted.append(e)
    root = [uf.find(i) for i in range(n)]
    return Grouping(root=root, accepted=accepted,
                    guarded=[e for e in edges if root[e.i] != root[e.j]])


def group(n: int, edges: list[Edge], settings: ClusterSettings, vectors: np.ndarray | None = None) -> Grouping:
    if settings.method == "average":
        return average_linkage(vectors, edges, settings.similarity)
    if settings.method == "components":
        uf = UnionFind(n)
        for e in edges:
            uf.union(e.i, e.j)
        root = [uf.find(i) for i in range(n)]
        return Grouping(root=root, accepted=list(edges))
    return group_edges(n, edges, settings.min_support, settings.min_cross_edges)


def cluster_id(shas: list[str]) -> str:
    """A cluster's stable id: ``c`` + the first 16 hex digits of its members' smallest sha256 (the same photos
    give the same id in any order, any run, any machine)."""
    return "c" + min(shas)[:16]


@dataclass
class ClusterResult:
    catalog: Catalog
    grouping: Grouping
    settings: ClusterSettings
    labels: list[str] = field(default_factory=list)   # cluster id per image
    scores: np.ndarray | None = None                   # cosine to its cluster's mean vector (1 when alone)
    vectors: np.ndarray | None = None                  # the vectors clustered (after augmentation)

    @classmethod
    def make(cls, catalog: Catalog, grouping: Grouping, settings: ClusterSettings) -> "ClusterResult":
        members: dict[int, list[int]] = {}
        for i, r in enumerate(grouping.root):
            members.setdefault(r, []).append(i)
        labels = [""] * len(catalog)
        scores = np.ones(len(catalog), np.float32)
        v = catalog.vectors
        taken: set[str] = set()
        for rows in members.values():
            label = cluster_id([catalog.sha256[i] for i in rows])
            if label in taken:  # two clusters whose smallest sha256s share 64 bits (or non-sha ids): the whole one
                label = "c" + min(catalog.sha256[i] for i in rows)
            taken.add(label)
            for i in rows:
                labels[i] = label
            if len(rows) > 1:
                mean = v[rows].mean(0)
                mean /= max(float(np.linalg.norm(mean)), 1e-12)
                scores[rows] = v[rows] @ mean
        return cls(catalog, grouping, settings, labels, scores)

    def clusters(self) -> dict[str, list[int]]:
        """Cluster id -> member rows, largest first (then by id)."""
        out: dict[str, list[int]] = {}
        for i, label in enumerate(self.labels):
            out.setdefault(label, []).append(i)
        return dict(sorted(out.items(), key=lambda kv: (-len(kv[1]), kv[0])))

    def rows(self) -> list[dict]:
        """One row per image: ``id, cluster, score`` (cosine to its cluster's mean; 1 alone) and ``reason``: how
        it joined (``exact``/``phash`` copy, ``embedding``, ``single`` when alone)."""
        best = self.grouping.best_edges()
        return [{"id": self.catalog.ids[i], "cluster": self.labels[i], "score": round(float(self.scores[i]), 6),
                 "reason": best[i].reason if best[i] else "single"} for i in range(len(self.catalog))]

    def summary(self) -> dict:
        sizes = [len(m) for m in self.clusters().values()]
        merges: dict[str, int] = {}
        for e in self.grouping.accepted:
            merges[e.reason] = merges.get(e.reason, 0) + 1
        c = self.catalog
        return {"images": len(c), "clusters": len(sizes), "multi_member_clusters": sum(s > 1 for s in sizes),
                "singletons": sum(s == 1 for s in sizes), "largest_cluster": max(sizes, default=0),
                "size_histogram": {str(s): sizes.count(s) for s in sorted(set(sizes))},
                "copies_merged": {r: merges.get(r, 0) for r in ("exact", "phash")},
                "merges_by_stage": merges, "guarded_edges": len(self.grouping.guarded),
                "unreadable": len(c.skipped), "settings": asdict(self.settings),
                "model": c.model.to_dict() if c.model else None}


def cluster_catalog(catalog: Catalog, settings: ClusterSettings | None = None, index_kind: str = "auto",
                    knn: tuple[np.ndarray, np.ndarray] | None = None) -> ClusterResult:
    """Cluster ``catalog`` (which must have vectors) by product; ``knn``: neighbours computed before (a sweep)."""
    if catalog.vectors is None:
        raise ClusterError("clustering by product needs feature vectors: give a model (--model NAME) or the "
                           "outputs of vision extract (--features FILE)")
    s = (settings or ClusterSettings()).resolved(catalog.model.name if catalog.model else None)
    if knn is None:
        knn = neighbours(catalog.vectors, s.k, index_kind)
    vectors = augment(catalog.vectors, knn, s.dba)
    if s.dba > 1:  # the graph of the augmented vectors
        knn = neighbours(vectors, s.k, index_kind)
    scores, ids = knn[0][:, :s.k], knn[1][:, :s.k]
    edges = copy_edges(catalog, s.phash_distance) + knn_edges(scores, ids, s.similarity)
    result = ClusterResult.make(catalog, group(len(catalog), edges, s, vectors), s)
    result.vectors = vectors
    return result
