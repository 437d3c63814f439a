"""INT8 settings chosen by the CPU: the target picked from the CPU flags, the settings each target writes into the
graph and its calibration record, and the warning ``vision benchmark`` gives for an INT8 model on a CPU without
VNNI."""

from pathlib import Path

import numpy as np
import pytest
import torch

from vision.export import ExportError, export
from vision.export.quantize import (
    INT8_SETTINGS,
    cpu_int8_target,
    export_onnx_int8,
    int8_cpu_warning,
    read_calibration_record,
)
from vision.models.classifier import ProductClassifier
from vision.zoo import load_model, save_model

from .conftest import SAMPLE
from .test_zoo import _card

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    torch.manual_seed(0)
    save_model(ProductClassifier("test_resnet", 3, 2).eval(), _card(), root)
    return load_model(root / "tiny.safetensors"), root


@pytest.fixture(scope="module")
def vnni_int8(tiny):
    model, root = tiny
    return export(model, "onnx-int8", root / "tiny.vnni.int8.onnx", calib_dir=SAMPLE / "train", max_images=32,
                  tuned_for="vnni")


def _zero_point_types(path) -> set[int]:
    import onnx

    proto = onnx.load(str(path))
    consts = {t.name: t for t in proto.graph.initializer}
    return {consts[n.input[2]].data_type for n in proto.graph.node if n.op_type == "QuantizeLinear"}


def test_target_follows_the_cpu_flags(monkeypatch):
    import vision.export.quantize as quantize

    for flags, target in (({"avx2", "avx512_vnni"}, "vnni"), ({"avx2", "avx_vnni"}, "vnni"),
                          ({"avx512f", "amx_int8"}, "vnni"), ({"avx2", "fma"}, "avx2"), ({"asimd"}, "generic"),
                          (set(), "generic")):
        monkeypatch.setattr(quantize, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert cpu_int8_target() == target, flags


def test_vnni_target_writes_uint8_activations_and_records_its_settings(vnni_int8):
    import onnx

    record = read_calibration_record(vnni_int8)
    assert record["tuned_for"] == "vnni" and isinstance(record["cpu_isa"], list)
    assert {k: record[k] for k in INT8_SETTINGS["vnni"]} == INT8_SETTINGS["vnni"]
    # the activations' type is the zero point's: uint8 for VNNI's u8 x s8 kernels
    assert _zero_point_types(vnni_int8) == {onnx.TensorProto.UINT8}


def test_auto_picks_this_cpus_target_and_reduce_range_overrides(tiny, monkeypatch):
    import onnx

    import vision.export.quantize as quantize

    model, root = tiny
    monkeypatch.setattr(quantize, "cpu_flags", lambda: frozenset({"avx2"}))
    path = export_onnx_int8(model, root / "tiny.auto.int8.onnx", calib_dir=SAMPLE / "train", max_images=32,
                            reduce_range=False)
    record = read_calibration_record(path)
    assert (record["tuned_for"], record["activations"], record["reduce_range"]) == ("avx2", "uint8", False)
    assert _zero_point_types(path) == {onnx.TensorProto.UINT8}  # u8 x s8: the kernels that fuse every Conv
    monkeypatch.setattr(quantize, "cpu_flags", lambda: frozenset({"asimd"}))
    path = export_onnx_int8(model, root / "tiny.arm.int8.onnx", calib_dir=SAMPLE / "train", max_images=32)
    record = read_calibration_record(path)
    assert (record["tuned_for"], record["activations"], record["reduce_range"]) == ("generic", "int8", True)
    assert _zero_point_types(path) == {onnx.TensorProto.INT8}
    with pytest.raises(ExportError, match="unknown tuned_for 'avx9'"):
        export_onnx_int8(model, root / "x.onnx", calib_dir=SAMPLE / "train", tuned_for="avx9")


def test_int8_on_a_cpu_without_vnni_is_warned():
    vnni, avx2 = frozenset({"avx2", "avx512_vnni"}), frozenset({"avx2"})
    assert int8_cpu_warning({"tuned_for": "vnni"}, vnni) is None
    assert int8_cpu_warning(None, avx2) is None  # an fp32 file
    assert int8_cpu_warning({"tuned_for": "avx2"}, vnni) is None  # 7-bit weights run on VNNI as they are
    assert int8_cpu_warning({"tuned_for": "avx2"}, avx2) is None  # what auto exports on an AVX2 CPU
    assert "picks 'avx2' here" in int8_cpu_warning({"tuned_for": "vnni"}, avx2)  # full-range weights saturate
    assert "picks 'avx2' here" in int8_cpu_warning({}, avx2) and "(avx2)" in int8_cpu_warning({}, avx2)
    assert "little gain" in int8_cpu_warning({"tuned_for": "generic"}, frozenset({"asimd"}))


def test_benchmark_warns_when_the_int8_model_runs_without_vnni(tiny, vnni_int8, monkeypatch, capsys):
    import vision.benchmarking
    import vision.export.quantize as quantize
    from vision.benchmarking import make_predictor
    from vision.commands import benchmark

    model, root = tiny
    monkeypatch.setattr(vision.benchmarking, "export", lambda *a, **k: vnni_int8)  # exported on another CPU
    monkeypatch.setattr(quantize, "cpu_flags", lambda: frozenset({"avx2"}))
    args = benchmark.parser().parse_args(["--model", "tiny", "--calib-dir", str(SAMPLE / "train"), "--threads", "1"])
    p = make_predictor("ort-int8", model, root, args)
    assert p.runtime(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    assert "warning: tiny: this CPU has no VNNI or AMX-INT8 (avx2) and the INT8 model is tuned for 'vnni': " \
        "re-export it on this CPU" in capsys.readouterr().err
    assert np.isfinite(p.runtime(torch.ones(2, 3, 32, 32))).all()


def test_auto_backend_serves_a_zoo_name_from_its_int8_export_where_this_cpu_has_the_int8_unit(tiny, vnni_int8,
                                                                                              tmp_path, monkeypatch):
    import shutil

    import vision.export.quantize as quantize
    from vision.predictors import predictor

    model, root = tiny
    exports = tmp_path / "exports"
    exports.mkdir()
    for suffix in ("", ".parity.json"):
        shutil.copy(f"{vnni_int8}{suffix}", exports / f"tiny.logits.int8.onnx{suffix}")
    export(model, "onnx", exports / "tiny.logits.onnx")
    monkeypatch.setattr(quantize, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni"}))
    p = predictor("tiny", zoo_dir=root, export_dir=exports, device="cpu")
    assert p.backend == "onnxruntime" and p.runtime.path.name == "tiny.logits.int8.onnx"
    # the fp32 export where the int8 one would not run as measured, or where the network runs on a GPU
    monkeypatch.setattr(quantize, "cpu_flags", lambda: frozenset({"avx2"}))
    assert predictor("tiny", zoo_dir=root, export_dir=exports, device="cpu").runtime.path.name == "tiny.logits.onnx"
    # an export tuned for AVX2 is served on an AVX2 CPU (and on a VNNI one), not on a CPU without AVX2
    export(model, "onnx-int8", exports / "tiny.logits.int8.onnx", calib_dir=SAMPLE / "train", max_images=32,
           tuned_for="avx2")
    assert predictor("tiny", zoo_dir=root, export_dir=exports, device="cpu").runtime.path.name == \
        "tiny.logits.int8.onnx"
    monkeypatch.setattr(quantize, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni"}))
    assert predictor("tiny", zoo_dir=root, export_dir=exports, device="cpu").runtime.path.name == \
        "tiny.logits.int8.onnx"
    monkeypatch.setattr(quantize, "cpu_flags", lambda: frozenset({"asimd"}))
    assert predictor("tiny", zoo_dir=root, export_dir=exports, device="cpu").runtime.path.name == "tiny.logits.onnx"
    monkeypatch.setattr(quantize, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni"}))
    from vision.predictors import _auto_source

    chosen, _ = _auto_source("tiny", None, exports, root, torch.device("cuda"))
    assert Path(chosen).name == "tiny.logits.onnx"


# --- bf16 on the torch runtime (CPUs with AMX / AVX-512 BF16)
def test_bf16_runtime_matches_fp32_and_leaves_the_callers_model_alone(tiny):
    from vision.predictors import TorchRuntime

    model, _ = tiny
    x = torch.randn(4, 3, 32, 32)
    fp32 = TorchRuntime(model, "logits", "cpu")(x)
    bf16 = TorchRuntime(model, "logits", "cpu", precision="bf16")
    assert bf16.precision == "bf16" and bf16(x).dtype == np.float32
    assert np.abs(bf16(x) - fp32).max() <= 0.05 * np.abs(fp32).max()
    assert all(p.is_contiguous() for p in model.parameters())  # not switched to channels-last under the caller
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        TorchRuntime(model, "logits", "cpu", precision="fp8")


def test_bf16_on_a_cpu_without_bf16_units_is_warned(tiny, monkeypatch):
    import warnings

    import vision.export.quantize as quantize
    from vision.export.quantize import bf16_cpu_warning
    from vision.predictors import TorchRuntime

    assert bf16_cpu_warning(frozenset({"avx2", "avx512_bf16"})) is None
    assert bf16_cpu_warning(frozenset({"avx2", "amx_bf16"})) is None
    assert bf16_cpu_warning(frozenset()) is None  # flags unknown (no /proc/cpuinfo): no guess
    assert "emulated" in bf16_cpu_warning(frozenset({"avx2", "fma"})) and "(avx2)" in bf16_cpu_warning(
        frozenset({"avx2", "fma"}))
    model, _ = tiny
    monkeypatch.setattr(quantize, "cpu_flags", lambda: frozenset({"avx2"}))
    with pytest.warns(RuntimeWarning, match="tiny.*bf16 is emulated here"):
        TorchRuntime(model, "logits", "cpu", precision="bf16")
    monkeypatch.setattr(quantize, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TorchRuntime(model, "logits", "cpu", precision="bf16")
        TorchRuntime(model, "logits", "cpu")  # fp32: never warned


def test_bf16_predictor_runs_torch_and_is_refused_for_exports(tiny, tmp_path, capsys):
    from vision.commands import main as vision_main
    from vision.predictors import predictor

    _, root = tiny
    p = predictor(root / "tiny.safetensors", precision="bf16", device="cpu", export_dir=tmp_path)
    assert p.runtime.backend == "torch" and p.runtime.precision == "bf16"
    assert len(p([np.zeros((40, 40, 3), np.uint8)])) == 1
    with pytest.raises(ValueError, match="precision 'bf16' is a torch runtime precision"):
        predictor(root / "x.onnx", precision="bf16")
    assert vision_main(["predict", "--model", str(root / "tiny.safetensors"), "--images", str(SAMPLE / "val"),
                        "--backend", "onnxruntime", "--precision", "bf16"]) != 0
    assert "error: --precision bf16 runs on torch" in capsys.readouterr().err


def test_benchmark_precision_adds_a_torch_bf16_row():
    from vision.benchmarking import BenchmarkError, torch_precisions

    assert torch_precisions(["torch", "ort-fp32"], "fp32,bf16") == ["torch", "torch-bf16", "ort-fp32"]
    assert torch_precisions(["torch"], "bf16") == ["torch-bf16"]
    assert torch_precisions(["ort-int8"], "bf16") == ["ort-int8"]
    with pytest.raises(BenchmarkError, match="--precision 'fp16'"):
        torch_precisions(["torch"], "fp16")


LOGO_SAMPLE = SAMPLE.parent / "logo_sample"


@pytest.fixture(scope="module")
def logo_int8(tmp_path_factory):
    """The shipped detector's INT8 export, calibrated and gated on the committed logo sample (32 images)."""
    return export(load_model("logo_yolo11n"), "onnx-int8", tmp_path_factory.mktemp("logo") / "logo.int8.onnx",
                  calib_dir=LOGO_SAMPLE / "images", tuned_for="vnni")


def test_detector_int8_passes_its_gate_with_the_box_decode_in_fp32(logo_int8):
    import json

    import onnx

    report = json.loads(logo_int8.with_name(logo_int8.name + ".parity.json").read_text())
    assert report["gate"]["deployed_box_agreement"] == 0.9 and report["gate"]["max_rel_diff"] is None
    assert report["deployed_box_agreement"] >= 0.9 and report["deployed_detections"][0] >= 50
    record = read_calibration_record(logo_int8)
    assert record["shape_inference"] == "onnx" and record == report["calibration"]
    # the box decode (DFL softmax, anchors, class sigmoid) and the stem stay fp32; every other convolution is int8
    graph = onnx.load(str(logo_int8)).graph
    assert {"/model/model.23/dfl/Exp", "/model/model.23/dfl/ReduceSum"} <= set(record["fp32_nodes"])
    assert [n for n in record["fp32_nodes"] if n.endswith("Conv")] == ["/model/model.0/conv/Conv"]
    fed_by_dequantize = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv" and n.name not in record["fp32_nodes"]]
    assert len(convs) == 86 and all(n.input[0] in fed_by_dequantize for n in convs)
    # every SiLU runs as onnxruntime's fused fp32 QuickGelu between them, fed by a DequantizeLinear
    silus = [n for n in graph.node if n.op_type == "QuickGelu"]
    assert record["fused_silu"] == 77 and len(silus) == 77
    assert all(n.name in record["fp32_nodes"] for n in graph.node if n.op_type == "Sigmoid")   # the decode's own
    assert all(n.domain == "com.microsoft" and n.input[0] in fed_by_dequantize for n in silus
               if not n.name.startswith("/model/model.0/"))


def test_fuse_silu_replaces_only_x_times_sigmoid_x_with_the_same_values():
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from vision.export.quantize import fuse_silu

    nodes = [helper.make_node("Sigmoid", ["x"], ["s"], name="silu/Sigmoid"),
             helper.make_node("Mul", ["x", "s"], ["y"], name="silu/Mul"),            # SiLU: fused
             helper.make_node("Sigmoid", ["y"], ["t"], name="gate/Sigmoid"),
             helper.make_node("Mul", ["x", "t"], ["z"], name="gate/Mul"),            # x * sigmoid(y): kept
             helper.make_node("Sigmoid", ["z"], ["u"], name="shared/Sigmoid"),
             helper.make_node("Mul", ["z", "u"], ["v"], name="shared/Mul"),
             helper.make_node("Add", ["u", "v"], ["out"], name="shared/Add")]       # sigmoid used twice: kept
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 8]) for n in ("x", "out")]
    model = helper.make_model(helper.make_graph(nodes, "g", [vi[0]], [vi[1]]),
                              opset_imports=[helper.make_opsetid("", 17)])
    before = model.SerializeToString()
    assert fuse_silu(model) == 1
    ops = [(n.op_type, n.name) for n in model.graph.node]
    assert ("QuickGelu", "silu/Mul") in ops and ("Sigmoid", "silu/Sigmoid") not in ops and len(ops) == 6
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32) * 4
    runs = [ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            for m in (before, model.SerializeToString())]
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-5, atol=1e-6)
    onnx.checker.check_model(model)
    with pytest.raises(ExportError, match="TensorRT does not read"):
        export(load_model("logo_yolo11n"), "onnx-int8", "unused.int8.onnx", calib_dir=LOGO_SAMPLE / "images",
               tuned_for="tensorrt", fuse_silu=True)


def test_detector_int8_predictor_gives_the_fp32_boxes(logo_int8):
    from vision import predictor
    from vision import ultralytics_compat as ulc
    from vision.data.io import list_images

    images = list_images(LOGO_SAMPLE / "images" / "val")
    on_int8 = predictor(logo_int8, device="cpu")
    assert on_int8.backend == "onnxruntime"
    box_iou = ulc.metrics_module().box_iou
    found = total = 0
    for want, got in zip(predictor("logo_yolo11n", backend="torch", device="cpu")(images), on_int8(images),
                         strict=True):
        a = torch.tensor([d["box"] for d in want.boxes]).reshape(-1, 4)
        b = torch.tensor([d["box"] for d in got.boxes]).reshape(-1, 4)
        total += len(a)
        if len(a) and len(b):
            found += int((box_iou(a, b) >= 0.5).any(1).sum())
    assert total >= 10 and found / total >= 0.9


def test_detector_int8_with_a_bad_calibration_is_refused(tmp_path):
    """Calibrated on flat grey images, the activation ranges clip real photos: the gate, judged on the logo sample,
    refuses the export and leaves no file."""
    from PIL import Image

    for i in range(32):
        Image.new("RGB", (64, 64), (120 + i, 120 + i, 120 + i)).save(tmp_path / f"grey{i}.png")
    with pytest.raises(ExportError, match="agreement of the boxes kept at score 0.25"):
        export(load_model("logo_yolo11n"), "onnx-int8", tmp_path / "bad.int8.onnx", calib_dir=tmp_path,
               parity_dir=LOGO_SAMPLE / "images", tuned_for="vnni")
    assert not (tmp_path / "bad.int8.onnx").exists()


def test_detector_int8_judged_on_images_without_detections_is_refused():
    """No detection at the deployed score, in torch or the export, is no evidence: the gate refuses it."""
    from vision.export.onnx import check_parity

    report = {"images": 32, "max_rel_diff": 0.5, "max_abs_diff": 160.0, "min_cosine": 0.99, "top1_agreement": None,
              "output": "predictions", "detections": 0, "box_agreement": None, "deployed_conf": 0.25,
              "deployed_detections": [0, 0], "deployed_recall": None, "deployed_precision": None,
              "deployed_box_agreement": None}
    with pytest.raises(ExportError, match="no detection reaches score 0.25 on these 32 images"):
        check_parity(report, "int8", "logo")
    check_parity({**report, "deployed_detections": [40, 41], "deployed_recall": 0.95, "deployed_precision": 0.93,
                  "deployed_box_agreement": 0.93}, "int8", "logo")  # max_rel_diff is not gated for detectors
    with pytest.raises(ExportError, match="max rel diff"):
        check_parity({**report, "output": "logits", "top1_agreement": 1.0}, "int8", "classifier")
