"""Inner-product nearest-neighbour search (faiss) and retrieval metrics for unit-norm embeddings.

Embeddings are L2-normalised, so inner product is cosine similarity; every index here uses it (pytorch-metric-
learning's default k-NN is L2, which is why its AccuracyCalculator gets an inner-product faiss k-NN here).

Example::

    index = build_index(gallery_vectors, kind="hnsw")
    scores, ids = index.search(query_vectors, 5)
    retrieval_metrics(queries, query_labels, gallery, gallery_labels)   # {'recall@1': ..., 'map@r': ...}
"""

from __future__ import annotations

import math
from typing import Sequence

import faiss
import numpy as np

INDEX_KINDS = ("flat", "hnsw", "ivf")


def ivf_lists(size: int) -> int:
    """Default IVF list count for ``size`` vectors: about ``4 * sqrt(size)``, with at least 39 training vectors per
    list (faiss' k-means minimum), so small galleries get one list (an exact scan)."""
    return max(1, min(int(round(4 * size ** 0.5)), size // 39))


def as_vectors(x, dim: int | None = None, what: str = "vectors") -> np.ndarray:
    """``x`` as a C-contiguous float32 ``(N, D)`` array (faiss' only input), checking ``D`` against ``dim``."""
    array = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (N, D) array, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{what} have dimension {array.shape[1]}, expected {dim}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return array


def build_index(vectors, kind: str = "flat", hnsw_m: int = 32, ef_construction: int = 80,
                ef_search: int = 64, nlist: int | None = None, nprobe: int = 16, seed: int = 0) -> faiss.Index:
    """An inner-product faiss index holding ``vectors``: exact ``flat`` (IndexFlatIP), or approximate ``hnsw``
    (IndexHNSWFlat: ``hnsw_m`` links, ``ef_construction``/``ef_search``) or ``ivf`` (IndexIVFFlat: ``nlist``
    spherical k-means lists, default :func:`ivf_lists`, ``nprobe`` of them scanned per query; builds in seconds
    where HNSW takes minutes, at a million vectors)."""
    vectors = as_vectors(vectors)
    dim = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
    elif kind == "ivf":
        if len(vectors) == 0:
            raise ValueError("an ivf index is trained on its vectors: give at least one")
        lists = nlist or ivf_lists(len(vectors))
        if not 1 <= lists <= len(vectors):
            raise ValueError(f"nlist must be in [1, {len(vectors)}] (the number of vectors), got {lists}")
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.spherical, index.cp.seed = True, seed
        index.cp.max_points_per_centroid = 64   # k-means on a sample: seconds at a million vectors
        index.cp.min_points_per_centroid = 1    # small galleries: few lists (see ivf_lists), no faiss warning
        index.train(vectors)
        index.nprobe = min(nprobe, lists)
    else:
        raise ValueError(f"unknown index kind {kind!r}; choose one of {INDEX_KINDS}")
    if len(vectors):
        index.add(vectors)
    return index


def retrieval_metrics(query, query_labels: Sequence[int], reference, reference_labels: Sequence[int],
                      ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Recall@k (a correct reference among the ``k`` nearest), precision@1 and MAP@R of queries against references.

    Precision@1 and MAP@R come from pytorch-metric-learning's ``AccuracyCalculator`` with an exact inner-product
    faiss k-NN; recall@k is computed from the same kind of search.
    """
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import FaissKNN

    query, reference = as_vectors(query, what="queries"), as_vectors(reference, what="references")
    q_labels, r_labels = np.asarray(query_labels), np.asarray(reference_labels)
    if len(query) == 0 or len(reference) == 0:
        raise ValueError("retrieval metrics need at least one query and one reference")
    k = min(max(ks), len(reference))
    _, ids = build_index(reference).search(query, k)
    hits = r_labels[ids] == q_labels[:, None]
    metrics = {f"recall@{kk}": float(hits[:, :kk].any(1).mean()) for kk in ks if kk <= k}
    knn = FaissKNN(index_init_fn=faiss.IndexFlatIP)
    calculator = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"),
                                    k="max_bin_count", knn_func=knn)
    acc = calculator.get_accuracy(torch.from_numpy(query), torch.from_numpy(q_labels),
                                  torch.from_numpy(reference), torch.from_numpy(r_labels), ref_includes_query=False)
    metrics["precision@1"] = float(acc["precision_at_1"])
    metrics["map@r"] = float(acc["mean_average_precision_at_r"])
    return metrics


def open_set_threshold(known, impostors, max_false_reject: float = 0.10) -> float:
    """The threshold :meth:`vision.brands.gallery.BrandGallery.calibrate` picks from open-set scores of known and
    impostor
    queries.

    >>> open_set_threshold([0.9, 0.8, 0.7, 0.6], [0.1, 0.65], max_false_reject=0.25)
    0.675
    """
    known = np.sort(np.asarray(known, np.float64))
    impostors = np.asarray(impostors, np.float64)
    # the highest threshold within the false-reject budget: known[r] rejects at most r of len(known) queries
    highest = known[int(math.floor(max_false_reject * len(known) + 1e-9))]
    # FAR at `highest` cannot be lowered; keep it while rejecting fewer known queries: just above the highest
    # impostor below `highest`, half-way to the next known score
    below = impostors[impostors < highest]
    if not len(below):
        return float(known[np.isfinite(known)][0])   # -inf: a query that is never accepted (no detection)
    low = float(below.max())
    return (low + float(known[known > low][0])) / 2


def equal_error_rate(known, impostors) -> tuple[float, float]:
    """``(rate, threshold)`` where the known false-reject rate and the impostor false-accept rate meet (their mean
    at the threshold, among the observed scores, with the smallest gap)."""
    known, impostors = np.asarray(known, np.float64), np.asarray(impostors, np.float64)
    candidates = np.unique(np.concatenate([known, impostors]))
    frr = np.searchsorted(np.sort(known), candidates, side="left") / len(known)
    far = 1 - np.searchsorted(np.sort(impostors), candidates, side="left") / len(impostors)
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2), float(candidates[i])
