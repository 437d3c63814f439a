"""A Triton Inference Server model repository from our exports: TensorRT plans (GPU) or ONNX files (CPU serving
with the ONNX Runtime backend).

Layout written for ``write_triton_model(artifact, "export/triton")``::

    export/triton/<model>/config.pbtxt      name, platform, max_batch_size, input/output dims without the batch
                                            axis, dynamic batching, instance group (KIND_GPU / KIND_CPU)
    export/triton/<model>/1/model.plan      or 1/model.onnx: the artifact, byte for byte
    export/triton/<model>/labels.txt        class names (logits outputs: Triton's classification extension)
    export/triton/<model>/vision.json       the model card, preprocessing and the artifact's sidecar / parity report
    export/triton/<model>/vision.sha256     sha256 of every model file (and labels.txt) as written, in
                                            ``sha256sum`` format (Triton ignores the file; ``sha256sum -c`` reads it)

The artifact is checked against its own export record before it is copied, and the copy against the artifact;
:func:`verify_triton_repository` checks a repository (or one model folder) against ``vision.sha256`` and refuses
model files that differ or have no record.

``max_batch_size`` is the TensorRT profile's max for plans (a larger batch could not run) and a choice for ONNX
files, whose batch axis is dynamic. Clients must preprocess as ``vision.json`` says (the graph starts at the
normalised NCHW tensor).

Example::

    write_triton_model("export/grocery.onnx", "export/triton", name="grocery_resnet10t_onnx", max_batch_size=32)
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from vision.export.onnx import (INPUT_NAME, OUTPUT_MEANINGS, ArtifactIntegrityError, ExportError, parity_report_path,
                                read_onnx_metadata, read_parity_report, verify_recorded_digest)
from vision.fileio import atomic_path, atomic_write_text, sha256_file

DEFAULT_ONNX_MAX_BATCH = 32
MAX_QUEUE_DELAY_US = 100
# artifact suffix -> (platform, backend, file name in the version folder, default instance kind)
SERVING = {
    ".plan": ("tensorrt_plan", "tensorrt", "model.plan", "KIND_GPU"),
    ".onnx": ("onnxruntime_onnx", "onnxruntime", "model.onnx", "KIND_CPU"),
}
INSTANCE_KINDS = ("KIND_GPU", "KIND_CPU")
DIGESTS = "vision.sha256"   # in the model folder: Triton reads config.pbtxt and numbered version folders only


def write_triton_model(artifact: str | Path, repository: str | Path, *, name: str | None = None,
                       max_batch_size: int | None = None, instance_kind: str | None = None, instance_count: int = 1,
                       version: int = 1) -> Path:
    """Add ``artifact`` (``.plan`` with its sidecar, or ``.onnx`` from our exporters) to a Triton repository as
    model ``name`` (default: the card's name plus the backend); returns the model folder."""
    artifact = Path(artifact)
    if artifact.suffix not in SERVING:
        raise ExportError(f"{artifact}: Triton serving needs a TensorRT .plan or an .onnx file, got "
                          f"{artifact.suffix or 'no suffix'!r}")
    platform, backend, filename, default_kind = SERVING[artifact.suffix]
    kind = instance_kind or default_kind
    if kind not in INSTANCE_KINDS:
        raise ExportError(f"unknown instance kind {kind!r}; choose one of {list(INSTANCE_KINDS)}")
    if artifact.suffix == ".plan":
        io, info = _plan_io(artifact, max_batch_size)
    else:
        io, info = _onnx_io(artifact, max_batch_size)
    card = info["card"]
    name = name or f"{card['name']}_{backend}"
    model_dir = Path(repository) / name
    batch = io["max_batch_size"]
    preferred = sorted({b for b in (io.get("opt_batch"), batch) if b and b > 1})
    label = '\n    label_filename: "labels.txt"' if io["output"] == "logits" and card["class_names"] else ""
    config = f"""# written by vision.export.triton from {artifact.name}; preprocessing: see vision.json
name: "{name}"
platform: "{platform}"
backend: "{backend}"
max_batch_size: {batch}
input [
  {{
    name: "{INPUT_NAME}"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ {', '.join(map(str, io['input_dims']))} ]
  }}
]
output [
  {{
    name: "{io['output']}"
    data_type: TYPE_FP32
    dims: [ {', '.join(map(str, io['output_dims']))} ]{label}
  }}
]
dynamic_batching {{
  preferred_batch_size: [ {', '.join(map(str, preferred or [batch]))} ]
  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}
}}
instance_group [
  {{
    count: {instance_count}
    kind: {kind}
  }}
]
"""
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    with atomic_path(model_dir / str(version) / filename) as tmp:
        shutil.copyfile(artifact, tmp)
        sha = sha256_file(tmp)
        if sha != info["sha256"]:  # checked against its export record above: it changed while being copied
            raise ArtifactIntegrityError(f"{artifact}: changed while it was copied into {model_dir}; run the "
                                         "export again")
    written = {f"{version}/{filename}": sha}
    if label:
        atomic_write_text(model_dir / "labels.txt", "".join(f"{c}\n" for c in card["class_names"]))
        written["labels.txt"] = sha256_file(model_dir / "labels.txt")
    atomic_write_text(model_dir / "vision.json", json.dumps(
        {**info, "artifact": artifact.name, "output": io["output"],
         "output_meaning": OUTPUT_MEANINGS.get(io["output"], io["output"])}, indent=1) + "\n")
    atomic_write_text(model_dir / "config.pbtxt", config)
    # last: until it is written, the new file does not match the old record and is refused, never served
    atomic_write_text(model_dir / DIGESTS, format_digests({**_read_digests(model_dir, strict=False), **written}))
    return model_dir


def format_digests(digests: dict[str, str]) -> str:
    """``sha256sum`` lines (``<hex>  <path>``), sorted by path."""
    return "".join(f"{sha}  {name}\n" for name, sha in sorted(digests.items()))


def _read_digests(model_dir: Path, strict: bool = True) -> dict[str, str]:
    """``{relative path: sha256}`` from ``vision.sha256``; ``strict=False`` gives ``{}`` for a missing or
    malformed file (the writer then starts a new record)."""
    path = model_dir / DIGESTS
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        if not strict:
            return {}
        raise ArtifactIntegrityError(f"{model_dir}: no {DIGESTS} recording the model files' sha256, so nothing says "
                                     f"they are the exported ones; refusing it. {_rebuild(model_dir)}") from None
    except (OSError, UnicodeDecodeError) as e:
        if not strict:
            return {}
        raise ArtifactIntegrityError(f"{path}: not readable ({e}); refusing {model_dir.name}. "
                                     f"{_rebuild(model_dir)}") from None
    digests = {}
    for number, line in enumerate(lines, 1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *]([^/\\].*)", line)
        if match is None or ".." in Path(match[2]).parts:
            if not strict:
                return {}
            raise ArtifactIntegrityError(f"{path}, line {number}: expected '<sha256>  <relative path>', got "
                                         f"{line[:80]!r}; refusing {model_dir.name}. {_rebuild(model_dir)}")
        digests[match[2]] = match[1]
    return digests


def verify_triton_repository(path: str | Path) -> list[Path]:
    """Check every model file (``<model>/<version>/model.onnx|model.plan``) and ``labels.txt`` of a Triton
    repository written by :func:`write_triton_model` (or of one model folder) against its ``vision.sha256``;
    returns the files checked. A file that differs from its record, or has none, is an
    :class:`ArtifactIntegrityError` naming it and the rebuild.

    Example::

        verify_triton_repository("export/triton")   # before pointing tritonserver --model-repository at it
    """
    root = Path(path)
    if not root.is_dir():
        raise ExportError(f"{root}: no such Triton repository folder")
    models = [root] if (root / "config.pbtxt").is_file() else sorted(
        d for d in root.iterdir() if d.is_dir() and (d / "config.pbtxt").is_file())
    if not models:
        raise ExportError(f"{root}: no Triton model folders (with a config.pbtxt) in it")
    filenames = {entry[2] for entry in SERVING.values()}
    checked = []
    for model_dir in models:
        digests = _read_digests(model_dir)
        present = [f"{d.name}/{f.name}" for d in sorted(model_dir.iterdir()) if d.is_dir() and d.name.isdigit()
                   for f in sorted(d.iterdir()) if f.name in filenames]
        present += ["labels.txt"] if (model_dir / "labels.txt").is_file() else []
        for name in present + sorted(set(digests) - set(present)):
            file = model_dir / name
            if name not in digests:
                raise ArtifactIntegrityError(f"{file}: not recorded in {model_dir / DIGESTS}; refusing it. "
                                             f"{_rebuild(model_dir)}")
            if not file.is_file():
                raise ArtifactIntegrityError(f"{file}: recorded in {model_dir / DIGESTS} but missing. "
                                             f"{_rebuild(model_dir)}")
            if sha256_file(file) != digests[name]:
                raise ArtifactIntegrityError(f"{file}: sha256 differs from the one in {model_dir / DIGESTS}: the file "
                                             f"is corrupt or was modified after export; refusing it. "
                                             f"{_rebuild(model_dir)}")
            checked.append(file)
    return checked


def _rebuild(model_dir: Path) -> str:
    try:
        info = json.loads((model_dir / "vision.json").read_text(encoding="utf-8"))
        model = info["card"]["name"] if isinstance(info["card"]["name"], str) else "MODEL"
    except Exception:  # any unreadable vision.json: the hint then names no model
        model = "MODEL"
    serving = "tensorrt" if any(model_dir.glob("*/model.plan")) else "onnxruntime"
    return (f"Rebuild it: python tools/export.py --model {model} --format triton --serving {serving} "
            f"--name {model_dir.name} --out {model_dir.parent}")


def _plan_io(plan: Path, max_batch_size: int | None) -> tuple[dict, dict]:
    from vision.export.tensorrt import check_plan_digest, read_sidecar

    sidecar = read_sidecar(plan)
    check_plan_digest(plan, sidecar)
    profile = sidecar["batch_profile"]
    if max_batch_size is not None and max_batch_size > profile["max"]:
        raise ExportError(f"{plan}: max_batch_size {max_batch_size} exceeds the engine's profile max "
                          f"{profile['max']}; rebuild with --batch {profile['min']},{profile['opt']},{max_batch_size}")
    io = {"max_batch_size": max_batch_size or profile["max"], "opt_batch": profile["opt"],
          "input_dims": sidecar["input"]["shape"][1:], "output": sidecar["output"]["name"],
          "output_dims": sidecar["output"]["shape"][1:]}
    return io, {"card": sidecar["card"], "sidecar": sidecar, "parity": _parity(plan), "sha256": sidecar["sha256"]}


def _onnx_io(path: Path, max_batch_size: int | None) -> tuple[dict, dict]:
    import onnx

    report = verify_recorded_digest(path)
    card, output = read_onnx_metadata(path)
    graph = onnx.load(str(path), load_external_data=False).graph
    (inp,), (out,) = graph.input, graph.output

    def dims(value) -> list:
        return [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]

    in_dims, out_dims = dims(inp), dims(out)
    if in_dims[0] != -1 or out_dims[0] != -1:
        raise ExportError(f"{path}: the batch axis is fixed ({in_dims[0]}); Triton batching needs an export with "
                          "a dynamic batch axis (export_onnx(dynamic_batch=True))")
    if -1 in in_dims[1:] + out_dims[1:]:
        raise ExportError(f"{path}: only the batch axis may be dynamic (input {in_dims}, output {out_dims})")
    io = {"max_batch_size": max_batch_size or DEFAULT_ONNX_MAX_BATCH, "input_dims": in_dims[1:], "output": output,
          "output_dims": out_dims[1:]}
    return io, {"card": card.to_dict(), "parity": report, "sha256": report["sha256"]}


def _parity(plan: Path) -> dict | None:
    """A plan's parity report, if it has one (a plan from ``build_engine`` alone has none; its sidecar is its
    integrity record)."""
    return read_parity_report(plan) if parity_report_path(plan).is_file() else None


def export_triton(model, repository: str | Path, *, serving: str = "onnxruntime", precision: str = "fp32",
                  name: str | None = None, max_batch_size: int | None = None, instance_kind: str | None = None,
                  instance_count: int = 1, batch=None, **export_options) -> Path:
    """Export ``model`` (ONNX, INT8 ONNX or a TensorRT plan, each through its parity gate) and add it to the Triton
    repository ``repository``; returns the model folder. ``serving``: ``onnxruntime`` (CPU) or ``tensorrt`` (GPU).
    """
    import tempfile

    from vision.export.onnx import export_onnx

    if serving not in ("onnxruntime", "tensorrt"):
        raise ExportError(f"unknown Triton serving backend {serving!r}; choose onnxruntime or tensorrt")
    with tempfile.TemporaryDirectory(prefix="vision-triton-") as scratch:
        if serving == "tensorrt":
            from vision.export.tensorrt import export_tensorrt

            artifact = export_tensorrt(model, Path(scratch) / "model.plan", precision=precision, batch=batch,
                                       **export_options)
        elif precision == "int8":
            from vision.export.quantize import export_onnx_int8

            artifact = export_onnx_int8(model, Path(scratch) / "model.onnx", **export_options)
        elif precision == "fp32":
            artifact = export_onnx(model, Path(scratch) / "model.onnx", **export_options)
        else:
            raise ExportError(f"ONNX Runtime serving takes precision fp32 or int8, not {precision!r}")
        return write_triton_model(artifact, repository, name=name, max_batch_size=max_batch_size,
                                  instance_kind=instance_kind, instance_count=instance_count)
