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
``check_det_dataset``, which is why ``vision.data.detection`` reads ``data.yaml`` itself) and
``attempt_download_asset`` (we hand ultralytics only ``.pt`` files that exist locally). With
``YOLO_OFFLINE=true``, ``is_online()`` returns False without a DNS lookup, so any download fails fast.
Importing also reads the git metadata of the working folder (``GitRepo``) and makes matplotlib build its
font cache under ``MPLCONFIGDIR``/``~/.cache/matplotlib`` on first use, as any matplotlib import does.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any

ULTRALYTICS_VERSION = "8.4.190"
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
        module = importlib.import_module(name)
        value = getattr(module, attr) if attr else module  # some attributes import lazily (ultralytics.models)
    version = sys.modules["ultralytics"].__version__
    if version != ULTRALYTICS_VERSION:
        warnings.warn(f"vision is tested with ultralytics {ULTRALYTICS_VERSION}, found {version}", stacklevel=3)
    return value


# --- the pieces of ultralytics we use, each imported on first call
def detection_model_class():
    """``ultralytics.nn.tasks.DetectionModel``."""
    return _import("ultralytics.nn.tasks", "DetectionModel")


def model_yaml(name: str) -> dict:
    """An architecture YAML shipped with ultralytics (``yolo11n.yaml``; the scale letter picks the size) as a dict."""
    return _import("ultralytics.nn.tasks", "yaml_model_load")(name)


def detection_loss(model):
    """``v8DetectionLoss(model)`` (needs ``model.args`` with ``box``/``cls``/``dfl``; built on ``model``'s device)."""
    return _import("ultralytics.utils.loss", "v8DetectionLoss")(model)


def yolo_dataset_class():
    """``ultralytics.data.dataset.YOLODataset``."""
    return _import("ultralytics.data.dataset", "YOLODataset")


def build_yolo_dataset(*args, **kwargs):
    """``ultralytics.data.build.build_yolo_dataset`` (a ``YOLODataset`` with ultralytics' augmentation)."""
    return _import("ultralytics.data.build", "build_yolo_dataset")(*args, **kwargs)


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


def load_ultralytics_pt(path: str | os.PathLike):
    """The ``nn.Module`` inside an ultralytics ``.pt`` file, unpickled with ultralytics' restricted loader.

    ``.pt`` files are pickles; this uses ``weights_only=True`` with ultralytics' allow-list of model
    classes, so a file that needs any other class is refused rather than executed.
    """
    tasks = _import("ultralytics.nn.tasks")
    path = Path(path)
    if not path.is_file():  # never let ultralytics treat a missing name as a download request
        raise FileNotFoundError(f"ultralytics weights {path} not found (only local files are loaded)")
    with _preserving_global_state():
        ckpt, _ = tasks.torch_safe_load(str(path), safe_only=True)
    model = ckpt.get("ema") or ckpt.get("model")
    if model is None:
        raise ValueError(f"{path}: no 'model' or 'ema' entry; not an ultralytics checkpoint")
    return model.float()
