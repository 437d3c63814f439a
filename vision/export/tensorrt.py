"""TensorRT engines from our ONNX exports: a plain plan file plus a JSON sidecar, never bytes prepended.

``export_tensorrt`` exports the model to ONNX (fp32 gate), builds a plan with the ``tensorrt`` Python API for an
explicit min/opt/max batch profile, writes ``<file>.plan`` atomically and ``<file>.plan.json`` (what the model is,
how to feed it, what was built and where), then runs the engine against torch and refuses it when it misses the
gate of its precision (``<file>.plan.parity.json``). :class:`TensorRTEngine` loads a plan only after its sidecar
agrees with the file (sha256) and with this process (TensorRT version, GPU compute capability); otherwise it
says to rebuild.

Precisions: ``fp32``; ``fp16``; ``int8`` calibrated on a folder of representative images. TensorRT 10 builds
fp16/int8 from builder flags (int8 with an ``IInt8EntropyCalibrator2`` whose cache file is keyed by the image
list, preprocessing, batch, TensorRT version and model, so a stale cache is never read). TensorRT 11 removed
those flags ("strong typing"): there fp16 builds from an fp16 ONNX (``keep_io_types``) and int8 from the QDQ
ONNX of :func:`~vision.export.quantize.export_onnx_int8` (explicit quantisation).

fp32 plans clear ``BuilderFlag.TF32`` (TensorRT enables it by default; its 10-bit mantissa misses the fp32 gate),
and the torch reference of every parity check runs with TF32 off (:func:`full_fp32`); the sidecar records
``tf32``. The engine enqueues on its own CUDA stream with its device current.

``tensorrt`` is an optional extra (``pip install .[tensorrt]``, needs an NVIDIA GPU and driver); nothing here
imports it until a build or a load. The sidecar checks (:func:`check_engine_sidecar`) are plain Python.

Example::

    export_tensorrt(vision.load_model("grocery_resnet10t"), "export/grocery.fp16.plan", precision="fp16",
                    batch=(1, 8, 32), output="features")
    engine = TensorRTEngine("export/grocery.fp16.plan")      # refuses a plan from another TensorRT / GPU
    feats = engine(batch_nchw_float32)                        # numpy, (N, 512)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from vision.export.calibration import MAX_CALIB_IMAGES, MIN_CALIB_IMAGES, CalibrationSet
from vision.export.onnx import (
    INPUT_NAME,
    ArtifactIntegrityError,
    ExportError,
    card_of,
    check_digest,
    check_parity,
    compare_outputs,
    default_output,
    export_onnx,
    parity_inputs,
    read_onnx_metadata,
    torch_outputs,
    verify_recorded_digest,
    write_parity_report,
)
from vision.fileio import atomic_path, atomic_write_text, sha256_file
from vision.tasks import output_meaning
from vision.zoo.card import ModelCard

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_BATCH = (1, 8, 32)
SIDECAR_FORMAT = 1
CALIB_BATCH = 8
WORKSPACE_FRACTION = 0.75  # of the free GPU memory at build time: "automatic" workspace
PARITY_IMAGES = 64


class EngineMismatchError(ExportError):
    """A plan that cannot run here (other TensorRT version or GPU architecture, changed or truncated file)."""


class EngineIntegrityError(EngineMismatchError, ArtifactIntegrityError):
    """A plan that is not the file its sidecar records (other sha256 or size), or has no readable sidecar."""


# --- sidecar: plain data, testable without TensorRT or a GPU
def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


# field -> type every sidecar must have (the ones loads and servers read); nested dicts are checked by key
_SIDECAR_FIELDS = {"format": int, "engine": str, "bytes": int, "sha256": str, "model": str, "output": dict,
                   "input": dict, "precision": str, "batch_profile": dict, "tensorrt": str, "gpu": dict,
                   "card": dict}


def read_sidecar(engine: str | Path) -> dict:
    """The JSON sidecar of a plan, its fields checked; :class:`EngineIntegrityError` when it is missing or
    malformed (it is the plan's integrity record)."""
    path = sidecar_path(engine)
    rebuild = _rebuild(Path(engine), {})
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EngineIntegrityError(f"{engine}: no sidecar {path.name} beside it, so nothing says which model, "
                                   "TensorRT version and GPU it was built for; rebuild it with vision export "
                                   "--model MODEL --format tensorrt") from None
    except json.JSONDecodeError as e:
        raise EngineIntegrityError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}; {rebuild}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EngineIntegrityError(f"{path}: not a readable sidecar ({e}); {rebuild}") from None
    if not isinstance(sidecar, dict):
        raise EngineIntegrityError(f"{path}: a sidecar is a JSON object, got {type(sidecar).__name__}; {rebuild}")
    if sidecar.get("format") != SIDECAR_FORMAT:
        raise EngineIntegrityError(f"{path}: sidecar format {sidecar.get('format')!r}, expected {SIDECAR_FORMAT}; "
                                   f"{rebuild}")
    rebuild = _rebuild(Path(engine), sidecar)

    def field(value, name: str, kind: type):
        if not isinstance(value, kind) or isinstance(value, bool):
            raise EngineIntegrityError(f"{path}: field {name!r} must be a {kind.__name__}, got {value!r:.80}; "
                                       f"{rebuild}")
        return value

    for name, kind in _SIDECAR_FIELDS.items():
        field(sidecar.get(name), name, kind)
    field(sidecar["gpu"].get("compute_capability"), "gpu.compute_capability", str)
    field(sidecar["gpu"].get("name"), "gpu.name", str)
    field(sidecar["output"].get("name"), "output.name", str)
    for key in ("min", "opt", "max"):
        field(sidecar["batch_profile"].get(key), f"batch_profile.{key}", int)
    for part in ("input", "output"):
        shape = field(sidecar[part].get("shape"), f"{part}.shape", list)
        for d in shape:
            field(d, f"{part}.shape[]", int)
    try:
        ModelCard.from_dict(sidecar["card"], where=f"{path} card").data_config  # noqa: B018
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise EngineIntegrityError(f"{path}: field 'card' is not a valid model card ({e}); {rebuild}") from None
    return sidecar


def check_engine_sidecar(engine: str | Path, sidecar: dict, *, tensorrt_version: str, compute_capability: str,
                         gpu_name: str = "") -> list[str]:
    """Raise :class:`EngineMismatchError` when the plan at ``engine`` cannot run on this TensorRT / GPU or is not
    the file the sidecar describes; returns warnings (same architecture, other GPU model: runs, tuned elsewhere).
    """
    engine = Path(engine)
    rebuild = _rebuild(engine, sidecar)
    check_plan_digest(engine, sidecar)
    built = sidecar["tensorrt"]
    if built != tensorrt_version:
        raise EngineMismatchError(f"{engine}: built with TensorRT {built}, this process has TensorRT "
                                  f"{tensorrt_version}; a plan only loads on the TensorRT version that built it: "
                                  f"{rebuild}")
    gpu = sidecar["gpu"]
    if gpu["compute_capability"] != compute_capability:
        raise EngineMismatchError(f"{engine}: built for GPU architecture sm_{gpu['compute_capability']} "
                                  f"({gpu['name']}), this GPU is sm_{compute_capability} ({gpu_name or 'unknown'}); "
                                  f"plans are specific to the GPU architecture: {rebuild}")
    if gpu_name and gpu["name"] != gpu_name:
        return [f"{engine}: built on {gpu['name']}, running on {gpu_name} (same architecture "
                f"sm_{compute_capability}): it runs, but was tuned for the other GPU"]
    return []


def check_plan_digest(engine: str | Path, sidecar: dict) -> None:
    """Raise :class:`EngineIntegrityError` unless the plan at ``engine`` is the file ``sidecar`` records (size and
    sha256); plain Python, no TensorRT or GPU needed."""
    engine = Path(engine)
    if not engine.is_file():
        raise EngineIntegrityError(f"{engine}: engine file missing")
    check_digest(engine, sidecar, where=f"its sidecar {sidecar_path(engine).name}", rebuild=_rebuild(engine, sidecar),
                 what="the plan", error=EngineIntegrityError)


def _rebuild(engine: Path, sidecar: dict) -> str:
    model = sidecar.get("model") if isinstance(sidecar.get("model"), str) else "MODEL"
    precision = sidecar.get("precision") if sidecar.get("precision") in PRECISIONS else "fp16"
    return f"rebuild it here: vision export --model {model} --format tensorrt --precision {precision} " \
           f"--out {engine}"


def build_sidecar(plan: Path, *, card: ModelCard, output: str, precision: str, batch: tuple[int, int, int],
                  input_shape: Sequence[int], output_shape: Sequence[int], tensorrt_version: str, gpu_name: str,
                  compute_capability: str, workspace_bytes: int | None = None, calibration: dict | None = None,
                  onnx_sha256: str = "", tf32: bool | None = None) -> dict:
    """Everything a server or a later load needs to know about ``plan`` (written beside it as ``.plan.json``)."""
    pre = card.data_config
    return {
        "format": SIDECAR_FORMAT,
        "engine": plan.name, "bytes": plan.stat().st_size, "sha256": sha256_file(plan),
        "model": card.name, "task": card.task, "architecture": card.architecture,
        "input": {"name": INPUT_NAME, "dtype": "float32", "layout": "NCHW",
                  "shape": [-1, *[int(d) for d in input_shape[1:]]]},
        "output": {"name": output, "dtype": "float32", "shape": [-1, *[int(d) for d in output_shape[1:]]],
                   "meaning": output_meaning(output)},
        "preprocessing": pre.to_dict(), "class_names": list(card.class_names),
        "precision": precision, "tf32": tf32, "batch_profile": {"min": batch[0], "opt": batch[1], "max": batch[2]},
        "tensorrt": tensorrt_version, "gpu": {"name": gpu_name, "compute_capability": compute_capability},
        "workspace_bytes": workspace_bytes, "calibration": calibration, "onnx_sha256": onnx_sha256,
        "model_sha256": card.sha256, "card": card.to_dict(),
        "built": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def parse_batch(spec: str | Sequence[int] | None) -> tuple[int, int, int]:
    """``"1,8,32"`` or ``(1, 8, 32)`` -> a checked ``(min, opt, max)`` profile."""
    if spec is None:
        return DEFAULT_BATCH
    values = [int(v) for v in (spec.split(",") if isinstance(spec, str) else spec)]
    if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
        raise ExportError(f"batch profile must be three integers min,opt,max with 1 <= min <= opt <= max, "
                          f"got {spec!r}")
    return tuple(values)  # type: ignore[return-value]


# --- what this process runs on
def _tensorrt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise ExportError(f"TensorRT is not installed ({e}); install the optional extra on a machine with an "
                          "NVIDIA GPU: pip install '.[tensorrt]'") from None
    if not torch.cuda.is_available():
        raise ExportError("TensorRT needs a CUDA GPU and this process sees none (torch.cuda.is_available() is False)")
    return trt


def _trt_major(trt) -> int:
    return int(trt.__version__.split(".")[0])


def current_gpu(device: int = 0) -> tuple[str, str]:
    """``(name, "major.minor")`` of a CUDA device."""
    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f"{major}.{minor}"


@contextlib.contextmanager
def full_fp32():
    """torch's CUDA convolutions and matmuls in IEEE fp32 inside the block (TF32 off), restored after: the parity
    reference must not carry TF32's own error into a 1e-4 gate. No effect on CPU."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved


def _logger(trt):
    """One TensorRT logger per build or load (no module-level state); callers keep it alive with the engine."""
    return trt.Logger(trt.Logger.WARNING)


# --- build
def export_tensorrt(model: nn.Module, path: str | Path, *, precision: str = "fp16",
                    batch: str | Sequence[int] | None = None, output: str | None = None, opset: int = 17,
                    calib_dir: str | Path | None = None, calib_cache_dir: str | Path | None = None,
                    min_images: int = MIN_CALIB_IMAGES, max_images: int = MAX_CALIB_IMAGES,
                    parity_dir: str | Path | None = None, sample_images: Sequence | None = None,
                    simplify: bool = True, workspace_bytes: int | None = None) -> Path:
    """Build ``path`` (a plain plan), ``<path>.json`` (sidecar) and ``<path>.parity.json``; returns ``path``.

    ``batch``: ``(min, opt, max)`` of the optimisation profile. ``int8`` needs ``calib_dir``; its TensorRT 10
    calibration cache goes to ``calib_cache_dir`` (default: beside the plan) under a name that is the cache key.
    ``workspace_bytes``: default is automatic (a fraction of the free GPU memory).
    """
    trt = _tensorrt()
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    card = card_of(model)
    output = output or default_output(card)
    profile = parse_batch(batch)
    path = Path(path)
    calib = None
    if precision == "int8":
        if calib_dir is None:
            raise ExportError("precision int8 needs calib_dir (--calib-dir): a folder of representative images")
        calib = CalibrationSet.from_folder(calib_dir, card.data_config, min_images=min_images, max_images=max_images)

    with tempfile.TemporaryDirectory(prefix="vision-trt-") as scratch, full_fp32():
        scratch = Path(scratch)
        if precision == "int8" and _trt_major(trt) >= 11:  # explicit quantisation: build from the QDQ graph
            from vision.export.quantize import export_onnx_int8

            onnx_path = export_onnx_int8(model, scratch / "model.int8.onnx", calib_dir=calib_dir, output=output,
                                         opset=opset, min_images=min_images, max_images=max_images,
                                         tuned_for="tensorrt", simplify=simplify)
        else:
            onnx_path = export_onnx(model, scratch / "model.onnx", opset=opset, output=output, simplify=simplify,
                                    sample_images=sample_images)
        calibration = None
        if calib is not None:
            calibration = {**calib.describe(), "batch": CALIB_BATCH}
        build_engine(onnx_path, path, precision=precision, batch=profile, calib=calib,
                     calib_cache_dir=Path(calib_cache_dir) if calib_cache_dir else path.parent,
                     workspace_bytes=workspace_bytes, calibration=calibration, card=card, output=output)

    # parity: real images for int8 (ranges were calibrated on them), random + samples otherwise
    if precision == "int8":
        source = calib if parity_dir is None else CalibrationSet.from_folder(parity_dir, card.data_config,
                                                                             min_images=1, max_images=PARITY_IMAGES)
        images = torch.from_numpy(source.array(PARITY_IMAGES))
    else:
        images = parity_inputs(card.data_config, sample_images)
    got = run_in_profile(TensorRTEngine(path), images)
    with full_fp32():
        reference = torch_outputs(model, output, images)
    report = compare_outputs(reference, got, output)
    report.update(output=output, engine=path.name, precision=precision)
    try:
        check_parity(report, precision, f"{card.name}: TensorRT {precision} engine")
    except ExportError:
        path.unlink(missing_ok=True)
        sidecar_path(path).unlink(missing_ok=True)
        raise
    write_parity_report(path, report)
    return path


def build_engine(onnx_path: str | Path, path: str | Path, *, precision: str = "fp16",
                 batch: tuple[int, int, int] = DEFAULT_BATCH, calib: CalibrationSet | None = None,
                 calib_cache_dir: Path | None = None, workspace_bytes: int | None = None,
                 calibration: dict | None = None, card: ModelCard | None = None, output: str | None = None,
                 tf32: bool | None = None) -> Path:
    """Build a plan from an ONNX file written by our exporters and write it with its sidecar (no parity check).

    ``tf32``: let fp32 layers use TF32; default off for ``fp32`` plans, TensorRT's default (on) otherwise."""
    trt = _tensorrt()
    onnx_path, path = Path(onnx_path), Path(path)
    verify_recorded_digest(onnx_path)  # the plan is only as trustworthy as the graph it is built from
    if card is None or output is None:
        card, output = read_onnx_metadata(onnx_path)
    major = _trt_major(trt)
    source = onnx_path
    if precision == "fp16" and major >= 11:
        source = fp16_onnx(onnx_path)
    logger = _logger(trt)
    builder = trt.Builder(logger)
    strongly_typed = major >= 11
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(source).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"{onnx_path}: TensorRT {trt.__version__} cannot parse this ONNX: {errors}")
    tensor = network.get_input(0)
    if tensor.name != INPUT_NAME:
        raise ExportError(f"{onnx_path}: first input is {tensor.name!r}, expected {INPUT_NAME!r}")
    chw = tuple(int(d) for d in tuple(tensor.shape)[1:])
    if any(d < 0 for d in chw):
        raise ExportError(f"{onnx_path}: only the batch axis may be dynamic, input shape is {tuple(tensor.shape)}")

    config = builder.create_builder_config()
    if workspace_bytes is None:
        free, _ = torch.cuda.mem_get_info()
        workspace_bytes = int(free * WORKSPACE_FRACTION)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (batch[0], *chw), (batch[1], *chw), (batch[2], *chw))
    config.add_optimization_profile(profile)

    calibrator = None
    tf32 = set_precision_flags(trt, config, precision, strongly_typed, tf32)
    if not strongly_typed and precision == "int8":
        if calib is None:
            raise ExportError("precision int8 needs calibration images")
        config.set_flag(trt.BuilderFlag.INT8)
        calib_profile = builder.create_optimization_profile()
        shape = (CALIB_BATCH, *chw)
        calib_profile.set_shape(INPUT_NAME, shape, shape, shape)
        config.set_calibration_profile(calib_profile)
        key = calib.key(batch=CALIB_BATCH, tensorrt=trt.__version__, model=card.sha256 or card.name,
                        onnx=sha256_file(onnx_path), algorithm="entropy2")
        cache = (calib_cache_dir or path.parent) / f"{card.name}.{key[:16]}.calib"
        calibrator = _entropy_calibrator(trt, calib, cache)
        config.int8_calibrator = calibrator
        calibration = {**(calibration or {}), "cache": cache.name, "key": key, "algorithm": "entropy2",
                       "cache_reused": cache.is_file()}

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"{onnx_path}: TensorRT {trt.__version__} failed to build a {precision} engine "
                          "(see the TensorRT log above)")
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(serialized))
    output_shape = _output_shape(trt, logger, path, batch[1], chw)
    gpu_name, cc = current_gpu()
    sidecar = build_sidecar(path, card=card, output=output, precision=precision, batch=batch,
                            input_shape=(-1, *chw), output_shape=output_shape, tensorrt_version=trt.__version__,
                            gpu_name=gpu_name, compute_capability=cc, workspace_bytes=workspace_bytes,
                            calibration=calibration, onnx_sha256=sha256_file(onnx_path), tf32=tf32)
    atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=1) + "\n")
    return path


def set_precision_flags(trt, config, precision: str, strongly_typed: bool, tf32: bool | None = None) -> bool:
    """Set the builder flags of ``precision`` on ``config``; returns whether TF32 stays allowed (for the sidecar).

    Strongly typed networks (TensorRT 11) take precision from the graph, not from FP16/INT8 flags; TF32 is a flag
    in both. fp32 plans clear it unless ``tf32`` asks otherwise: TF32 misses the fp32 gate (1e-4)."""
    if not strongly_typed and precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # int8 layers fall back to fp16, not fp32, where int8 loses
    if tf32 is None:
        tf32 = precision != "fp32"
    if not hasattr(trt.BuilderFlag, "TF32"):  # no such flag: no TF32 either
        return False
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    return tf32


# ops kept in fp32 in the fp16 graph, beyond onnxruntime's default block list (which has Upsample, not its
# successor Resize): YOLO's upsampling stays as exported
FP32_OPS = ("Resize",)


def fp16_onnx(onnx_path: str | Path, out: str | Path | None = None) -> Path:
    """An fp16 copy of the graph with fp32 inputs/outputs and :data:`FP32_OPS` kept in fp32, for TensorRT 11's
    strongly typed build; topologically sorted (the converter appends its input casts last) and checked by onnx."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    onnx_path = Path(onnx_path)
    out = Path(out) if out else onnx_path.with_name(onnx_path.stem + ".fp16.onnx")
    converted = OnnxModel(convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True,
                                                   op_block_list=[*DEFAULT_OP_BLOCK_LIST, *FP32_OPS]))
    converted.topological_sort()
    try:
        onnx.checker.check_model(converted.model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"{onnx_path}: its fp16 conversion is not a valid ONNX graph ({e}); build --precision "
                          "fp32, or report the graph") from None
    onnx.save(converted.model, str(out))
    return out


def _output_shape(trt, logger, path: Path, batch: int, chw: tuple[int, ...]) -> tuple[int, ...]:
    engine = trt.Runtime(logger).deserialize_cuda_engine(path.read_bytes())
    context = engine.create_execution_context()
    context.set_input_shape(INPUT_NAME, (batch, *chw))
    name = next(engine.get_tensor_name(i) for i in range(engine.num_io_tensors)
                if engine.get_tensor_mode(engine.get_tensor_name(i)) == trt.TensorIOMode.OUTPUT)
    return tuple(context.get_tensor_shape(name))


def _entropy_calibrator(trt, calib: CalibrationSet, cache: Path):
    """An ``IInt8EntropyCalibrator2`` over ``calib`` (full batches of :data:`CALIB_BATCH`) with a keyed cache file.

    The cache name carries the key, so a cache is read only for the same images, preprocessing, batch, TensorRT
    version and model; TensorRT then skips calibration."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.batches = calib.batches(CALIB_BATCH)
            self.device_batch = None  # kept alive while TensorRT reads it

        def get_batch_size(self) -> int:
            return CALIB_BATCH

        def get_batch(self, names):
            batch = next(self.batches, None)
            if batch is None or len(batch) < CALIB_BATCH:  # a short last batch would not match the profile
                return None
            self.device_batch = torch.from_numpy(batch).cuda().contiguous()
            return [int(self.device_batch.data_ptr())]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data) -> None:
            with atomic_path(cache) as tmp:
                tmp.write_bytes(bytes(data))

    return EntropyCalibrator()


# --- load and run
class TensorRTEngine:
    """A plan checked against its sidecar and this process, run on torch CUDA buffers.

    ``engine(batch)`` takes float32 NCHW (numpy or torch) with ``min <= N <= max`` of the profile and returns a
    numpy float32 array of the output.
    """

    def __init__(self, path: str | Path, device: int = 0):
        self.path = Path(path)
        self.sidecar = read_sidecar(self.path)
        trt = _tensorrt()
        gpu_name, cc = current_gpu(device)
        for message in check_engine_sidecar(self.path, self.sidecar, tensorrt_version=trt.__version__,
                                            compute_capability=cc, gpu_name=gpu_name):
            warnings.warn(message, stacklevel=2)
        self.device = torch.device("cuda", device)
        self._logger = _logger(trt)
        self._runtime = trt.Runtime(self._logger)
        with torch.cuda.device(self.device):
            self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise EngineMismatchError(f"{self.path}: TensorRT {trt.__version__} could not deserialize the plan "
                                          "(see the TensorRT log above); rebuild it with vision export --model MODEL "
                                          "--format tensorrt")
            self.context = self.engine.create_execution_context()
            # its own stream: enqueueing on the default stream (handle 0) makes TensorRT add device-wide syncs
            self.stream = torch.cuda.Stream(self.device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        for name in (INPUT_NAME, self.output_name):  # our exports keep fp32 I/O at every precision
            if self.engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise EngineMismatchError(f"{self.path}: tensor {name!r} is {self.engine.get_tensor_dtype(name)}, "
                                          "expected float32 I/O; rebuild it with vision export --model MODEL "
                                          "--format tensorrt")
        self.card = ModelCard.from_dict(self.sidecar["card"], where=f"{sidecar_path(self.path)} card")
        self.output = self.sidecar["output"]["name"]
        self.min_batch, _, self.max_batch = self.engine.get_tensor_profile_shape(INPUT_NAME, 0)
        self.min_batch, self.max_batch = int(self.min_batch[0]), int(self.max_batch[0])
        self.chw = tuple(self.sidecar["input"]["shape"][1:])
        self.dim = int(np.prod(self.sidecar["output"]["shape"][1:]))

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        check_engine_input(batch, self.chw, self.min_batch, self.max_batch, str(self.path))
        # the engine's device current and its stream for the copy in, the enqueue and the copy out, so buffers
        # are allocated and ordered on that stream whatever device or stream the caller has current; it first
        # waits for the caller's stream, which may still be writing a CUDA input
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            x = torch.as_tensor(batch).to(self.device).contiguous()
            self.context.set_input_shape(INPUT_NAME, tuple(x.shape))
            out = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), dtype=torch.float32,
                              device=self.device)
            self.context.set_tensor_address(INPUT_NAME, x.data_ptr())
            self.context.set_tensor_address(self.output_name, out.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"{self.path}: TensorRT execution failed (see the TensorRT log)")
            result = out.cpu().numpy()  # copy on self.stream, then waits for it
        self.stream.synchronize()
        return result


def run_in_profile(engine, batch: torch.Tensor) -> np.ndarray:
    """``engine`` (a :class:`TensorRTEngine`) on a batch of any size: slices of at most the profile maximum, a
    slice under the profile minimum padded with zero rows whose outputs are dropped."""
    batch = torch.as_tensor(batch)
    step, least = engine.max_batch, engine.min_batch
    outputs = []
    for i in range(0, len(batch), step):
        chunk = batch[i:i + step].float()
        rows = len(chunk)
        if rows < least:  # e.g. the last slice, or one image, on a plan built with --batch 8,16,32
            chunk = torch.cat([chunk, chunk.new_zeros((least - rows, *chunk.shape[1:]))])
        outputs.append(np.asarray(engine(chunk))[:rows])
    return np.concatenate(outputs)


def check_engine_input(batch, chw: tuple[int, ...], min_batch: int, max_batch: int, where: str) -> None:
    """The engine's input contract: float32, ``(N, *chw)``, N within the optimisation profile."""
    dtype = batch.dtype
    if dtype not in (np.float32, torch.float32):
        raise TypeError(f"{where}: input must be float32 (preprocessed NCHW), got {dtype}")
    if tuple(batch.shape[1:]) != tuple(chw):
        raise ValueError(f"{where}: input shape {tuple(batch.shape)} does not match the engine's (N, "
                         f"{', '.join(map(str, chw))})")
    if not min_batch <= batch.shape[0] <= max_batch:
        raise ValueError(f"{where}: batch of {batch.shape[0]} is outside the engine's profile "
                         f"[{min_batch}, {max_batch}]; split it, or rebuild with --batch min,opt,max covering it")
