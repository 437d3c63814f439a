"""The TensorRT path without a GPU: builder precision flags (TF32), the TF32-free parity reference, the fp16 graph
TensorRT 11 builds from, the engine's stream and device, and padding under the profile minimum, with fake
TensorRT objects. The real builds are the GPU-marked tests of test_export_deploy.py."""

import contextlib
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import vision.export.onnx as export_onnx_module
import vision.export.tensorrt as trt_export
from vision.export.tensorrt import TensorRTEngine, build_sidecar, fp16_onnx, full_fp32, read_sidecar
from vision.models.classifier import ProductClassifier
from vision.predictors import TensorRTRuntime
from vision.zoo import load_model, save_model

from .test_zoo import _card


class FakeConfig:
    def __init__(self):
        self.set, self.cleared = [], []

    def set_flag(self, flag):
        self.set.append(flag)

    def clear_flag(self, flag):
        self.cleared.append(flag)


def fake_trt(with_tf32: bool = True):
    flags = {"FP16": "FP16", "INT8": "INT8", **({"TF32": "TF32"} if with_tf32 else {})}
    return SimpleNamespace(BuilderFlag=SimpleNamespace(**flags))


@pytest.mark.parametrize("strongly_typed", [False, True])
def test_fp32_plans_clear_tf32_other_precisions_keep_tensorrt_default(strongly_typed):
    config = FakeConfig()
    assert trt_export.set_precision_flags(fake_trt(), config, "fp32", strongly_typed) is False
    assert config.cleared == ["TF32"] and config.set == []
    config = FakeConfig()
    assert trt_export.set_precision_flags(fake_trt(), config, "fp16", strongly_typed) is True
    assert config.cleared == [] and config.set == ([] if strongly_typed else ["FP16"])
    config = FakeConfig()  # asked for: the gpu check measures fp32 with TF32
    assert trt_export.set_precision_flags(fake_trt(), config, "fp32", strongly_typed, tf32=True) is True
    assert config.cleared == []
    assert trt_export.set_precision_flags(fake_trt(with_tf32=False), FakeConfig(), "fp32", strongly_typed) is False


def test_sidecar_records_the_tf32_choice(tmp_path):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"plan")
    sidecar = build_sidecar(plan, card=_card(), output="logits", precision="fp32", batch=(1, 2, 4),
                            input_shape=(-1, 3, 32, 32), output_shape=(2, 3), tensorrt_version="11.4.0.106",
                            gpu_name="GPU", compute_capability="9.0", tf32=False)
    trt_export.sidecar_path(plan).write_text(__import__("json").dumps(sidecar))
    assert read_sidecar(plan)["tf32"] is False


def test_full_fp32_turns_tf32_off_and_restores_it():
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = True
    try:
        with pytest.raises(KeyError), full_fp32():
            assert (cudnn.allow_tf32, matmul.allow_tf32) == (False, False)
            raise KeyError
        assert (cudnn.allow_tf32, matmul.allow_tf32) == (True, True)
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = before


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("trt")
    torch.manual_seed(0)
    save_model(ProductClassifier("test_resnet", 3, 2).eval(), _card(), root)
    return load_model(root / "tiny.safetensors")


def test_export_parity_references_run_without_tf32(tiny, tmp_path, monkeypatch):
    """Both gates of a TensorRT export (the ONNX one and the plan's) compare against torch with TF32 off, so a
    model on a GPU is judged in IEEE fp32, and its parity batch is padded up to the profile minimum; TensorRT
    itself is faked (the engine answers with torch's output)."""
    seen = []
    plain = export_onnx_module.torch_outputs

    def recording(original):
        def outputs(model, output, images):
            seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
            return original(model, output, images)
        return outputs

    class Engine:
        min_batch, max_batch = 5, 8  # the 4 parity images are padded to 5

        def __init__(self, path):
            pass

        def __call__(self, batch):
            assert self.min_batch <= len(batch) <= self.max_batch, "outside the profile"
            return plain(tiny, "logits", torch.as_tensor(batch))

    def build(onnx_path, path, **kw):
        path.write_bytes(b"plan")
        return path

    monkeypatch.setattr(trt_export, "_tensorrt", lambda: SimpleNamespace(__version__="11.4.0.106"))
    monkeypatch.setattr(trt_export, "build_engine", build)
    monkeypatch.setattr(trt_export, "TensorRTEngine", Engine)
    monkeypatch.setattr(trt_export, "torch_outputs", recording(trt_export.torch_outputs))
    monkeypatch.setattr(export_onnx_module, "torch_outputs", recording(export_onnx_module.torch_outputs))
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    plan = trt_export.export_tensorrt(tiny, tmp_path / "tiny.plan", precision="fp32", batch="5,6,8",
                                      output="logits", simplify=False)
    assert plan.with_name("tiny.plan.parity.json").is_file()
    assert len(seen) >= 2 and set(seen) == {(False, False)}
    assert torch.backends.cudnn.allow_tf32 is True


def _resize_graph(path):
    """Conv -> Resize (x2 nearest, fp32 scales) -> Sigmoid: the shape of YOLO's upsampling path."""
    rng = np.random.default_rng(0)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], rng.standard_normal(108).astype(np.float32))
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0])
    nodes = [helper.make_node("Conv", ["images", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="nearest"),
             helper.make_node("Sigmoid", ["r"], ["out"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 4, 16, 16])],
                              [weight, scales])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_fp16_graph_keeps_resize_in_fp32_is_sorted_checked_and_runs(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    source = _resize_graph(tmp_path / "g.onnx")
    converted = fp16_onnx(source)
    model = onnx.load(str(converted))
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input,
                                                            *inferred.graph.output]}
    resize = next(n for n in model.graph.node if n.op_type == "Resize")
    assert types[resize.input[0]] == types[resize.output[0]] == TensorProto.FLOAT
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert types[conv.output[0]] == TensorProto.FLOAT16  # the rest is fp16
    assert types["images"] == types["out"] == TensorProto.FLOAT  # fp32 I/O
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    run = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
           for p in (source, converted)]
    assert np.abs(run[0] - run[1]).max() < 1e-2


class FakeStream:
    cuda_stream = 0xBEEF

    def __init__(self):
        self.synchronized, self.waited = 0, []

    def synchronize(self):
        self.synchronized += 1

    def wait_stream(self, other):
        self.waited.append(other)


class FakeContext:
    def __init__(self):
        self.handles, self.shape = [], None

    def set_input_shape(self, name, shape):
        self.shape = shape

    def get_tensor_shape(self, name):
        return (self.shape[0], 3)

    def set_tensor_address(self, name, address):
        pass

    def execute_async_v3(self, handle):
        self.handles.append(handle)
        return True


def test_engine_enqueues_on_its_own_stream_with_its_device_current(monkeypatch):
    entered = []

    @contextlib.contextmanager
    def enter(what, kind):
        entered.append((kind, what))
        yield

    monkeypatch.setattr(torch.cuda, "device", lambda d: enter(d, "device"))
    monkeypatch.setattr(torch.cuda, "stream", lambda s: enter(s, "stream"))
    monkeypatch.setattr(torch.cuda, "current_stream", lambda d: ("caller's stream", d))
    engine = object.__new__(TensorRTEngine)  # CPU stands in for the engine's CUDA device
    engine.path, engine.device, engine.chw, engine.min_batch, engine.max_batch = "m.plan", torch.device("cpu"), \
        (3, 4, 4), 1, 8
    engine.output_name, engine.stream, engine.context = "logits", FakeStream(), FakeContext()
    out = engine(np.zeros((2, 3, 4, 4), np.float32))
    assert out.shape == (2, 3)
    assert engine.context.handles == [0xBEEF] and engine.stream.synchronized == 1
    assert entered == [("device", engine.device), ("stream", engine.stream)]
    assert engine.stream.waited == [("caller's stream", engine.device)]  # a CUDA input is complete before use


class FakeEngine:
    min_batch, max_batch = 4, 8

    def __init__(self):
        self.batches = []

    def __call__(self, batch):
        assert self.min_batch <= len(batch) <= self.max_batch, "outside the profile"
        self.batches.append(len(batch))
        return batch.flatten(1).sum(1, keepdim=True).numpy() + 1.0  # padding rows give 1.0, never 0 rows


@pytest.mark.parametrize("n, slices", [(11, [8, 4]), (2, [4]), (8, [8]), (16, [8, 8])])
def test_tensorrt_runtime_pads_slices_under_the_profile_minimum(n, slices):
    runtime = object.__new__(TensorRTRuntime)
    runtime.engine = FakeEngine()
    batch = torch.arange(n * 2, dtype=torch.float32).reshape(n, 2) + 1
    out = runtime(batch)
    assert runtime.engine.batches == slices
    np.testing.assert_allclose(out, batch.sum(1, keepdim=True).numpy() + 1.0)
