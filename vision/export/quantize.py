"""ONNX Runtime INT8 static quantisation of a zoo model, calibrated on representative images, with a parity gate.

The fp32 graph comes from :func:`export_onnx` (its own fp32 gate runs first), is pre-processed for quantisation
(shape inference, graph optimisation), then quantised with activation ranges measured on the calibration images
through the card's eval transform. The result keeps the card in its metadata (``vision.precision = int8``, the
calibration record under ``vision.calibration``) and must pass the INT8 gate of
:data:`~vision.export.onnx.PARITY_GATES` on real images, else it is refused with the numbers.

The settings are chosen for the CPU that will run the model (``tuned_for``, by default the one exporting, see
:data:`INT8_SETTINGS`) and recorded in the calibration record: x86 int8 kernels multiply unsigned 8-bit activations
by signed 8-bit weights (VNNI's ``vpdpbusd``, AVX2's ``vpmaddubsw``), so uint8 activations let onnxruntime fuse
every Conv into ``QLinearConv``, where int8 activations left most Convs in fp32 behind ``DequantizeLinear``
(measured with onnxruntime's profiler: benchmarks/int8_isa.py); without VNNI the weights are 7-bit, so AVX2's int16
sums cannot saturate. QDQ with symmetric int8 is what TensorRT builds INT8 engines from
(explicit quantisation): ``tuned_for="tensorrt"``. A detector keeps its box decode and stem in fp32
(:func:`fp32_node_names`, listed in the calibration record) and is gated on the boxes a predictor keeps. For a CPU,
each SiLU (``x * sigmoid(x)``, the YOLO activation) becomes onnxruntime's fused fp32 ``QuickGelu`` between the
int8 convolutions (:func:`fuse_silu`): its int8 form, a ``QLinearSigmoid`` table and a ``QLinearMul``, took a third
of the detector's kernel time.

Example::

    export_onnx_int8(vision.load_model("grocery_resnet10t"), "export/grocery.int8.onnx",
                     calib_dir="../shared/datasets/grocery_store/train")
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from torch import nn

from vision.export.calibration import MAX_CALIB_IMAGES, MIN_CALIB_IMAGES, CalibrationSet
from vision.export.onnx import (
    CARD_KEY,
    INPUT_NAME,
    OUTPUT_KEY,
    PRECISION_KEY,
    ExportError,
    card_of,
    check_not_a_folder,
    check_parity,
    compare_outputs,
    default_output,
    export_onnx,
    file_digest,
    keep_previous_record,
    onnx_session,
    read_onnx_metadata,
    read_onnx_props,
    torch_outputs,
    write_parity_report,
)
from vision.fileio import atomic_path

CALIBRATION_KEY = "vision.calibration"
# what an INT8 graph is tuned for -> its quantisation settings (measured: benchmarks/results/export.md).
# vnni: x86 with AVX-512 VNNI, AVX-VNNI or AMX-INT8: uint8 activations (asymmetric) x int8 weights at full range,
#   the operand types of vpdpbusd, which accumulates in int32 without saturating.
# avx2: x86 with AVX2 and no VNNI: uint8 activations x 7-bit weights. The same u8 x s8 kernels fuse every Conv
#   (1.8x ORT fp32 on an AVX2-only EPYC, against 1.2x with int8 activations), and 7-bit weights keep AVX2's int8
#   dot product (vpmaddubsw, whose int16 sums saturate at full range) exact (agreement with fp32 97% vs 95%).
# generic: other CPUs (ARM, or flags unknown): int8 activations and 7-bit weights (not measured off x86).
# tensorrt: symmetric int8 activations and weights, full range: what TensorRT's explicit quantisation takes.
INT8_SETTINGS: dict[str, dict] = {
    "vnni": {"activations": "uint8", "activations_symmetric": False, "reduce_range": False},
    "avx2": {"activations": "uint8", "activations_symmetric": False, "reduce_range": True},
    "generic": {"activations": "int8", "activations_symmetric": True, "reduce_range": True},
    "tensorrt": {"activations": "int8", "activations_symmetric": True, "reduce_range": False},
}
TUNED_FOR = ("auto", *INT8_SETTINGS)
# /proc/cpuinfo flags that give x86 a non-saturating int8 dot product
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
# /proc/cpuinfo flags of a bfloat16 dot product (elsewhere torch emulates bf16: 6.7x slower than fp32 on AVX2)
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# the flags worth reporting beside an INT8 or bf16 figure
ISA_FLAGS = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "asimddp", *VNNI_FLAGS})
CALIB_BATCH = 16
PARITY_IMAGES = 64
QUANT_FORMATS = ("qdq", "qoperator")
CALIBRATE_METHODS = ("minmax", "entropy", "percentile")


def export_onnx_int8(model: nn.Module, path: str | Path, *, calib_dir: str | Path, output: str | None = None,
                     opset: int = 17, quant_format: str = "qdq", calibrate_method: str = "minmax",
                     per_channel: bool = True, tuned_for: str = "auto", reduce_range: bool | None = None,
                     keep_fp32: Sequence[str] = (), fuse_silu: bool | None = None,
                     min_images: int = MIN_CALIB_IMAGES, max_images: int = MAX_CALIB_IMAGES,
                     parity_dir: str | Path | None = None, simplify: bool = True,
                     sample_images: Sequence | None = None) -> Path:
    """Write an INT8 ONNX of ``model`` to ``path`` and ``<path>.parity.json``; returns ``path``.

    ``calib_dir``: folder of representative images (at least ``min_images`` readable ones; up to ``max_images``
    evenly spread ones are used). ``parity_dir``: images for the gate (default: the calibration images; pass a
    held-out folder for an honest number). ``tuned_for``: ``auto`` (this CPU: ``vnni`` where it has VNNI or AMX,
    ``avx2`` on other x86 CPUs with AVX2, else ``generic``), ``vnni``, ``avx2``, ``generic`` or ``tensorrt``
    (:data:`INT8_SETTINGS`); ``reduce_range`` (7-bit weights) overrides its choice: without VNNI it took the
    shipped classifier's top-1 agreement with fp32 from 0.89 to 0.95 on Grocery val images. ``keep_fp32``:
    node-name prefixes of the fp32 graph kept in fp32 besides the task's own (:func:`fp32_node_names`), e.g.
    ``["/model/model.0/"]``. ``fuse_silu``: run each SiLU as onnxruntime's fp32 ``QuickGelu`` (default: for
    every CPU setting, not for ``tensorrt``, which does not read onnxruntime's own operators; :func:`fuse_silu`).
    ``sample_images`` goes to the fp32 export's parity check.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    check_not_a_folder(Path(path))
    if quant_format not in QUANT_FORMATS:
        raise ExportError(f"unknown quant_format {quant_format!r}; choose one of {list(QUANT_FORMATS)}")
    if calibrate_method not in CALIBRATE_METHODS:
        raise ExportError(f"unknown calibrate_method {calibrate_method!r}; choose one of {list(CALIBRATE_METHODS)}")
    if tuned_for not in TUNED_FOR:
        raise ExportError(f"unknown tuned_for {tuned_for!r}; choose one of {list(TUNED_FOR)}")
    target = cpu_int8_target() if tuned_for == "auto" else tuned_for
    fuse_silu = target != "tensorrt" if fuse_silu is None else bool(fuse_silu)
    if fuse_silu and target == "tensorrt":
        raise ExportError("fuse_silu writes onnxruntime's own QuickGelu operator, which TensorRT does not read: "
                          "not with tuned_for='tensorrt'")
    settings = {**INT8_SETTINGS[target], **({} if reduce_range is None else {"reduce_range": reduce_range})}
    card = card_of(model)
    output = output or default_output(card)
    calib = CalibrationSet.from_folder(calib_dir, card.data_config, min_images=min_images, max_images=max_images)
    parity_set = calib if parity_dir is None else CalibrationSet.from_folder(
        parity_dir, card.data_config, min_images=1, max_images=PARITY_IMAGES)

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="vision-int8-") as scratch:
        fp32 = export_onnx(model, Path(scratch) / "fp32.onnx", opset=opset, output=output, simplify=simplify,
                           sample_images=sample_images)
        prepared = Path(scratch) / "prepared.onnx"
        shape_inference = _prepare(fp32, prepared, card)
        fused = fuse_silu_file(prepared) if fuse_silu else 0
        fp32_nodes = fp32_node_names(prepared, card.task, keep_fp32)
        record = {"method": calibrate_method, "format": quant_format, "per_channel": per_channel,
                  "tuned_for": target, "cpu_isa": cpu_isa(), **settings,
                  "shape_inference": shape_inference, "fp32_nodes": fp32_nodes, "fused_silu": fused,
                  "batch": CALIB_BATCH, **calib.describe(),
                  "key": calib.key(batch=CALIB_BATCH, method=calibrate_method, runtime="onnxruntime")}
        with atomic_path(path) as tmp:
            quantize_static(str(prepared), str(tmp), _Reader(calib), per_channel=per_channel,
                            reduce_range=settings["reduce_range"], nodes_to_exclude=fp32_nodes,
                            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
                            activation_type={"uint8": QuantType.QUInt8,
                                             "int8": QuantType.QInt8}[settings["activations"]],
                            weight_type=QuantType.QInt8,
                            calibrate_method={"minmax": CalibrationMethod.MinMax,
                                              "entropy": CalibrationMethod.Entropy,
                                              "percentile": CalibrationMethod.Percentile}[calibrate_method],
                            extra_options={"ActivationSymmetric": settings["activations_symmetric"],
                                           "WeightSymmetric": True})
            _set_metadata(tmp, {CARD_KEY: card.to_json(), OUTPUT_KEY: output, PRECISION_KEY: "int8",
                                CALIBRATION_KEY: json.dumps(record, sort_keys=True)})
            images = parity_set.array(PARITY_IMAGES)
            report = compare_outputs(torch_outputs(model, output, _tensor(images)), _run_onnx(tmp, images), output)
            report.update(output=output, onnx=path.name, precision="int8", calibration=record,
                          parity_images=str(parity_set.root), model=card.name, format="onnx-int8",
                          **file_digest(tmp))  # the bytes as finally written, metadata included
            check_parity(report, "int8", f"{card.name}: INT8 ONNX output")
            keep_previous_record(path, report)  # a crash from here on leaves the previous export verifiable
    write_parity_report(path, report)
    return path


def _prepare(fp32: Path, prepared: Path, card) -> str:
    """onnxruntime's pre-processing for quantisation (shape inference, graph optimisation) of ``fp32`` into
    ``prepared``; returns the shape inference that worked: ``symbolic`` (onnxruntime's), else ``onnx`` (ONNX's
    own: onnxruntime's symbolic inference fails on the YOLO detector's graph, whose shapes ONNX infers)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # onnxruntime's symbolic shape inference writes temporary files into the working folder (and leaves them
    # there when it fails): run it inside the scratch folder
    cwd = os.getcwd()
    os.chdir(prepared.parent)
    try:
        for skip_symbolic in (False, True):
            try:
                quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=skip_symbolic)
                return "onnx" if skip_symbolic else "symbolic"
            except Exception as e:  # noqa: BLE001 - onnxruntime raises bare Exception("Incomplete symbolic ...")
                error = e
        raise ExportError(f"{card.name}: INT8 pre-processing (onnxruntime shape inference) failed for this "
                          f"{card.task} graph ({type(error).__name__}: {error}); export it as 'onnx' (fp32) instead")
    finally:
        os.chdir(cwd)


def fuse_silu(model) -> int:
    """Replace each SiLU of the ONNX ``model`` (in place), a ``Sigmoid`` whose one consumer is a ``Mul`` of its input
    and its output, by onnxruntime's ``com.microsoft.QuickGelu`` (``x * sigmoid(alpha * x)``, ``alpha=1``: the same
    function) named after the ``Mul``; returns how many.

    Quantisation leaves the fused operator in fp32 between the int8 convolutions. The logo detector's 77 SiLUs as
    ``QLinearSigmoid`` + ``QLinearMul`` took 33% of its INT8 kernel time at batch 1; as ``QuickGelu`` the network
    ran 1.10x faster at batch 1 and 1.02x at batch 8 (one thread), the predictor 1.08-1.13x end to end at batch 1,
    mAP50 -0.06 points (benchmarks/results/export.md). Left as separate ``Sigmoid`` and ``Mul`` in fp32 it was
    slower: each gets its own ``DequantizeLinear`` and onnxruntime no longer fuses them."""
    from onnx import helper

    graph = model.graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    replaced: dict[int, object] = {}
    dropped: set[int] = set()
    for node in graph.node:
        if node.op_type != "Sigmoid" or node.domain not in ("", "ai.onnx"):
            continue
        users = consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "Mul" or sorted(users[0].input) != sorted([node.input[0],
                                                                                            node.output[0]]):
            continue
        mul = users[0]
        dropped.add(id(node))
        replaced[id(mul)] = helper.make_node("QuickGelu", [node.input[0]], [mul.output[0]], name=mul.name,
                                             domain="com.microsoft", alpha=1.0)
    if not replaced:
        return 0
    nodes = [replaced.get(id(n), n) for n in graph.node if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return len(replaced)


def fuse_silu_file(path: Path) -> int:
    """:func:`fuse_silu` of the ONNX file at ``path``, rewritten in place when it has any."""
    import onnx

    model = onnx.load(str(path))
    count = fuse_silu(model)
    if count:
        onnx.save(model, str(path))
    return count


def fp32_node_names(path: str | Path, task: str, prefixes: Sequence[str] = ()) -> list[str]:
    """The nodes of the ONNX graph at ``path`` that an INT8 export of a ``task`` model keeps in fp32 (sorted):
    a detector's box decode (:func:`detector_decode_nodes`) and stem (:func:`stem_nodes`), none of the other
    tasks', and those whose name starts with one of ``prefixes``.

    The detector's stem in fp32 took INT8 mAP50 from -1.6 to -0.8 points of fp32 on a val set of logos in several
    artwork styles, at the same speed (benchmarks/results/export.md); classifiers and embedders lost nothing
    measurable with every layer in int8."""
    import onnx

    graph = onnx.load(str(path)).graph
    kept = {n.name for n in graph.node if prefixes and n.name.startswith(tuple(prefixes))}
    if prefixes and not kept:
        raise ExportError(f"keep_fp32 {list(prefixes)}: no node of the graph starts with these; node names look "
                          f"like {graph.node[0].name!r}")
    if task == "detection":
        kept |= detector_decode_nodes(graph) | stem_nodes(graph)
    return sorted(kept)


def stem_nodes(graph) -> set[str]:
    """The nodes of the module that holds the graph's first convolution (its convolution and activation; for an
    ultralytics model ``/model/model.0/``)."""
    first = next(n for n in graph.node if n.op_type == "Conv")
    module = first.name.rsplit("/", 2)[0] + "/"
    if module == "/":  # a top-level name: the convolution alone, never the whole graph
        return {first.name}
    return {n.name for n in graph.node if n.name.startswith(module)}


def detector_decode_nodes(graph) -> set[str]:
    """The nodes of the module that writes the graph's output from its first Reshape on: the box decode (DFL
    softmax, anchors, stride, class sigmoid), where one int8 range would have to cover pixels and probabilities
    in one tensor."""
    producer = next(n for n in graph.node if graph.output[0].name in n.output)
    module = producer.name.rsplit("/", 1)[0] + "/"
    consumers: dict[str, list] = {}
    for n in graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    found: set[str] = set()
    stack = [n for n in graph.node if n.op_type == "Reshape" and n.name.startswith(module)]
    while stack:
        n = stack.pop()
        if n.name not in found:
            found.add(n.name)
            stack += [c for out in n.output for c in consumers.get(out, [])]
    return found


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (``/proc/cpuinfo``; empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    return frozenset(line.partition(":")[2].split())


def cpu_isa(flags: frozenset[str] | None = None) -> list[str]:
    """The :data:`ISA_FLAGS` this CPU (or ``flags``) has, sorted: what to report beside an INT8 or bf16 figure."""
    return sorted((cpu_flags() if flags is None else flags) & ISA_FLAGS)


def cpu_int8_target(flags: frozenset[str] | None = None) -> str:
    """The :data:`INT8_SETTINGS` key for this CPU (or ``flags``): ``vnni`` where it has VNNI or AMX-INT8, ``avx2``
    on other x86 CPUs with AVX2, else ``generic``."""
    flags = cpu_flags() if flags is None else flags
    return "vnni" if flags & VNNI_FLAGS else "avx2" if "avx2" in flags else "generic"


def int8_cpu_warning(record: dict | None, flags: frozenset[str] | None = None) -> str | None:
    """Why an INT8 ONNX with calibration ``record`` will not run as measured on this CPU (``None`` if it will):
    a CPU with VNNI/AMX runs any CPU setting; an AVX2 CPU runs an ``avx2`` export as measured, while an export
    tuned for VNNI has full-range weights that saturate its int16 sums and a ``generic`` one (int8 activations)
    leaves most convolutions in fp32; elsewhere int8 gains little."""
    if record is None:
        return None
    flags = cpu_flags() if flags is None else flags
    here = cpu_int8_target(flags)
    tuned = record.get("tuned_for", "generic")  # exports before this record were tuned as 'generic'
    if here == "vnni" or (here == "avx2" and tuned == "avx2"):
        return None
    isa = ', '.join(cpu_isa(flags)) or 'flags unknown'
    advice = (f"re-export it on this CPU (tuned_for='auto' picks '{here}' here)" if tuned != here
              else "expect little gain over fp32")
    return f"this CPU has no VNNI or AMX-INT8 ({isa}) and the INT8 model is tuned for '{tuned}': {advice}"


def bf16_cpu_warning(flags: frozenset[str] | None = None) -> str | None:
    """Why bf16 autocast will be slow on this CPU (``None`` where it has AVX-512 BF16 or AMX-BF16, or the flags
    are unknown): without them torch emulates bf16 (measured 0.15x fp32 eager on an AVX2-only EPYC)."""
    flags = cpu_flags() if flags is None else flags
    if not flags or flags & BF16_FLAGS:
        return None
    return (f"this CPU has no AVX-512 BF16 or AMX-BF16 ({', '.join(cpu_isa(flags)) or 'none of them'}): "
            "bf16 is emulated here and runs several times slower than fp32 (0.15x on an AVX2-only CPU); use fp32, "
            "or an INT8 export")


class _Reader:
    """onnxruntime's ``CalibrationDataReader`` protocol over a :class:`CalibrationSet`."""

    def __init__(self, calib: CalibrationSet):
        self._batches = calib.batches(CALIB_BATCH)

    def get_next(self) -> dict | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def _set_metadata(path: Path, props: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    kept = {p.key: p.value for p in proto.metadata_props if p.key not in props}
    onnx.helper.set_model_props(proto, {**kept, **props})
    onnx.save(proto, str(path))


def _run_onnx(path: Path, images: np.ndarray) -> np.ndarray:
    return onnx_session(path, ["CPUExecutionProvider"]).run(None, {INPUT_NAME: images})[0]


def _tensor(images: np.ndarray):
    import torch

    return torch.from_numpy(images)


def read_calibration_record(path: str | Path) -> dict | None:
    """The calibration record of an INT8 ONNX (``None`` for fp32 files)."""
    read_onnx_metadata(path)  # a clear error for files we did not write
    props = read_onnx_props(path)
    if CALIBRATION_KEY not in props:
        return None
    try:
        return json.loads(props[CALIBRATION_KEY])
    except ValueError as e:
        raise ExportError(f"{path}: the '{CALIBRATION_KEY}' metadata is not JSON ({e})") from None
