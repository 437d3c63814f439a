"""L2-normalised pooled backbone features from a zoo classifier, on torch or onnxruntime.

Both backends share the preprocessing (the card's eval transform), so their features agree to fp32 precision.

Example::

    fx = FeatureExtractor.from_pretrained("grocery_resnet10t")                 # torch
    fx = FeatureExtractor.from_pretrained("export/grocery_features.onnx")      # onnxruntime
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
from vision.models.classifier import PooledFeatures
from vision.zoo import ModelCard, load_model

BACKENDS = ("auto", "torch", "onnxruntime")


class TorchFeatures:
    """Pooled features from a torch zoo model."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.network = PooledFeatures(model).to(self.device).eval()
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


class FeatureExtractor:
    """Images in (paths, PIL, numpy, CHW tensors; any size or mode), ``(N, D)`` unit-norm float32 out."""

    def __init__(self, backend: TorchFeatures | OnnxFeatures, card: ModelCard):
        if card.task != "classification":
            raise ValueError(f"{card.name}: feature extraction supports classifiers only, not task {card.task!r}")
        self.backend = backend
        self.card = card
        self.transform = build_eval_transform(card.data_config)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, backend: str = "auto",
                        device: str | None = None) -> "FeatureExtractor":
        """``name_or_path``: zoo name, ``.safetensors`` or ``.ckpt`` (torch), or an ``.onnx`` file from
        ``export_onnx(..., output="features")`` (onnxruntime). ``"auto"``: onnxruntime for ``.onnx``, else torch."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
        is_onnx = Path(name_or_path).suffix.lower() == ".onnx"
        if backend == "auto":
            backend = "onnxruntime" if is_onnx else "torch"
        if backend == "torch":
            if is_onnx:
                raise ValueError(f"{name_or_path}: an .onnx file needs backend='onnxruntime' (or 'auto')")
            model = load_model(name_or_path)
            return cls(TorchFeatures(model, device), model.card)
        if not is_onnx:
            raise ValueError(f"backend 'onnxruntime' needs an .onnx file, got {name_or_path!r}; export one with "
                             f"tools/export.py --model {name_or_path} --format onnx --output features --out FILE.onnx")
        from vision.export.onnx import read_onnx_metadata

        card, output = read_onnx_metadata(name_or_path)
        if output != "features":
            raise ValueError(f"{name_or_path}: this ONNX file outputs {output!r}, not pooled features; export it "
                             "with output='features' (tools/export.py ... --output features)")
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
