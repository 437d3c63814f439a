"""L2-normalised feature vectors from a zoo model (pooled backbone features of a classifier, the embedding of an
embedding model) on torch, onnxruntime or TensorRT.

Every backend applies the same preprocessing (the card's eval transform), so their vectors agree to the precision
of the backend (fp32: cosine > 0.9999).

Example::

    fx = FeatureExtractor.from_pretrained("grocery_resnet10t")         # auto: $VISION_HOME/exports, else torch
    fx = FeatureExtractor.from_pretrained("grocery_features.onnx")     # an export file: onnxruntime
    fx = FeatureExtractor.from_pretrained("grocery_features.plan")     # TensorRT (GPU)
    feats = fx(["a.jpg", "b.jpg"])                                             # (2, D) float32, unit rows
    fx.extract_folder("photos/", "photos.npy")                                 # + photos.npy.ids.txt
    ids, feats = load_features("photos.npy")                                   # the pair, checked

Every exported file is checked against the digest its export recorded (ONNX: ``<file>.parity.json``, TensorRT:
the ``.plan.json`` sidecar) before any parser sees it; a file that differs or has no record is refused with an
:class:`~vision.export.onnx.ArtifactIntegrityError`, also by ``backend="auto"``: an export that is present but
fails its check raises (it may have been tampered with) instead of quietly falling back, while an export that is
absent, stale (another model version) or built for another TensorRT/GPU falls back to the next backend.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from vision.data.inputs import ImageInput, to_rgb_array
from vision.data.io import list_images
from vision.export.onnx import ExportError
from vision.predictors import (
    BACKENDS,
    SUFFIX_BACKENDS,
    OnnxRuntime,
    Predictor,
    TorchRuntime,
    one_ahead,
    predictor,
    read_batches,
)
from vision.tasks import TASKS
from vision.zoo import ModelCard, find_card, load_model

# task -> the export output kind that is its feature vector (from the task table)


class ExtractError(ValueError):
    """Features that cannot be extracted as asked (a model or export of the wrong kind, nothing to extract) or a
    feature file pair (``.npy`` + ``.ids.txt``) that does not belong together."""


class FeatureExtractor:
    """Images in (paths, PIL, numpy, CHW tensors; any size or mode), ``(N, D)`` unit-norm float32 out.

    A :func:`vision.predictor` of the model's feature output (a classifier's pooled ``features``, an embedder's
    ``embedding``), so every runtime (torch, ONNX Runtime, TensorRT) and the preprocessing are the predictor's.
    """

    def __init__(self, predictor: Predictor):
        _check_feature_output(predictor.card.name, predictor.card, predictor.output)
        self.predictor = predictor
        self.card = predictor.card
        self.dim = _output_dim(predictor)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, backend: str = "auto", device: str | None = None,
                        export_dir: str | Path | None = None, threads: int | None = None) -> "FeatureExtractor":
        """``name_or_path``: zoo name, ``.safetensors`` or ``.ckpt`` (torch), an ``.onnx`` file from
        ``export_onnx(..., output="features")`` (onnxruntime) or a TensorRT ``.plan`` (tensorrt).

        ``"auto"``: a file's suffix decides; for a zoo name, the fastest fresh export in ``export_dir`` (default
        ``$VISION_HOME/exports``, :func:`vision.predictors.default_export_dir`) that this machine can run:
        ``<name>.features.plan`` (TensorRT and a GPU present, sidecar matching them) > ``<name>.features.onnx`` >
        the torch weights; the one picked is named once on stderr. An export counts as fresh only when its
        card's sha256 equals the zoo's, so a retrained model is never served from an old export. An export that is
        there but does not match its recorded digest raises :class:`~vision.export.onnx.ArtifactIntegrityError`
        rather than falling back: a tampered file is something to see, not to route around.

        ``threads``: ONNX Runtime's intra-op threads when it runs the features (:func:`vision.predictors.predictor`).
        """
        if backend not in BACKENDS:
            raise ExtractError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
        suffix = Path(name_or_path).suffix.lower()
        if backend == "torch" and suffix in SUFFIX_BACKENDS:
            raise ExtractError(f"{name_or_path}: an exported file needs backend='onnxruntime' or 'tensorrt' "
                               "(or 'auto')")
        if backend not in ("auto", "torch") and SUFFIX_BACKENDS.get(suffix) != backend:
            kind = "a .plan file" if backend == "tensorrt" else "an .onnx file"
            fmt = "tensorrt" if backend == "tensorrt" else "onnx"
            raise ExtractError(f"backend {backend!r} needs {kind}, got {name_or_path!r}; export one with "
                               f"vision export --model MODEL --format {fmt} --output-kind features --out FILE")
        output = None
        if suffix not in SUFFIX_BACKENDS:  # a zoo name or a weights file: ask for the task's feature output
            found = find_card(str(name_or_path)) if not Path(name_or_path).exists() else None
            if found is not None:
                output = _feature_output(found[0])
            elif Path(name_or_path).exists():  # a weights file names its own task in its card
                model = load_model(name_or_path)
                return cls(Predictor(TorchRuntime(model, _feature_output(model.card), device)))
        return cls(predictor(name_or_path, backend=backend, device=device, output=output,
                             export_dir=export_dir, threads=threads))

    @property
    def backend(self):
        """The runtime computing the features (``.backend`` on it names it: torch, onnxruntime, tensorrt)."""
        return self.predictor.runtime

    def __call__(self, images: Sequence[ImageInput] | ImageInput, batch_size: int = 32) -> np.ndarray:
        if not isinstance(images, (list, tuple)):
            images = [images]
        chunks = [self._embed([to_rgb_array(im) for im in images[i:i + batch_size]])
                  for i in range(0, len(images), batch_size)]
        return np.concatenate(chunks) if chunks else np.empty((0, self.dim), np.float32)

    def _embed(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        return self.embed_prepared([self.prepare(a) for a in arrays])

    def prepare(self, image: ImageInput) -> np.ndarray:
        """One image as the network takes it (the card's eval transform, ``CxHxW`` float32), for callers that
        preprocess on their own threads and run batches of these with :meth:`embed_prepared`. Same vectors as
        calling the extractor on the images."""
        return self.predictor.head.transform(image=to_rgb_array(image))["image"].numpy()

    def embed_prepared(self, prepared: Sequence[np.ndarray]) -> np.ndarray:
        """Unit vectors of images already :meth:`prepare`-d, as one batch (stacked by numpy: torch's parallel copy
        waits on its thread team, which on shared cores cost more than the network, see benchmarks/results/dedup.md)."""
        import torch

        batch = torch.from_numpy(np.stack(prepared))
        results = self.predictor.head.postprocess(self.predictor.runtime(batch), None, [""] * len(prepared))
        return np.stack([r.vector for r in results])

    def extract_folder(self, folder_or_manifest: str | Path | Sequence[str | Path], out_path: str | Path,
                       batch_size: int = 32, progress: bool = True) -> dict:
        """Stream features of every image under a folder (recursive) or in a manifest (``path, ...`` lines,
        relative to the manifest's folder), or of a list of image paths, to ``.npy`` + ``<out>.ids.txt``, or to
        ``.parquet`` (needs pyarrow). ``progress``: a tqdm bar on stderr when it is a terminal.

        Unreadable images are skipped and listed in one warning. Returns a summary dict.
        """
        out_path = Path(out_path)
        writer_cls = ParquetWriter if out_path.suffix.lower() == ".parquet" else NpyWriter
        if isinstance(folder_or_manifest, (str, Path)):
            paths = image_sources(Path(folder_or_manifest))
        else:
            paths, folder_or_manifest = [Path(p) for p in folder_or_manifest], "the given images"
        if not paths:
            raise ExtractError(f"{folder_or_manifest}: no images to extract features from (nothing with an image "
                               f"suffix under it); {out_path} was not written")
        skipped: list[tuple[str, str]] = []
        from vision.names import text_line

        listable = []
        for p in paths:  # the ids file is one path per line: a name with a line break is skipped, not split
            try:
                listable.append(Path(text_line(str(p), "image path")))
            except ValueError:
                skipped.append((str(p), "file name contains a line break: it cannot be listed one per line; "
                                         "rename it"))
        identity = {"model": self.card.name, "model_sha256": self.card.sha256, "output": _feature_output(self.card)}
        p = self.predictor
        # a batch's images decode on a thread pool, within the predictor's pixel budget; the next batch is read
        # while this one runs where the network leaves a core free (Predictor.stream's read_ahead)
        batches = read_batches(listable, batch_size, "skip", skipped, max_batch_pixels=p.max_batch_pixels)
        with writer_cls(out_path, identity) as writer, tqdm(total=len(listable), desc="features", unit="img",
                                                            disable=None if progress else True) as bar:
            done = len(skipped)
            for good, arrays in one_ahead(batches, p.reads_ahead()):
                writer.write(good, self._embed(arrays))
                bar.update(len(good) + len(skipped) - done)
                done = len(skipped)
            if writer.count == 0:  # raised inside the writer: nothing is committed
                raise ExtractError(f"{folder_or_manifest}: none of its {len(paths)} image(s) could be read "
                                   f"({'; '.join(f'{p} ({why})' for p, why in skipped[:3])}); {out_path} was not "
                                   "written")
        if skipped:
            warnings.warn(f"skipped {len(skipped)} of {len(paths)} unreadable image(s): "
                          + "; ".join(f"{p!r} ({why})" for p, why in skipped), stacklevel=2)
        return {"model": self.card.name, "out": str(out_path), "ids": writer.ids_path, "count": writer.count,
                "dim": writer.dim, "skipped": skipped}


def _feature_output(card: ModelCard) -> str:
    """The output kind that is ``card``'s feature vector, read from the task table at each use."""
    supported = {name: task.feature_output for name, task in TASKS.items() if task.feature_output}
    if card.task not in supported:
        raise ExtractError(f"{card.name}: feature extraction supports tasks {sorted(supported)}, "
                           f"not {card.task!r}")
    return supported[card.task]


def _output_dim(p: Predictor) -> int:
    """The length of the feature vector the predictor's runtime gives."""
    runtime = p.runtime
    if isinstance(runtime, TorchRuntime):
        return int(runtime.network.num_features)
    if isinstance(runtime, OnnxRuntime):
        shape = runtime.output_shape
        if len(shape) != 2 or not isinstance(shape[1], int) or shape[1] < 1:
            raise ExportError(f"{runtime.path}: expected an (N, D) feature output, got shape {shape}")
        return shape[1]
    return int(runtime.engine.dim)


def _check_feature_output(path, card: ModelCard, output: str) -> None:
    wanted = _feature_output(card)
    if output != wanted:
        raise ExtractError(f"{path}: this export outputs {output!r}, not {wanted!r}; export it with "
                           f"output='{wanted}' (vision export --model MODEL --output-kind {wanted})")


def image_sources(source: Path, allow_outside: bool = False) -> list[Path]:
    """The images of a folder (recursive) or of a manifest (``path, ...`` lines, relative to its folder; entries
    outside it only with ``allow_outside``, see :func:`vision.data.datasets.manifest_images`)."""
    if source.is_dir():
        return list_images(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such folder or manifest file")
    from vision.data.datasets import manifest_images

    return manifest_images(source, allow_outside=allow_outside)


def ids_path_of(npy: str | Path) -> Path:
    """The ids file that belongs to a features ``.npy``: ``<file>.npy.ids.txt``, one image path per row."""
    npy = Path(npy)
    return npy.with_name(npy.name + ".ids.txt")


def load_features(path: str | Path) -> tuple[list[str], np.ndarray]:
    """``(ids, features)`` of an ``.npy`` written by :meth:`FeatureExtractor.extract_folder`, checked to be one
    pair: :class:`ExtractError` when the ids file is missing or its count differs from the rows."""
    path = Path(path)
    ids_path = ids_path_of(path)
    if not path.is_file():
        stopped = f" (its ids file {ids_path.name} is there: an extraction stopped while writing; run it again)"
        raise ExtractError(f"{path}: no such features file{stopped if ids_path.is_file() else ''}")
    if not ids_path.is_file():
        raise ExtractError(f"{path}: its ids file {ids_path.name} is missing; run the extraction again")
    from vision.arrays import load_npy

    features = load_npy(path, ExtractError)  # the header checked against the bytes present before reading
    try:
        ids = ids_path.read_text(encoding="utf-8").split("\n")[:-1]  # not splitlines: \r etc. may be in a path
    except (OSError, ValueError) as e:  # ValueError: not UTF-8
        raise ExtractError(f"{ids_path}: not a readable ids file ({e})") from None
    if features.ndim != 2 or len(features) != len(ids):
        raise ExtractError(f"{path}: {features.shape} features for {len(ids)} ids in {ids_path.name}: the pair does "
                           "not belong together (written by different runs); run the extraction again")
    if features.dtype.kind not in "fiu":
        raise ExtractError(f"{path}: features of dtype {features.dtype}, expected float32 vectors")
    check_finite(features, ids, path)
    return ids, features


def check_finite(vectors: np.ndarray, ids: Sequence[str], where) -> None:
    """Refuse vectors holding inf or NaN (a similarity with them means nothing), naming the file and the row."""
    if vectors.dtype.kind != "f" or not len(vectors):
        return
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        r = int(bad[0])
        raise ExtractError(f"{where}: row {r} ({ids[r]!r}) holds inf or NaN"
                           f"{f', and {len(bad) - 1} more row(s)' if len(bad) > 1 else ''}: a broken extraction; "
                           "extract it again")


def model_sidecar(features: str | Path) -> Path:
    """``<features>.model.json``: the model that wrote a features ``.npy`` (``{"name", "sha256"}``)."""
    features = Path(features)
    return features.with_name(features.name + ".model.json")


def write_model_sidecar(features: str | Path, name: str, sha256: str, record: dict | None = None) -> Path:
    """``<features>.model.json``: the model, and the sha256 and shape of the ``.npy`` and ids file it describes
    (``record``, else taken from the files present), so a sidecar left from another run is refused by readers."""
    from vision.fileio import atomic_write_text

    path = model_sidecar(features)
    if record is None:
        record = features_record(Path(features), ids_path_of(features)) if Path(features).is_file() else {}
    atomic_write_text(path, json.dumps({"name": name, "sha256": sha256, **record}) + "\n")
    return path


def features_record(npy: Path, ids: Path) -> dict:
    """What a sidecar records of the pair it belongs to: sha256 and shape of the ``.npy``, sha256 of the ids."""
    from vision.arrays import check_npy
    from vision.fileio import sha256_file

    shape, _ = check_npy(npy, ExtractError)
    return {"features_sha256": sha256_file(npy), "shape": list(shape),
            "ids_sha256": sha256_file(ids) if ids.is_file() else None}


def _check_sidecar(sidecar: Path, meta: dict, npy: Path, vectors: np.ndarray) -> None:
    """A sidecar that records a digest must describe this very ``.npy`` and ids file (older sidecars record none)."""
    from vision.fileio import sha256_file

    if "features_sha256" not in meta:
        return
    recorded, shape, ids_sha = meta["features_sha256"], meta.get("shape"), meta.get("ids_sha256")
    found = sha256_file(npy)
    ids_found = sha256_file(ids_path_of(npy))
    if recorded != found or shape != list(vectors.shape) or (ids_sha is not None and ids_sha != ids_found):
        raise ExtractError(f"{sidecar}: describes a features file of shape {shape} with sha256 {str(recorded)[:12]}, "
                           f"but {npy} has shape {list(vectors.shape)} and sha256 {found[:12]}"
                           f"{'' if ids_sha in (None, ids_found) else ' (and its ids file differs too)'}: the "
                           "model record and the features were not written together (an extraction stopped "
                           "between them); run the extraction again")


def read_features(source: str | Path) -> tuple[list[str], np.ndarray, dict[str, str] | None]:
    """``(image paths, vectors (N, D) float32, model)`` of a features file of ``vision extract``: an ``.npy``
    (+ ``.ids.txt``, model from its ``.model.json`` sidecar) or a ``.parquet`` table (``path`` and ``features`` or
    ``vector`` columns, model from the ``vision.*`` schema metadata). ``model`` is ``{"name", "sha256"}``, or None
    where the file does not say. (A folder of ``vision.scale`` shards: :func:`vision.scale.shards.read_shards`.)"""
    source = Path(source)
    if source.suffix.lower() == ".parquet":
        return _read_parquet_features(source)
    ids, vectors = load_features(source)
    sidecar = model_sidecar(source)
    model = None
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            model = {"name": str(meta["name"]), "sha256": str(meta.get("sha256", ""))}
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise ExtractError(f"{sidecar}: not a model record ({e}); delete it and name the model instead") from None
        _check_sidecar(sidecar, meta, source, vectors)
    return ids, vectors.astype(np.float32, copy=False), model


def _read_parquet_features(path: Path) -> tuple[list[str], np.ndarray, dict[str, str] | None]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ExtractError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    if not path.is_file():
        raise ExtractError(f"{path}: no such features file")
    try:
        schema = pq.read_schema(path)
        vector_column = next((c for c in ("features", "vector") if c in schema.names), None)
        if "path" not in schema.names or vector_column is None:
            raise ExtractError(f"{path}: a features table needs a 'path' column and a 'features' (or 'vector') "
                               f"column; it has {schema.names}")
        table = pq.read_table(path, columns=["path", vector_column])
    except ExtractError:
        raise
    except (OSError, ValueError) as e:  # pyarrow's errors derive from these
        raise ExtractError(f"{path}: not a readable Parquet features table ({e})") from None
    column = table.column(vector_column).combine_chunks()
    if len(table) and (column.null_count or len(column.values) % len(table)):
        raise ExtractError(f"{path}: column {vector_column!r} holds missing or ragged vectors")
    dim = len(column.values) // len(table) if len(table) else 0
    vectors = column.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(table), dim)
    meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items() if k.startswith(b"vision.")}
    model = ({"name": meta["vision.model"], "sha256": meta.get("vision.model_sha256", "")}
             if "vision.model" in meta else None)
    ids = table.column("path").to_pylist()
    check_finite(vectors, ids, path)
    return ids, vectors, model


class NpyWriter:
    """Rows appended to a scratch file, then committed as one ``.npy`` plus its ids file: both or neither.

    With ``identity`` (the model that made the rows) a ``.model.json`` sidecar names the model and records the
    sha256 and shape of the new ``.npy`` and ids file; it is committed first, then the ids file (the old ``.npy``
    removed before), then the ``.npy``. A crash at any point leaves the old triple, a sidecar that no longer matches
    the ``.npy`` beside it (readers refuse it, naming both), or no ``.npy`` at all: never a ``.npy`` labelled with
    another model. Without ``identity`` an old sidecar is removed before the commit, for the same reason.
    """

    def __init__(self, path: Path, identity: dict[str, str] | None = None):
        self.path = Path(path)
        self.identity = identity
        self.ids_path = str(ids_path_of(path))
        self.count, self.dim, self.ids = 0, None, []

    def __enter__(self) -> "NpyWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = tempfile.TemporaryFile(dir=self.path.parent)
        return self

    def write(self, ids: list[str], feats: np.ndarray) -> None:
        from vision.names import text_line

        for i in ids:  # the ids file holds one per line: a line break would shift every later row
            text_line(str(i), f"{self.ids_path}: image path", ExtractError)
        if len(ids) != len(feats):
            raise ExtractError(f"{self.path}: {len(feats)} feature rows for {len(ids)} ids")
        self.dim = feats.shape[1]
        self.rows.write(np.ascontiguousarray(feats, dtype="<f4").tobytes())
        self.ids += ids
        self.count += len(ids)

    def __exit__(self, exc_type, *_) -> None:
        from vision.fileio import atomic_path, sha256_file

        try:
            if exc_type is None:
                self.rows.seek(0)
                ids_text = "".join(f"{i}\n" for i in self.ids)
                with atomic_path(self.path) as npy_tmp:
                    with open(npy_tmp, "wb") as f:
                        header = {"descr": "<f4", "fortran_order": False, "shape": (self.count, self.dim or 0)}
                        np.lib.format.write_array_header_1_0(f, header)
                        shutil.copyfileobj(self.rows, f)
                    if self.identity is not None:  # first: a crash after it leaves a sidecar that matches nothing
                        import hashlib

                        record = {"features_sha256": sha256_file(npy_tmp), "shape": [self.count, self.dim or 0],
                                  "ids_sha256": hashlib.sha256(ids_text.encode("utf-8")).hexdigest()}
                        write_model_sidecar(self.path, self.identity["model"], self.identity["model_sha256"], record)
                    else:
                        model_sidecar(self.path).unlink(missing_ok=True)  # it described the old file
                    with atomic_path(self.ids_path) as ids_tmp:
                        ids_tmp.write_text(ids_text, encoding="utf-8")
                        self.path.unlink(missing_ok=True)  # no old .npy may sit beside the new ids
                    # the ids are committed here, the .npy when the outer block ends
        finally:
            self.rows.close()


class ParquetWriter:
    """Rows streamed to Parquet: a ``path`` column and a ``features`` list<float32> column; ``identity`` (the model
    that made the rows) goes into the schema metadata as ``vision.model``, ``vision.model_sha256``,
    ``vision.output``, the keys of ``vision.scale`` shards."""

    ids_path = None

    def __init__(self, path: Path, identity: dict[str, str] | None = None):
        self.identity = identity
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ImportError(f"{path}: writing Parquet needs pyarrow (pip install pyarrow); "
                              "or write .npy (an .ids.txt sidecar holds the image paths)") from None
        self.path = path
        self.count, self.dim, self.writer = 0, None, None

    def __enter__(self) -> "ParquetWriter":
        from vision.fileio import atomic_path

        self._atomic = atomic_path(self.path)
        self.tmp = self._atomic.__enter__()
        return self

    def write(self, ids: list[str], feats: np.ndarray) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.dim = feats.shape[1]
        column = pa.FixedSizeListArray.from_arrays(pa.array(feats.reshape(-1), pa.float32()), self.dim)
        table = pa.table({"path": pa.array(ids, pa.string()), "features": column})
        if self.identity is not None:
            table = table.replace_schema_metadata({f"vision.{k}": v for k, v in self.identity.items()})
        if self.writer is None:
            self.writer = pq.ParquetWriter(str(self.tmp), table.schema)
        self.writer.write_table(table)
        self.count += len(ids)

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.writer.close()
        self._atomic.__exit__(*exc)
