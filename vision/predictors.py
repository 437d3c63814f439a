"""One inference interface for every task and every runtime: :func:`predictor`.

A predictor is a runtime (torch, ONNX Runtime or TensorRT: what computes the network's output) plus a task head
(pre- and post-processing written once per output kind and shared by every runtime; the task table names each
output's head, :meth:`vision.tasks.Task.output_head`). Images stream through it in
batches of ``batch_size``, so a folder of a million photos never becomes one batch, and each image gives one typed
result (:mod:`vision.results`).

Example::

    p = vision.predictor("grocery_resnet10t")                    # a zoo name: torch, CUDA when available
    p = vision.predictor("logo_yolo11n.predictions.onnx")        # an export file: ONNX Runtime, same results
    for result in p.stream("photos/", batch_size=32):            # a folder, a glob, paths, PIL/numpy/tensors
        print(result.to_dict())
    p("shelf.jpg")[0].save("shelf_annotated.png")
"""

from __future__ import annotations

import copy
import glob as _glob
import os
import sys
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from vision.data.inputs import image_pixels, to_rgb_array
from vision.export import FORMATS
from vision.results import Classification, Detections, Embedding, Result
from vision.tasks import get_task

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "bf16")  # of the torch runtime (TorchRuntime)
# decoded pixels one batch may hold: a batch is split before it would pass this, so a batch of huge photos stays
# near 128 MP * 3 bytes (~0.4 GB of RGB, plus one image's decoding buffers) instead of growing with batch_size.
# It is above the decompression-bomb limit (vision.data.io.DEFAULT_MAX_PIXELS), so every image that limit lets
# through still fits in a batch of its own.
DEFAULT_MAX_BATCH_PIXELS = 128_000_000
STAGES = ("decode", "preprocess", "inference", "postprocess")  # Predictor.speed's keys, in pipeline order
# threads decoding one batch's images: PIL and OpenCV release the GIL while decoding
DECODE_THREADS = min(4, os.cpu_count() or 1)
# runtime -> the `vision export --format` that makes its files
_EXPORT_FORMAT = {"onnxruntime": "onnx", "tensorrt": "tensorrt"}
_ANNOUNCED: set[str] = set()  # exports backend="auto" already named on stderr in this process
# artifact suffix -> runtime, from the exporter's own format table (".engine": the TensorRT plans of other tools)
SUFFIX_BACKENDS = {**{Path(f"x{fmt.suffix}").suffix: fmt.runtime for fmt in FORMATS.values()
                      if fmt.runtime in BACKENDS}, ".engine": "tensorrt"}


def default_export_dir() -> Path:
    """Where ``vision export`` writes by default and ``backend="auto"`` looks for exports: ``$VISION_EXPORT_DIR``
    if set, else ``$VISION_HOME/exports`` (``~/.local/share/vision/exports``, see :func:`vision.zoo.vision_home`).
    Never the package, a checkout or the current folder: the same call picks the same export from any folder."""
    if os.environ.get("VISION_EXPORT_DIR"):
        return Path(os.environ["VISION_EXPORT_DIR"]).expanduser()
    from vision.zoo import vision_home

    return vision_home() / "exports"


def default_device() -> torch.device:
    """CUDA when available, for every task."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --- runtimes: a float32 NCHW batch (already preprocessed) in, the network's output as a numpy array out
class TorchRuntime:
    """A zoo model (``vision.load_model``) reduced to one export output kind, run by torch.

    ``precision="bf16"``: bfloat16 autocast on channels-last tensors, for CPUs with AMX or AVX-512 BF16 (and
    GPUs): 1.8-3x fp32 eager on such a Xeon at batch 8-16 for about the same top-1, slower there at batch 1
    (1.9-2.4x at batch 16 and 1.3-1.6x at batch 1 on an EPYC with AVX-512 BF16; benchmarks/results/export.md);
    elsewhere bf16 is emulated, 0.15x fp32 on an AVX2-only EPYC, and a CPU runtime warns
    (:func:`vision.export.quantize.bf16_cpu_warning`). ``half``: fp16 weights on CUDA (CPU stays fp32)."""

    backend = "torch"

    def __init__(self, model: torch.nn.Module, output: str, device: str | torch.device | None = None,
                 half: bool = False, precision: str = "fp32"):
        from vision.models.outputs import output_network
        from vision.zoo import ZooError

        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
        self.card, self.output, self.precision = model.card, output, precision
        self.device = torch.device(device) if device is not None else default_device()
        self.half = half and self.device.type == "cuda"  # fp16 kernels are a GPU feature; CPU stays fp32
        network = output_network(model, output, ZooError).to(self.device).eval()
        if precision == "bf16":  # oneDNN's bf16 convolutions run on channels-last (NHWC) blocks; a copy, so the
            network = copy.deepcopy(network).to(memory_format=torch.channels_last)  # caller's model keeps its layout
            if self.device.type == "cpu":
                from vision.export.quantize import bf16_cpu_warning

                if (warning := bf16_cpu_warning()) is not None:
                    warnings.warn(f"{self.card.name}: {warning}", RuntimeWarning, stacklevel=2)
        else:
            network = folded_network(network)
        self.network = network.half() if self.half else network

    @property
    def cpu_threads(self) -> int | None:
        """The CPU threads the network runs on (torch's, process-wide), or None on a GPU."""
        return torch.get_num_threads() if self.device.type == "cpu" else None

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        return self.tensor(batch).cpu().numpy()

    @torch.inference_mode()
    def tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """The float32 output on :attr:`device`: heads that take tensors post-process where the network ran."""
        x = batch.to(self.device, non_blocking=True)
        if self.precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return self.network(x.contiguous(memory_format=torch.channels_last)).float()
        return self.network(x.half() if self.half else x).float()


def folded_network(network: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``network`` with every Conv+BatchNorm folded into one conv, in channels-last memory, when the model
    it wraps offers ultralytics' ``fuse`` (the YOLO detector); else ``network`` itself. Outputs agree within float
    rounding; the copy keeps the caller's model trainable and its exports unchanged."""
    if not callable(getattr(getattr(network, "model", None), "fuse", None)):
        return network
    network = copy.deepcopy(network)
    network.model.fuse(verbose=False)
    return network.to(memory_format=torch.channels_last)


# microseconds ONNX Runtime's workers spin-wait for work before they sleep, by default. The logo detector at batch 1
# on two cores (benchmarks/results/detection.md): as fast as unbounded spinning where the cores are idle (+20-27%
# fp32, +19% INT8 over no spinning), and within 10% of no spinning beside two busy processes (0.91x in one run, 1.04x
# in another), where unbounded spinning lost 25-30% (2.1x on a Xeon before). Where several processes of one job
# share the cores, as the served steps do, no spinning was faster still (vision.serving passes spin=False).
SPIN_US = 50
# the first onnxruntime release the bound was measured with (session.intra_op.spin_duration_us); an older one
# gets no spinning by default rather than an unbounded one
SPIN_US_SINCE = (1, 32)


def ort_session_options(threads: int | None = None, spin: bool | int = SPIN_US):
    """ONNX Runtime ``SessionOptions`` for a CPU session: ``threads`` intra-op threads (``None``: its default, one
    per physical core) and ``spin``: the microseconds a worker spin-waits for work before sleeping (default
    :data:`SPIN_US`; ``0`` or ``False``: never spin), or ``True``: ONNX Runtime's own, longer spinning (measured no
    faster than the bound on idle cores; on shared ones it takes the cores that decoding and other processes
    need)."""
    import onnxruntime as ort

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
    if not isinstance(spin, (bool, int)) or (not isinstance(spin, bool) and spin < 0):
        raise ValueError(f"spin must be True, False or whole microseconds >= 0, got {spin!r}")
    if spin is not True and spin and _ort_version() < SPIN_US_SINCE:
        spin = 0
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if spin and spin is not True:
        options.add_session_config_entry("session.intra_op.spin_duration_us", str(int(spin)))
    if threads is not None:
        options.intra_op_num_threads = threads
    return options


def _ort_version() -> tuple[int, int]:
    import onnxruntime as ort

    try:
        return tuple(int(part) for part in ort.__version__.split(".")[:2])
    except ValueError:   # a development build's version string: assume it is recent
        return (99, 0)


class OnnxRuntime:
    """An ``.onnx`` export (``vision.export.export_onnx``), run by ONNX Runtime; its card and output kind come
    from the file's metadata."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, device: str | torch.device | None = None, threads: int | None = None,
                 spin: bool | int = SPIN_US):
        """``threads``: ONNX Runtime's intra-op threads (default: its own, one per physical core); fewer when other
        threads of this process keep cores busy meanwhile (e.g. the dedup scan's image readers). ``spin``: how
        its workers wait for work (:func:`ort_session_options`): by default they spin at most :data:`SPIN_US`
        microseconds, then sleep."""
        import onnxruntime as ort

        from vision.export.onnx import ExportError, onnx_session, read_onnx_metadata, verify_recorded_digest

        self.path = Path(path)
        verify_recorded_digest(self.path)  # the bytes its export recorded, before onnx/onnxruntime parse them
        self.card, self.output = read_onnx_metadata(self.path)
        device = torch.device(device) if device is not None else default_device()
        providers: list = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        self.session = onnx_session(self.path, providers, ort_session_options(threads, spin))
        self.threads = threads
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ExportError(f"{path}: expected one input and one output, got inputs {[i.name for i in inputs]} "
                              f"and outputs {[o.name for o in outputs]}")
        self.input_name, self.output_shape = inputs[0].name, outputs[0].shape
        self._error = ExportError

    @property
    def cpu_threads(self) -> int | None:
        """The CPU threads the network runs on, when this session runs on the CPU and they were set; else None."""
        return self.threads if self.session.get_providers()[0] == "CPUExecutionProvider" else None

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        try:
            return self.session.run(None, {self.input_name: batch.cpu().numpy().astype(np.float32, copy=False)})[0]
        except Exception as e:  # onnxruntime's own error types: a graph that does not run on this input
            raise self._error(f"{self.path}: onnxruntime failed ({type(e).__name__}: {e})") from None


class TensorRTRuntime:
    """A TensorRT plan with its JSON sidecar (``vision.export.tensorrt``); batches over the engine's profile
    maximum run in slices, a slice under its minimum is padded with zero rows whose outputs are dropped."""

    backend = "tensorrt"

    def __init__(self, path: str | Path, device: str | torch.device | None = None):
        from vision.export.tensorrt import TensorRTEngine

        device = torch.device(device) if device is not None else torch.device("cuda")
        self.engine = TensorRTEngine(path, device=device.index or 0)
        self.card, self.output = self.engine.card, self.engine.output

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        from vision.export.tensorrt import run_in_profile

        return run_in_profile(self.engine, batch)


# --- task heads: the pre- and post-processing of one output kind, the same for every runtime
class ClassificationHead:
    """Card eval transform in; softmax top-``topk`` out."""

    def __init__(self, card, topk: int = 5):
        from vision.data.transforms import build_eval_transform

        self.card, self.topk = card, topk
        self.transform = build_eval_transform(card.data_config)

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, Any]:
        return torch.stack([self.transform(image=im)["image"] for im in images]), None

    def postprocess(self, output: np.ndarray, meta: Any, sources: Sequence[str]) -> list[Classification]:
        probs = torch.from_numpy(output).float().softmax(-1)
        scores, indices = probs.topk(min(self.topk, probs.shape[1]), dim=-1)
        names, coarse_names, f2c = self.card.class_names, self.card.coarse_names, self.card.fine_to_coarse
        results = []
        for source, s_row, i_row in zip(sources, scores.tolist(), indices.tolist()):
            topk = [{"label": names[i], "index": i, "score": round(s, 6)} for s, i in zip(s_row, i_row)]
            coarse = coarse_names[f2c[i_row[0]]] if coarse_names and f2c else None
            results.append(Classification(source, topk=topk, coarse=coarse))
        return results


_DETECTION = get_task("detection").head_defaults


class DetectionHead:
    """Letterbox to the card's input size in; NMS and boxes mapped back to original pixels out, on the device the
    network ran on (:attr:`takes_tensors`: the torch runtime hands over its output without a copy to the host)."""

    takes_tensors = True

    def __init__(self, card, conf: float = _DETECTION["conf"], iou: float = _DETECTION["iou"],
                 max_det: int = _DETECTION["max_det"]):
        from vision import ultralytics_compat as ulc

        self.card, self.conf, self.iou, self.max_det = card, conf, iou, max_det
        self.imgsz = card.data_config.input_size
        self.ulc = ulc

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, Any]:
        # each image resized once (uint8) straight into one preallocated batch; the float conversion runs once
        batch = np.full((len(images), self.imgsz, self.imgsz, 3), LETTERBOX_PAD, np.uint8)
        for image, canvas in zip(images, batch):
            letterbox_into(image, canvas)
        # to float in numpy, one pass from the uint8 batch (the same values as torch's float().div_(255)): torch's
        # OpenMP threads, once woken for it, spin and take the cores ONNX Runtime then needs (7% at batch 1)
        x = np.empty((len(images), 3, self.imgsz, self.imgsz), np.float32)
        np.divide(batch.transpose(0, 3, 1, 2), np.float32(255), out=x)
        return torch.from_numpy(x), [im.shape[:2] for im in images]

    @torch.inference_mode()  # NMS edits the (inference-mode) network output in place
    def postprocess(self, output: np.ndarray | torch.Tensor, shapes: Any, sources: Sequence[str]) -> list[Detections]:
        if isinstance(output, np.ndarray):  # ONNX Runtime, TensorRT: already on the host
            kept = host_nms(output, conf=self.conf, iou=self.iou, max_det=self.max_det)
        else:
            kept = self.ulc.non_max_suppression(output.float(), conf=self.conf, iou=self.iou, max_det=self.max_det)
        names, results = self.card.class_names, []
        for source, det, (h, w) in zip(sources, kept, shapes):
            boxes = letterbox_to_original(det[:, :4], (self.imgsz, self.imgsz), (h, w))
            rows = torch.cat([boxes, det[:, 4:6]], 1).cpu().tolist()  # one copy to the host per image
            found = [{"box": [round(v, 2) for v in row[:4]], "score": round(row[4], 6),
                      "label": names[int(row[5])], "class_id": int(row[5])} for row in rows]
            results.append(Detections(source, boxes=found, width=int(w), height=int(h)))
        return results


LETTERBOX_PAD = 114  # the grey YOLO models are trained with around a letterboxed image
# ultralytics non_max_suppression's defaults: the class offset of class-aware NMS, the most candidates it suppresses
NMS_MAX_WH, NMS_MAX_CANDIDATES = 7680, 30000


def host_nms(prediction: np.ndarray, conf: float, iou: float, max_det: int) -> list[torch.Tensor]:
    """ultralytics' ``non_max_suppression`` (the best class per box, class-aware) for an ``(N, 4 + classes,
    anchors)`` output already on the host: per image an ``(n, 6)`` float32 tensor ``x1, y1, x2, y2, score,
    class``, the same rows in the same order (a test compares them).

    The candidates are picked in numpy and only the few left go to the same torchvision NMS kernel. ultralytics'
    function runs some thirty torch operations on the whole output: 0.22 ms an image at batch 1 timed alone, but
    0.53 ms between two network runs that leave the caches cold (onnxruntime, 2 idle Xeon cores; the predictor's
    postprocess 0.72 -> 0.56 ms: benchmarks/results/detection.md)."""
    import torchvision

    from vision import ultralytics_compat as ulc

    prediction = np.asarray(prediction, np.float32)
    results = []
    for pred in prediction:
        x = pred[:, pred[4:].max(0) > conf].T  # (candidates, 4 + classes)
        label = x[:, 4:].argmax(1)
        score = np.take_along_axis(x[:, 4:], label[:, None], 1)
        rows = np.concatenate([ulc.ops().xywh2xyxy(x[:, :4]), score, label[:, None].astype(np.float32)], 1)
        rows = torch.from_numpy(rows[score[:, 0] > conf])
        if len(rows) > NMS_MAX_CANDIDATES:
            rows = rows[rows[:, 4].argsort(descending=True)[:NMS_MAX_CANDIDATES]]
        kept = torchvision.ops.nms(rows[:, :4] + rows[:, 5:6] * NMS_MAX_WH, rows[:, 4], iou)[:max_det]
        results.append(rows[kept])
    return results


def letterbox_into(image: np.ndarray, canvas: np.ndarray) -> None:
    """Resize HxWx3 uint8 ``image`` to fit the square ``canvas`` (aspect kept, bilinear, up or down) and write it
    centred, the border left as it is: ultralytics' ``LetterBox(auto=False)`` arithmetic, so boxes map back with
    its ``scale_boxes`` and results match its predictor."""
    import cv2

    size = canvas.shape[0]
    h, w = image.shape[:2]
    gain = min(size / h, size / w)
    new_w, new_h = max(round(w * gain), 1), max(round(h * gain), 1)
    top, left = round((size - new_h) / 2 - 0.1), round((size - new_w) / 2 - 0.1)
    target = canvas[top:top + new_h, left:left + new_w]
    if (new_h, new_w) == (h, w):
        target[...] = image
    else:
        target[...] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


def letterbox_to_original(boxes: torch.Tensor, letterboxed_hw: tuple[int, int],
                          original_hw: tuple[int, int]) -> torch.Tensor:
    """xyxy boxes in a centred letterbox of ``original_hw`` back to original pixels (clipped); a new tensor."""
    from vision import ultralytics_compat as ulc

    return ulc.ops().scale_boxes(tuple(letterboxed_hw), boxes.clone().float(), tuple(original_hw))


class EmbeddingHead:
    """Card eval transform in; an L2-normalised vector out (embedding models, or a classifier's pooled features)."""

    def __init__(self, card):
        from vision.data.transforms import build_eval_transform

        self.card = card
        self.transform = build_eval_transform(card.data_config)

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, Any]:
        return torch.stack([self.transform(image=im)["image"] for im in images]), None

    def postprocess(self, output: np.ndarray, meta: Any, sources: Sequence[str]) -> list[Embedding]:
        vectors = output.astype(np.float32, copy=False)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return [Embedding(source, vector=v) for source, v in zip(sources, vectors)]


def head_for(card, output: str, **head_kwargs):
    """The head of output kind ``output`` of ``card``'s task, as the task table names it (``Task.output_head``),
    built for ``card``; a ``ValueError`` naming the task's outputs when it has no such output."""
    from vision.tasks import get_task

    try:
        head = get_task(getattr(card, "task", None)).output_head(output)
    except ValueError as e:  # unknown task, or an output kind the task does not have
        raise ValueError(f"no predictor head for output kind {output!r}: {e}") from None
    return head(card, **head_kwargs)


class Predictor:
    """A runtime and the head of its output kind. Call it on images for a list of results, or :meth:`stream`
    them. ``on_error="skip"`` skips unreadable images and lists them in :attr:`skipped`; the default raises.

    ``max_batch_pixels`` bounds the decoded pixels held at once (:func:`read_batches`; ``None``: no bound).
    :attr:`speed`: milliseconds per image of each stage (:data:`STAGES`) over the images of the last :meth:`stream`
    so far, like ultralytics' ``Results.speed``: ``decode`` (reading files), ``preprocess``, ``inference`` (the
    runtime), ``postprocess`` (NMS, box mapping, result objects); with several :attr:`workers` the stages of
    different batches overlap, so they add up to more than the wall time.

    ``workers``: batches run at once, each preprocessed, run and postprocessed in its own thread on the one ONNX
    Runtime session (its calls are thread-safe), results still in input order: like a Triton model's instance count.
    Small networks at small batches use several cores better so than by splitting one run over them (on 2 cores
    the logo detector at batch 1: 2 workers of one thread each against one run on both, benchmarks/results/
    detection.md). ONNX Runtime only: the torch and TensorRT runtimes run one batch at a time."""

    def __init__(self, runtime, max_batch_pixels: int | None = DEFAULT_MAX_BATCH_PIXELS, workers: int = 1,
                 **head_kwargs):
        self.runtime, self.card, self.output = runtime, runtime.card, runtime.output
        self.max_batch_pixels = check_max_batch_pixels(max_batch_pixels)
        self.workers = check_workers(workers, getattr(runtime, "backend", type(runtime).__name__))
        self.read_ahead: bool | None = None  # stream's default; None: decided by reads_ahead()
        self.head = head_for(self.card, self.output, **head_kwargs)
        self.skipped: list[tuple[str, str]] = []
        self.speed: dict[str, float] = {}

    @property
    def backend(self) -> str:
        return self.runtime.backend

    def __repr__(self) -> str:
        return f"Predictor({self.card.name!r}, task={self.card.task!r}, output={self.output!r}, " \
               f"backend={self.backend!r})"

    def __call__(self, images, batch_size: int = 32, on_error: str = "raise", read_ahead: bool | None = None
                 ) -> list[Result]:
        return list(self.stream(images, batch_size=batch_size, on_error=on_error, read_ahead=read_ahead))

    def stream(self, images, batch_size: int = 32, on_error: str = "raise", read_ahead: bool | None = None
               ) -> Iterator[Result]:
        """Results one by one, reading and running ``batch_size`` images at a time (memory bounded by one batch,
        of at most :attr:`max_batch_pixels` decoded pixels; two with ``read_ahead``; with several :attr:`workers`,
        ``workers + 2``).

        ``read_ahead``: decode and preprocess the next batch in a background thread while the network runs on
        this one; the ``images`` iterable is then advanced in that thread. ``None``: :meth:`reads_ahead` decides.
        With several :attr:`workers` the batches are read in this thread while the workers run the ones before."""
        self.skipped = []
        self.speed = {}
        spent, count = dict.fromkeys(STAGES, 0.0), 0
        batches = read_batches(images, batch_size, on_error, self.skipped, max_batch_pixels=self.max_batch_pixels)
        if self.workers > 1:
            def job(item):
                (sources, arrays), read_s = item
                return len(arrays), read_s, self._batch(sources, arrays)

            ran = in_flight(_timed(batches), job, self.workers)
            try:
                for size, read_s, (results, prepare_s, run_s, post_s) in ran:
                    for stage, seconds in zip(STAGES, (read_s, prepare_s, run_s, post_s)):
                        spent[stage] += seconds
                    count += size
                    self.speed = {stage: round(seconds / count * 1e3, 3) for stage, seconds in spent.items()}
                    yield from results
            finally:
                ran.close()
            return
        read_ahead = self.reads_ahead(read_ahead) and not _one_batch(images, batch_size)

        def prepared():
            timed = _timed(batches)
            try:
                for (sources, arrays), read_s in timed:
                    start = time.perf_counter()
                    batch, meta = self.head.preprocess(arrays)
                    yield sources, arrays, batch, meta, read_s, time.perf_counter() - start
            finally:
                timed.close()   # and with it the batches

        for sources, arrays, batch, meta, read_s, prepare_s in one_ahead(prepared(), read_ahead):
            results, run_s, post_s = self._run_and_postprocess(batch, meta, sources)
            for stage, seconds in zip(STAGES, (read_s, prepare_s, run_s, post_s)):
                spent[stage] += seconds
            count += len(arrays)
            self.speed = {stage: round(seconds / count * 1e3, 3) for stage, seconds in spent.items()}
            yield from results

    def _batch(self, sources: list[str], arrays: list[np.ndarray]) -> tuple[list[Result], float, float, float]:
        """One batch preprocessed, run and postprocessed (a worker's job): its results and the seconds of each."""
        start = time.perf_counter()
        batch, meta = self.head.preprocess(arrays)
        prepare_s = time.perf_counter() - start
        results, run_s, post_s = self._run_and_postprocess(batch, meta, sources)
        return results, prepare_s, run_s, post_s

    def _run_and_postprocess(self, batch: torch.Tensor, meta: Any, sources: list[str]
                             ) -> tuple[list[Result], float, float]:
        """The network on ``batch`` and the head on its output: the results and the seconds of each."""
        start = time.perf_counter()
        output = self._run(batch)
        if isinstance(output, torch.Tensor) and output.is_cuda:  # count the network's time, not its launch
            torch.cuda.synchronize(output.device)
        ran = time.perf_counter()
        results = self.head.postprocess(output, meta, sources)
        return results, ran - start, time.perf_counter() - ran

    def reads_ahead(self, read_ahead: bool | None = None) -> bool:
        """Whether :meth:`stream` reads the next batch while the network runs: ``read_ahead`` if given, else
        :attr:`read_ahead` if set, else where the network runs on fewer CPU threads than this process has cores.
        Measured on 2 cores (benchmarks/results/export.md): 1.06-1.68x end to end where a core is left free (ONNX
        Runtime on one thread, every model, batch 1 and 32); where the network's threads take every core, reading
        ahead only competes with them (torch 0.62-1.06x, ONNX Runtime 0.92-1.16x). Not measured on a GPU yet: off
        there by default."""
        if read_ahead is not None:
            return bool(read_ahead)
        if self.read_ahead is not None:
            return self.read_ahead
        threads = getattr(self.runtime, "cpu_threads", None)
        return threads is not None and threads < available_cores()

    def _run(self, batch: torch.Tensor):
        if getattr(self.head, "takes_tensors", False) and hasattr(self.runtime, "tensor"):
            return self.runtime.tensor(batch)
        return self.runtime(batch)


_END = object()


def one_ahead(items: Iterator, enabled: bool = True) -> Iterator:
    """The items of the iterator ``items``, each next one computed in a background thread while the caller works
    on the current one (``enabled=False``: plainly, in this thread). The first is computed in the caller's thread,
    so an iterator of one item starts no thread; ``items`` is advanced by one thread at a time, and closed (a
    generator) when this is, after the item being computed is done. Its errors are raised where the item would
    have been."""
    if not enabled:
        yield from items
        return
    pool = None
    try:
        item = next(items, _END)
        while item is not _END:
            pool = pool or ThreadPoolExecutor(1, thread_name_prefix="vision-read-ahead")
            pending = pool.submit(next, items, _END)
            yield item
            item = pending.result()
    finally:
        if pool is not None:  # the item being computed finishes first: a generator runs in one thread at a time
            pool.shutdown(wait=True)
        if hasattr(items, "close"):
            items.close()


def in_flight(items: Iterator, fn, workers: int) -> Iterator:
    """``fn(item)`` for each item of the iterator ``items``, in order, up to ``workers`` calls running at once in a
    thread pool and one more queued; ``items`` is advanced in the caller's thread meanwhile. An error of ``fn``,
    or of advancing ``items``, is raised where its result would have been; closing this generator cancels the
    queued calls, waits for the running ones and closes ``items`` (a generator)."""
    pending: deque = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="vision-worker") as pool:
        try:
            while True:
                try:
                    item = next(items)
                except StopIteration:
                    break
                except Exception:   # an error advancing items: the results before it come first
                    while pending:
                        yield pending.popleft().result()
                    raise
                pending.append(pool.submit(fn, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            if hasattr(items, "close"):
                items.close()


def _timed(items: Iterator) -> Iterator[tuple[Any, float]]:
    """``(item, seconds its next() took)`` for each item of ``items``; closes ``items`` when closed."""
    try:
        while True:
            start = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            yield item, time.perf_counter() - start
    finally:
        if hasattr(items, "close"):
            items.close()


def check_workers(workers, backend: str) -> int:
    """``workers`` if it is a usable count for ``backend`` (an integer >= 1; above 1 only on ONNX Runtime), else
    ``ValueError``."""
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if workers > 1 and backend != "onnxruntime":
        raise ValueError(f"workers={workers} runs batches at once on one ONNX Runtime session; the {backend} "
                         "runtime runs one batch at a time (give a larger batch_size instead, or an .onnx export)")
    return int(workers)


def available_cores() -> int:
    """The CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _one_batch(images, batch_size: int) -> bool:
    """Whether ``images`` surely fits one batch (one image or file, or a short list): nothing to read ahead, and no
    reader thread to start (0.2 ms a call)."""
    from PIL import Image

    if isinstance(images, (Image.Image, np.ndarray, torch.Tensor)):
        return True
    if isinstance(images, (str, os.PathLike)):
        return Path(images).is_file()
    return isinstance(images, (list, tuple)) and len(images) <= batch_size


def check_max_batch_pixels(value: int | None) -> int | None:
    """``value`` if it is a usable pixel budget (an integer >= 1, or ``None`` for none), else ``ValueError``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
        raise ValueError(f"max_batch_pixels must be an integer >= 1 (or None for no bound), got {value!r}")
    return None if value is None else int(value)


def read_batches(images, batch_size: int, on_error: str = "raise", skipped: list | None = None, *,
                 max_batch_pixels: int | None = DEFAULT_MAX_BATCH_PIXELS
                 ) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """``(sources, RGB arrays)`` of at most ``batch_size`` readable images at a time, pulled lazily from
    :func:`iter_images`; ``on_error="skip"`` appends ``(source, reason)`` of unreadable ones to ``skipped``
    (folder entries that cannot be listed go there too).

    Each image's size is read from its header before it is decoded: a batch ends early rather than hold more than
    ``max_batch_pixels`` decoded pixels, and an image larger than the whole budget is refused like an unreadable
    one (:class:`~vision.data.io.ImageTooLargeError` naming it: skipped, or raised with ``on_error="raise"``).
    """
    from vision.data.io import ImageLoadError, ImageTooLargeError

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    budget = check_max_batch_pixels(max_batch_pixels)
    with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="vision-decode") as pool:
        sources, arrays, held = [], [], 0
        pending: list[tuple[str, Any, int]] = []  # passed the header checks; decoded together, in parallel

        def decode_pending() -> None:
            nonlocal held
            decoded = pool.map(_decoded, [image for _, image, _ in pending]) if len(pending) > 1 else \
                [_decoded(pending[0][1])]
            for (source, _, pixels), array in zip(pending, decoded):
                if isinstance(array, ImageLoadError):
                    _refused(source, array, on_error, skipped)
                    held -= pixels
                else:
                    sources.append(source)
                    arrays.append(array)
            pending.clear()

        for source, image in iter_images(images, skipped=skipped):
            try:
                pixels = image_pixels(image)
                if budget is not None and pixels > budget:
                    raise ImageTooLargeError(source, f"refused: {pixels} pixels exceeds the {budget}-pixel batch "
                                                     "budget (max_batch_pixels); raise it (--max-batch-pixels) to "
                                                     "read this image")
            except ImageLoadError as e:
                _refused(source, e, on_error, skipped)
                continue
            if (arrays or pending) and budget is not None and held + pixels > budget:  # would pass it: end here
                decode_pending()
                if arrays:
                    yield sources, arrays
                sources, arrays, held = [], [], 0
            pending.append((source, image, pixels))
            held += pixels
            if len(arrays) + len(pending) == batch_size:
                decode_pending()  # an unreadable one leaves room: the batch fills up from the next images
            if len(arrays) == batch_size:  # yield at once: the next image is not pulled until this batch has run
                yield sources, arrays
                sources, arrays, held = [], [], 0
        if pending:
            decode_pending()
        if arrays:
            yield sources, arrays


def _decoded(image):
    """``to_rgb_array(image)``, or the :class:`~vision.data.io.ImageLoadError` it raised (decoded in a pool, the
    errors are reported in input order by the caller)."""
    from vision.data.io import ImageLoadError

    try:
        return to_rgb_array(image)
    except ImageLoadError as e:
        return e


def _refused(source: str, error, on_error: str, skipped: list | None) -> None:
    """An image that cannot go into a batch: raised with ``on_error="raise"``, else noted in ``skipped``."""
    if on_error == "raise":
        raise error
    if skipped is not None:
        skipped.append((source, error.reason))


def iter_images(images, skipped: list | None = None) -> Iterator[tuple[str, Any]]:
    """``(source, image)`` pairs from a path, a folder (recursive), a glob, an in-memory image (PIL, numpy HWC,
    CHW tensor) or any iterable of those; lazily, so a generator of paths streams. Folder entries that cannot be
    listed go to ``skipped`` as ``(path, reason)`` (:func:`vision.data.io.list_images`)."""
    from PIL import Image

    if isinstance(images, (str, os.PathLike)):
        text = str(images)
        if not text.strip():  # Path("") is the current folder, which nobody means
            raise FileNotFoundError("an empty path is not an image file or folder; give a path")
        path = Path(text)
        if path.is_dir():
            from vision.data.io import collect_images

            # an empty folder is an error, not 0 results
            yield from ((str(p), p) for p in collect_images([path], skipped=skipped))
        elif path.is_file():
            yield text, path
        elif _glob.has_magic(text):
            matches = sorted(_glob.glob(text, recursive=True))
            if not matches:
                raise FileNotFoundError(f"no file matches {text!r}")
            yield from ((m, Path(m)) for m in matches if Path(m).is_file())
        else:
            raise FileNotFoundError(f"{text}: no such image file or folder")
        return
    if isinstance(images, (Image.Image, np.ndarray, torch.Tensor)):
        yield "<input 0>", images
        return
    for i, item in enumerate(images):
        if isinstance(item, (str, os.PathLike)):
            yield str(item), item
        else:
            yield f"<input {i}>", item


def predictor(name_or_path: str | os.PathLike, backend: str = "auto", device: str | torch.device | None = None,
              half: bool = False, output: str | None = None, export_dir: str | os.PathLike | None = None,
              zoo_dir: str | os.PathLike | None = None, precision: str = "fp32", threads: int | None = None,
              spin: bool | int = SPIN_US, workers: int = 1, **head_kwargs) -> Predictor:
    """A :class:`Predictor` for a zoo name, a weights file (``.safetensors``/``.ckpt``), an ``.onnx`` export or
    a TensorRT ``.plan``.

    ``backend``: ``"auto"`` picks by file suffix; for a zoo name, the fastest fresh export of ``output`` in
    ``export_dir`` (default :func:`default_export_dir`: ``<name>.<output>.plan`` when TensorRT and a GPU are here,
    then ``<name>.<output>.int8.onnx`` where it runs as measured (a CPU with VNNI or AMX-INT8, or an AVX2 CPU and
    an export tuned for ``avx2``; never one tuned for TensorRT: :func:`vision.export.quantize.int8_cpu_warning`),
    then ``<name>.<output>.onnx``; the one picked is named once on stderr), else torch. ``device``: CUDA when
    available. ``half``: fp16 on CUDA (torch runtime). ``precision="bf16"``: bfloat16 autocast on the torch
    runtime (:class:`TorchRuntime`; ``backend="auto"`` then means torch). ``output``: the export output kind
    (default: the task's, e.g. ``logits``; ``"features"`` gives a classifier's pooled embeddings).
    ``max_batch_pixels``: the decoded pixels one batch may hold (:class:`Predictor`). ``threads``, ``spin``: ONNX
    Runtime's intra-op threads and how long they spin-wait for work (:func:`ort_session_options`), when the source
    runs on it (:class:`OnnxRuntime`; the torch and TensorRT runtimes do not take them: torch's thread count is
    process-wide, ``torch.set_num_threads``). ``workers``: batches run at once on the ONNX Runtime session
    (:class:`Predictor`), each on ``threads`` threads (default: the cores shared out, at least one each).
    ``head_kwargs`` go to the task head (``topk``; ``conf``, ``iou``, ``max_det``).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    suffix = Path(str(name_or_path)).suffix.lower()
    if precision != "fp32" and backend == "auto" and suffix not in SUFFIX_BACKENDS:
        backend = "torch"  # a precision of the torch runtime: an export in the export folder is not what was asked
    if precision != "fp32" and backend != "torch":
        raise ValueError(f"precision {precision!r} is a torch runtime precision; {name_or_path} runs on "
                         f"{SUFFIX_BACKENDS.get(suffix, backend)} (give a zoo name or weights file)")
    if backend == "auto":
        name_or_path, backend = _auto_source(name_or_path, output, Path(export_dir or default_export_dir()), zoo_dir,
                                             torch.device(device) if device is not None else default_device())
        suffix = Path(str(name_or_path)).suffix.lower()
    workers = check_workers(workers, backend)   # before any model loads
    if backend != "torch" and SUFFIX_BACKENDS.get(suffix) != backend:
        wanted = [s for s, b in SUFFIX_BACKENDS.items() if b == backend]
        raise ValueError(f"backend {backend!r} runs {'/'.join(wanted)} files, got {name_or_path!r}; export one with "
                         f"'vision export --model MODEL --format {_EXPORT_FORMAT.get(backend, 'onnx')}'")
    if backend == "torch":
        if suffix in SUFFIX_BACKENDS:
            raise ValueError(f"{name_or_path}: an exported file runs with backend={SUFFIX_BACKENDS[suffix]!r} "
                             "(or 'auto')")
        from vision.models.outputs import default_output
        from vision.zoo import ZooError, load_model

        model = load_model(name_or_path, zoo_dir=zoo_dir)
        runtime = TorchRuntime(model, output or default_output(model.card, ZooError), device, half, precision)
    else:
        if threads is None and workers > 1:
            threads = max(1, available_cores() // workers)   # the workers share the cores out
        runtime = (OnnxRuntime(name_or_path, device, threads, spin) if backend == "onnxruntime"
                   else TensorRTRuntime(name_or_path, device))
        if output and output != runtime.output:
            raise ValueError(f"{name_or_path}: this export outputs {runtime.output!r}, not {output!r}; export it "
                             f"with --output {output}")
    return Predictor(runtime, workers=workers, **head_kwargs)


def _auto_source(name_or_path, output: str | None, export_dir: Path, zoo_dir,
                 device: torch.device | None = None) -> tuple[Any, str]:
    suffix = Path(str(name_or_path)).suffix.lower()
    if suffix in SUFFIX_BACKENDS:
        return name_or_path, SUFFIX_BACKENDS[suffix]
    if Path(str(name_or_path)).exists():
        return name_or_path, "torch"
    from vision.models.outputs import default_output
    from vision.zoo import find_card

    found = find_card(str(name_or_path), zoo_dir)
    if found is None:
        return name_or_path, "torch"  # load_model gives the did-you-mean error
    card = found[0]
    stem = export_dir / f"{card.name}.{output or default_output(card)}"
    plan, int8, onnx_file = Path(f"{stem}.plan"), Path(f"{stem}.int8.onnx"), Path(f"{stem}.onnx")
    if plan.is_file() and torch.cuda.is_available() and _export_matches(plan, card, "tensorrt"):
        return _picked(card.name, plan, "tensorrt")
    if (int8.is_file() and (device is None or device.type == "cpu") and _export_matches(int8, card, "onnxruntime")
            and _int8_runs_here(int8)):
        return _picked(card.name, int8, "onnxruntime")
    if onnx_file.is_file() and _export_matches(onnx_file, card, "onnxruntime"):
        return _picked(card.name, onnx_file, "onnxruntime")
    return name_or_path, "torch"


def _int8_runs_here(path: Path) -> bool:
    """Whether an INT8 export runs here as it was measured: this CPU has VNNI or AMX-INT8, or AVX2 and the export
    is tuned for ``avx2``, and it was not tuned for TensorRT (otherwise the fp32 export serves)."""
    from vision.export.quantize import int8_cpu_warning, read_calibration_record

    record = read_calibration_record(path)
    return record is not None and record.get("tuned_for") != "tensorrt" and int8_cpu_warning(record) is None


def _picked(name: str, path: Path, backend: str) -> tuple[Path, str]:
    """Say on stderr, once per file and process, which export ``backend="auto"`` serves a zoo name from: a
    faster runtime taken behind the caller's back should be visible, not a surprise."""
    key = str(path.resolve())
    if key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        print(f"vision: {name}: using the export {path} ({backend}); backend='torch' runs the zoo weights",
              file=sys.stderr)
    return path, backend


def _export_matches(path: Path, card, backend: str) -> bool:
    """Whether an export found beside the zoo can serve this zoo model: made from it (sha256 in its card) and
    runnable here. An export whose bytes differ from what its export recorded raises
    (:class:`~vision.export.ArtifactIntegrityError`): a tampered file is never served, nor hidden by a fallback."""
    from vision.export import ArtifactIntegrityError, verify_artifact

    verify_artifact(path)
    if backend == "onnxruntime":
        from vision.export.onnx import read_onnx_metadata

        return read_onnx_metadata(path)[0].sha256 == card.sha256
    try:
        import tensorrt as trt

        from vision.export.tensorrt import check_engine_sidecar, current_gpu, read_sidecar

        sidecar = read_sidecar(path)
        name, cc = current_gpu()
        check_engine_sidecar(path, sidecar, tensorrt_version=trt.__version__, compute_capability=cc, gpu_name=name)
    except ArtifactIntegrityError:
        raise
    except Exception as e:  # no TensorRT, another TensorRT version or GPU: use the next backend, and say why
        warnings.warn(f"{path}: not used ({e})", stacklevel=4)
        return False
    return sidecar.get("model_sha256") == card.sha256


def set_detector_conf(detector, conf: float) -> None:
    """Make ``detector`` keep boxes down to ``conf`` (a predictor's head, or a detector's own ``conf``)."""
    head = getattr(detector, "head", None)
    (head if head is not None and hasattr(head, "conf") else detector).conf = float(conf)


def detector_conf(detector) -> float | None:
    """The confidence a detector keeps boxes at (a :class:`~vision.predictors.Predictor`'s head, a
    :class:`~vision.inference.LogoDetector`'s ``conf``), or ``None`` when it does not say."""
    head = getattr(detector, "head", None)
    conf = getattr(head, "conf", None) if head is not None else getattr(detector, "conf", None)
    return float(conf) if isinstance(conf, (int, float)) else None
