"""A gallery of brand embeddings: add or remove brands without retraining, search it, say "unknown".

Vectors are unit-norm embeddings from one zoo model (task ``embedding``); search is inner product (cosine) with
faiss, exact (``IndexFlatIP``) by default, or HNSW or IVF for large galleries. A brand may hold several vectors
(e.g. several canonical renders); its score for a query is its best vector's. A query whose best score is below the
gallery's ``threshold`` (calibrated on validation queries of known brands, see :meth:`calibrate_threshold`) is
``"unknown"``.

Example::

    fx = FeatureExtractor.from_pretrained("brand_resnet10t")
    gallery = BrandGallery.from_folder(fx, "logos/")           # logos/<brand>/*.png
    gallery.add("newco", fx(["newco.png"]))
    gallery.identify(fx(["crop.jpg"]))        # [{'brand': 'newco', 'score': 0.91, 'best': 'newco'}]
    gallery.save("weights/my_gallery.npz"); BrandGallery.load("weights/my_gallery.npz", model=fx.card)
"""

from __future__ import annotations

import json
import logging
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from vision.fileio import atomic_path
from vision.retrieval import INDEX_KINDS, as_vectors, build_index

if TYPE_CHECKING:
    from vision.features import FeatureExtractor
    from vision.zoo import ModelCard

UNKNOWN = "unknown"
_FORMAT = 1
MERGES = ("all", "mean")      # how BrandGallery.from_images combines a brand's images
UNIT_NORM_TOLERANCE = 1e-3    # stored vectors are normalised by add_many; a file whose rows are not was edited
log = logging.getLogger(__name__)


def _resolve_gallery(path: Path) -> Path:
    if path.is_file():
        return path
    if path.parent == Path(".") and not path.exists():
        from vision.zoo import zoo_search_path

        for folder in zoo_search_path():
            for candidate in (folder / path.name, folder / f"{path.name}.npz"):
                if candidate.is_file():
                    return candidate
    raise GalleryError(f"gallery file {path} not found (nor a gallery of that name in the zoo)")


def mean_prototypes(owners: Sequence[str], vectors) -> tuple[list[str], np.ndarray]:
    """One unit-norm prototype per brand (the mean of its rows of ``vectors``), brands in first-seen order."""
    vectors = np.asarray(vectors, np.float32)
    names = list(dict.fromkeys(owners))
    row = {name: i for i, name in enumerate(names)}
    sums = np.zeros((len(names), vectors.shape[1]), np.float32)
    np.add.at(sums, [row[o] for o in owners], vectors)
    return names, sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)


class GalleryError(ValueError):
    """A gallery problem: empty, duplicate or missing brand, wrong embedding size, another model's gallery."""


class BrandGallery:
    """Brand names and their embeddings, searchable by inner product.

    ``model_name`` / ``model_sha256`` / ``dim`` record the embedding model the vectors came from; a gallery is only
    searched with embeddings of that model (:meth:`check_model`). ``index``: ``"flat"`` (exact), ``"hnsw"``
    (``hnsw_m``, ``ef_search``) or ``"ivf"`` (``nlist`` lists, default about 4 sqrt(N); ``nprobe`` scanned per query);
    see :func:`vision.retrieval.build_index`.
    """

    def __init__(self, dim: int, model_name: str = "", model_sha256: str = "", threshold: float | None = None,
                 index: str = "flat", hnsw_m: int = 32, ef_search: int = 64, nlist: int | None = None,
                 nprobe: int = 16):
        if dim < 1:
            raise GalleryError(f"embedding size must be >= 1, got {dim}")
        if index not in INDEX_KINDS:
            raise GalleryError(f"unknown index kind {index!r}; choose one of {INDEX_KINDS}")
        self.dim, self.model_name, self.model_sha256 = int(dim), model_name, model_sha256
        self.threshold = threshold
        self.index_kind, self.hnsw_m, self.ef_search = index, hnsw_m, ef_search
        self.nlist, self.nprobe = nlist, nprobe
        self._vectors = np.empty((0, self.dim), np.float32)
        self._owner: list[str] = []          # brand of each vector row
        self._index = None                   # rebuilt lazily after a change

    # --- building
    @classmethod
    def for_model(cls, extractor: "FeatureExtractor", **kwargs) -> "BrandGallery":
        """An empty gallery for ``extractor``'s model (name, sha256 and embedding size recorded)."""
        return cls(extractor.dim, extractor.card.name, extractor.card.sha256, **kwargs)

    @classmethod
    def from_images(cls, extractor: "FeatureExtractor", images: Mapping[str, Sequence], batch_size: int = 64,
                    merge: str = "all", **kwargs) -> "BrandGallery":
        """A gallery of ``{brand: [image, ...]}`` (paths, PIL images or arrays), embedded by ``extractor``.

        ``merge``: ``"all"`` keeps one vector per image (a brand scores its best one); ``"mean"`` stores one
        prototype per brand, the renormalised mean of its images' embeddings (steadier when the images are
        renders of one mark in several colours).
        """
        if merge not in MERGES:
            raise GalleryError(f"unknown merge {merge!r}; choose one of {MERGES}")
        gallery = cls.for_model(extractor, **kwargs)
        owners = [brand for brand, brand_images in images.items() for _ in brand_images]
        flat = [image for brand_images in images.values() for image in brand_images]
        vectors = extractor(flat, batch_size=batch_size)
        if merge == "mean":
            owners, vectors = mean_prototypes(owners, vectors)
        gallery.add_many(owners, vectors)
        return gallery

    @classmethod
    def from_folder(cls, extractor: "FeatureExtractor", folder: str | os.PathLike, **kwargs) -> "BrandGallery":
        """A gallery from ``folder/<brand>/*`` images (canonical logos, or any labelled brand crops)."""
        from vision.data.datasets import scan_image_folder

        samples, table = scan_image_folder(folder)
        by_brand: dict[str, list[Path]] = {}
        for s in samples:
            by_brand.setdefault(table.names[s.label], []).append(s.path)
        return cls.from_images(extractor, by_brand, **kwargs)

    def add(self, brand: str, vectors, replace: bool = False) -> None:
        """Add ``brand`` with one or more embeddings (``(D,)`` or ``(N, D)``); an existing name needs ``replace``."""
        vectors = np.asarray(vectors, np.float32)
        vectors = vectors[None] if vectors.ndim == 1 else vectors
        if len(vectors) == 0:
            raise GalleryError(f"brand {brand!r}: no embeddings given")
        brand = str(brand).strip()
        if replace and brand in self:
            self.remove(brand)
        self.add_many([brand] * len(vectors), vectors)

    def add_many(self, brands: Sequence[str], vectors) -> None:
        """Add new brands in one go: ``brands[i]`` names row ``i`` of ``vectors`` (a brand may own several rows)."""
        names = [str(b).strip() for b in brands]
        vectors = as_vectors(vectors, self.dim, what="brand embeddings")
        if len(names) != len(vectors):
            raise GalleryError(f"{len(names)} brand names for {len(vectors)} embeddings")
        if any(not n for n in names):
            raise GalleryError("brand name is empty")
        if UNKNOWN in names:
            raise GalleryError(f"{UNKNOWN!r} is reserved for rejected queries; pick another brand name")
        existing = sorted(set(names) & set(self._owner))
        if existing:
            raise GalleryError(f"brand {existing[0]!r} is already in the gallery"
                               f"{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''}; "
                               "remove it first or pass replace=True to add()")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if (norms < 1e-6).any():
            raise GalleryError(f"brand {names[int(np.argmin(norms))]!r}: an embedding has zero norm")
        self._vectors = np.concatenate([self._vectors, vectors / norms])
        self._owner += names
        self._index = None

    def remove(self, brand: str) -> None:
        if brand not in self:
            raise GalleryError(f"brand {brand!r} is not in the gallery ({len(self)} brands)")
        keep = np.array([o != brand for o in self._owner])
        self._vectors = self._vectors[keep]
        self._owner = [o for o in self._owner if o != brand]
        self._index = None

    # --- inspecting
    @property
    def brands(self) -> list[str]:
        """Brand names in insertion order."""
        return list(dict.fromkeys(self._owner))

    @property
    def vectors(self) -> np.ndarray:
        return self._vectors.copy()

    def __len__(self) -> int:
        return len(set(self._owner))

    def __contains__(self, brand: object) -> bool:
        return brand in set(self._owner)

    def __repr__(self) -> str:
        return (f"BrandGallery({len(self)} brands, {len(self._owner)} vectors, dim={self.dim}, "
                f"model={self.model_name!r}, threshold={self.threshold}, index={self.index_kind!r})")

    def check_model(self, card: "ModelCard", dim: int | None = None, allow_unbound: bool = False) -> None:
        """Raise :class:`GalleryError` unless embeddings of the model with ``card`` can be searched here.

        A gallery that records no model name or sha256 (or a model without a sha256, loaded from a file outside a
        zoo manifest) cannot be shown to match: refused like another model's gallery, unless ``allow_unbound``
        (logged as a warning)."""
        if dim is not None and dim != self.dim:
            raise GalleryError(f"embedding size mismatch: model {card.name!r} makes {dim}-d embeddings, the gallery "
                               f"holds {self.dim}-d ones")
        if self.model_name and card.name != self.model_name:
            raise GalleryError(f"the gallery was built with model {self.model_name!r}, not {card.name!r}; "
                               "rebuild it with this model")
        unbound = [what for what, value in (("the gallery records no model name", self.model_name),
                                            ("the gallery records no model sha256", self.model_sha256),
                                            (f"model {card.name!r} has no sha256 (not loaded through a zoo "
                                             "manifest)", card.sha256)) if not value]
        if unbound:
            why = "; ".join(unbound)
            if not allow_unbound:
                raise GalleryError(f"cannot tell whether the gallery was built with model {card.name!r}: {why}. "
                                   "Rebuild it with tools/build_gallery.py --embedder <zoo name>, or pass "
                                   "allow_unbound=True to search it anyway")
            log.warning("searching a gallery not bound to model %r (allow_unbound=True): %s", card.name, why)
            return
        if card.sha256 != self.model_sha256:
            raise GalleryError(f"the gallery was built with another version of model {card.name!r} (sha256 "
                               f"{self.model_sha256[:12]}..., this model {card.sha256[:12]}...); rebuild it")

    # --- searching
    def _search_index(self):
        if not self._owner:
            raise GalleryError("the gallery is empty: add brands before searching it")
        if self._index is None:
            nlist = None if self.nlist is None else min(self.nlist, len(self._owner))
            self._index = build_index(self._vectors, self.index_kind, hnsw_m=self.hnsw_m, ef_search=self.ef_search,
                                      nlist=nlist, nprobe=self.nprobe)
        return self._index

    def search(self, queries, k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` best brands per query as ``(brand, cosine score)``, best first (one score per brand)."""
        index = self._search_index()
        queries = as_vectors(np.atleast_2d(np.asarray(queries, np.float32)), self.dim, what="query embeddings")
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        # brands may hold several vectors: fetch enough neighbours to fill k distinct brands in the usual case
        per_brand = -(-len(self._owner) // len(self))
        depth = min(len(self._owner), max(k * per_brand, k))
        scores, ids = index.search(queries, depth)
        results = []
        for row_scores, row_ids in zip(scores, ids):
            best: dict[str, float] = {}
            for score, i in zip(row_scores, row_ids):
                if i >= 0 and self._owner[i] not in best:
                    best[self._owner[i]] = float(score)
            results.append(list(best.items())[:k])
        return results

    def identify(self, queries, threshold: float | None = None) -> list[dict]:
        """Per query ``{"brand", "score", "best"}``: ``brand`` is ``"unknown"`` when ``score`` (the best brand's
        cosine similarity) is below ``threshold`` (default: the gallery's own; ``None`` accepts everything)."""
        threshold = self.threshold if threshold is None else threshold
        out = []
        for top in self.search(queries, k=1):
            best, score = top[0]
            accepted = threshold is None or score >= threshold
            out.append({"brand": best if accepted else UNKNOWN, "score": round(score, 6), "best": best})
        return out

    def calibrate_threshold(self, known_queries, false_reject_rate: float = 0.05) -> float:
        """Set :attr:`threshold` so that ``false_reject_rate`` of ``known_queries`` (embeddings of brands in the
        gallery, e.g. validation crops) score below it, and return it."""
        if not 0 <= false_reject_rate < 1:
            raise GalleryError(f"false_reject_rate must be in [0, 1), got {false_reject_rate}")
        scores = np.array([top[0][1] for top in self.search(known_queries, k=1)])
        if len(scores) == 0:
            raise GalleryError("calibration needs at least one known query")
        self.threshold = float(np.quantile(scores, false_reject_rate))
        return self.threshold

    # --- files
    def save(self, path: str | os.PathLike) -> Path:
        """Write vectors, brand names, the model's name/sha256, embedding size, threshold and index settings to
        one ``.npz`` file, atomically (no pickles)."""
        path = Path(path)
        if path.suffix != ".npz":
            raise GalleryError(f"{path}: a gallery file must end in .npz")
        meta = {"format": _FORMAT, "dim": self.dim, "model_name": self.model_name,
                "model_sha256": self.model_sha256, "threshold": self.threshold, "index": self.index_kind,
                "hnsw_m": self.hnsw_m, "ef_search": self.ef_search, "nlist": self.nlist, "nprobe": self.nprobe}
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, vectors=self._vectors, owner=np.array(self._owner, dtype=str),
                         meta=np.array(json.dumps(meta)))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, model: "ModelCard | None" = None, dim: int | None = None,
             allow_unbound: bool = False) -> "BrandGallery":
        """Read a gallery file, every field checked (:class:`GalleryError` naming the file and the field); with
        ``model`` (a card) and ``dim``, refuse a gallery made by another model (see :meth:`check_model`).

        ``path`` may also be the bare name of a gallery in a zoo folder (``"simple_icons_gallery"``: the one that
        ships with vision), looked up along :func:`vision.zoo.zoo_search_path`."""
        path = _resolve_gallery(Path(path))
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = {"meta", "vectors", "owner"} - set(data.files)
                if missing:
                    raise GalleryError(f"{path}: not a gallery file: arrays {sorted(missing)} are missing")
                meta_array, vectors, owner = data["meta"], data["vectors"], data["owner"]
        except GalleryError:
            raise
        # what numpy and zipfile raise for a file that is not an .npz of plain arrays (BadZipFile, truncated
        # members, bad .npy headers, an .npy instead of an .npz: no context manager)
        except (OSError, ValueError, KeyError, EOFError, TypeError, AttributeError, zipfile.BadZipFile, zlib.error,
                NotImplementedError, MemoryError) as e:
            raise GalleryError(f"{path}: not a readable gallery file ({type(e).__name__}: {e})") from None
        meta = _gallery_meta(path, meta_array)
        gallery = cls(meta["dim"], meta["model_name"], meta["model_sha256"], meta["threshold"], meta["index"],
                      meta["hnsw_m"], meta["ef_search"], meta["nlist"], meta["nprobe"])
        gallery._vectors, gallery._owner = _gallery_rows(path, vectors, owner, gallery.dim)
        if model is not None:
            gallery.check_model(model, dim, allow_unbound=allow_unbound)
        return gallery


def _gallery_meta(path: Path, array: np.ndarray) -> dict:
    """The ``meta`` record of a gallery file, every field's type and range checked."""
    if array.ndim != 0 or array.dtype.kind != "U":
        raise GalleryError(f"{path}: field 'meta' must be one JSON string, got an array {array.dtype} {array.shape}")
    try:
        meta = json.loads(str(array))
    except ValueError as e:
        raise GalleryError(f"{path}: field 'meta' is not JSON ({e})") from None
    if not isinstance(meta, dict):
        raise GalleryError(f"{path}: field 'meta' must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != _FORMAT or isinstance(meta.get("format"), bool):
        raise GalleryError(f"{path}: unsupported gallery format {meta.get('format')!r} (this version reads {_FORMAT})")
    meta = {"nlist": None, "nprobe": 16, **meta}   # files written before IVF support lack these two

    def bad(field: str, expected: str) -> GalleryError:
        shown = repr(meta[field]) if field in meta else "missing"
        return GalleryError(f"{path}: metadata field {field!r} must be {expected}, got {shown[:80]}")

    def is_int(value) -> bool:
        return type(value) is int and value >= 1

    for field in ("dim", "hnsw_m", "ef_search", "nprobe"):
        if not is_int(meta.get(field)):
            raise bad(field, "an integer >= 1")
    if meta["nlist"] is not None and not is_int(meta["nlist"]):
        raise bad("nlist", "null or an integer >= 1")
    for field in ("model_name", "model_sha256"):
        if not isinstance(meta.get(field), str):
            raise bad(field, "a string")
    threshold = meta.get("threshold", "missing")
    if threshold is not None and (type(threshold) not in (int, float) or not math.isfinite(threshold)):
        raise bad("threshold", "null or a finite number")
    if meta.get("index") not in INDEX_KINDS:
        raise bad("index", f"one of {list(INDEX_KINDS)}")
    return meta


def _gallery_rows(path: Path, vectors: np.ndarray, owner: np.ndarray, dim: int) -> tuple[np.ndarray, list[str]]:
    """The ``vectors`` and ``owner`` arrays of a gallery file, checked: float ``(N, dim)`` finite unit rows, ``N``
    non-empty brand names."""
    if vectors.dtype.kind != "f" or vectors.ndim != 2 or vectors.shape[1] != dim:
        raise GalleryError(f"{path}: field 'vectors' must be a float (N, {dim}) array (metadata 'dim' is {dim}), "
                           f"got {vectors.dtype} {vectors.shape}")
    if owner.dtype.kind != "U" or owner.ndim != 1:
        raise GalleryError(f"{path}: field 'owner' must be a 1-D array of brand names, got {owner.dtype} "
                           f"{owner.shape}")
    if len(owner) != len(vectors):
        raise GalleryError(f"{path}: {len(vectors)} vectors for {len(owner)} brand names (fields 'vectors' and "
                           "'owner' must have one row per vector)")
    vectors = vectors.astype(np.float32)
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise GalleryError(f"{path}: field 'vectors' row {row} (brand {str(owner[row])!r}) holds NaN or infinite "
                           "values")
    norms = np.linalg.norm(vectors, axis=1)
    off = np.abs(norms - 1) > UNIT_NORM_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise GalleryError(f"{path}: field 'vectors' row {row} (brand {str(owner[row])!r}) has norm "
                           f"{norms[row]:.4g}; gallery vectors are unit-norm")
    names = [str(o) for o in owner]
    bad = next((i for i, n in enumerate(names) if not n.strip() or n != n.strip() or n == UNKNOWN), None)
    if bad is not None:
        raise GalleryError(f"{path}: field 'owner' row {bad} is {names[bad]!r}: brand names are non-empty, "
                           f"trimmed and not {UNKNOWN!r}")
    return np.ascontiguousarray(vectors), names
