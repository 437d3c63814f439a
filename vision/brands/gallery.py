"""A gallery of brand embeddings: add or remove brands without retraining, search it, say "unknown".

Vectors are unit-norm embeddings from one zoo model (task ``embedding``); search is inner product (cosine) with
faiss, exact (``IndexFlatIP``) by default, or HNSW or IVF for large galleries. A brand may hold several vectors
(references: one prototype per artwork style, or per reference photo); its score for a query is its best
reference's. A query whose open-set score is below the gallery's ``threshold`` is ``"unknown"``.

Open set: :meth:`BrandGallery.calibrate` sets the threshold from queries of known brands *and* impostor queries
(crops of real photos that hold no brand): the lowest false-accept rate (FAR) on impostors whose false-reject rate
(FRR) on known brands stays within a target; both rates, the equal error rate and what the two sets were are stored
in the gallery file. The open-set score is the best brand's cosine similarity (``normalization="none"``) or that
similarity minus the query's best similarity to a background cohort of impostor embeddings kept in the gallery
(``"background"``: a crop that looks more like a price label than like any brand is rejected) or minus the mean of
its next ``topk`` brands' similarities (``"topk"``).

On whole photos a gallery may also hold a :class:`vision.brands.detection_rule.DetectionRule` (:attr:`BrandGallery.
detection_rule`, metadata field ``detection_rule``): a decision on the detector's confidence together with the open-set
score, calibrated for one detector (name and sha256 recorded) on known-brand photos and brand-free photos;
:class:`vision.brands.recognition.BrandRecognizer` applies it with that detector and falls back to ``threshold``
otherwise.
Galleries without one (all files written before it) keep the crop-only threshold. A gallery may also hold a
``text_rule`` (:attr:`BrandGallery.text_rule`, kind ``logistic_text`` or ``logistic_candidates``): the same decision
with the text read on each logo as more channels, calibrated for one detector *and* embedder, which the recogniser
applies when it reads text.

Each reference row also records its **kind** of artwork (:data:`REFERENCE_KINDS`: a ``symbol``, a ``wordmark`` (the
name set as text), a ``lockup`` (symbol and name together), a ``photo`` of the brand, or ``other``), so a gallery
says which kinds each brand has (:meth:`BrandGallery.reference_kinds`, metadata field ``reference_kinds``): a
wordmark on a package then has the brand's written name to be compared with, not only its symbol.

``crop_margin`` is how the recogniser frames each detected box before embedding it (:func:`vision.crops.square_crop`):
the threshold and the detection rule were calibrated on crops framed that way, so the recogniser takes it from the
gallery (default :data:`vision.crops.CROP_MARGIN`; files that do not record it were calibrated at 0.15).

A gallery file is self-checking: it stores a sha256 over all its arrays and its metadata (``content_sha256``), and
:meth:`BrandGallery.load` refuses a file whose brands, vectors or thresholds were changed after it was saved, as
well as thresholds and rule values outside the range their score can take. It is written atomically (a crash leaves
the previous file); :meth:`BrandGallery.edit` holds ``<file>.lock`` around a read-modify-write.

Example::

    fx = FeatureExtractor.from_pretrained("brand_resnet10t")
    gallery = BrandGallery.from_folder(fx, "logos/")           # logos/<brand>/*.png
    gallery.add("newco", fx(["newco.png"]))
    gallery.identify(fx(["crop.jpg"]))        # [{'brand': 'newco', 'score': 0.91, 'best': 'newco'}]
    gallery.calibrate(fx(known_crops), fx(price_label_crops), max_false_reject=0.10)
    # {'threshold': 0.62, 'frr': 0.098, 'far': 0.21, 'eer': 0.15, ...}
    gallery.save("my_gallery.npz"); BrandGallery.load("my_gallery.npz", model=fx.card)
    BrandGallery.load("simple_icons_gallery")  # a gallery in the zoo, by name (vision.list_galleries())
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

import numpy as np

from vision.arrays import load_npz
from vision.crops import CROP_MARGIN, LEGACY_CROP_MARGIN, check_margin
from vision.fileio import atomic_path
from vision.retrieval import INDEX_KINDS, as_vectors, build_index, equal_error_rate, open_set_threshold
from vision.store import file_lock

if TYPE_CHECKING:
    from vision.brands.detection_rule import DetectionRule
    from vision.features import FeatureExtractor
    from vision.zoo import ModelCard

UNKNOWN = "unknown"
_FORMAT = 2                   # 2: references, background cohort, normalisation and the calibration record
_READABLE_FORMATS = (1, 2)
MERGES = ("all", "mean")      # how BrandGallery.from_images combines a brand's images (per reference)
# what a reference row draws: the brand's symbol, its name as text, both together, a photo of it, or not known
REFERENCE_KINDS = ("symbol", "wordmark", "lockup", "photo", "other")
NORMALIZATIONS = ("none", "background", "topk")   # open-set score: see the module docstring
UNIT_NORM_TOLERANCE = 1e-3    # stored vectors are normalised by add_many; a file whose rows are not was edited
DIGEST_FIELD = "content_sha256"   # sha256 of every other array (names, dtypes, shapes, bytes): see content_sha256
# decoded arrays may hold at most this multiple of the file's size (+ a floor): np.savez stores them as they are, and
# even a compressed gallery (float vectors barely compress) stays far below it; a file claiming more is refused
# before anything is allocated
MAX_EXPANSION = 16
MAX_EXPANSION_FLOOR = 16 << 20
# the range an open-set score can take: a cosine, or a cosine minus a cosine (background, topk)
SCORE_RANGE = {"none": (-1.0, 1.0), "background": (-2.0, 2.0), "topk": (-2.0, 2.0)}
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
    from vision.zoo import list_galleries

    where = f" (relative to the current folder {Path.cwd()})" if not path.is_absolute() else ""
    names = ", ".join(list_galleries()) or "none"
    raise GalleryError(f"gallery {str(path)!r} not found: no such file{where}, nor a gallery of that name in the "
                       f"zoo; give a zoo gallery by name (vision.list_galleries(): {names}) or the path of a .npz "
                       "file")


def content_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over every array but :data:`DIGEST_FIELD`, in name order: its name, dtype, shape and bytes (the
    metadata JSON is the ``meta`` array's bytes). Stored in the file by :meth:`BrandGallery.save`, so an edit of
    any field, brand names and thresholds included, is caught by :meth:`BrandGallery.load`."""
    names = sorted(n for n in arrays if n != DIGEST_FIELD)
    index = json.dumps([[n, arrays[n].dtype.str, list(arrays[n].shape)] for n in names])
    h = hashlib.sha256(index.encode())
    for n in names:
        h.update(np.ascontiguousarray(arrays[n]).reshape(-1).view(np.uint8))
    return h.hexdigest()


def gallery_lock(path: str | os.PathLike):
    """The lock around a read-modify-write of the gallery file ``path`` (``<path>.lock``)."""
    path = Path(path)
    return file_lock(path.with_name(path.name + ".lock"), f"gallery {path}", GalleryError)


def mean_prototypes(owners: Sequence, vectors) -> tuple[list, np.ndarray]:
    """One unit-norm prototype per owner (the mean of its rows of ``vectors``), owners in first-seen order.

    An owner is any hashable: a brand name, or a ``(brand, reference)`` pair for one prototype per style."""
    vectors = np.asarray(vectors, np.float32)
    names = list(dict.fromkeys(owners))
    row = {name: i for i, name in enumerate(names)}
    sums = np.zeros((len(names), vectors.shape[1]), np.float32)
    np.add.at(sums, [row[o] for o in owners], vectors)
    return names, sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)


class GalleryError(ValueError):
    """A gallery problem: empty, duplicate or missing brand, wrong embedding size, another model's gallery."""


def reference_kind(reference: str) -> str:
    """The kind of artwork (:data:`REFERENCE_KINDS`) a reference name says it is, for rows added without one:
    ``wordmark:<font>`` and ``lockup:<font>-<layout>`` what they say, ``reference:<file>`` a photo, ``simple-icons``
    and any other ``<set>:<icon>`` (an Iconify icon, as ``vision build-gallery --icon-sets`` names them) a symbol
    (the builder passes the kind of the icons a set marks as spelling the name), a name without a colon other."""
    prefix, colon, name = reference.partition(":")
    if reference == "simple-icons":
        return "symbol"
    if not colon:
        return "other"
    if prefix in ("wordmark", "lockup"):
        return prefix
    if prefix == "reference":
        return "photo"
    return "symbol" if prefix and name else "other"


def _checked_kinds(kinds: Sequence[str]) -> list[str]:
    kinds = [str(k) for k in kinds]
    bad = next((k for k in kinds if k not in REFERENCE_KINDS), None)
    if bad is not None:
        raise GalleryError(f"unknown reference kind {bad!r}; choose one of {REFERENCE_KINDS}")
    return kinds


class BrandGallery:
    """Brand names and their embeddings, searchable by inner product.

    ``model_name`` / ``model_sha256`` / ``dim`` record the embedding model the vectors came from; a gallery is only
    searched with embeddings of that model (:meth:`check_model`). ``index``: ``"flat"`` (exact), ``"hnsw"``
    (``hnsw_m``, ``ef_search``) or ``"ivf"`` (``nlist`` lists, default about 4 sqrt(N); ``nprobe`` scanned per query);
    see :func:`vision.retrieval.build_index`. ``normalization`` (one of :data:`NORMALIZATIONS`) and ``topk`` choose
    the open-set score the ``threshold`` applies to; :attr:`calibration` records how the threshold was set.
    ``crop_margin``: how query crops are framed around a detected box (the recogniser takes it from the gallery).
    """

    def __init__(self, dim: int, model_name: str = "", model_sha256: str = "", threshold: float | None = None,
                 index: str = "flat", hnsw_m: int = 32, ef_search: int = 64, nlist: int | None = None,
                 nprobe: int = 16, normalization: str = "none", topk: int = 5, crop_margin: float = CROP_MARGIN):
        if dim < 1:
            raise GalleryError(f"embedding size must be >= 1, got {dim}")
        if index not in INDEX_KINDS:
            raise GalleryError(f"unknown index kind {index!r}; choose one of {INDEX_KINDS}")
        if normalization not in NORMALIZATIONS:
            raise GalleryError(f"unknown normalization {normalization!r}; choose one of {NORMALIZATIONS}")
        if type(topk) is not int or topk < 1:
            raise GalleryError(f"topk must be an integer >= 1, got {topk!r}")
        self.dim, self.model_name, self.model_sha256 = int(dim), model_name, model_sha256
        self.threshold = threshold
        self.index_kind, self.hnsw_m, self.ef_search = index, hnsw_m, ef_search
        self.nlist, self.nprobe = nlist, nprobe
        self.normalization, self.topk = normalization, topk
        self.crop_margin = _check_margin(crop_margin, "crop_margin")
        self.calibration: dict | None = None  # what calibrate() measured; saved with the gallery
        # a decision rule on detection confidence and open-set score for one detector (None: threshold only)
        self.detection_rule: "DetectionRule | None" = None
        # the rule fused with the text read on each logo (kind logistic_text or logistic_candidates), applied when
        # the recogniser reads
        self.text_rule: "DetectionRule | None" = None
        # how query crops were embedded when the threshold and rules were calibrated: None (the plain crop) or a
        # foreground option record (vision.brands.views.foreground_option: the crop and its foreground view fused);
        # the recogniser embeds its logos the same way
        self.foreground: dict | None = None
        self._vectors = np.empty((0, self.dim), np.float32)
        self._owner: list[str] = []          # brand of each vector row
        self._reference: list[str] = []      # what each row was made from ("" when not recorded)
        self._kind: list[str] = []           # the kind of artwork of each row (REFERENCE_KINDS)
        self._background = np.empty((0, self.dim), np.float32)   # impostor cohort for "background" scores
        self._index = None                   # rebuilt lazily after a change

    # --- building
    @classmethod
    def for_model(cls, extractor: "FeatureExtractor", **kwargs) -> "BrandGallery":
        """An empty gallery for ``extractor``'s model (name, sha256 and embedding size recorded)."""
        return cls(extractor.dim, extractor.card.name, extractor.card.sha256, **kwargs)

    @classmethod
    def from_images(cls, extractor: "FeatureExtractor", images: Mapping[str, Sequence], batch_size: int = 64,
                    merge: str = "all", references: Mapping[str, Sequence[str]] | None = None,
                    kinds: Mapping[str, Sequence[str]] | None = None, **kwargs) -> "BrandGallery":
        """A gallery of ``{brand: [image, ...]}`` (paths, PIL images or arrays), embedded by ``extractor``.

        ``references`` names each image's reference (``{brand: [name per image]}``, e.g. its artwork style; default:
        one unnamed reference per brand). ``merge``: ``"all"`` keeps one vector per image (a brand scores its best
        one); ``"mean"`` stores one prototype per reference of a brand, the renormalised mean of its images'
        embeddings (steadier when the images are renders of one mark in several colours). ``kinds``: each image's
        kind of artwork (:data:`REFERENCE_KINDS`, ``{brand: [kind per image]}``; default: :func:`reference_kind`
        of its reference name); ``"mean"`` merges images of one reference and kind.
        """
        gallery = cls.for_model(extractor, **kwargs)
        gallery.add_images(extractor, images, batch_size=batch_size, merge=merge, references=references, kinds=kinds)
        return gallery

    def add_images(self, extractor: "FeatureExtractor", images: Mapping[str, Sequence], batch_size: int = 64,
                   merge: str = "all", references: Mapping[str, Sequence[str]] | None = None,
                   extend: bool = False, kinds: Mapping[str, Sequence[str]] | None = None) -> None:
        """Embed and add ``{brand: [image, ...]}`` (see :meth:`from_images`); ``extend`` adds references to brands
        already in the gallery (e.g. a user's photos of a simple-icons brand) instead of refusing them."""
        if merge not in MERGES:
            raise GalleryError(f"unknown merge {merge!r}; choose one of {MERGES}")
        if extractor.dim != self.dim:
            raise GalleryError(f"embedding size mismatch: model {extractor.card.name!r} makes {extractor.dim}-d "
                               f"embeddings, the gallery holds {self.dim}-d ones")
        references, kinds = references or {}, kinds or {}
        for what, given in (("reference names", references), ("reference kinds", kinds)):
            for brand, names in given.items():
                if len(names) != len(images.get(brand, ())):
                    raise GalleryError(f"brand {brand!r}: {len(names)} {what} for {len(images.get(brand, ()))} "
                                       "images")
        keys = []   # (brand, reference, kind) per image
        for brand, brand_images in images.items():
            for i in range(len(brand_images)):
                name = references[brand][i] if brand in references else ""
                keys.append((brand, name, kinds[brand][i] if brand in kinds else reference_kind(name)))
        flat = [image for brand_images in images.values() for image in brand_images]
        if not flat:
            raise GalleryError("no images to add")
        vectors = extractor(flat, batch_size=batch_size)
        if merge == "mean":
            keys, vectors = mean_prototypes(keys, vectors)
        self.add_many([b for b, _, _ in keys], vectors, references=[r for _, r, _ in keys],
                      kinds=[k for _, _, k in keys], extend=extend)

    @classmethod
    def from_folder(cls, extractor: "FeatureExtractor", folder: str | os.PathLike, **kwargs) -> "BrandGallery":
        """A gallery from ``folder/<brand>/*`` images (canonical logos, or any labelled brand crops)."""
        from vision.data.datasets import scan_image_folder

        samples, table = scan_image_folder(folder)
        by_brand: dict[str, list[Path]] = {}
        for s in samples:
            by_brand.setdefault(table.names[s.label], []).append(s.path)
        return cls.from_images(extractor, by_brand, **kwargs)

    def add(self, brand: str, vectors, replace: bool = False, reference: str = "", extend: bool = False,
            kind: str | None = None) -> None:
        """Add ``brand`` with one or more embeddings (``(D,)`` or ``(N, D)``) of one ``reference`` of ``kind``
        (:data:`REFERENCE_KINDS`; default: :func:`reference_kind` of ``reference``); an existing name needs
        ``replace`` (drop its vectors first) or ``extend`` (keep them: one more reference)."""
        vectors = np.asarray(vectors, np.float32)
        vectors = vectors[None] if vectors.ndim == 1 else vectors
        if len(vectors) == 0:
            raise GalleryError(f"brand {brand!r}: no embeddings given")
        brand = str(brand).strip()
        if replace and brand in self:
            self.remove(brand)
        self.add_many([brand] * len(vectors), vectors, references=[reference] * len(vectors),
                      kinds=None if kind is None else [kind] * len(vectors), extend=extend)

    def add_many(self, brands: Sequence[str], vectors, references: Sequence[str] | None = None,
                 extend: bool = False, kinds: Sequence[str] | None = None) -> None:
        """Add new brands in one go: ``brands[i]`` names row ``i`` of ``vectors`` (a brand may own several rows),
        ``references[i]`` what that row was made from, ``kinds[i]`` its kind of artwork (default:
        :func:`reference_kind` of the reference name); ``extend`` allows brands already in the gallery."""
        names = [str(b).strip() for b in brands]
        refs = [str(r) for r in (references if references is not None else [""] * len(names))]
        kinds = _checked_kinds(kinds if kinds is not None else [reference_kind(r) for r in refs])
        vectors = as_vectors(vectors, self.dim, what="brand embeddings")
        if len(names) != len(vectors):
            raise GalleryError(f"{len(names)} brand names for {len(vectors)} embeddings")
        if len(refs) != len(names):
            raise GalleryError(f"{len(refs)} reference names for {len(names)} embeddings")
        if len(kinds) != len(names):
            raise GalleryError(f"{len(kinds)} reference kinds for {len(names)} embeddings")
        if any(not n for n in names):
            raise GalleryError("brand name is empty")
        if UNKNOWN in names:
            raise GalleryError(f"{UNKNOWN!r} is reserved for rejected queries; pick another brand name")
        existing = sorted(set(names) & set(self._owner))
        if existing and not extend:
            raise GalleryError(f"brand {existing[0]!r} is already in the gallery"
                               f"{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''}; "
                               "remove it first, pass replace=True to add() or extend=True to add references")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if (norms < 1e-6).any():
            raise GalleryError(f"brand {names[int(np.argmin(norms))]!r}: an embedding has zero norm")
        self._vectors = np.concatenate([self._vectors, vectors / norms])
        self._owner += names
        self._reference += refs
        self._kind += kinds
        self._index = None

    def set_background(self, vectors) -> None:
        """Keep ``vectors`` (embeddings of impostor crops: real photo regions without a brand) as the background
        cohort of ``normalization="background"`` scores; replaces any earlier cohort."""
        vectors = as_vectors(vectors, self.dim, what="background embeddings")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if (norms < 1e-6).any():
            raise GalleryError("a background embedding has zero norm")
        self._background = vectors / norms

    def remove(self, brand: str) -> None:
        if brand not in self:
            raise GalleryError(f"brand {brand!r} is not in the gallery ({len(self)} brands)")
        keep = np.array([o != brand for o in self._owner])
        self._vectors = self._vectors[keep]
        self._reference = [r for r, o in zip(self._reference, self._owner) if o != brand]
        self._kind = [k for k, o in zip(self._kind, self._owner) if o != brand]
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

    @property
    def owners(self) -> list[str]:
        """The brand of each row of :attr:`vectors`."""
        return list(self._owner)

    @property
    def references(self) -> list[str]:
        """What each row of :attr:`vectors` was made from (a style, a reference file; ``""`` when not recorded)."""
        return list(self._reference)

    @property
    def kinds(self) -> list[str]:
        """The kind of artwork of each row of :attr:`vectors` (:data:`REFERENCE_KINDS`)."""
        return list(self._kind)

    def reference_kinds(self) -> dict[str, list[str]]:
        """``{brand: [kind, ...]}``: the kinds of reference each brand holds, in :data:`REFERENCE_KINDS` order
        (``{"github": ["symbol", "wordmark", "lockup"]}``); saved in the file's metadata as ``reference_kinds``."""
        held: dict[str, set[str]] = {}
        for brand, kind in zip(self._owner, self._kind):
            held.setdefault(brand, set()).add(kind)
        return {brand: [k for k in REFERENCE_KINDS if k in kinds] for brand, kinds in held.items()}

    @property
    def background(self) -> np.ndarray:
        """The background cohort ``(M, dim)`` (empty unless :meth:`set_background` was called)."""
        return self._background.copy()

    def __len__(self) -> int:
        return len(set(self._owner))

    def __contains__(self, brand: object) -> bool:
        return brand in set(self._owner)

    def __repr__(self) -> str:
        return (f"BrandGallery({len(self)} brands, {len(self._owner)} vectors, dim={self.dim}, "
                f"model={self.model_name!r}, threshold={self.threshold}, normalization={self.normalization!r}, "
                f"index={self.index_kind!r})")

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
                                   "Rebuild it with vision build-gallery --embedder <zoo name>, or pass "
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

    def _unit_queries(self, queries) -> np.ndarray:
        queries = as_vectors(np.atleast_2d(np.asarray(queries, np.float32)), self.dim, what="query embeddings")
        return queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)

    def search(self, queries, k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` best brands per query as ``(brand, cosine score)``, best first (one score per brand)."""
        index = self._search_index()
        queries = self._unit_queries(queries)
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

    def open_set_scores(self, queries, normalization: str | None = None, leave_one_out: bool = False,
                        leave_out: np.ndarray | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Per query its best brand, that brand's cosine score, and the open-set score the threshold applies to
        (see the module docstring; ``normalization`` defaults to the gallery's own). ``leave_one_out``: a query
        that is itself in the background cohort is compared with the rest of it (calibrating on the cohort);
        ``leave_out``: a boolean ``(queries, cohort)`` mask of cohort rows each query is not compared with."""
        normalization = self.normalization if normalization is None else normalization
        if normalization not in NORMALIZATIONS:
            raise GalleryError(f"unknown normalization {normalization!r}; choose one of {NORMALIZATIONS}")
        tops = self.search(queries, k=1 + self.topk if normalization == "topk" else 1)
        best = [top[0][0] for top in tops]
        scores = np.array([top[0][1] for top in tops], np.float64)
        if normalization == "background":
            if not len(self._background):
                raise GalleryError("normalization 'background' needs a background cohort: call set_background() "
                                   "with impostor embeddings (build-gallery --impostors)")
            cohort = self._unit_queries(queries) @ self._background.T
            if leave_one_out:
                cohort[cohort > 1 - 1e-5] = -1.0
            if leave_out is not None:
                cohort[leave_out] = -1.0
            return best, scores, scores - cohort.max(axis=1)
        if normalization == "topk":
            rest = np.array([np.mean([s for _, s in top[1:]]) if len(top) > 1 else 0.0 for top in tops])
            return best, scores, scores - rest
        return best, scores, scores.copy()

    def identify(self, queries, threshold: float | None = None) -> list[dict]:
        """Per query ``{"brand", "score", "best", "open_set_score"}``: ``score`` is the best brand's cosine
        similarity, ``brand`` is ``"unknown"`` when ``open_set_score`` (``score`` itself unless the gallery
        normalises) is below ``threshold`` (default: the gallery's own; ``None`` accepts everything)."""
        threshold = self.threshold if threshold is None else threshold
        best, scores, open_set = self.open_set_scores(queries)
        return [{"brand": brand if threshold is None or decision >= threshold else UNKNOWN,
                 "score": round(float(score), 6), "best": brand, "open_set_score": round(float(decision), 6)}
                for brand, score, decision in zip(best, scores, open_set)]

    def calibrate_threshold(self, known_queries, false_reject_rate: float = 0.05) -> float:
        """Set :attr:`threshold` so that ``false_reject_rate`` of ``known_queries`` (embeddings of brands in the
        gallery, e.g. validation crops) score below it, and return it. Without impostors the false-accept rate is
        not measured: prefer :meth:`calibrate`."""
        if not 0 <= false_reject_rate < 1:
            raise GalleryError(f"false_reject_rate must be in [0, 1), got {false_reject_rate}")
        if len(np.atleast_2d(np.asarray(known_queries))) == 0:
            raise GalleryError("calibration needs at least one known query")
        _, _, scores = self.open_set_scores(known_queries)
        self.threshold = float(np.quantile(scores, false_reject_rate))
        self.calibration = {"method": "known-only quantile", "max_false_reject": false_reject_rate,
                            "threshold": round(self.threshold, 6), "normalization": self.normalization,
                            "known": len(scores), "frr": round(float((scores < self.threshold).mean()), 4)}
        return self.threshold

    def calibrate(self, known_queries, impostor_queries, max_false_reject: float = 0.10,
                  known_brands: Sequence[str] | None = None, known_set: str = "", impostor_set: str = "",
                  impostor_groups: Sequence[str] | None = None) -> dict:
        """Set :attr:`threshold` from queries of known brands and impostor queries (crops without a brand), and
        return the record stored as :attr:`calibration` (and in the gallery file).

        The threshold gives the lowest false-accept rate on impostors (FAR: share scoring at or above it) among
        those whose false-reject rate on known queries (FRR: share scoring below it) is at most
        ``max_false_reject``; among thresholds with that FAR the lowest FRR, placed half-way between the
        impostor and the known score it separates. With ``normalization="background"`` the impostors may be the
        cohort itself (each is scored against the others); ``impostor_groups`` (e.g. the source photo of each
        crop) then leaves a crop's whole group out of its cohort, since crops of one photo resemble each other
        more than a new photo's crops resemble any. The record also holds the equal error rate (``eer``, where FRR
        and FAR meet), the counts, ``known_set``/``impostor_set`` (what the two sets were) and, with
        ``known_brands`` (the true brand of each known query), the share of known queries accepted as their own
        brand."""
        if not 0 <= max_false_reject < 1:
            raise GalleryError(f"max_false_reject must be in [0, 1), got {max_false_reject}")
        known_queries = np.atleast_2d(np.asarray(known_queries, np.float32))
        impostor_queries = np.atleast_2d(np.asarray(impostor_queries, np.float32))
        if len(known_queries) == 0 or len(impostor_queries) == 0:
            raise GalleryError(f"calibration needs known and impostor queries, got {len(known_queries)} known and "
                               f"{len(impostor_queries)} impostors")
        if known_brands is not None and len(known_brands) != len(known_queries):
            raise GalleryError(f"{len(known_brands)} brand labels for {len(known_queries)} known queries")
        leave_out = None
        if impostor_groups is not None:
            if len(impostor_groups) != len(impostor_queries):
                raise GalleryError(f"{len(impostor_groups)} impostor groups for {len(impostor_queries)} impostors")
            if self.normalization == "background":
                if len(self._background) != len(impostor_queries):
                    raise GalleryError("impostor_groups leave groups out of the background cohort: the impostors "
                                       f"must be the cohort ({len(impostor_queries)} impostors, "
                                       f"{len(self._background)} cohort rows)")
                codes = np.unique(np.asarray([str(g) for g in impostor_groups]), return_inverse=True)[1]
                leave_out = codes[:, None] == codes[None, :]
        best, _, known = self.open_set_scores(known_queries)
        # impostors that are also the background cohort are scored against the rest of it
        _, _, impostor = self.open_set_scores(impostor_queries, leave_one_out=True, leave_out=leave_out)
        threshold = open_set_threshold(known, impostor, max_false_reject)
        eer, eer_threshold = equal_error_rate(known, impostor)
        self.threshold = threshold
        record = {"method": "known FRR <= max_false_reject, lowest impostor FAR",
                  "normalization": self.normalization, "max_false_reject": max_false_reject,
                  "threshold": round(threshold, 6), "frr": round(float((known < threshold).mean()), 4),
                  "far": round(float((impostor >= threshold).mean()), 4), "eer": round(eer, 4),
                  "eer_threshold": round(eer_threshold, 6), "known": len(known), "impostors": len(impostor),
                  "known_set": known_set, "impostor_set": impostor_set,
                  "impostor_groups": None if impostor_groups is None else len(set(map(str, impostor_groups)))}
        if known_brands is not None:
            right = np.array([b == t for b, t in zip(best, known_brands)])
            record["known_recall@1"] = round(float(right.mean()), 4)
            record["known_accepted_correct"] = round(float((right & (known >= threshold)).mean()), 4)
        self.calibration = record
        return dict(record)

    # --- files
    def save(self, path: str | os.PathLike) -> Path:
        """Write vectors, brand names, the model's name/sha256, embedding size, threshold and index settings to
        one ``.npz`` file, atomically (no pickles)."""
        path = Path(path)
        if path.suffix != ".npz":
            raise GalleryError(f"{path}: a gallery file must end in .npz")
        low, high = SCORE_RANGE[self.normalization]
        if self.threshold is not None and not (isinstance(self.threshold, (int, float)) and
                                               math.isfinite(self.threshold) and low < self.threshold <= high):
            # load() would refuse it: fail here, before writing a file nobody can read
            raise GalleryError(f"{path}: threshold must be None or a number in ({low:g}, {high:g}] (the range of a "
                               f"{self.normalization!r} open-set score), got {self.threshold!r}")
        meta = {"format": _FORMAT, "dim": self.dim, "model_name": self.model_name,
                "model_sha256": self.model_sha256, "threshold": self.threshold, "index": self.index_kind,
                "hnsw_m": self.hnsw_m, "ef_search": self.ef_search, "nlist": self.nlist, "nprobe": self.nprobe,
                "normalization": self.normalization, "topk": self.topk, "calibration": self.calibration,
                "crop_margin": self.crop_margin, "reference_kinds": self.reference_kinds()}
        if self.detection_rule is not None:   # absent otherwise: files without a rule read as before
            meta["detection_rule"] = self.detection_rule.to_json()
        if self.text_rule is not None:
            meta["text_rule"] = self.text_rule.to_json()
        if self.foreground is not None:   # absent otherwise: files without it read as before
            meta["foreground"] = dict(self.foreground)
        arrays = {"vectors": self._vectors, "owner": np.array(self._owner, dtype=str).reshape(len(self._owner)),
                  "reference": np.array(self._reference, dtype=str).reshape(len(self._reference)),
                  "kind": np.array(self._kind, dtype=str).reshape(len(self._kind)),
                  "background": self._background, "meta": np.array(json.dumps(meta))}
        arrays[DIGEST_FIELD] = np.array(content_sha256(arrays))
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        return path

    @classmethod
    @contextlib.contextmanager
    def edit(cls, path: str | os.PathLike, **load_kwargs) -> Iterator["BrandGallery"]:
        """Read-modify-write of an existing gallery file under its lock (:func:`gallery_lock`): loaded (checked)
        on entry, saved atomically on a clean exit, so two processes editing one file never lose each other's
        brands. ``load_kwargs`` go to :meth:`load`.

        Example::

            with BrandGallery.edit("my_gallery.npz") as gallery:
                gallery.add("newco", fx(["newco.png"]))
        """
        path = _resolve_gallery(Path(path))
        with gallery_lock(path):
            gallery = cls.load(path, **load_kwargs)
            yield gallery
            gallery.save(path)

    @classmethod
    def load(cls, path: str | os.PathLike, model: "ModelCard | None" = None, dim: int | None = None,
             allow_unbound: bool = False) -> "BrandGallery":
        """Read a gallery file, every field checked (:class:`GalleryError` naming the file and the field); with
        ``model`` (a card) and ``dim``, refuse a gallery made by another model (see :meth:`check_model`). The
        arrays must match the file's content digest (:func:`content_sha256`; a file without one, written by an
        older vision, loads with a warning), and no array is read before its header is checked against the bytes
        present (:func:`vision.arrays.load_npz`).

        ``path`` may also be the bare name of a gallery in a zoo folder (``"simple_icons_gallery"``: the one that
        ships with vision), looked up along :func:`vision.zoo.zoo_search_path`."""
        path = _resolve_gallery(Path(path))
        try:
            size = path.stat().st_size
        except OSError as e:
            raise GalleryError(f"{path}: cannot read the gallery file ({e.strerror or e})") from None
        # every header is checked against the bytes present, the total against the file's size, before numpy
        # allocates: a small file claiming gigabytes of vectors is refused in constant memory
        try:
            data = load_npz(path, GalleryError, max_bytes=MAX_EXPANSION * size + MAX_EXPANSION_FLOOR)
        except GalleryError as e:
            why = str(e).removeprefix(str(path)).lstrip(": ")
            raise GalleryError(f"{path}: not a readable gallery file: {why}") from None
        missing = {"meta", "vectors", "owner"} - set(data)
        if missing:
            raise GalleryError(f"{path}: not a gallery file: arrays {sorted(missing)} are missing")
        _check_digest(path, data)
        meta_array, vectors, owner = data["meta"], data["vectors"], data["owner"]
        # format 1 files have neither: one unnamed reference per row, no background cohort
        reference, background = data.get("reference"), data.get("background")
        meta = _gallery_meta(path, meta_array)
        gallery = cls(meta["dim"], meta["model_name"], meta["model_sha256"], meta["threshold"], meta["index"],
                      meta["hnsw_m"], meta["ef_search"], meta["nlist"], meta["nprobe"], meta["normalization"],
                      meta["topk"], meta["crop_margin"])
        gallery.calibration = meta["calibration"]
        gallery.detection_rule = meta["detection_rule"]
        gallery.text_rule = meta["text_rule"]
        gallery.foreground = meta["foreground"]
        gallery._vectors, gallery._owner = _gallery_rows(path, vectors, owner, gallery.dim)
        gallery._reference = _gallery_references(path, reference, len(gallery._owner))
        gallery._kind = _gallery_kinds(path, data.get("kind"), gallery._reference)
        if meta["reference_kinds"] is not None and meta["reference_kinds"] != gallery.reference_kinds():
            raise GalleryError(f"{path}: metadata field 'reference_kinds' does not match the kinds of the rows (field "
                               "'kind'): the file was edited after it was saved; build it again")
        gallery._background = _gallery_background(path, background, gallery.dim)
        if gallery.normalization == "background" and not len(gallery._background):
            raise GalleryError(f"{path}: metadata field 'normalization' is 'background' but field 'background' "
                               "(the impostor cohort) is empty")
        if model is not None:
            gallery.check_model(model, dim, allow_unbound=allow_unbound)
        return gallery


def _check_margin(value, what: str) -> float:
    try:
        return check_margin(value, what)
    except ValueError as e:
        raise GalleryError(str(e)) from None


def _check_digest(path: Path, data: dict[str, np.ndarray]) -> None:
    """Refuse a file whose arrays do not match its :data:`DIGEST_FIELD`; warn about a file without one."""
    recorded = data.get(DIGEST_FIELD)
    if recorded is None:
        log.warning("%s: the gallery records no content digest (written by an older vision), so an edit of its "
                    "brands or thresholds cannot be detected; re-save it (BrandGallery.load(path).save(path)) once "
                    "you trust it", path)
        return
    if recorded.ndim != 0 or recorded.dtype.kind != "U" or len(str(recorded)) != 64:
        raise GalleryError(f"{path}: field {DIGEST_FIELD!r} must be one sha256 hex string, got an array "
                           f"{recorded.dtype} {recorded.shape}")
    actual = content_sha256(data)
    if actual != str(recorded):
        raise GalleryError(f"{path}: content sha256 mismatch (field {DIGEST_FIELD!r} {str(recorded)[:12]}..., "
                           f"arrays {actual[:12]}...): the gallery is corrupt or was edited after it was saved; "
                           "restore it or build it again with vision build-gallery")


def _gallery_meta(path: Path, array: np.ndarray) -> dict:
    """The ``meta`` record of a gallery file, every field's type and range checked."""
    if array.ndim != 0 or array.dtype.kind != "U":
        raise GalleryError(f"{path}: field 'meta' must be one JSON string, got an array {array.dtype} {array.shape}")
    try:
        meta = json.loads(str(array))
    except ValueError as e:
        raise GalleryError(f"{path}: field 'meta' is not JSON ({e})") from None
    except RecursionError:
        raise GalleryError(f"{path}: field 'meta' is JSON nested too deep to read; not a file vision wrote") from None
    if not isinstance(meta, dict):
        raise GalleryError(f"{path}: field 'meta' must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") not in _READABLE_FORMATS or isinstance(meta.get("format"), bool):
        raise GalleryError(f"{path}: unsupported gallery format {meta.get('format')!r} (this version reads "
                           f"{', '.join(map(str, _READABLE_FORMATS))})")
    # files written before IVF support lack nlist/nprobe; format 1 files lack the open-set fields
    # and files written before the crop margin was recorded were calibrated on crops framed at the old default
    meta = {"nlist": None, "nprobe": 16, "normalization": "none", "topk": 5, "calibration": None,
            "detection_rule": None, "text_rule": None, "crop_margin": LEGACY_CROP_MARGIN, "reference_kinds": None,
            "foreground": None, **meta}

    def bad(field: str, expected: str) -> GalleryError:
        shown = repr(meta[field]) if field in meta else "missing"
        return GalleryError(f"{path}: metadata field {field!r} must be {expected}, got {shown[:80]}")

    def is_int(value) -> bool:
        return type(value) is int and value >= 1

    for field in ("dim", "hnsw_m", "ef_search", "nprobe", "topk"):
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
    if meta["normalization"] not in NORMALIZATIONS:
        raise bad("normalization", f"one of {list(NORMALIZATIONS)}")
    low, high = SCORE_RANGE[meta["normalization"]]
    if threshold is not None and not low < threshold <= high:
        # at or below the lowest score every query is a brand (null says that), above the highest none is
        raise bad("threshold", f"null or a number in ({low:g}, {high:g}] (the range of a "
                               f"{meta['normalization']!r} open-set score)")
    margin = meta["crop_margin"]
    if type(margin) not in (int, float) or not math.isfinite(margin) or not 0 <= margin <= 1:
        raise bad("crop_margin", "a number from 0 to 1")
    if meta["calibration"] is not None and not isinstance(meta["calibration"], dict):
        raise bad("calibration", "null or a JSON object")
    kinds = meta["reference_kinds"]
    if kinds is not None and not (isinstance(kinds, dict) and all(
            isinstance(v, list) and all(k in REFERENCE_KINDS for k in v) for v in kinds.values())):
        raise bad("reference_kinds", f"null or an object of brand: [kinds of {list(REFERENCE_KINDS)}]")
    if meta["foreground"] is not None:
        from vision.brands.views import ForegroundOptionError, foreground_option

        try:
            if not isinstance(meta["foreground"], dict):
                raise ForegroundOptionError("not a JSON object")
            meta["foreground"] = foreground_option(meta["foreground"])
        except ForegroundOptionError as e:
            raise bad("foreground", f"null or a foreground option record ({e})") from None
    from vision.brands.detection_rule import FUSED_KINDS, RULE_KINDS, DetectionRule, DetectionRuleError

    for field, kinds in (("detection_rule", RULE_KINDS), ("text_rule", FUSED_KINDS)):
        if meta[field] is None:
            continue
        try:
            meta[field] = DetectionRule.from_json(meta[field], f"metadata field {field!r}")
        except DetectionRuleError as e:
            raise GalleryError(f"{path}: {e}") from None
        if meta[field].kind not in kinds:
            raise bad(field, f"a rule of kind {' or '.join(kinds)}")
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


def _gallery_references(path: Path, reference: np.ndarray | None, rows: int) -> list[str]:
    """The ``reference`` array of a gallery file (one name per vector row), checked; absent: unnamed rows."""
    if reference is None:
        return [""] * rows
    if reference.dtype.kind != "U" or reference.shape != (rows,):
        raise GalleryError(f"{path}: field 'reference' must be a 1-D array of {rows} names (one per vector), got "
                           f"{reference.dtype} {reference.shape}")
    return [str(r) for r in reference]


def _gallery_kinds(path: Path, kind: np.ndarray | None, references: list[str]) -> list[str]:
    """The ``kind`` array of a gallery file (one :data:`REFERENCE_KINDS` entry per vector row), checked; absent
    (files written before it): each row's :func:`reference_kind`."""
    if kind is None:
        return [reference_kind(r) for r in references]
    if kind.dtype.kind != "U" or kind.shape != (len(references),):
        raise GalleryError(f"{path}: field 'kind' must be a 1-D array of {len(references)} reference kinds (one per "
                           f"vector), got {kind.dtype} {kind.shape}")
    kinds = [str(k) for k in kind]
    bad = next((i for i, k in enumerate(kinds) if k not in REFERENCE_KINDS), None)
    if bad is not None:
        raise GalleryError(f"{path}: field 'kind' row {bad} is {kinds[bad]!r}; a reference kind is one of "
                           f"{list(REFERENCE_KINDS)}")
    return kinds


def _gallery_background(path: Path, background: np.ndarray | None, dim: int) -> np.ndarray:
    """The ``background`` cohort of a gallery file: a float ``(M, dim)`` array of finite unit rows (``M`` may be 0)."""
    if background is None:
        return np.empty((0, dim), np.float32)
    if background.dtype.kind != "f" or background.ndim != 2 or background.shape[1] != dim:
        raise GalleryError(f"{path}: field 'background' must be a float (M, {dim}) array, got {background.dtype} "
                           f"{background.shape}")
    background = background.astype(np.float32)
    if not np.isfinite(background).all():
        raise GalleryError(f"{path}: field 'background' holds NaN or infinite values")
    off = np.abs(np.linalg.norm(background, axis=1) - 1) > UNIT_NORM_TOLERANCE
    if off.any():
        raise GalleryError(f"{path}: field 'background' row {int(np.argmax(off))} is not unit-norm")
    return np.ascontiguousarray(background)
