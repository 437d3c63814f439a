"""ONNX export of zoo models with the model card embedded and a torch-vs-onnxruntime parity check.

The graph takes ``images`` (float32 NCHW, already normalised as ``card.preprocessing`` says; the batch axis is
dynamic) and returns one output named after its kind (``logits`` or ``features``). ``metadata_props`` carry the
card JSON (``vision.card``) and the output kind (``vision.output``), so an ``.onnx`` file is self-describing.

Example::

    path = export_onnx(vision.load_model("grocery_resnet10t"), "export/grocery_features.onnx", output="features")
    card, output = read_onnx_metadata(path)
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from vision.fileio import atomic_path, atomic_write_text
from vision.models.classifier import PooledFeatures
from vision.zoo.card import ModelCard

CARD_KEY = "vision.card"
OUTPUT_KEY = "vision.output"
INPUT_NAME = "images"
PARITY_RANDOM_BATCH = 4
MAX_ABS_DIFF = 1e-3
MIN_TOP1_AGREEMENT = 0.99

# task -> output kind -> wrapper giving that output; other tasks (detection, ...) plug in here
OUTPUT_KINDS: dict[str, dict[str, Callable[[nn.Module], nn.Module]]] = {
    "classification": {"logits": lambda model: model, "features": PooledFeatures},
}


class ExportError(RuntimeError):
    """An export that was refused or failed; the message says why (and the parity numbers, if that was it)."""


def export_onnx(model: nn.Module, path: str | Path, *, opset: int = 17, dynamic_batch: bool = True,
                simplify: bool = True, output: str = "logits", sample_images: Sequence | None = None) -> Path:
    """Export a zoo model (one with ``.card``) to ONNX and check it against torch; returns ``path``.

    ``sample_images`` (paths, PIL, numpy, CHW tensors) are preprocessed with the card's eval transform and
    checked for parity together with a few deterministic random inputs. The report goes to
    ``<path>.parity.json``; a mismatch raises :class:`ExportError` and leaves no ``.onnx`` behind.
    """
    import onnx

    card = _card_of(model)
    network = _output_module(model, card, output).eval()
    pre = card.data_config
    # traced where the model already lives: moving it would change the caller's model
    example = torch.zeros(1, 3, pre.input_size, pre.input_size, device=next(network.parameters()).device)
    axes = {INPUT_NAME: {0: "batch"}, output: {0: "batch"}} if dynamic_batch else None
    buffer = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter, on purpose: the dynamo one needs onnxscript and gains nothing for these
        # CNNs. Its deprecation notice is for us (pin torch), not for every export user.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(network, (example,), buffer, input_names=[INPUT_NAME], output_names=[output],
                          opset_version=opset, dynamic_axes=axes, dynamo=False, do_constant_folding=True)
    proto = onnx.load_from_string(buffer.getvalue())
    if simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    onnx.helper.set_model_props(proto, {CARD_KEY: card.to_json(), OUTPUT_KEY: output})
    onnx.checker.check_model(proto)

    path = Path(path)
    images = _parity_inputs(pre, sample_images)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
        report = parity_report(model, tmp, images)
        report.update(opset=opset, simplified=simplify, output=output, onnx=path.name)
        failed = _parity_failures(report)
        if failed:
            raise ExportError(f"{card.name}: ONNX output does not match torch ({'; '.join(failed)}); "
                              f"parity: {json.dumps(report)}")
    atomic_write_text(path.with_name(path.name + ".parity.json"), json.dumps(report, indent=1) + "\n")
    return path


def parity_report(model: nn.Module, onnx_path: str | Path, images: torch.Tensor) -> dict:
    """Run the torch model and the ONNX file (onnxruntime, CPU) on the same preprocessed ``images``.

    Returns ``max_abs_diff``, ``min_cosine`` and ``top1_agreement`` (argmax agreement; ``None`` for a
    ``features`` output, where the argmax means nothing) plus the batch size. The torch side computes the
    output kind recorded in the file.
    """
    import onnxruntime as ort

    card, output = read_onnx_metadata(onnx_path)
    network = _output_module(model, _card_of(model), output).eval()
    device = next(network.parameters()).device
    with torch.inference_mode():
        ref = network(images.to(device)).float().cpu().numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: images.cpu().numpy().astype(np.float32)})[0]
    cos = (ref * got).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1), 1e-12)
    top1 = float((ref.argmax(1) == got.argmax(1)).mean()) if output == "logits" else None
    return {"images": int(images.shape[0]), "max_abs_diff": float(np.abs(ref - got).max()),
            "min_cosine": float(cos.min()), "top1_agreement": top1}


def read_onnx_metadata(path: str | Path) -> tuple[ModelCard, str]:
    """The model card and output kind stored in an ONNX file written by :func:`export_onnx`."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, OSError, ... for bad files
        raise ExportError(f"{path}: not a readable ONNX file ({e})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if CARD_KEY not in props:
        raise ExportError(f"{path}: ONNX file has no '{CARD_KEY}' metadata; it was not written by export_onnx")
    card = ModelCard.from_dict(json.loads(props[CARD_KEY]), where=f"{path} metadata")
    return card, props.get(OUTPUT_KEY, "logits")


def _card_of(model: nn.Module) -> ModelCard:
    card = getattr(model, "card", None)
    if not isinstance(card, ModelCard):
        raise ExportError(f"cannot export a {type(model).__name__} without a model card (.card); "
                          "load it with vision.load_model so the card travels with the export")
    return card


def _output_module(model: nn.Module, card: ModelCard, output: str) -> nn.Module:
    kinds = OUTPUT_KINDS.get(card.task)
    if kinds is None:
        raise ExportError(f"{card.name}: ONNX export of task {card.task!r} is not supported yet; "
                          f"supported tasks: {sorted(OUTPUT_KINDS)}")
    if output not in kinds:
        raise ExportError(f"{card.name}: unknown output {output!r} for task {card.task!r}; "
                          f"choose one of {sorted(kinds)}")
    return kinds[output](model)


def _parity_inputs(pre, sample_images: Sequence | None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    batch = torch.randn(PARITY_RANDOM_BATCH, 3, pre.input_size, pre.input_size, generator=generator)
    if not sample_images:
        return batch
    from vision.data.transforms import build_eval_transform
    from vision.inference import to_batch

    return torch.cat([batch, to_batch(sample_images, build_eval_transform(pre))])


def _parity_failures(report: dict) -> list[str]:
    failed = []
    if report["max_abs_diff"] > MAX_ABS_DIFF:
        failed.append(f"max abs diff {report['max_abs_diff']:.3g} > {MAX_ABS_DIFF}")
    if report["top1_agreement"] is not None and report["top1_agreement"] < MIN_TOP1_AGREEMENT:
        failed.append(f"top-1 agreement {report['top1_agreement']:.3f} < {MIN_TOP1_AGREEMENT}")
    return failed
