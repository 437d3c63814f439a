"""Deployment exports of zoo models: one exporter with a table of formats and the options each one takes.

Every format writes metadata into its artifact (the model card) and a parity report beside it, and refuses an
artifact that misses the parity gate of its precision. Each artifact's sha256 is recorded as finally written (parity
report, plan sidecar, a Triton model folder's ``vision.sha256``); :func:`verify_artifact` checks any of them.

Example::

    from vision.export import export
    export(vision.load_model("grocery_resnet10t"), "onnx-int8", "export/grocery.int8.onnx",
           calib_dir="../shared/datasets/grocery_store/train")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from vision.export.onnx import (  # noqa: F401
    ArtifactIntegrityError,
    ExportError,
    check_not_a_folder,
    export_onnx,
    parity_report,
    read_onnx_metadata,
    verify_recorded_digest,
)


def _export_onnx_int8(model, path, **options):
    from vision.export.quantize import export_onnx_int8

    if options.get("calib_dir") is None:
        raise ExportError("format 'onnx-int8' needs calib_dir: a folder of 32+ representative images for "
                          "calibration (vision export --format onnx-int8 --calib-dir FOLDER)")

    return export_onnx_int8(model, path, **options)


def _export_tensorrt(model, path, **options):
    from vision.export.tensorrt import export_tensorrt

    return export_tensorrt(model, path, **options)


def _export_triton(model, path, **options):
    from vision.serving.repository import export_triton

    return export_triton(model, path, **options)


def _export_ultralytics(model, path, **options):
    from vision.export.ultralytics_pt import export_ultralytics

    return export_ultralytics(model, path, **options)


@dataclass(frozen=True)
class ExportFormat:
    """An export function ``(model, path, **options) -> Path``, the options it takes, its default file name and
    the runtime that serves it: a :func:`vision.predictor` backend (``onnxruntime``, ``tensorrt``) or, for
    artifacts served outside the library, ``tritonserver`` (a model repository) or ``ultralytics``
    (``ultralytics.YOLO``, parity-checked at export)."""

    export: Callable[..., Path]
    options: frozenset[str]
    suffix: str
    runtime: str
    needs: str = ""


_COMMON = frozenset({"output", "opset", "simplify", "sample_images"})
_CALIBRATION = frozenset({"calib_dir", "parity_dir", "min_images", "max_images"})
FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat(export_onnx, _COMMON | {"dynamic_batch"}, ".onnx", "onnxruntime"),
    "onnx-int8": ExportFormat(_export_onnx_int8, _COMMON | _CALIBRATION | {
        "quant_format", "calibrate_method", "per_channel", "tuned_for", "reduce_range", "keep_fp32", "fuse_silu"},
        ".int8.onnx", "onnxruntime"),
    "tensorrt": ExportFormat(_export_tensorrt, _COMMON | _CALIBRATION | {
        "precision", "batch", "calib_cache_dir", "workspace_bytes"}, ".plan", "tensorrt",
        needs="the [tensorrt] extra and an NVIDIA GPU"),
    "triton": ExportFormat(_export_triton, _COMMON | _CALIBRATION | {
        "serving", "precision", "batch", "calib_cache_dir", "name", "max_batch_size", "instance_kind",
        "instance_count"}, "", "tritonserver", needs="serving=tensorrt: the [tensorrt] extra and an NVIDIA GPU"),
    "ultralytics": ExportFormat(_export_ultralytics, frozenset({"sample_images"}), ".pt", "ultralytics",
                                needs="a detection model; loading the file needs ultralytics (AGPL-3.0)"),
}
# runtimes that serve an artifact outside vision.predictor (each format still records and checks its digest)
EXTERNAL_RUNTIMES = {"tritonserver": "vision.export.triton:verify_triton_repository",
                     "ultralytics": "vision.export.onnx:verify_recorded_digest"}


def export(model: nn.Module, format: str, path: str | Path, **options) -> Path:
    """Export ``model`` (a zoo model with ``.card``) as ``format`` to ``path`` (a repository folder for triton).

    Options a format does not take are an error naming them and the ones it does take.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {sorted(FORMATS)}")
    spec = FORMATS[format]
    unknown = sorted(set(options) - spec.options)
    if unknown:
        raise ExportError(f"format {format!r} does not take {unknown}; it takes {sorted(spec.options)}")
    path = Path(path)
    if format == "triton" and path.exists() and not path.is_dir():
        raise ExportError(f"{path}: exists and is not a folder; a Triton repository is a folder")
    if format != "triton":
        check_not_a_folder(path)
    return spec.export(model, path, **options)


def verify_artifact(path: str | Path) -> list[Path]:
    """Check an export against the sha256 recorded when it was written: a Triton repository or model folder
    (``vision.sha256``), a TensorRT plan (its sidecar) or a file with a parity report (ONNX, ultralytics ``.pt``).
    Returns the files checked; raises :class:`ArtifactIntegrityError` naming the file and the rebuild command.
    """
    path = Path(path)
    if path.is_dir():
        from vision.export.triton import verify_triton_repository

        return verify_triton_repository(path)
    if path.suffix in (".plan", ".engine"):
        from vision.export.tensorrt import check_plan_digest, read_sidecar

        check_plan_digest(path, read_sidecar(path))
        return [path]
    verify_recorded_digest(path)
    return [path]


__all__ = ["ArtifactIntegrityError", "ExportError", "ExportFormat", "FORMATS",
           "export", "export_onnx", "parity_report", "read_onnx_metadata", "verify_artifact", "verify_recorded_digest"]
