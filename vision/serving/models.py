"""The Python-backend models of a served repository (:mod:`vision.serving.repository`), run inside Triton's
Python-backend stub: each model folder's ``1/model.py`` imports one of these classes as ``TritonPythonModel``.

The code path is the library's: :class:`Preprocess` decodes with :func:`vision.serving.images.decode_images` and runs
the task head's ``preprocess`` (:func:`vision.predictors.head_for`), :class:`OnnxNetwork` runs
:class:`vision.predictors.OnnxRuntime` on every request of a dynamic batch at once, :class:`Postprocess` runs the
head's ``postprocess`` and writes each result's ``to_dict()`` as JSON, and :class:`Recognizer` runs
:class:`vision.brands.recognition.BrandRecognizer`. A request that fails gets its own error; the others are answered.
Each model reads its settings from ``vision.json`` in its folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

IMAGE, RESULT, META = "IMAGE", "RESULT", "META"
# decoded pixels one request may hold, as a predictor's batch (vision.predictors.DEFAULT_MAX_BATCH_PIXELS)
REQUEST_PIXELS = 128_000_000


class _PythonModel:
    """``initialize``/``execute`` of a Triton Python model: per-request answers, errors included."""

    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb

        self.pb = pb
        self.folder = Path(args["model_repository"])
        self.version_dir = self.folder / str(args["model_version"])
        self.info = json.loads((self.folder / "vision.json").read_text(encoding="utf-8"))
        self.setup()

    def setup(self) -> None:
        pass

    def execute(self, requests: list) -> list:
        return [self._answer(request) for request in requests]

    def _answer(self, request):
        try:
            return self.pb.InferenceResponse(output_tensors=[self.pb.Tensor(k, v) for k, v in self.run(request)])
        except Exception as e:  # noqa: BLE001 - one bad request must not fail the others of its batch
            return self.error(e)

    def error(self, e: BaseException):
        return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(_message(e)))

    def input(self, request, name: str) -> np.ndarray:
        tensor = self.pb.get_input_tensor_by_name(request, name)
        if tensor is None:
            raise ValueError(f"the request has no input {name!r}")
        return tensor.as_numpy()

    def images(self, request) -> list[np.ndarray]:
        from vision.serving.images import decode_images

        items = self.input(request, IMAGE)
        if items.size == 0:
            raise ValueError(f"{IMAGE} is empty; send one encoded image per row, shape [batch, 1]")
        return decode_images([bytes(row[0]) for row in items.reshape(len(items), -1)], REQUEST_PIXELS)

    def run(self, request) -> list[tuple[str, np.ndarray]]:
        raise NotImplementedError


def _message(e: BaseException) -> str:
    from vision.data.io import ImageLoadError

    return str(e) if isinstance(e, (ImageLoadError, ValueError)) else f"{type(e).__name__}: {e}"


def _json_rows(documents: list[dict]) -> np.ndarray:
    return np.array([[json.dumps(d).encode()] for d in documents], dtype=np.object_)


def _head(info: dict):
    import torch

    from vision.predictors import head_for
    from vision.zoo.card import ModelCard

    # pre/post steps do little tensor work: one thread each leaves the cores to the network step and the other stubs
    torch.set_num_threads(1)

    card = ModelCard.from_dict(info["card"], where="vision.json card")
    return head_for(card, info["output"], **info.get("head", {}))


class Preprocess(_PythonModel):
    """``IMAGE`` (encoded bytes) -> the network's input batch and ``META`` (JSON per image: its index in the
    request and the head's record of it, e.g. a detector's original size)."""

    def setup(self) -> None:
        self.head = _head(self.info)
        self.network_input = self.info["network_input"]

    def run(self, request):
        arrays = self.images(request)
        batch, meta = self.head.preprocess(arrays)
        per_image = meta if isinstance(meta, (list, tuple)) and len(meta) == len(arrays) else [None] * len(arrays)
        records = [{"index": i, "meta": m} for i, m in enumerate(per_image)]
        return [(self.network_input, batch.numpy()), (META, _json_rows(records))]


class Postprocess(_PythonModel):
    """The network's output and ``META`` -> ``RESULT``: what ``vision predict`` writes for each image, as JSON."""

    def setup(self) -> None:
        self.head = _head(self.info)
        self.network_output = self.info["network_output"]

    def run(self, request):
        output = self.input(request, self.network_output)
        records = [json.loads(bytes(row[0])) for row in self.input(request, META).reshape(len(output), -1)]
        metas = [r["meta"] for r in records]
        meta = None if all(m is None for m in metas) else [tuple(m) if isinstance(m, list) else m for m in metas]
        results = self.head.postprocess(output, meta, [f"<input {r['index']}>" for r in records])
        return [(RESULT, _json_rows([r.to_dict() for r in results]))]


class OnnxNetwork(_PythonModel):
    """The network step on ONNX Runtime (the export beside this file, checked against its parity record): every
    request of a dynamic batch in one run."""

    def setup(self) -> None:
        from vision.predictors import OnnxRuntime

        # its workers never busy-wait (not even the predictor's default 50 us): they would take the cores the pre/post
        # stubs need (served classifier at 16 clients 49.8 -> 77.8 images/s without spinning, serving.md)
        self.runtime = OnnxRuntime(self.version_dir / "model.onnx", device="cpu", spin=False)
        self.input_name, self.output_name = self.info["network_input"], self.info["network_output"]

    def execute(self, requests: list) -> list:
        import torch

        try:
            batches = [self.input(r, self.input_name) for r in requests]
            output = self.runtime(torch.from_numpy(np.concatenate(batches)))
        except Exception:  # noqa: BLE001 - find the request at fault: each one alone
            return [self._answer(r) for r in requests]
        bounds = np.cumsum([0] + [len(b) for b in batches])
        return [self.pb.InferenceResponse(output_tensors=[self.pb.Tensor(self.output_name, output[a:b])])
                for a, b in zip(bounds[:-1], bounds[1:])]

    def run(self, request):
        import torch

        return [(self.output_name, self.runtime(torch.from_numpy(self.input(request, self.input_name))))]


class Recognizer(_PythonModel):
    """``IMAGE`` -> ``RESULT``: what ``vision recognize`` writes per image (``image``, ``width``, ``height``,
    ``logos``), from :class:`~vision.brands.recognition.BrandRecognizer` with the settings in ``vision.json``."""

    def setup(self) -> None:
        from vision.brands.recognition import BrandRecognizer

        options = self.info["recognizer"]
        self.recognizer = BrandRecognizer.from_pretrained(
            options["embedder"], options["gallery"], detector=options["detector"], device="cpu",
            embedder_backend=options["backend"], detector_backend=options["backend"])

    def execute(self, requests: list) -> list:
        decoded, answers = [], {}
        for i, request in enumerate(requests):
            try:
                decoded.append((i, self.images(request)))
            except Exception as e:  # noqa: BLE001
                answers[i] = self.error(e)
        arrays = [a for _, images in decoded for a in images]
        try:
            logos = self.recognizer.predict(arrays, batch_size=max(1, len(arrays))) if arrays else []
        except Exception as e:  # noqa: BLE001
            return [answers.get(i) or self.error(e) for i in range(len(requests))]
        start = 0
        for i, images in decoded:
            found, start = logos[start:start + len(images)], start + len(images)
            documents = [{"image": f"<input {j}>", "width": int(a.shape[1]), "height": int(a.shape[0]), "logos": f}
                         for j, (a, f) in enumerate(zip(images, found))]
            answers[i] = self.pb.InferenceResponse(output_tensors=[self.pb.Tensor(RESULT, _json_rows(documents))])
        return [answers[i] for i in range(len(requests))]
