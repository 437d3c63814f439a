"""A zoo detector as an ultralytics ``.pt`` (``YOLO(path)`` loads it), with a parity check of the written file.

The file is read back with ultralytics' restricted (``weights_only``) loader and run on the same inputs as
the zoo model; the numbers go to ``<file>.parity.json`` and a file that differs is removed and refused.

Example::

    from vision.export import export
    export(vision.load_model("logo_yolo11n"), "ultralytics", "export/logo_yolo11n.pt")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from vision.export.onnx import (
    ExportError,
    card_of,
    file_digest,
    parity_inputs,
    parity_report_path,
    torch_outputs,
    write_parity_report,
)
from vision.models.outputs import DetectorPredictions

MAX_ABS_DIFF = 1e-4


def export_ultralytics(model: nn.Module, path: str | Path, sample_images=None) -> Path:
    """Write ``model`` (task ``detection``) to ``path`` in ultralytics' checkpoint layout and check it."""
    from vision.models.detector import export_ultralytics_pt

    card = card_of(model)
    if card.task != "detection":
        raise ExportError(f"{card.name}: the ultralytics format holds detectors; this model's task is {card.task!r}")
    if Path(path).suffix != ".pt":  # ultralytics.YOLO() recognises checkpoints by the suffix alone
        raise ExportError(f"{path}: an ultralytics checkpoint must end in .pt (ultralytics.YOLO() loads it by its "
                          "suffix); nothing was written")
    imgsz = card.data_config.input_size
    path = export_ultralytics_pt(model, path, imgsz=imgsz)
    try:
        _check_reload(model, card, path, sample_images)
    except BaseException:
        path.unlink(missing_ok=True)  # a file that failed its check is never left behind, nor its report
        parity_report_path(path).unlink(missing_ok=True)
        raise
    return path


def _check_reload(model: nn.Module, card, path: Path, sample_images) -> None:
    from vision import ultralytics_compat as ulc

    images = parity_inputs(card.data_config, sample_images)
    reference = torch_outputs(model, "predictions", images)  # the raw head the ONNX export is gated on too
    with torch.inference_mode():
        got = DetectorPredictions(ulc.load_ultralytics_pt(path)).eval()(images).numpy()
    diff = float(np.abs(reference - got).max())
    report = {"format": "ultralytics", "model": card.name, "images": len(images), "max_abs_diff": diff,
              "gate": {"max_abs_diff": MAX_ABS_DIFF}, "passed": diff <= MAX_ABS_DIFF, **file_digest(path)}
    write_parity_report(path, report)
    if not report["passed"]:
        raise ExportError(f"{path}: reloaded ultralytics model differs from {card.name} by {diff:.3g} "
                          f"(gate {MAX_ABS_DIFF}); file removed")
