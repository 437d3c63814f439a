"""The staged search, a cascade from the cheapest signal to the costliest: exact copies (sha256), pHash pairs
(Hamming radius), embedding k-NN (faiss, cosine), a cosine gate that rejects candidates too far apart to be copies,
and the keypoint check (:mod:`vision.dedup.verify`) only for the candidates no cheaper stage decided; then grouping
with the chaining guard (:mod:`vision.dedup.graph`). Each pair records the stage that decided it and each stage its
time (``DedupResult.summary()["stages"]``).

Example::

    result = find_duplicates(scan_images("photos/", model="grocery_resnet10t"), Thresholds(verify=0.95))
    result.rows()          # [{'id', 'group', 'representative', 'reason', 'score'}, ...]
    result.keep()          # one id per group, plus every image without a duplicate
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vision.dedup.catalog import CALIBRATION_KEY, Catalog, DedupError
from vision.dedup.graph import Edge, Grouping, group_edges
from vision.dedup.hashing import HASH_BITS, hamming_distance, hamming_pairs

if TYPE_CHECKING:
    from vision.zoo import ModelCard

EXACT_INDEX_LIMIT = 50_000   # above this many vectors the k-NN graph uses an approximate index


# thresholds that count something (bits, keypoints, neighbours, edges): whole numbers
_WHOLE = ("phash_distance", "candidate_distance", "gate_distance", "mirror_margin", "min_inliers", "k",
          "min_cross_edges")


@dataclass
class Thresholds:
    """Acceptance thresholds per stage; ``None`` turns a stage off.

    ``phash_distance``: most differing pHash bits (of 64) accepted directly; ``similarity``: least cosine accepted
    directly; ``verify``: least aligned NCC (:mod:`vision.dedup.verify`) for candidates found within
    ``candidate_distance`` bits or ``candidate_similarity`` cosine, with at least ``min_inliers`` keypoints and
    ``min_containment`` of the smaller image in common (two overlapping shots of one shelf are not copies) and a
    local edge agreement of at least ``min_local`` (:mod:`vision.dedup.verify`: another shot of the same scene
    aligns globally but its edges drift apart tile by tile; ``None``: not required);
    ``verify_similarity``: least embedding cosine of a candidate for the keypoint check, the cosine gate that
    rejects the rest without keypoints (on a 750-photo validation set, ``benchmarks/dedup_speed.py``'s, the groups
    stay the same for gates 0.80-0.94 and lose copies from 0.95: a copy below the gate, e.g. greyscale, still
    joins its group through its pHash edge to the original; ``None`` or no vectors: every candidate is checked);
    ``gate_distance``: pHash pairs within this many bits pass the gate whatever their cosine (a greyscale copy
    with a caption is 6 bits from its original, but its cosine is 0.2-0.4: the features see colour);
    ``mirror_margin``: the keypoint check tries a pair's mirrored alignment (when the direct one fails) only if
    the pHash of the first image's mirror image is within this many bits of the direct pHash distance or closer
    (on the 750-photo set every copy that needed the mirror was 2-24 bits closer mirrored, and half the other
    pairs are skipped; ``None``: always tried);
    ``k``: neighbours per image in the embedding stage; ``min_support``/``min_cross_edges``: the chaining guard.
    The defaults are the setting ``benchmarks/dedup_eval.py`` chose on its validation split (best pairwise F1 at
    precision >= 0.98); a model may carry its own calibrated setting in its card (:meth:`for_catalog`).
    """

    phash_distance: int | None = 4
    similarity: float | None = None
    verify: float | None = 0.95
    candidate_distance: int = 22
    candidate_similarity: float = 0.8
    min_inliers: int = 12
    min_containment: float = 0.0
    min_local: float | None = 0.92
    verify_similarity: float | None = 0.93
    gate_distance: int = 10
    mirror_margin: int | None = 0
    k: int = 10
    min_support: float = 0.5
    min_cross_edges: int = 2

    @classmethod
    def from_dict(cls, d, where: str = "thresholds") -> "Thresholds":
        """Thresholds from a stored record (a model card, an index); a wrong key or value is a
        :class:`DedupError` naming ``where`` and the key."""
        if not isinstance(d, dict):
            raise DedupError(f"{where}: thresholds must be an object, got {type(d).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise DedupError(f"{where}: unknown threshold(s) {unknown}; known: {sorted(known)}")
        for key, value in d.items():
            optional = key in ("phash_distance", "similarity", "verify", "min_local", "verify_similarity",
                               "mirror_margin")
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ((value is None and optional) or number):
                raise DedupError(f"{where}: threshold {key!r} must be a number{' or null' if optional else ''} "
                                 f"(finite), got {value!r}")
            if key in _WHOLE and value is not None and (value != int(value) or value < (1 if key == "k" else 0)):
                raise DedupError(f"{where}: threshold {key!r} must be a whole number >= {1 if key == 'k' else 0}, "
                                 f"got {value!r}")
        d = {k: int(v) if k in _WHOLE and v is not None else v for k, v in d.items()}
        return cls(**d)

    @classmethod
    def for_catalog(cls, catalog: Catalog) -> "Thresholds":
        """The thresholds calibrated for the model that made ``catalog``'s vectors (stored in its card by
        :func:`store_thresholds`), else the defaults."""
        if catalog.calibrated is None:
            return cls()
        return cls.from_dict(catalog.calibrated, f"model card of {catalog.model}: config.{CALIBRATION_KEY}")

    def margin(self, edge: Edge) -> float:
        """How far above its stage's threshold an edge scored (0 = on the threshold, inf = exact copy)."""
        if edge.reason == "exact":
            return float("inf")
        if edge.reason == "phash":
            return (self.phash_distance - HASH_BITS * (1 - edge.score)) / HASH_BITS
        if edge.reason == "verified":
            return edge.score - self.verify
        return edge.score - self.similarity


# what decided a pair, cheapest first: a direct stage accepted it, the cosine gate rejected it, or the keypoint check
DECIDED_BY = ("exact", "phash", "embedding", "similarity_gate", "keypoints")


@dataclass
class Pair:
    """A candidate pair with every signal measured for it (``None``: not measured); ``cosine``: the embedding
    cosine the gate read (k-NN or not); ``decided_by``: the cascade stage that settled it (:data:`DECIDED_BY`)."""

    i: int
    j: int
    exact: bool = False
    distance: int | None = None
    similarity: float | None = None
    mutual: bool = True
    inliers: int = 0
    ncc: float | None = None
    containment: float = 0.0
    local: float | None = None
    cosine: float | None = None
    decided_by: str | None = None

    def edge(self, t: Thresholds) -> Edge | None:
        """The edge these signals give under ``t`` (earliest stage that accepts), or ``None``."""
        if self.exact:
            return Edge(self.i, self.j, 1.0, "exact")
        if self.distance is not None and t.phash_distance is not None and self.distance <= t.phash_distance:
            return Edge(self.i, self.j, 1 - self.distance / HASH_BITS, "phash")
        if self.similarity is not None and t.similarity is not None and self.similarity >= t.similarity:
            return Edge(self.i, self.j, round(self.similarity, 6), "embedding", self.mutual)
        if (self.ncc is not None and t.verify is not None and self.ncc >= t.verify and self.inliers >= t.min_inliers
                and self.containment >= t.min_containment
                and (t.min_local is None or (self.local is not None and self.local >= t.min_local))):
            return Edge(self.i, self.j, round(self.ncc, 6), "verified", self.mutual)
        return None


def knn_graph(vectors: np.ndarray, k: int, index_kind: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """``(scores, ids)`` of each vector's ``k`` nearest others (self removed; -1 where fewer exist). Exact
    ``IndexFlatIP`` up to :data:`EXACT_INDEX_LIMIT` vectors, IVF above (``index_kind`` overrides)."""
    from vision.retrieval import build_index

    n = len(vectors)
    kind = ("flat" if n <= EXACT_INDEX_LIMIT else "ivf") if index_kind == "auto" else index_kind
    index = build_index(vectors, kind=kind)
    kk = min(k + 1, n)
    scores, ids = index.search(vectors, kk)
    own = ids == np.arange(n)[:, None]
    # drop self (or, if an identical vector hid it, the last column) so every row keeps k others
    drop = np.where(own.any(1), own.argmax(1), kk - 1)
    keep = np.ones_like(own)
    keep[np.arange(n), drop] = False
    return scores[keep].reshape(n, kk - 1), ids[keep].reshape(n, kk - 1)


@contextmanager
def timed(timings: dict, stage: str):
    """Add the wall time of the block to ``timings[stage]["seconds"]``."""
    t0 = time.perf_counter()
    try:
        yield timings.setdefault(stage, {"seconds": 0.0})
    finally:
        timings[stage]["seconds"] += time.perf_counter() - t0


def candidate_pairs(catalog: Catalog, t: Thresholds, index_kind: str = "auto", verifier=None,
                    verify_all: bool = False, workers: int | None = None, timings: dict | None = None) -> list[Pair]:
    """Every pair some stage may accept under ``t``, with its signals: byte-identical files, pHash pairs within
    the larger of the two radii, embedding k-NN pairs above the lower of the two similarities. When ``t.verify``
    is set, pairs no direct stage accepts go through the cosine gate (``t.verify_similarity``), and those it lets
    through to the keypoint check, on ``workers`` threads (default: one per core, at most 8). ``verify_all``
    checks every pair but exact copies, gate or not (to calibrate). ``timings``: filled with each stage's seconds
    and counts."""
    from vision.dedup.catalog import default_workers

    timings = {} if timings is None else timings
    pairs: dict[tuple[int, int], Pair] = {}

    def pair(i: int, j: int) -> Pair:
        key = (min(i, j), max(i, j))
        if key not in pairs:
            pairs[key] = Pair(*key)
        return pairs[key]

    with timed(timings, "candidates"):
        first: dict[str, int] = {}
        for i, sha in enumerate(catalog.sha256):
            if sha in first:
                pair(first[sha], i).exact = True
            else:
                first[sha] = i
        radius = max([d for d in (t.phash_distance, t.candidate_distance if t.verify is not None else None)
                      if d is not None], default=None)
        if radius is not None:
            for i, j, d in hamming_pairs(catalog.hashes, catalog.mirrored, radius):
                pair(i, j).distance = d
        floor = min([s for s in (t.similarity, t.candidate_similarity if t.verify is not None else None)
                     if s is not None], default=None)
        if floor is not None and catalog.vectors is not None and len(catalog) > 1:
            scores, ids = knn_graph(catalog.vectors, t.k, index_kind)
            directed = {(i, int(j)): float(s) for i in range(len(catalog)) for s, j in zip(scores[i], ids[i])
                        if j >= 0 and s >= floor}
            for (i, j), s in directed.items():
                p = pair(i, j)
                p.similarity = max(s, directed.get((j, i), s))
                p.mutual = (j, i) in directed
        timings["candidates"]["pairs"] = len(pairs)
    direct = replace(t, verify=None)
    undecided = []
    for p in pairs.values():
        e = p.edge(direct)
        p.decided_by = e.reason if e is not None else None
        if (verify_all and not p.exact) or e is None:
            undecided.append(p)
    if t.verify is None:
        return list(pairs.values())
    with timed(timings, "similarity_gate") as gate:
        todo = undecided
        if catalog.vectors is not None and undecided:
            v = catalog.vectors
            i, j = np.array([p.i for p in undecided]), np.array([p.j for p in undecided])
            for p, c in zip(undecided, np.einsum("ij,ij->i", v[i], v[j])):
                p.cosine = float(c)
            if t.verify_similarity is not None and not verify_all:
                todo = []
                for p in undecided:
                    if p.cosine >= t.verify_similarity or (p.distance is not None and p.distance <= t.gate_distance):
                        todo.append(p)
                    else:
                        p.decided_by = "similarity_gate"
        gate["pairs"], gate["rejected"] = len(undecided), len(undecided) - len(todo)
    with timed(timings, "keypoints") as stage:
        if verifier is None:
            from vision.dedup.verify import Verifier

            # signals that cannot change a decision under t are not measured (verify_all: all, to calibrate)
            verifier = Verifier(thumbnails=catalog.thumbnails) if verify_all else Verifier(
                min_inliers=t.min_inliers, local_from=t.verify if t.min_local is not None else math.inf,
                thumbnails=catalog.thumbnails)
        mirror = None
        if t.mirror_margin is not None and not verify_all and todo:
            i, j = np.array([p.i for p in todo]), np.array([p.j for p in todo])
            mirror = (hamming_distance(catalog.mirrored[i], catalog.hashes[j])
                      <= hamming_distance(catalog.hashes[i], catalog.hashes[j]) + t.mirror_margin).tolist()
        checks = verifier.score_pairs([(catalog.ids[p.i], catalog.ids[p.j]) for p in todo],
                                      default_workers() if workers is None else workers, mirror=mirror)
        for p, check in zip(todo, checks):
            p.inliers, p.ncc, p.containment, p.local = check
            if p.decided_by is None:
                p.decided_by = "keypoints"
        stage["pairs"], stage["images"] = len(todo), len({k for p in todo for k in (p.i, p.j)})
        stage["mirror_skipped"] = 0 if mirror is None else mirror.count(False)
    return list(pairs.values())


def edges_at(pairs: list[Pair], t: Thresholds) -> list[Edge]:
    return [e for e in (p.edge(t) for p in pairs) if e is not None]


@dataclass
class DedupResult:
    catalog: Catalog
    grouping: Grouping
    thresholds: Thresholds
    edges: list[Edge] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    timings: dict = field(default_factory=dict)   # stage -> {"seconds", counts} (candidate_pairs, grouping)

    def representatives(self) -> dict[int, int]:
        """Group root -> the member to keep: most pixels, then most bytes (the least compressed), then first."""
        best: dict[int, int] = {}
        c = self.catalog
        for i, r in enumerate(self.grouping.root):
            b = best.get(r)
            if b is None or (c.pixels[i], c.nbytes[i]) > (c.pixels[b], c.nbytes[b]):
                best[r] = i
        return best

    def rows(self) -> list[dict]:
        """One row per image: ``id, group`` (number, 0 = largest group), ``representative`` (id to keep),
        ``reason`` (stage of its strongest merging edge, ``unique`` when alone) and ``score``."""
        reps, edges = self.representatives(), self.grouping.best_edges()
        sizes: dict[int, int] = {}
        for r in self.grouping.root:
            sizes[r] = sizes.get(r, 0) + 1
        order = sorted(sizes, key=lambda r: (-sizes[r], r))
        number = {r: n for n, r in enumerate(order)}
        out = []
        for i, r in enumerate(self.grouping.root):
            e = edges[i]
            out.append({"id": self.catalog.ids[i], "group": number[r], "representative": self.catalog.ids[reps[r]],
                        "reason": e.reason if e else "unique", "score": round(e.score, 6) if e else 1.0})
        return out

    def keep(self) -> list[str]:
        """Ids to keep: each group's representative and every image without a duplicate."""
        return sorted(self.catalog.ids[i] for i in self.representatives().values())

    def groups(self) -> list[list[int]]:
        return self.grouping.groups

    def uncertainty(self) -> dict[int, float]:
        """Group root -> smallest margin above threshold of its merging edges (small = uncertain)."""
        out: dict[int, float] = {}
        for e in self.grouping.accepted:
            r = self.grouping.root[e.i]
            out[r] = min(out.get(r, float("inf")), self.thresholds.margin(e))
        return out

    def summary(self) -> dict:
        groups = self.groups()
        reasons: dict[str, int] = {}
        for e in self.grouping.accepted:
            reasons[e.reason] = reasons.get(e.reason, 0) + 1
        return {"images": len(self.catalog), "groups": len(groups),
                "duplicates": sum(len(g) - 1 for g in groups), "keep": len(self.keep()),
                "largest_group": max(map(len, groups), default=1), "merges_by_stage": reasons,
                "guarded_edges": len(self.grouping.guarded), "unreadable": len(self.catalog.skipped),
                "model": self.catalog.model.to_dict() if self.catalog.model else None,
                "pairs_decided_by": self.decided_by(), "stages": self.stages()}

    def decided_by(self) -> dict[str, int]:
        """Candidate pairs per cascade stage that settled them (:data:`DECIDED_BY`; ``none``: no stage accepts)."""
        counts: dict[str, int] = {}
        for p in self.pairs:
            counts[p.decided_by or "none"] = counts.get(p.decided_by or "none", 0) + 1
        return {k: counts[k] for k in sorted(counts, key=lambda k: (DECIDED_BY + ("none",)).index(k))}

    def stages(self) -> dict[str, dict]:
        """Per stage, in cascade order: ``seconds``, ``images_per_s`` (the catalog's images over the stage's
        time) and its counts; reading (decode, sha256, pHash) and embedding come from the scan."""
        n, out = len(self.catalog), {}
        for name, record in (self.catalog.timings | self.timings).items():
            seconds = record["seconds"]
            out[name] = {"seconds": round(seconds, 3), "images_per_s": round(n / seconds, 1) if seconds > 0 else None,
                         **{k: v for k, v in record.items() if k != "seconds"}}
        return out


def find_duplicates(catalog: Catalog, thresholds: Thresholds | None = None, index_kind: str = "auto",
                    pairs: list[Pair] | None = None, verifier=None, workers: int | None = None) -> DedupResult:
    """Group ``catalog`` into duplicate sets (``pairs``: candidates measured before, e.g. for a threshold sweep;
    ``workers``: keypoint-check threads, default one per core, at most 8)."""
    t = thresholds or Thresholds()
    timings: dict = {}
    if pairs is None:
        pairs = candidate_pairs(catalog, t, index_kind, verifier, workers=workers, timings=timings)
    with timed(timings, "grouping"):
        edges = edges_at(pairs, t)
        grouping = group_edges(len(catalog), edges, t.min_support, t.min_cross_edges)
    return DedupResult(catalog, grouping, t, edges, pairs, timings)


def calibrate_threshold(scores, is_duplicate, min_precision: float = 0.98) -> dict:
    """The score threshold with the best F1 among those whose precision is at least ``min_precision`` on labelled
    pairs (all positive pairs count for recall, found or not); the most precise one if none reaches it.

    >>> calibrate_threshold([0.99, 0.97, 0.9, 0.8], [1, 1, 0, 1])["threshold"]
    0.97
    """
    scores, labels = np.asarray(scores, float), np.asarray(is_duplicate, bool)
    if labels.sum() == 0:
        raise ValueError("calibration needs at least one duplicate pair")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp, fp = np.cumsum(y), np.cumsum(~y)
    last = np.r_[s[1:] != s[:-1], True]       # a threshold accepts every pair with an equal score
    tp, fp, s = tp[last], fp[last], s[last]
    precision, recall = tp / (tp + fp), tp / labels.sum()
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    ok = precision >= min_precision
    k = int(np.argmax(np.where(ok, f1, -1))) if ok.any() else int(np.argmax(precision))
    return {"threshold": float(s[k]), "precision": float(precision[k]), "recall": float(recall[k]),
            "f1": float(f1[k]), "min_precision": min_precision, "reached": bool(ok.any())}


def store_thresholds(model: str | Path, thresholds: Thresholds, metrics: dict[str, float] | None = None,
                     zoo_dir: str | Path | None = None) -> ModelCard:
    """Store ``thresholds`` (calibrated for ``model``, e.g. by ``benchmarks/dedup_eval.py``) in the model's card
    as ``config.dedup_thresholds`` and re-save it in the zoo folder that holds it (float16 stays float16), so
    ``vision dedup --model NAME`` uses them by default. ``metrics`` (numbers) are added to the card's metrics.
    The re-saved file has a new sha256: build catalog indexes after calibrating."""
    from safetensors import safe_open

    from vision.zoo import load_model, save_model
    from vision.zoo.registry import find_card

    path = Path(model)
    if path.suffix == ".safetensors" or path.exists():
        folder, net = path.parent, load_model(path)
        file = path
    else:
        found = find_card(str(model), zoo_dir)
        if found is None:
            raise DedupError(f"no zoo model named {model!r} to store thresholds in")
        folder, net = found[1], load_model(str(model), zoo_dir)
        file = folder / found[0].file
    with safe_open(str(file), framework="pt") as f:
        half = any(f.get_slice(k).get_dtype() == "F16" for k in f.keys())
    card = replace(net.card, config={**net.card.config, CALIBRATION_KEY: asdict(thresholds)},
                   metrics={**net.card.metrics, **(metrics or {})})
    return save_model(net, card, folder, half=half)
