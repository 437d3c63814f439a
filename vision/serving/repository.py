"""A Triton model repository that takes encoded images and answers what ``vision predict`` / ``vision recognize``
write, for zoo models and the brand recogniser.

For a zoo model ``NAME`` (input ``IMAGE``: ``BYTES [batch, 1]``, output ``RESULT``: ``BYTES [batch, 1]``, one JSON
document per image)::

    NAME/            ensemble: IMAGE -> NAME_pre -> NAME_net -> NAME_post -> RESULT
    NAME_pre/        Python: decode + the task head's preprocess (vision.serving.models.Preprocess)
    NAME_net/        the network, dynamic batching: Python + ONNX Runtime on 1/model.onnx here (network="python");
                     Triton's onnxruntime_onnx or tensorrt_plan platform with a full Triton (network="onnxruntime" or
                     "tensorrt", vision.export.triton.write_triton_model)
    NAME_post/       Python: the head's postprocess, each result's to_dict() as JSON
    brand_recognizer/  Python: vision.brands.recognition.BrandRecognizer with vision recognize's defaults

Every folder is written by :func:`vision.export.triton.write_model_folder`: plain names, pbtxt strings quoted,
every file in ``vision.sha256``, swapped in whole. Python models name the prepared environment
(:mod:`vision.serving.runtime`) as ``EXECUTION_ENV_PATH`` when ``env`` is given; without it they run in the stub's
default Python (a Triton container with vision installed).

Example::

    build_repository(["grocery_resnet10t", "logo_yolo11n"], "triton_repo", recognizer=True)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from vision.export.onnx import INPUT_NAME, ExportError
from vision.export.triton import write_model_folder, write_triton_model
from vision.names import check_plain_name, pbtxt_string

NETWORKS = ("python", "onnxruntime", "tensorrt")
RECOGNIZER = "brand_recognizer"
MAX_BATCH = 8          # images per request
STEP_MAX_BATCH = 32    # images per dynamic batch of a step (several requests)
QUEUE_DELAY_US = 2000  # how long a step waits to fill a batch: a few ms against ~10-100 ms per batch on CPU
MODEL_PY = "# written by vision.serving.repository: the served code is the library's\n" \
           "from vision.serving.models import {cls} as TritonPythonModel  # noqa: F401\n"


def build_repository(models, repository: str | os.PathLike, *, recognizer: bool = False, network: str = "python",
                     env: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
                     instances: int = 1, log=None) -> list[Path]:
    """Write the served repository of zoo ``models`` (and ``brand_recognizer``) into ``repository``; returns the
    model folders. ONNX exports are kept in ``cache`` (default ``<runtime home>/onnx``) by the model's sha256, so a
    second build does not export again."""
    if network not in NETWORKS:
        raise ExportError(f"unknown network step {network!r}; choose one of {list(NETWORKS)}")
    from vision.serving.runtime import runtime_home

    cache = Path(cache) if cache is not None else runtime_home() / "onnx"
    written = []
    for name in models:
        written += _model_folders(name, Path(repository), network, env, cache, instances, log)
    if recognizer:
        written.append(_recognizer_folder(Path(repository), env))
    return written


def _model_folders(name: str, repository: Path, network: str, env, cache: Path, instances: int, log) -> list[Path]:
    from vision.models.outputs import default_output
    from vision.zoo import load_model

    model = load_model(name)
    if network == "tensorrt":
        return [export_triton(model, repository, serving="tensorrt", python_env=env, instance_count=instances)]
    onnx_file = _cached_onnx(model, default_output(model.card), cache, log)
    return write_served_model(onnx_file, repository, network=network, env=env, instances=instances)


def write_served_model(artifact: str | os.PathLike, repository: str | os.PathLike, *, network: str = "python",
                       name: str | None = None, env: str | os.PathLike | None = None, instances: int = 1,
                       max_batch_size: int | None = None, instance_kind: str | None = None) -> list[Path]:
    """The four folders of one served model around ``artifact`` (an ``.onnx`` export, or a TensorRT ``.plan`` for
    ``network="tensorrt"``): ``NAME`` (the ensemble; default the card's name), ``NAME_pre``, ``NAME_net``,
    ``NAME_post``; returns them, the ensemble's last."""
    from vision.export.triton import serving_io

    artifact, repository = Path(artifact), Path(repository)
    if network not in NETWORKS:
        raise ExportError(f"unknown network step {network!r}; choose one of {list(NETWORKS)}")
    if (artifact.suffix == ".plan") != (network == "tensorrt"):
        raise ExportError(f"{artifact}: the {network} network step runs "
                          f"{'a TensorRT .plan' if network == 'tensorrt' else 'an .onnx export'}")
    io, info = serving_io(artifact, max_batch_size or STEP_MAX_BATCH)
    card, output = info["card"], io["output"]
    name = check_plain_name(name or card["name"], "Triton model name", ExportError)
    if io["max_batch_size"] < MAX_BATCH:
        raise ExportError(f"{artifact}: max_batch_size {io['max_batch_size']} is below the {MAX_BATCH} images a "
                          "request may hold")
    if network == "python":
        net = _python_folder(repository, f"{name}_net", "OnnxNetwork", env, instances,
                             inputs=[(INPUT_NAME, "TYPE_FP32", io["input_dims"])],
                             outputs=[(output, "TYPE_FP32", io["output_dims"])],
                             info={"card": card, "output": output, "network_input": INPUT_NAME,
                                   "network_output": output},
                             extra={"1/model.onnx": artifact,
                                    "1/model.onnx.parity.json": Path(f"{artifact}.parity.json")},
                             max_batch=io["max_batch_size"])
    else:
        net = write_triton_model(artifact, repository, name=f"{name}_net", max_batch_size=io["max_batch_size"],
                                 instance_kind=instance_kind, instance_count=instances)
    parity = info.get("parity")
    info = {"card": card, "output": output, "network_input": INPUT_NAME, "network_output": output}
    pre = _python_folder(repository, f"{name}_pre", "Preprocess", env, instances,
                         inputs=[("IMAGE", "TYPE_STRING", [1])],
                         outputs=[(INPUT_NAME, "TYPE_FP32", io["input_dims"]), ("META", "TYPE_STRING", [1])],
                         info=info)
    post = _python_folder(repository, f"{name}_post", "Postprocess", env, instances,
                          inputs=[(output, "TYPE_FP32", io["output_dims"]), ("META", "TYPE_STRING", [1])],
                          outputs=[("RESULT", "TYPE_STRING", [1])], info=info)
    ensemble = write_model_folder(repository, name, {"config.pbtxt": _ensemble_config(name, output).encode(),
                                                     "vision.json": _json({"card": card, "output": output,
                                                                           "parity": parity})})
    return [pre, net, post, ensemble]


def export_triton(model, repository: str | Path, *, serving: str = "python", precision: str = "fp32",
                  name: str | None = None, max_batch_size: int | None = None, instance_kind: str | None = None,
                  instance_count: int = 1, batch=None, python_env: str | Path | None = None,
                  **export_options) -> Path:
    """Export ``model`` (ONNX, INT8 ONNX or a TensorRT plan, each through its parity gate) and add it to the Triton
    repository ``repository`` as a served model that takes image bytes and answers ``vision predict``'s JSON
    (:func:`write_served_model`: ``NAME`` ensemble, ``NAME_pre``/``NAME_post`` Python
    models around ``NAME_net``); returns the ensemble's folder. ``serving``: the network step, ``python`` (ONNX
    Runtime inside Triton's Python backend: what ``vision serve``'s bundled server runs), ``onnxruntime`` (Triton's
    ONNX Runtime backend) or ``tensorrt`` (GPU). ``python_env``: the ``EXECUTION_ENV_PATH`` of the Python models
    (``vision serve`` gives its prepared one); without it they use the stub's default Python.
    """
    from vision.export.onnx import export_onnx

    if serving not in ("python", "onnxruntime", "tensorrt"):
        raise ExportError(f"unknown Triton serving backend {serving!r}; choose python, onnxruntime or tensorrt")
    if name is not None:  # refused before the export, not after it
        check_plain_name(name, "Triton model name", ExportError)
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
        return write_served_model(artifact, repository, network=serving, name=name, env=python_env,
                                  instances=instance_count, max_batch_size=max_batch_size,
                                  instance_kind=instance_kind)[-1]


def _cached_onnx(model, output: str, cache: Path, log) -> Path:
    """The model's ONNX export (with its parity report), made once per model sha256."""
    from vision.export.onnx import export_onnx, verify_recorded_digest

    path = cache / f"{model.card.name}.{output}.{model.card.sha256[:16]}.onnx"
    if path.is_file():
        try:
            verify_recorded_digest(path)
            return path
        except ExportError:
            pass  # damaged or half-written: export again
    cache.mkdir(parents=True, exist_ok=True)
    if log is not None:
        log(f"exporting {model.card.name} to ONNX for the network step (once): {path}")
    scratch = cache / f".{path.name}.{os.getpid()}"
    try:
        export_onnx(model, scratch / path.name, output=output)
        for suffix in (".parity.json", ""):  # the report first: an .onnx is only ever beside its record
            os.replace(scratch / f"{path.name}{suffix}", Path(f"{path}{suffix}"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path


def _recognizer_folder(repository: Path, env) -> Path:
    from vision.brands import DEFAULT_DETECTOR, DEFAULT_EMBEDDER, DEFAULT_GALLERY

    options = {"embedder": DEFAULT_EMBEDDER, "gallery": DEFAULT_GALLERY, "detector": DEFAULT_DETECTOR,
               "backend": "torch"}
    return _python_folder(repository, RECOGNIZER, "Recognizer", env, 1, inputs=[("IMAGE", "TYPE_STRING", [1])],
                          outputs=[("RESULT", "TYPE_STRING", [1])], info={"recognizer": options},
                          max_batch=MAX_BATCH)


def _q(value: str, what: str) -> str:
    return pbtxt_string(value, what, ExportError)


def _tensors(kind: str, tensors) -> str:
    body = ",\n".join(f"  {{ name: {_q(n, f'{kind} name')} data_type: {t} "
                      f"dims: [ {', '.join(str(int(d)) for d in dims)} ] }}" for n, t, dims in tensors)
    return f"{kind} [\n{body}\n]\n"


def _python_folder(repository: Path, name: str, cls: str, env, instances: int, *, inputs, outputs, info: dict,
                   extra: dict | None = None, max_batch: int = STEP_MAX_BATCH) -> Path:
    parameters = ""
    if env is not None:
        parameters = (f'parameters: {{ key: "EXECUTION_ENV_PATH" value: {{ string_value: '
                      f'{_q(str(Path(env).resolve()), "execution environment")} }} }}\n')
    config = (f"# written by vision.serving.repository\nname: {_q(name, 'Triton model name')}\nbackend: \"python\"\n"
              f"max_batch_size: {int(max_batch)}\n" + _tensors("input", inputs) + _tensors("output", outputs)
              + f"dynamic_batching {{ max_queue_delay_microseconds: {QUEUE_DELAY_US} }}\n"
              + f"instance_group [ {{ count: {int(instances)} kind: KIND_CPU }} ]\n" + parameters)
    files = {"config.pbtxt": config.encode(), "vision.json": _json(info),
             "1/model.py": MODEL_PY.format(cls=cls).encode(), **(extra or {})}
    return write_model_folder(repository, name, files)


def _ensemble_config(name: str, output: str) -> str:
    def step(model: str, inputs: dict, outputs: dict) -> str:
        maps = "".join(f" input_map {{ key: {_q(k, 'tensor')} value: {_q(v, 'tensor')} }}" for k, v in inputs.items())
        maps += "".join(f" output_map {{ key: {_q(k, 'tensor')} value: {_q(v, 'tensor')} }}"
                        for k, v in outputs.items())
        return f"  {{ model_name: {_q(model, 'Triton model name')} model_version: -1{maps} }}"

    steps = ",\n".join([
        step(f"{name}_pre", {"IMAGE": "IMAGE"}, {INPUT_NAME: "pre_input", "META": "pre_meta"}),
        step(f"{name}_net", {INPUT_NAME: "pre_input"}, {output: "net_output"}),
        step(f"{name}_post", {output: "net_output", "META": "pre_meta"}, {"RESULT": "RESULT"}),
    ])
    return (f"# written by vision.serving.repository: image bytes in, vision predict's JSON out\n"
            f"name: {_q(name, 'Triton model name')}\nplatform: \"ensemble\"\nmax_batch_size: {MAX_BATCH}\n"
            + _tensors("input", [("IMAGE", "TYPE_STRING", [1])]) + _tensors("output", [("RESULT", "TYPE_STRING", [1])])
            + f"ensemble_scheduling {{\n step [\n{steps}\n ]\n}}\n")


def _json(value: dict) -> bytes:
    return (json.dumps(value, indent=1) + "\n").encode()
