"""L2-normalised feature vectors from a zoo model (pooled backbone features of a classifier, the embedding of an
embedding model) on torch, onnxruntime or TensorRT.

Every backend applies the same preprocessing (the card's eval transform), so their vectors agree to the precision
of the backend (fp32: cosine > 0.9999).

Example::

    fx = FeatureExtractor.from_pretrained("grocery_resnet10t")                 # auto: export/ artifacts, else torch
    fx = FeatureExtractor.from_pretrained("export/grocery_features.onnx")      # onnxruntime
    fx = FeatureExtractor.from_pretrained("export/grocery_features.plan")      # TensorRT (GPU)
    feats = fx(["a.jpg", "b.jpg"])                                             # (2, D) float32, unit rows
    fx.extract_folder("photos/", "photos.npy")                                 # + photos.npy.ids.txt
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from vision.data.io import ImageLoadError, list_images, load_image
from vision.data.transforms import build_eval_transform
from vision.inference import ImageInput, to_batch
from vision.export.onnx import OUTPUT_KINDS
from vision.zoo import ModelCard, load_model
from vision.zoo.registry import default_zoo_dir, read_manifest

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
ENGINE_SUFFIXES = (".plan", ".engine")
# task -> the export output kind that is its feature vector
FEATURE_OUTPUTS = {"classification": "features", "embedding": "embedding"}
DEFAULT_EXPORT_DIR = Path(__file__).resolve().parents[1] / "export"


class TorchFeatures:
    """Feature vectors from a torch zoo model."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.network = OUTPUT_KINDS[model.card.task][_feature_output(model.card)](model).to(self.device).eval()
        self.dim = self.network.num_features

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        return self.network(batch.to(self.device)).float().cpu().numpy()


class OnnxFeatures:
    """Pooled features from an ONNX file exported with ``output="features"``."""

    def __init__(self, path: str | Path, device: str | None = None):
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device and str(device).startswith("cuda"):
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.dim = self.session.get_outputs()[0].shape[1]

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch.numpy().astype(np.float32, copy=False)})[0]


class TensorRTFeatures:
    """Feature vectors from a TensorRT plan (``.plan`` + ``.plan.json`` sidecar, see ``vision.export.tensorrt``);
    batches larger than the engine's profile max are run in slices."""

    def __init__(self, path: str | Path, device: str | None = None):
        from vision.export.tensorrt import TensorRTEngine

        index = torch.device(device).index if device and str(device).startswith("cuda") else 0
        self.engine = TensorRTEngine(path, device=index or 0)
        self.dim = self.engine.dim

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        step = self.engine.max_batch
        return np.concatenate([self.engine(batch[i:i + step].float()) for i in range(0, len(batch), step)])


class FeatureExtractor:
    """Images in (paths, PIL, numpy, CHW tensors; any size or mode), ``(N, D)`` unit-norm float32 out."""

    def __init__(self, backend: TorchFeatures | OnnxFeatures | TensorRTFeatures, card: ModelCard):
        _feature_output(card)
        self.backend = backend
        self.card = card
        self.transform = build_eval_transform(card.data_config)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, backend: str = "auto", device: str | None = None,
                        export_dir: str | Path | None = None) -> "FeatureExtractor":
        """``name_or_path``: zoo name, ``.safetensors`` or ``.ckpt`` (torch), an ``.onnx`` file from
        ``export_onnx(..., output="features")`` (onnxruntime) or a TensorRT ``.plan`` (tensorrt).

        ``"auto"``: a file's suffix decides; for a zoo name, the fastest fresh export in ``export_dir`` (default
        ``export/``) that this machine can run: ``<name>.features.plan`` (TensorRT and a GPU present, sidecar
        matching them) > ``<name>.features.onnx`` > the torch weights. An export counts as fresh only when its
        card's sha256 equals the zoo's, so a retrained model is never served from an old export.
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
        suffix = Path(name_or_path).suffix.lower()
        if backend == "auto":
            name_or_path, backend = _auto_source(name_or_path, Path(export_dir or DEFAULT_EXPORT_DIR))
            suffix = Path(name_or_path).suffix.lower()
        if backend == "torch":
            if suffix == ".onnx" or suffix in ENGINE_SUFFIXES:
                raise ValueError(f"{name_or_path}: an exported file needs backend='onnxruntime' or 'tensorrt' "
                                 "(or 'auto')")
            model = load_model(name_or_path)
            return cls(TorchFeatures(model, device), model.card)
        if backend == "tensorrt":
            if suffix not in ENGINE_SUFFIXES:
                raise ValueError(f"backend 'tensorrt' needs a .plan file, got {name_or_path!r}; build one with "
                                 f"tools/export.py --model MODEL --format tensorrt --output features --out FILE.plan")
            features = TensorRTFeatures(name_or_path, device)
            _check_feature_output(name_or_path, features.engine.card, features.engine.output)
            return cls(features, features.engine.card)
        if suffix != ".onnx":
            raise ValueError(f"backend 'onnxruntime' needs an .onnx file, got {name_or_path!r}; export one with "
                             f"tools/export.py --model {name_or_path} --format onnx --output features --out FILE.onnx")
        from vision.export.onnx import read_onnx_metadata

        card, output = read_onnx_metadata(name_or_path)
        _check_feature_output(name_or_path, card, output)
        return cls(OnnxFeatures(name_or_path, device), card)

    @property
    def dim(self) -> int:
        return self.backend.dim

    def __call__(self, images: Sequence[ImageInput] | ImageInput, batch_size: int = 32) -> np.ndarray:
        if not isinstance(images, (list, tuple)):
            images = [images]
        chunks = [self._embed(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
        return np.concatenate(chunks) if chunks else np.empty((0, self.dim), np.float32)

    def _embed(self, images: Sequence[ImageInput]) -> np.ndarray:
        feats = self.backend(to_batch(images, self.transform)).astype(np.float32, copy=False)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    def extract_folder(self, folder_or_manifest: str | Path, out_path: str | Path, batch_size: int = 32) -> dict:
        """Stream features of every image under a folder (recursive) or in a manifest (``path, ...`` lines,
        relative to the manifest's folder) to ``.npy`` + ``<out>.ids.txt``, or to ``.parquet`` (needs pyarrow).

        Unreadable images are skipped and listed in one warning. Returns a summary dict.
        """
        out_path = Path(out_path)
        writer_cls = ParquetWriter if out_path.suffix.lower() == ".parquet" else NpyWriter
        paths = _image_sources(Path(folder_or_manifest))
        skipped: list[tuple[str, str]] = []
        with writer_cls(out_path) as writer:
            for batch_paths in tqdm(_batched(paths, batch_size), total=-(-len(paths) // batch_size),
                                    desc="features", unit="batch"):
                good, arrays = [], []
                for p in batch_paths:
                    try:
                        arrays.append(load_image(p))
                        good.append(str(p))
                    except ImageLoadError as e:
                        skipped.append((str(p), e.reason))
                if arrays:
                    writer.write(good, self._embed(arrays))
        if skipped:
            warnings.warn(f"skipped {len(skipped)} of {len(paths)} unreadable image(s): "
                          + "; ".join(f"{p} ({why})" for p, why in skipped), stacklevel=2)
        return {"model": self.card.name, "out": str(out_path), "ids": writer.ids_path, "count": writer.count,
                "dim": writer.dim, "skipped": skipped}


def _feature_output(card: ModelCard) -> str:
    if card.task not in FEATURE_OUTPUTS:
        raise ValueError(f"{card.name}: feature extraction supports tasks {sorted(FEATURE_OUTPUTS)}, "
                         f"not {card.task!r}")
    return FEATURE_OUTPUTS[card.task]


def _check_feature_output(path, card: ModelCard, output: str) -> None:
    wanted = _feature_output(card)
    if output != wanted:
        raise ValueError(f"{path}: this export outputs {output!r}, not {wanted!r}; export it with "
                         f"output='{wanted}' (tools/export.py ... --output {wanted})")


def _auto_source(name_or_path: str | Path, export_dir: Path) -> tuple[str | Path, str]:
    """(source, backend) for ``backend="auto"``."""
    suffix = Path(name_or_path).suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        return name_or_path, "tensorrt"
    if suffix == ".onnx":
        return name_or_path, "onnxruntime"
    card = read_manifest(default_zoo_dir()).get(str(name_or_path)) if not Path(name_or_path).exists() else None
    if card is None or card.task not in FEATURE_OUTPUTS:
        return name_or_path, "torch"
    stem = export_dir / f"{card.name}.{FEATURE_OUTPUTS[card.task]}"
    plan, onnx_file = stem.with_suffix(stem.suffix + ".plan"), stem.with_suffix(stem.suffix + ".onnx")
    if plan.is_file() and _plan_runs_here(plan, card):
        return plan, "tensorrt"
    if onnx_file.is_file() and _onnx_is_fresh(onnx_file, card):
        return onnx_file, "onnxruntime"
    return name_or_path, "torch"


def _plan_runs_here(plan: Path, card: ModelCard) -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import tensorrt as trt

        from vision.export.tensorrt import check_engine_sidecar, current_gpu, read_sidecar

        sidecar = read_sidecar(plan)
        name, cc = current_gpu()
        check_engine_sidecar(plan, sidecar, tensorrt_version=trt.__version__, compute_capability=cc, gpu_name=name)
    except Exception as e:  # ImportError, EngineMismatchError: fall back to the next backend, but say why
        warnings.warn(f"{plan}: not used ({e})", stacklevel=3)
        return False
    return sidecar.get("model_sha256") == card.sha256


def _onnx_is_fresh(path: Path, card: ModelCard) -> bool:
    from vision.export.onnx import read_onnx_metadata

    exported, _ = read_onnx_metadata(path)
    return exported.sha256 == card.sha256


def _image_sources(source: Path) -> list[Path]:
    if source.is_dir():
        return list_images(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such folder or manifest file")
    paths = []
    for line in source.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            path = Path(line.split(",")[0].strip())
            paths.append(path if path.is_absolute() else source.parent / path)
    return paths


def _batched(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class NpyWriter:
    """Rows appended to a scratch file, then written as one ``.npy`` (atomically) with an ids sidecar."""

    def __init__(self, path: Path):
        self.path = path
        self.ids_path = str(path.with_name(path.name + ".ids.txt"))
        self.count, self.dim, self.ids = 0, None, []

    def __enter__(self) -> "NpyWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = tempfile.TemporaryFile(dir=self.path.parent)
        return self

    def write(self, ids: list[str], feats: np.ndarray) -> None:
        self.dim = feats.shape[1]
        self.rows.write(np.ascontiguousarray(feats, dtype="<f4").tobytes())
        self.ids += ids
        self.count += len(ids)

    def __exit__(self, exc_type, *_) -> None:
        from vision.fileio import atomic_path, atomic_write_text

        try:
            if exc_type is None:
                self.rows.seek(0)
                with atomic_path(self.path) as tmp, open(tmp, "wb") as f:
                    header = {"descr": "<f4", "fortran_order": False, "shape": (self.count, self.dim or 0)}
                    np.lib.format.write_array_header_1_0(f, header)
                    shutil.copyfileobj(self.rows, f)
                atomic_write_text(self.ids_path, "".join(f"{i}\n" for i in self.ids))
        finally:
            self.rows.close()


class ParquetWriter:
    """Rows streamed to Parquet: a ``path`` column and a ``features`` list<float32> column."""

    ids_path = None

    def __init__(self, path: Path):
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
        if self.writer is None:
            self.writer = pq.ParquetWriter(str(self.tmp), table.schema)
        self.writer.write_table(table)
        self.count += len(ids)

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.writer.close()
        self._atomic.__exit__(*exc)
