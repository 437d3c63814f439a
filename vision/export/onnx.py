"""ONNX export of zoo models with the model card embedded and a torch-vs-onnxruntime parity check.

The graph takes ``images`` (float32 NCHW, already normalised as ``card.preprocessing`` says; the batch axis is
dynamic) and returns one output named after its kind (``logits`` or ``features``). ``metadata_props`` carry the
card JSON (``vision.card``) and the output kind (``vision.output``), so an ``.onnx`` file is self-describing.

The parity report ``<file>.parity.json`` also records the sha256 and size of the file as finally written (after
onnxslim and the metadata): :func:`verify_recorded_digest` refuses a file that differs from that record or has
none, and every loader of ours calls it before parsing the file. Re-exporting over a previous export writes the
new report holding the previous one first, then moves the new file in, then drops the previous record: a crash at
any point leaves the previous export (or the new one) verifiable.

Example::

    path = export_onnx(vision.load_model("grocery_resnet10t"), "export/grocery_features.onnx", output="features")
    card, output = read_onnx_metadata(path)
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from vision.fileio import atomic_path, atomic_write_text, sha256_file
from vision.models import outputs as _outputs
from vision.tasks import get_task
from vision.zoo.card import ModelCard

CARD_KEY = "vision.card"
OUTPUT_KEY = "vision.output"
PRECISION_KEY = "vision.precision"
INPUT_NAME = "images"
PARITY_RANDOM_BATCH = 4
# in a parity report during a replacement: the report of the file being replaced (see keep_previous_record)
REPLACES_KEY = "replaces"


# what each export output kind means, for sidecars and serving configs: the built-in tasks' at import (kept for
# importers; vision.tasks.output_meaning reads the live table, tasks registered later included)
# outputs whose argmax is a decision (top-1 agreement is gated); the others are gated on cosine and difference
ARGMAX_OUTPUTS = {"logits"}

# precision -> the numbers an export must reach against torch fp32. max_rel_diff = max |difference| divided by
# the largest |torch output|, so one gate serves logits, unit features and boxes in pixels. INT8 is judged on
# real images (calibration or validation), where a few borderline top-1 flips are expected.
PARITY_GATES: dict[str, dict[str, float]] = {
    "fp32": {"max_rel_diff": 1e-4, "min_cosine": 0.9999, "top1_agreement": 0.99, "box_agreement": 0.99},
    "fp16": {"max_rel_diff": 2e-2, "min_cosine": 0.999, "top1_agreement": 0.98, "box_agreement": 0.95},
    "int8": {"max_rel_diff": 0.25, "min_cosine": 0.95, "top1_agreement": 0.90, "deployed_box_agreement": 0.90},
}
# (precision, output kind) -> entries that replace that precision's gate. An INT8 detector's raw output holds the
# box of every anchor, background included: int8 error in the DFL bins moves boxes that no score keeps by 100+ px
# (218 px on the committed logo sample, with 98% of the kept boxes agreeing), so its raw difference is reported,
# not gated, and the boxes kept at the deployed score are (deployed_agreement).
OUTPUT_GATES: dict[tuple[str, str], dict[str, float | None]] = {("int8", "predictions"): {"max_rel_diff": None}}
# detections above this score take part in the box agreement (a low threshold: many boxes, a strict test)
DETECTION_CONF = 0.05
# the score a predictor keeps detections at by default (the detection task's head_defaults in vision.tasks, which
# vision.predictors.DetectionHead reads): the INT8 gate judges the boxes a user gets. The strict box agreement
# above also counts the boxes near 0.05, whose scores INT8 moves by more than 0.05 without changing mAP50
# (measured: benchmarks/results/export.md), so INT8 is gated on this one.
DEPLOYED_CONF = get_task("detection").head_defaults["conf"]


class ExportError(RuntimeError):
    """An export that was refused or failed; the message says why (and the parity numbers, if that was it)."""


class ArtifactIntegrityError(ExportError):
    """An exported file that is not the one its export recorded (other sha256 or size), or has no record: it may
    have been corrupted or tampered with, so it is never served; the message names the file and the rebuild."""


def export_onnx(model: nn.Module, path: str | Path, *, opset: int = 17, dynamic_batch: bool = True,
                simplify: bool = True, output: str | None = None, sample_images: Sequence | None = None) -> Path:
    """Export a zoo model (one with ``.card``) to ONNX and check it against torch; returns ``path``.

    ``sample_images`` (paths, PIL, numpy, CHW tensors) are preprocessed with the card's eval transform and
    checked for parity together with a few deterministic random inputs. The report goes to
    ``<path>.parity.json``; a mismatch raises :class:`ExportError` and leaves no ``.onnx`` behind.
    """
    import onnx

    check_not_a_folder(Path(path))
    card = card_of(model)
    output = output or default_output(card)
    network = output_network(model, output).eval()
    pre = card.data_config
    # traced where the model already lives: moving it would change the caller's model
    example = torch.zeros(1, 3, pre.input_size, pre.input_size, device=next(network.parameters()).device)
    axes = {INPUT_NAME: {0: "batch"}, output: {0: "batch"}} if dynamic_batch else None
    buffer = io.BytesIO()
    # a wrapper may trace a faster form of the same arithmetic (the detector's box decode)
    for_export = getattr(network, "for_export", contextlib.nullcontext)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), for_export():
        # The TorchScript exporter, on purpose: the dynamo one needs onnxscript and gains nothing for these
        # CNNs. Its deprecation notice is for us (pin torch), not for every export user.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(network, (example,), buffer, input_names=[INPUT_NAME], output_names=[output],
                          opset_version=opset, dynamic_axes=axes, dynamo=False, do_constant_folding=True)
    proto = onnx.load_from_string(buffer.getvalue())
    if simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    onnx.helper.set_model_props(proto, {CARD_KEY: card.to_json(), OUTPUT_KEY: output, PRECISION_KEY: "fp32"})
    onnx.checker.check_model(proto)

    path = Path(path)
    images = parity_inputs(pre, sample_images)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
        report = parity_report(model, tmp, images)
        report.update(opset=opset, simplified=simplify, output=output, onnx=path.name, model=card.name,
                      format="onnx", **file_digest(tmp))
        check_parity(report, "fp32", f"{card.name}: ONNX output")
        keep_previous_record(path, report)  # a crash from here on leaves the previous export verifiable
    write_parity_report(path, report)
    return path


def check_not_a_folder(path: Path) -> None:
    """An export path that is an existing folder is refused before any work (``os.replace`` would fail late)."""
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; give the export a file path (vision export --out FOLDER writes "
                          "the default file name inside it)")


def default_output(card: ModelCard) -> str:
    """The output an export of this task gives when none is asked for (``logits``, ``predictions``, ...):
    :func:`vision.models.outputs.default_output`, raising :class:`ExportError`."""
    return _outputs.default_output(card, ExportError)


def compare_outputs(ref: np.ndarray, got: np.ndarray, output: str) -> dict:
    """Parity numbers of ``got`` against the torch reference ``ref`` (same shape, batch first)."""
    ref_raw, got_raw = ref, got
    ref, got = ref.reshape(len(ref), -1).astype(np.float64), got.reshape(len(got), -1).astype(np.float64)
    diff = float(np.abs(ref - got).max()) if ref.size else 0.0
    cos = (ref * got).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1), 1e-12)
    top1 = float((ref.argmax(1) == got.argmax(1)).mean()) if output in ARGMAX_OUTPUTS else None
    report = {"images": int(ref.shape[0]), "max_abs_diff": diff,
              "max_rel_diff": diff / max(float(np.abs(ref).max()) if ref.size else 0.0, 1e-12),
              "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()), "top1_agreement": top1}
    if output == "predictions":
        report.update(detection_agreement(ref_raw, got_raw))
        report.update(deployed_agreement(ref_raw, got_raw))
    return report


def detection_agreement(ref: np.ndarray, got: np.ndarray, conf: float = DETECTION_CONF, iou: float = 0.7) -> dict:
    """Box/score agreement after NMS (ultralytics' NMS, run outside the graph as in deployment): the share of
    torch detections that the export reproduces with the same class, IoU >= 0.9 and a score within 0.05."""
    from vision import ultralytics_compat as ulc

    ref_dets = ulc.non_max_suppression(torch.from_numpy(ref.copy()).float(), conf=conf, iou=iou)
    got_dets = ulc.non_max_suppression(torch.from_numpy(got.copy()).float(), conf=conf, iou=iou)
    box_iou = ulc.metrics_module().box_iou
    total = matched = 0
    for r, g in zip(ref_dets, got_dets):
        total += len(r)
        if len(r) and len(g):
            overlap = box_iou(r[:, :4], g[:, :4])
            same = (r[:, 5:6] == g[None, :, 5]) & ((r[:, 4:5] - g[None, :, 4]).abs() <= 0.05)
            matched += int(((overlap >= 0.9) & same).any(1).sum())
    return {"detections": total, "box_agreement": matched / total if total else None}


def deployed_agreement(ref: np.ndarray, got: np.ndarray, conf: float = DEPLOYED_CONF, iou: float = 0.7,
                       match_iou: float = 0.5) -> dict:
    """Agreement of the boxes a predictor keeps (score >= ``conf``, NMS as deployed), both ways: the share of
    torch detections that the export also finds (same class, IoU >= ``match_iou``, the IoU of mAP50) and the share
    of the export's detections that torch also finds; ``deployed_box_agreement`` is the lower of the two."""
    from vision import ultralytics_compat as ulc

    ref_dets = ulc.non_max_suppression(torch.from_numpy(ref.copy()).float(), conf=conf, iou=iou)
    got_dets = ulc.non_max_suppression(torch.from_numpy(got.copy()).float(), conf=conf, iou=iou)
    box_iou = ulc.metrics_module().box_iou
    n_ref = n_got = found = confirmed = 0
    for r, g in zip(ref_dets, got_dets):
        n_ref, n_got = n_ref + len(r), n_got + len(g)
        if len(r) and len(g):
            same = (box_iou(r[:, :4], g[:, :4]) >= match_iou) & (r[:, 5:6] == g[None, :, 5])
            found += int(same.any(1).sum())
            confirmed += int(same.any(0).sum())
    recall = found / n_ref if n_ref else None
    precision = confirmed / n_got if n_got else None
    both = [v for v in (recall, precision) if v is not None]
    return {"deployed_conf": conf, "deployed_detections": [n_ref, n_got], "deployed_recall": recall,
            "deployed_precision": precision, "deployed_box_agreement": min(both) if both else None}


def check_parity(report: dict, precision: str, what: str) -> None:
    """Raise :class:`ExportError` with every number when ``report`` misses the gate of ``precision``."""
    gate = {**PARITY_GATES[precision], **OUTPUT_GATES.get((precision, report.get("output", "")), {})}
    report["gate"] = {"precision": precision, **gate}
    failed = []
    if gate["max_rel_diff"] is not None and report["max_rel_diff"] > gate["max_rel_diff"]:
        failed.append(f"max rel diff {report['max_rel_diff']:.3g} > {gate['max_rel_diff']} "
                      f"(max abs diff {report['max_abs_diff']:.3g})")
    if report["min_cosine"] < gate["min_cosine"]:
        failed.append(f"min cosine {report['min_cosine']:.5f} < {gate['min_cosine']}")
    if report["top1_agreement"] is not None and report["top1_agreement"] < gate["top1_agreement"]:
        failed.append(f"top-1 agreement {report['top1_agreement']:.3f} < {gate['top1_agreement']}")
    if "box_agreement" in gate and report.get("box_agreement") is not None \
            and report["box_agreement"] < gate["box_agreement"]:
        failed.append(f"box agreement after NMS {report['box_agreement']:.3f} < {gate['box_agreement']} "
                      f"({report['detections']} torch detections)")
    if "deployed_box_agreement" in gate and "deployed_conf" in report \
            and report["deployed_box_agreement"] is None:  # nothing to compare is no evidence of parity
        failed.append(f"no detection reaches score {report['deployed_conf']} on these {report['images']} images, "
                      "in torch or the export: judge it on images that show objects (parity_dir, --parity-dir)")
    elif "deployed_box_agreement" in gate and report.get("deployed_box_agreement") is not None \
            and report["deployed_box_agreement"] < gate["deployed_box_agreement"]:
        failed.append(f"agreement of the boxes kept at score {report['deployed_conf']} "
                      f"{report['deployed_box_agreement']:.3f} < {gate['deployed_box_agreement']} (torch "
                      f"detections found {report['deployed_recall']}, export detections confirmed "
                      f"{report['deployed_precision']}, of {report['deployed_detections']})")
    if failed:
        raise ExportError(f"{what} does not match torch at {precision} ({'; '.join(failed)}); "
                          f"parity: {json.dumps(report)}")


def parity_report_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".parity.json")


def write_parity_report(artifact: Path, report: dict) -> Path:
    path = parity_report_path(artifact)
    atomic_write_text(path, json.dumps(report, indent=1) + "\n")
    return path


def file_digest(path: str | Path) -> dict:
    """``{"sha256", "bytes"}`` of a file: call it on the bytes as finally written (after every rewrite)."""
    return {"sha256": sha256_file(path), "bytes": Path(path).stat().st_size}


def read_parity_report(artifact: str | Path) -> dict:
    """The parity report beside ``artifact`` as a dict; :class:`ArtifactIntegrityError` when it is missing or not
    a JSON object (it is the artifact's integrity record)."""
    path = parity_report_path(artifact)
    rebuild = _rebuild_hint(artifact, {})
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactIntegrityError(f"{artifact}: no parity report {path.name} beside it, so nothing records "
                                     f"what this file should be; refusing it. {rebuild}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise ArtifactIntegrityError(f"{path}: not a readable parity report ({e}); refusing {Path(artifact).name}. "
                                     f"{rebuild}") from None
    if not isinstance(report, dict):
        raise ArtifactIntegrityError(f"{path}: a parity report is a JSON object, got {type(report).__name__}; "
                                     f"refusing {Path(artifact).name}. {rebuild}")
    return report


def verify_recorded_digest(path: str | Path) -> dict:
    """Check an exported file (ONNX, INT8 ONNX, ultralytics ``.pt``) against the sha256 and size its export
    recorded in ``<path>.parity.json``; returns the report. A missing, unreadable or different record is an
    :class:`ArtifactIntegrityError` naming the file and the rebuild command.

    Example::

        verify_recorded_digest("export/grocery_features.onnx")   # before onnx / onnxruntime parse the bytes
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such exported file")
    report = read_parity_report(path)
    try:
        check_digest(path, report, where=parity_report_path(path).name, rebuild=_rebuild_hint(path, report))
    except ArtifactIntegrityError:
        previous = report.get(REPLACES_KEY)
        if isinstance(previous, dict) and _matches(path, previous):
            return previous  # a crash between the two steps of replace_artifact: the previous export, whole
        raise
    return report


def _matches(path: Path, record: dict) -> bool:
    try:
        check_digest(path, record, where="", rebuild="")
    except ArtifactIntegrityError:
        return False
    return True


def keep_previous_record(path: Path, report: dict) -> None:
    """First step of replacing an export and its parity report, called just before the new file is moved to
    ``path``: the new report is written holding the previous one (if the file at ``path`` verifies), so that a
    crash before the file is moved leaves the previous export verifiable. After the move, write the plain
    report (:func:`write_parity_report`); until then a reader takes whichever record the file matches."""
    try:
        previous = verify_recorded_digest(path) if path.is_file() else None
    except ExportError:  # a damaged or unrecorded previous export: nothing worth keeping
        previous = None
    if previous is not None:
        previous = {k: v for k, v in previous.items() if k != REPLACES_KEY}
        write_parity_report(path, {**report, REPLACES_KEY: previous})


def check_digest(path: Path, record: dict, *, where: str, rebuild: str, what: str = "the file",
                 error: type[ArtifactIntegrityError] = ArtifactIntegrityError) -> None:
    """Raise ``error`` unless ``path`` has the ``sha256`` and ``bytes`` that ``record`` (read from ``where``)
    holds for it."""
    sha, size = record.get("sha256"), record.get("bytes")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha) or type(size) is not int:
        raise error(f"{path}: {where} records no sha256 and size of {what} (written before exports recorded "
                    f"digests, or edited); refusing it. {rebuild}")
    actual = path.stat().st_size
    if actual != size:
        raise error(f"{path}: {actual} bytes, {where} records {size}: {what} is truncated or was replaced; "
                    f"refusing it. {rebuild}")
    if sha256_file(path) != sha:
        raise error(f"{path}: sha256 differs from the one in {where}: {what} is corrupt or was modified after "
                    f"export; refusing it. {rebuild}")


def _rebuild_hint(path: str | Path, report: dict) -> str:
    model = report.get("model") if isinstance(report.get("model"), str) else "MODEL"
    output = report.get("output") if isinstance(report.get("output"), str) else None
    fmt = report.get("format") if report.get("format") in ("onnx", "onnx-int8", "ultralytics") else "onnx"
    calib = " --calib-dir IMAGES" if fmt == "onnx-int8" else ""
    return (f"Rebuild it: vision export --model {model} --format {fmt}{calib}"
            f"{f' --output-kind {output}' if output else ''} --out {path}")


def parity_report(model: nn.Module, onnx_path: str | Path, images: torch.Tensor) -> dict:
    """Run the torch model and the ONNX file (onnxruntime, CPU) on the same preprocessed ``images``.

    Returns :func:`compare_outputs` numbers (``top1_agreement`` is ``None`` for outputs whose argmax means
    nothing, e.g. ``features``). The torch side computes the output kind recorded in the file.
    """
    _, output = read_onnx_metadata(onnx_path)
    session = onnx_session(onnx_path, ["CPUExecutionProvider"])
    batch = session.get_inputs()[0].shape[0]
    step = batch if isinstance(batch, int) else len(images)  # a fixed-batch export runs in slices of its batch
    x = images.cpu().numpy().astype(np.float32)
    got = np.concatenate([session.run(None, {INPUT_NAME: x[i:i + step]})[0] for i in range(0, len(x), step)])
    return compare_outputs(torch_outputs(model, output, images), got, output)


def torch_outputs(model: nn.Module, output: str, images: torch.Tensor) -> np.ndarray:
    """The torch fp32 reference for ``output`` (an output kind of the model's task) on preprocessed ``images``."""
    network = output_network(model, output).eval()
    device = next(network.parameters()).device
    with torch.inference_mode():
        return network(images.to(device)).float().cpu().numpy()


def read_onnx_metadata(path: str | Path) -> tuple[ModelCard, str]:
    """The model card and output kind stored in an ONNX file written by :func:`export_onnx`."""
    props = read_onnx_props(path)
    if CARD_KEY not in props:
        raise ExportError(f"{path}: ONNX file has no '{CARD_KEY}' metadata; it was not written by export_onnx")
    try:
        card = ModelCard.from_dict(json.loads(props[CARD_KEY]), where=f"{path} metadata")
        card.data_config  # noqa: B018  (the preprocessing must parse: every backend builds its transform from it)
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # JSON, unknown/missing/ill-typed fields
        raise ExportError(f"{path}: the '{CARD_KEY}' metadata is not a valid model card ({e})") from None
    output = props.get(OUTPUT_KEY, "logits")
    kinds = get_task(card.task).outputs  # the card's task is in the table: from_dict checked it
    if output not in kinds:
        raise ExportError(f"{path}: unknown '{OUTPUT_KEY}' {output!r} in the metadata; a {card.task} model "
                          f"outputs one of {sorted(kinds)}")
    return card, output


def read_onnx_precision(path: str | Path) -> str:
    """``fp32`` for :func:`export_onnx` files, ``int8`` for quantised ones (``vision.precision`` metadata)."""
    return read_onnx_props(path).get(PRECISION_KEY, "fp32")


def read_onnx_props(path: str | Path) -> dict[str, str]:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, OSError, ... for bad files
        raise ExportError(f"{path}: not a readable ONNX file ({e})") from None
    return {p.key: p.value for p in proto.metadata_props}


def onnx_session(path: str | Path, providers: Sequence[str], options=None):
    """An onnxruntime session on ``path`` (``options``: an ``onnxruntime.SessionOptions``); onnxruntime's load
    errors become :class:`ExportError` naming the file."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as e:  # onnxruntime raises its own pybind error types (InvalidGraph, Fail, ...)
        raise ExportError(f"{path}: onnxruntime cannot load this ONNX file ({type(e).__name__}: {e})") from None


def card_of(model: nn.Module) -> ModelCard:
    card = getattr(model, "card", None)
    if not isinstance(card, ModelCard):
        raise ExportError(f"cannot export a {type(model).__name__} without a model card (.card); "
                          "load it with vision.load_model so the card travels with the export")
    return card


def output_network(model: nn.Module, output: str) -> nn.Module:
    """:func:`vision.models.outputs.output_network` (``model`` reduced to one output kind of its task), raising
    :class:`ExportError`."""
    return _outputs.output_network(model, output, ExportError)


def parity_inputs(pre, sample_images: Sequence | None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    batch = torch.randn(PARITY_RANDOM_BATCH, 3, pre.input_size, pre.input_size, generator=generator)
    if not sample_images:
        return batch
    from vision.data.inputs import to_batch
    from vision.data.transforms import build_eval_transform

    return torch.cat([batch, to_batch(sample_images, build_eval_transform(pre))])
