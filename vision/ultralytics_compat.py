"""The one module that imports ultralytics (pinned: ``ultralytics-opencv-headless==8.4.190``, AGPL-3.0).

Nothing is imported until a function here is called, so ``import vision`` never loads ultralytics.
Before the first import we set ``YOLO_OFFLINE=true`` (no DNS probe, no asset/font downloads),
``YOLO_AUTOINSTALL=false`` (no pip at run time) and, unless the user set it, ``YOLO_CONFIG_DIR``
to ``$VISION_CACHE_DIR/ultralytics`` or ``~/.cache/vision/ultralytics`` (ultralytics writes
``Ultralytics/settings.json`` there instead of ``~/.config/Ultralytics``). These three variables
stay set: ultralytics reads them again at run time.

What importing ultralytics 8.4.190 changes process-wide, and what we do about it:

* ``torch.save`` replaced by a retrying wrapper -> restored.
* ``PIL.Image.open`` replaced by a wrapper that, on an unidentified file, tries to pip-install and
  register a HEIF plugin (``utils/patches.py``) -> restored (it turned "not an image" errors into
  ``ModuleNotFoundError: pi_heif`` for every later PIL user in the process).
* ``torch.set_printoptions(linewidth=320, ...)``, ``np.set_printoptions(linewidth=320, formatter=...)`` -> restored.
* ``cv2.setNumThreads(0)`` -> restored to the previous count.
* six ``warnings.filterwarnings("ignore", ...)`` entries (timm FutureWarning, TracerWarning, ...) -> restored.
* environment: ``OMP_NUM_THREADS=1`` (if unset), ``NUMEXPR_MAX_THREADS``, ``TF_CPP_MIN_LOG_LEVEL``,
  ``TORCH_CPP_LOG_LEVEL``, ``KINETO_LOG_LEVEL`` -> restored (removed when they were unset).
* safe-load allow-list (``torch.serialization.add_safe_globals``) grown by a restricted ``.pt`` load
  -> restored after :func:`load_ultralytics_pt`.
* Not undone: the ``ultralytics`` logger (own stdout handler, ``propagate=False``), ``matplotlib.pyplot``
  imported (backend auto-selected, no ``matplotlib.use``), and the Windows-only ``cv2.imread`` patches.

Not reached by our calls: ``check_font`` (Arial.ttf download, from ultralytics plotting and from
``check_det_dataset``, which is why ``vision.data.detection`` reads ``data.yaml`` itself).
``attempt_download_asset`` is replaced during :func:`load_ultralytics_pt` by one that returns the local file
and never downloads. With
``YOLO_OFFLINE=true``, ``is_online()`` returns False without a DNS lookup, so any download fails fast.
Importing also reads the git metadata of the working folder (``GitRepo``) and makes matplotlib build its
font cache under ``MPLCONFIGDIR``/``~/.cache/matplotlib`` on first use, as any matplotlib import does.

What ultralytics would execute from files, and what we let through:

* Model YAMLs: ``parse_model`` ``eval()``s ``activation``, looks module names up in ``nn/tasks.py``'s
  ``globals()`` (any function there, e.g. a pickle loader) and ``literal_eval``s/``locals()``-resolves string
  arguments, and ``yaml_model_load`` opens any path. :func:`model_yaml` resolves only bare names of YAMLs shipped
  in ``ultralytics/cfg/models``; every record (also the ``model.yaml`` inside a ``.pt``) must pass
  :func:`check_architecture`, and :func:`detection_model` parses it on ultralytics' no-eval path.
* Label caches: ``YOLODataset`` reads ``labels/<split>.cache`` with ``np.load(allow_pickle=True)`` and writes
  one beside the user's labels. :func:`build_yolo_dataset` uses a subclass that re-reads the ``.txt`` labels
  every time, never loads a ``.cache`` (it warns that one was ignored) and never writes one.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

ULTRALYTICS_VERSION = "8.4.190"


class MissingExtraError(ImportError):
    """An optional extra that a feature needs is not installed; the message gives the pip command."""
_THEIR_ENV = ("OMP_NUM_THREADS", "NUMEXPR_MAX_THREADS", "TF_CPP_MIN_LOG_LEVEL", "TORCH_CPP_LOG_LEVEL",
              "KINETO_LOG_LEVEL")


def config_dir() -> Path:
    """Where ultralytics keeps its settings: ``$YOLO_CONFIG_DIR`` if the user set it, else our cache folder."""
    if os.environ.get("YOLO_CONFIG_DIR"):
        return Path(os.environ["YOLO_CONFIG_DIR"]).expanduser()
    base = os.environ.get("VISION_CACHE_DIR")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "vision") / "ultralytics"


@contextlib.contextmanager
def _preserving_global_state():
    """Undo what an ultralytics import (or restricted load) changes in this process."""
    import cv2
    import numpy as np
    import torch
    from torch._tensor_str import PRINT_OPTS

    env = {k: os.environ.get(k) for k in _THEIR_ENV}
    filters = list(warnings.filters)
    torch_save, cv2_threads, np_print = torch.save, cv2.getNumThreads(), np.get_printoptions()
    torch_print = {k: getattr(PRINT_OPTS, k) for k in ("precision", "threshold", "edgeitems", "linewidth",
                                                       "sci_mode")}
    safe_globals = list(torch.serialization.get_safe_globals())
    from PIL import Image

    pil_open = Image.open
    try:
        yield
    finally:
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        warnings.filters[:] = filters
        getattr(warnings, "_filters_mutated", lambda: None)()  # drop cached verdicts of the removed filters
        torch.save = torch_save
        Image.open = pil_open
        cv2.setNumThreads(cv2_threads)
        np.set_printoptions(**np_print)
        torch.set_printoptions(**torch_print)
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(safe_globals)


def _import(name: str, attr: str | None = None) -> Any:
    """Module ``name`` (or its ``attr``) of ultralytics, imported offline and without lasting global changes."""
    if name in sys.modules and (attr is None or attr in vars(sys.modules[name])):
        return getattr(sys.modules[name], attr) if attr else sys.modules[name]
    os.environ["YOLO_OFFLINE"] = "true"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    if not os.environ.get("YOLO_CONFIG_DIR"):
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir())
    config_dir().mkdir(parents=True, exist_ok=True)
    import importlib

    with _preserving_global_state():
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != "ultralytics":
                raise
            raise MissingExtraError("logo detection needs ultralytics (AGPL-3.0), an optional extra: "
                                    "pip install 'vision-zoo[detection]'") from None
        value = getattr(module, attr) if attr else module  # some attributes import lazily (ultralytics.models)
    version = sys.modules["ultralytics"].__version__
    if version != ULTRALYTICS_VERSION:
        warnings.warn(f"vision is tested with ultralytics {ULTRALYTICS_VERSION}, found {version}", stacklevel=3)
    return value


# --- the pieces of ultralytics we use, each imported on first call
def detection_model_class():
    """``ultralytics.nn.tasks.DetectionModel``."""
    return _import("ultralytics.nn.tasks", "DetectionModel")


class ArchitectureError(ValueError):
    """A detection architecture that is not a shipped ultralytics YAML, or a record outside the schema."""


# The detection architecture schema: what the detect YAMLs shipped with ultralytics 8.4.190 use, nothing more.
# parse_model turns a module name into `globals()[name]` of nn/tasks.py (any function there, e.g. a pickle
# loader), `nn.X` or `torchvision.ops.X`; only these names reach it.
DETECTION_MODULES = frozenset({
    "A2C2f", "ADown", "AConv", "Bottleneck", "C2", "C2PSA", "C2f", "C2fCIB", "C3", "C3Ghost", "C3k2", "CBFuse",
    "CBLinear", "Concat", "Conv", "ELAN1", "GhostConv", "PSA", "RepNCSPELAN4", "SCDown", "SPP", "SPPELAN", "SPPF",
    "nn.ConvTranspose2d", "nn.Identity", "nn.MaxPool2d", "nn.Upsample", "nn.ZeroPad2d", "Detect", "v10Detect"})
DETECTION_HEADS = frozenset({"Detect", "v10Detect"})
# string arguments parse_model turns into a value (the class count, None) or keeps (an upsampling mode)
LITERAL_STRING_ARGS = frozenset({"nc", "None", "nearest"})
ACTIVATIONS = frozenset({f"{prefix}{act}" for prefix in ("nn.", "torch.nn.")
                         for act in ("SiLU()", "ReLU()", "ReLU6()", "LeakyReLU(0.1)", "Hardswish()", "GELU()",
                                     "Mish()")})
_MAX_INT = 1 << 16  # channels, kernel sizes, class counts: far above any real network, far below a memory bomb
_MAX_LAYERS = 256
_ARCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\.yaml")


def _is_int(v: Any, low: int = -_MAX_INT, high: int = _MAX_INT) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _is_number(v: Any, low: float = -_MAX_INT, high: float = _MAX_INT) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and low <= v <= high)


def _is_scales(v: Any) -> bool:
    return isinstance(v, dict) and 0 < len(v) <= 8 and all(
        k in ("n", "s", "m", "l", "x") and isinstance(t, list) and len(t) == 3
        and all(_is_number(x, 1e-3, _MAX_INT) for x in t) for k, t in v.items())


# top-level key -> (check, what it must be); parse_model reads these and nothing else of a detect record
_ARCH_FIELDS = {
    "nc": (lambda v: _is_int(v, 1, _MAX_INT), "an integer class count"),
    "backbone": (lambda v: isinstance(v, list) and 0 < len(v) <= _MAX_LAYERS, "a non-empty list of layer rows"),
    "head": (lambda v: isinstance(v, list) and 0 < len(v) <= _MAX_LAYERS, "a non-empty list of layer rows"),
    "scales": (_is_scales, "an object mapping n/s/m/l/x to [depth, width, max_channels] numbers"),
    "scale": (lambda v: v in ("", "n", "s", "m", "l", "x"), "one of '', n, s, m, l, x"),
    "activation": (lambda v: v in ACTIVATIONS, f"absent or one of {sorted(ACTIVATIONS)}"),
    "depth_multiple": (lambda v: _is_number(v, 1e-3, 16), "a number in (0, 16]"),
    "width_multiple": (lambda v: _is_number(v, 1e-3, 16), "a number in (0, 16]"),
    "reg_max": (lambda v: _is_int(v, 1, 64), "an integer in [1, 64]"),
    "end2end": (lambda v: isinstance(v, bool), "true or false"),
    "inplace": (lambda v: isinstance(v, bool), "true or false"),
    "channels": (lambda v: _is_int(v, 1, 16), "an integer in [1, 16]"),
    "ch": (lambda v: _is_int(v, 1, 16), "an integer in [1, 16]"),  # older ultralytics .pt files
    "yaml_file": (lambda v: isinstance(v, str) and len(v) <= 1000, "a string (informational, never opened)"),
}


def _is_literal_arg(v: Any, depth: int = 0) -> bool:
    if v is None or isinstance(v, bool) or _is_number(v):
        return True
    if isinstance(v, str):
        return v in LITERAL_STRING_ARGS
    return isinstance(v, list) and depth < 2 and len(v) <= 16 and all(_is_literal_arg(x, depth + 1) for x in v)


def _shown(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def check_architecture(record: Any, where: str) -> dict:
    """``record`` if it is a detection architecture ultralytics can build without running code from it.

    Rows are ``[from, repeats, module, args]``: ``from`` an earlier layer index (or a list of them), ``repeats``
    an integer, ``module`` from :data:`DETECTION_MODULES` (the last row a :data:`DETECTION_HEADS` head),
    ``args`` numbers, booleans, null, the strings in :data:`LITERAL_STRING_ARGS` or short lists of those;
    ``activation`` absent or one of :data:`ACTIVATIONS`. Raises :class:`ArchitectureError` naming ``where``,
    the field and the value otherwise.
    """
    def refuse(field: str, value: Any, expected: str):
        raise ArchitectureError(f"{where}: field {field!r} is {_shown(value)}; it must be {expected}")

    if not isinstance(record, dict):
        refuse("<record>", record, "an object with 'nc', 'backbone' and 'head'")
    for key, value in record.items():
        if key not in _ARCH_FIELDS:
            refuse(str(key), value, f"one of the known keys {sorted(_ARCH_FIELDS)}")
        ok, expected = _ARCH_FIELDS[key]
        if not ok(value):
            refuse(key, value, expected)
    for key in ("nc", "backbone", "head"):
        if key not in record:
            refuse(key, None, _ARCH_FIELDS[key][1])
    if record.get("scales") and record.get("scale") and record["scale"] not in record["scales"]:
        refuse("scale", record["scale"], f"one of the record's scales {sorted(record['scales'])}")
    rows = [(f"backbone[{i}]", row) for i, row in enumerate(record["backbone"])]
    rows += [(f"head[{i}]", row) for i, row in enumerate(record["head"])]
    if len(rows) > _MAX_LAYERS:
        refuse("head", f"{len(rows)} layers", f"at most {_MAX_LAYERS} layers")
    for index, (field, row) in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 4):
            refuse(field, row, "a row [from, repeats, module, args]")
        source, repeats, module, args = row
        sources = source if isinstance(source, list) else [source]
        earlier = max(index, 1)  # layer 0 reads the input (-1); layer i any of 0..i-1, or -1..-i back
        if not sources or len(sources) > 16 or not all(_is_int(s, -earlier, earlier - 1) for s in sources):
            refuse(f"{field}.from", source,
                   f"an index of an earlier layer (-{earlier}..{earlier - 1}) or a list of them")
        if not _is_int(repeats, 1, 64):
            refuse(f"{field}.repeats", repeats, "an integer in [1, 64]")
        last = index == len(rows) - 1
        allowed = DETECTION_HEADS if last else DETECTION_MODULES - DETECTION_HEADS
        if module not in allowed:
            what = "a detection head" if last else "a known detection layer"
            refuse(f"{field}.module", module, f"{what}, one of {sorted(allowed)}")
        if not isinstance(args, list) or len(args) > 16:
            refuse(f"{field}.args", args, "a list of at most 16 arguments")
        for j, arg in enumerate(args):
            if not _is_literal_arg(arg):
                refuse(f"{field}.args[{j}]", arg, f"a number, true/false, null, one of {sorted(LITERAL_STRING_ARGS)} "
                       "or a short list of those")
    return record


def model_yaml(name: str) -> dict:
    """The checked record of an architecture YAML shipped with ultralytics, by bare name (``yolo11n.yaml``).

    The scale letter picks the size (``yolov8s.yaml`` reads ``v8/yolov8.yaml`` at scale ``s``). Paths, names
    with ``/`` or ``..`` and YAMLs from anywhere else are refused with :class:`ArchitectureError`.
    """
    if not isinstance(name, str) or not _ARCH_NAME.fullmatch(name) or ".." in name:
        raise ArchitectureError(f"architecture {_shown(name)}: give the bare name of a YAML shipped with ultralytics "
                                "(e.g. 'yolo11n.yaml'), not a path; model YAMLs from elsewhere can run code")
    tasks = _import("ultralytics.nn.tasks")
    root = Path(sys.modules["ultralytics"].__file__).resolve().parent / "cfg" / "models"
    shipped = {p.name: p for p in sorted(root.rglob("*.yaml"))}
    stem = name[: -len(".yaml")]
    unscaled = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", stem) + ".yaml"  # yolov8n.yaml -> yolov8.yaml
    path = shipped.get(name) or shipped.get(unscaled)
    if path is None or not path.resolve().is_relative_to(root):
        raise ArchitectureError(f"architecture {name!r} is not a model YAML shipped with ultralytics "
                                f"{ULTRALYTICS_VERSION} (e.g. yolo11n.yaml, yolov8s.yaml, yolo26n.yaml)")
    import yaml as pyyaml

    record = pyyaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(record, dict):
        record.update(scale=tasks.guess_model_scale(name), yaml_file=name)
    return check_architecture(record, where=f"architecture {name!r} ({path})")


@contextlib.contextmanager
def _no_eval_parsing(tasks):
    # parse_model's restricted path (8.4.190: _SafeLoad) resolves `activation` without eval() and refuses module
    # names that are not nn.Module classes: a second lock behind check_architecture, per thread
    flag = getattr(getattr(tasks, "_SafeLoad", None), "_local", None)
    if flag is None:
        yield
        return
    previous = getattr(flag, "active", False)
    flag.active = True
    try:
        yield
    finally:
        flag.active = previous


def detection_model(record: dict, num_classes: int):
    """A ``DetectionModel`` built from an architecture record that passes :func:`check_architecture`."""
    record = check_architecture(copy.deepcopy({**record, "nc": num_classes}), where="detection architecture")
    tasks = _import("ultralytics.nn.tasks")
    with _no_eval_parsing(tasks):
        return tasks.DetectionModel(record, ch=3, nc=num_classes, verbose=False)


def detection_loss(model):
    """``v8DetectionLoss(model)`` (needs ``model.args`` with ``box``/``cls``/``dfl``; built on ``model``'s device)."""
    return _import("ultralytics.utils.loss", "v8DetectionLoss")(model)


def image_suffixes() -> frozenset[str]:
    """The image file suffixes ultralytics reads (lower case, no dot)."""
    return frozenset(_import("ultralytics.data.utils", "IMG_FORMATS"))


def build_yolo_dataset(hyp, img_path: str, batch: int, data: dict, mode: str = "train", stride: int = 32,
                       fraction: float = 1.0):
    """A ``YOLODataset`` with ultralytics' augmentation (as ``ultralytics.data.build.build_yolo_dataset`` for
    detection) whose labels are read from the ``.txt`` files: no ``.cache`` pickle is loaded or written."""
    return _label_scanning_dataset_class()(
        img_path=img_path, imgsz=hyp.imgsz, batch_size=batch, augment=mode == "train", hyp=hyp, rect=bool(hyp.rect),
        cache=hyp.cache or None, single_cls=hyp.single_cls or False, stride=stride,
        pad=0.0 if mode == "train" else 0.5, prefix=_import("ultralytics.utils", "colorstr")(f"{mode}: "),
        task=hyp.task, classes=hyp.classes, data=data, fraction=fraction)


@functools.cache  # one class per process, so pickle (DataLoader workers under spawn) finds the same object
def _label_scanning_dataset_class():
    from multiprocessing.pool import ThreadPool

    dataset_module = _import("ultralytics.data.dataset")

    class LabelScanningYOLODataset(dataset_module.YOLODataset):
        """``YOLODataset`` that never unpickles nor writes ``labels/<split>.cache``: it scans the labels each time
        (a few seconds for thousands of images). A ``.cache`` is a pickle, so one in a dataset folder could run
        code when read; a foreign one is ignored with a warning."""

        def _load_or_scan_cache(self, cache_path: Path, cache_hash: str) -> tuple[dict, bool]:
            if Path(cache_path).exists():
                warnings.warn(f"{cache_path}: ignored this ultralytics label cache (a pickle, never loaded by vision); "
                              "labels are read from the .txt files. Delete it to silence this warning.", stacklevel=2)
            return self.cache_labels(cache_path), False

        def cache_labels(self, path: Path = Path("./labels.cache")) -> dict:
            # ultralytics' scan (same hooks and counters) without save_dataset_cache_file
            labels, msgs, counts = [], [], [0, 0, 0, 0]  # missing, found, empty, corrupt
            func, iterable = self.verify_args()
            with ThreadPool(min(8, os.cpu_count() or 1)) as pool:
                for result in pool.imap(func=func, iterable=iterable):
                    label, *increments, msg = self.result_to_label(result)
                    counts = [c + i for c, i in zip(counts, increments)]
                    if label is not None:
                        labels.append(label)
                    if msg:
                        msgs.append(msg)
            missing, found, empty, corrupt = counts
            if msgs:  # corrupt images and fixed labels, as ultralytics reports them
                _import("ultralytics.utils", "LOGGER").info("\n".join(msgs))
            if found == 0 and labels and self.augment:
                raise ValueError(f"{self.prefix}No labels found in {Path(path).parent / Path(path).stem}.")
            return {"labels": labels, "hash": self.get_cache_hash(), "msgs": msgs,
                    "version": dataset_module.DATASET_CACHE_VERSION,
                    "results": (found, missing, empty, corrupt, len(self.im_files))}

    LabelScanningYOLODataset.__module__ = __name__
    LabelScanningYOLODataset.__qualname__ = LabelScanningYOLODataset.__name__
    return LabelScanningYOLODataset


def __getattr__(name: str):
    if name == "LabelScanningYOLODataset":  # for pickle: the class is built on first use
        return _label_scanning_dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_hyperparameters():
    """ultralytics' ``default.yaml`` as an ``IterableSimpleNamespace`` (a fresh copy)."""
    utils = _import("ultralytics.utils")
    return utils.IterableSimpleNamespace(**utils.DEFAULT_CFG_DICT)


def letterbox(new_shape: int | tuple[int, int], auto: bool = False, scaleup: bool = True, stride: int = 32):
    """``ultralytics.data.augment.LetterBox`` (centred padding with value 114)."""
    return _import("ultralytics.data.augment", "LetterBox")(new_shape=new_shape, auto=auto, scaleup=scaleup,
                                                          stride=stride)


def ops():
    """``ultralytics.utils.ops`` (``scale_boxes``, ``xywh2xyxy``, ...)."""
    return _import("ultralytics.utils.ops")


def non_max_suppression(prediction, conf: float, iou: float, max_det: int = 300, agnostic: bool = False):
    """ultralytics NMS: per image an ``(n, 6)`` tensor ``x1, y1, x2, y2, score, class``."""
    return _import("ultralytics.utils.nms", "non_max_suppression")(
        prediction, conf_thres=conf, iou_thres=iou, max_det=max_det, agnostic=agnostic, multi_label=False)


def metrics_module():
    """``ultralytics.utils.metrics`` (``DetMetrics``, ``box_iou``, ``ap_per_class``)."""
    return _import("ultralytics.utils.metrics")


def yolo_class():
    """``ultralytics.YOLO`` (used to check that exported ``.pt`` files load in ultralytics)."""
    return _import("ultralytics.models", "YOLO")


class WeightsFileError(ValueError):
    """An ultralytics ``.pt`` that is missing, unreadable or not a checkpoint of a detection model."""


def load_ultralytics_pt(path: str | os.PathLike):
    """The ``DetectionModel`` inside an ultralytics ``.pt`` file, unpickled with ultralytics' restricted loader.

    ``.pt`` files are pickles; this uses ``weights_only=True`` with ultralytics' allow-list of model
    classes, so a file that needs any other class is refused rather than executed. The architecture record
    the module carries (``model.yaml``) must pass :func:`check_architecture`.

    ultralytics treats a bare name it knows (``yolo11n.pt``) as its own download cache: a corrupt one is deleted
    and downloaded again, and ``yolov5s.pt`` is renamed to ``yolov5su.pt`` first. So the name is resolved here
    to an absolute path, checked to be a readable archive, and ultralytics' downloader is replaced for the call
    by one that returns that path only: a user's file is never deleted, renamed or downloaded.
    """
    import zipfile

    tasks = _import("ultralytics.nn.tasks")
    downloads = _import("ultralytics.utils.downloads")
    given, path = path, Path(path).expanduser().absolute()
    if not path.is_file():  # never let ultralytics treat a missing name as a download request
        raise FileNotFoundError(f"ultralytics weights {given} not found (only local files are loaded)")
    if not zipfile.is_zipfile(path):  # torch.save's format; an empty, truncated or foreign file fails here
        raise WeightsFileError(f"{path}: not a readable ultralytics checkpoint (a .pt is a zip archive; this one is "
                               "empty, truncated or another kind of file); re-export or restore it (it was left "
                               "as it is)")

    def local_only(file, *args, **kwargs):
        if Path(str(file)).absolute() != path:
            raise WeightsFileError(f"{path}: ultralytics asked for {file!r}; vision loads local files only")
        return str(path)

    original = downloads.attempt_download_asset
    with _preserving_global_state():
        downloads.attempt_download_asset = local_only
        try:
            ckpt, _ = tasks.torch_safe_load(str(path), safe_only=True)
        except WeightsFileError:
            raise
        except Exception as e:  # noqa: BLE001 - damaged or foreign bytes surface as zip, pickle, EOF or type errors
            # ultralytics' and torch's own messages point at weights_only=False: never show that advice
            raise WeightsFileError(f"{path}: not a loadable ultralytics checkpoint ({type(e).__name__}); it is "
                                   "damaged, or holds objects outside ultralytics' model classes, which vision "
                                   "does not unpickle; re-export or restore it (it was left as it is)") from None
        finally:
            downloads.attempt_download_asset = original
    if not isinstance(ckpt, dict):
        raise WeightsFileError(f"{path}: holds a {type(ckpt).__name__}, not an ultralytics checkpoint (a dict with "
                               "'model' or 'ema')")
    model = ckpt.get("ema") or ckpt.get("model")
    if model is None:
        raise WeightsFileError(f"{path}: no 'model' or 'ema' entry; not an ultralytics checkpoint")
    if not isinstance(model, tasks.DetectionModel):
        raise ArchitectureError(f"{path}: holds a {type(model).__name__}, not an ultralytics DetectionModel")
    check_architecture(getattr(model, "yaml", None), where=f"{path} model.yaml")
    return model.float()
