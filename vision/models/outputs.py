"""Wrappers that reduce a zoo network to one output kind (the task table's ``outputs``), shared by export, the
predictor's torch runtime and benchmarks, so every runtime computes the same thing.

:func:`default_output` and :func:`output_network` read the task table; they live here, not in the exporter, so
the torch runtime needs no export code (``vision.export.onnx`` re-exports them raising its ``ExportError``).

Example::

    from vision.models.outputs import default_output, output_network
    network = output_network(model, default_output(model.card))   # what vision.predictor runs with torch
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import torch
from torch import nn

import vision.tasks  # its TASKS is read at each call, never copied: a task registered later is seen


def default_output(card, error: type[Exception] = ValueError) -> str:
    """The output kind of ``card``'s task when none is asked for (``logits``, ``predictions``, ...): the first of
    the task table's ``outputs``. An unknown task raises ``error`` naming the known ones."""
    return _task(card, error).default_output


def output_network(model: nn.Module, output: str, error: type[Exception] = ValueError) -> nn.Module:
    """``model`` (a zoo model with ``.card``) reduced to one output kind of its task (the task table's
    ``outputs``): what every runtime computes for that output. A model without a card, or an output its task does
    not have, raises ``error`` saying what to do (callers pass their layer's error type: the predictor
    ``ZooError``, the exporter ``ExportError``)."""
    card = getattr(model, "card", None)
    if not isinstance(getattr(card, "task", None), str):  # duck-typed: this layer sits below vision.zoo
        raise error(f"cannot run or export a {type(model).__name__} without a model card (.card); load it with "
                    "vision.load_model so the card travels with it")
    task = _task(card, error)
    if output not in task.outputs:
        raise error(f"{card.name}: unknown output {output!r} for task {card.task!r}; choose one of "
                    f"{sorted(task.outputs)}")
    return task.output_wrapper(output)(model)


def identity(model: nn.Module) -> nn.Module:
    """The network's own ``forward`` is the output (a classifier's logits, an embedder's embedding)."""
    return model


class DetectorPredictions(nn.Module):
    """A YOLO ``DetectionModel`` reduced to its decoded predictions ``(N, 4 + classes, anchors)``: NMS stays
    outside the graph (ultralytics' eval forward returns ``(predictions, raw feature maps)``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, (tuple, list)) else out

    @contextlib.contextmanager
    def for_export(self) -> Iterator[DetectorPredictions]:
        """While tracing for export: the box decode's expectation over the DFL bins written as the graph runs it
        fastest, the same values (to 5e-6 px).

        ultralytics' ``DFL`` takes the softmax over the bins on a transposed tensor (softmax along axis 1 of
        ``(N, 16, 4, anchors)``) and the expectation as a 1x1 convolution. onnxruntime runs that softmax through
        transposes: 8-17% of the network's node time at 320 px (more in the INT8 graph, which keeps the decode in
        fp32). Written as max, exp, weighted sum and sum along the bin axis it is 2-3%, the network 1.07-1.19x
        faster (benchmarks/detector_decode.py, benchmarks/results/export.md). The torch model is untouched outside
        this block."""
        dfls = [m for m in self.modules() if type(m).__name__ == "DFL" and hasattr(m, "conv") and hasattr(m, "c1")]
        saved = [m.__dict__.get("forward") for m in dfls]
        for m in dfls:
            m.forward = types.MethodType(_dfl_expectation, m)
        try:
            yield self
        finally:
            for m, forward in zip(dfls, saved):
                if forward is None:
                    del m.forward
                else:
                    m.forward = forward


def _dfl_expectation(dfl: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ultralytics ``DFL.forward`` (``(N, 4 * bins, anchors)`` -> the expected bin per box side, ``(N, 4,
    anchors)``) as a max-shifted exp, its bin-weighted sum and its sum along the bin axis."""
    n, _, anchors = x.shape
    x = x.view(n, 4, dfl.c1, anchors)
    e = (x - x.amax(2, keepdim=True)).exp()
    return (e * dfl.conv.weight.view(1, 1, dfl.c1, 1)).sum(2) / e.sum(2)


def _task(card, error: type[Exception]) -> vision.tasks.Task:
    if card.task not in vision.tasks.TASKS:
        raise error(f"{card.name}: task {card.task!r} is not in the task table; known tasks: "
                    f"{sorted(vision.tasks.TASKS)}")
    return vision.tasks.TASKS[card.task]
