"""Deployment exports: INT8 ONNX and its gate, calibration keys, TensorRT sidecar checks (CPU, fake sidecars),
Triton repository configs parsed against Triton's ModelConfig protobuf, detector ONNX parity, the exporter table,
FeatureExtractor backend choice. GPU-marked tests build real TensorRT engines where CUDA and tensorrt exist."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vision.data.io import list_images
from vision.data.transforms import Preprocessing
from vision.export import FORMATS, ExportError, export, export_onnx, read_onnx_metadata
from vision.export.calibration import CalibrationSet
from vision.export.onnx import PARITY_GATES
from vision.export.quantize import export_onnx_int8, read_calibration_record
from vision.export.tensorrt import (
    EngineMismatchError,
    build_sidecar,
    check_engine_input,
    check_engine_sidecar,
    parse_batch,
    read_sidecar,
    sidecar_path,
)
from vision.export.triton import verify_triton_repository, write_triton_model
from vision.features import FeatureExtractor
from vision.models.classifier import ProductClassifier
from vision.zoo import load_model, save_model

from .conftest import REPO, SAMPLE
from .test_zoo import _card

pytest.importorskip("onnxruntime")
SHIPPED = REPO / "weights" / "grocery_resnet10t.safetensors"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    torch.manual_seed(0)
    save_model(ProductClassifier("test_resnet", 3, 2).eval(), _card(), root)
    return load_model(root / "tiny.safetensors"), root


@pytest.fixture(scope="module")
def tiny_int8(tiny):
    model, root = tiny
    return export_onnx_int8(model, root / "tiny.int8.onnx", calib_dir=SAMPLE / "train", max_images=48,
                            output="features")


# --- INT8 ONNX
def test_int8_export_passes_its_gate_and_records_calibration(tiny, tiny_int8):
    model, _ = tiny
    card, output = read_onnx_metadata(tiny_int8)
    assert card == model.card and output == "features"
    record = read_calibration_record(tiny_int8)
    assert record["images"] == 48 and record["format"] == "qdq" and len(record["key"]) == 64
    report = json.loads(tiny_int8.with_name(tiny_int8.name + ".parity.json").read_text())
    assert report["precision"] == "int8" and report["gate"]["precision"] == "int8" and report["images"] == 48
    assert report["min_cosine"] >= PARITY_GATES["int8"]["min_cosine"]
    import onnx

    ops = {n.op_type for n in onnx.load(str(tiny_int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    feats = FeatureExtractor.from_pretrained(tiny_int8)(list_images(SAMPLE / "val")[:2])
    assert feats.shape == (2, model.num_features)


def test_int8_gate_failure_refuses_and_leaves_no_file(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(PARITY_GATES, "int8", {**PARITY_GATES["int8"], "min_cosine": 1.01})
    with pytest.raises(ExportError, match=r"INT8 ONNX output does not match torch at int8 \(min cosine"):
        export_onnx_int8(tiny[0], tmp_path / "x.onnx", calib_dir=SAMPLE / "train", max_images=32)
    assert list(tmp_path.iterdir()) == []


def test_calibration_folder_with_too_few_images_is_refused(tiny, tmp_path):
    for src in list_images(SAMPLE / "val")[:3]:
        (tmp_path / src.name).write_bytes(src.read_bytes())
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ExportError, match=r"has 3 readable image\(s\) \(1 unreadable\); INT8 calibration needs at "
                                          r"least 32"):
        export_onnx_int8(tiny[0], tmp_path / "x.onnx", calib_dir=tmp_path)
    with pytest.raises(ExportError, match="does not exist"):
        CalibrationSet.from_folder(tmp_path / "missing", Preprocessing())


def test_calibration_key_changes_with_data_preprocessing_batch_and_version(tmp_path):
    pre = Preprocessing(input_size=32)
    calib = CalibrationSet.from_folder(SAMPLE / "val", pre, min_images=1)
    key = calib.key(batch=8, tensorrt="10.16.1")
    assert key == CalibrationSet.from_folder(SAMPLE / "val", pre, min_images=1).key(batch=8, tensorrt="10.16.1")
    assert key != calib.key(batch=16, tensorrt="10.16.1")
    assert key != calib.key(batch=8, tensorrt="10.15.1")
    assert key != CalibrationSet.from_folder(SAMPLE / "val", Preprocessing(input_size=48), min_images=1).key(
        batch=8, tensorrt="10.16.1")
    assert key != CalibrationSet.from_folder(SAMPLE / "val", pre, min_images=1, max_images=10).key(
        batch=8, tensorrt="10.16.1")
    batches = list(calib.batches(16))
    assert batches[0].dtype == np.float32 and batches[0].shape == (16, 3, 32, 32)
    assert sum(len(b) for b in batches) == len(calib) == len(list_images(SAMPLE / "val"))


# --- TensorRT sidecar and input contract (no TensorRT needed)
@pytest.fixture
def fake_engine(tiny, tmp_path):
    plan = tmp_path / "tiny.plan"
    plan.write_bytes(b"\x00fake serialized engine" * 100)
    sidecar = build_sidecar(plan, card=tiny[0].card, output="logits", precision="fp16", batch=(1, 4, 16),
                            input_shape=(-1, 3, 32, 32), output_shape=(4, 3), tensorrt_version="10.16.1.11",
                            gpu_name="NVIDIA L4", compute_capability="8.9", workspace_bytes=1 << 30)
    sidecar_path(plan).write_text(json.dumps(sidecar))
    return plan


def test_sidecar_records_what_serving_needs(fake_engine, tiny):
    sidecar = read_sidecar(fake_engine)
    card = tiny[0].card
    assert sidecar["model"] == card.name and sidecar["task"] == "classification"
    assert sidecar["input"] == {"name": "images", "dtype": "float32", "layout": "NCHW", "shape": [-1, 3, 32, 32]}
    assert sidecar["output"]["name"] == "logits" and sidecar["output"]["shape"] == [-1, 3]
    assert "softmax" in sidecar["output"]["meaning"]
    assert sidecar["preprocessing"] == card.preprocessing and sidecar["class_names"] == ["a", "b", "c"]
    assert sidecar["precision"] == "fp16" and sidecar["batch_profile"] == {"min": 1, "opt": 4, "max": 16}
    assert sidecar["tensorrt"] == "10.16.1.11"
    assert sidecar["gpu"] == {"name": "NVIDIA L4", "compute_capability": "8.9"}
    assert sidecar["bytes"] == fake_engine.stat().st_size and len(sidecar["sha256"]) == 64
    assert check_engine_sidecar(fake_engine, sidecar, tensorrt_version="10.16.1.11", compute_capability="8.9",
                                gpu_name="NVIDIA L4") == []


def test_engine_for_another_tensorrt_or_gpu_is_refused_with_rebuild(fake_engine):
    sidecar = read_sidecar(fake_engine)
    with pytest.raises(EngineMismatchError, match=r"built with TensorRT 10.16.1.11, this process has TensorRT "
                                                  r"10.13.3.9.*rebuild it here: vision export --model"):
        check_engine_sidecar(fake_engine, sidecar, tensorrt_version="10.13.3.9", compute_capability="8.9")
    with pytest.raises(EngineMismatchError, match=r"built for GPU architecture sm_8.9 \(NVIDIA L4\), this GPU is "
                                                  r"sm_9.0 \(NVIDIA H100\).*rebuild"):
        check_engine_sidecar(fake_engine, sidecar, tensorrt_version="10.16.1.11", compute_capability="9.0",
                             gpu_name="NVIDIA H100")
    warned = check_engine_sidecar(fake_engine, sidecar, tensorrt_version="10.16.1.11", compute_capability="8.9",
                                  gpu_name="NVIDIA RTX 4090")
    assert len(warned) == 1 and "tuned for the other GPU" in warned[0]


def test_truncated_or_unlabelled_engine_is_refused(fake_engine):
    sidecar = read_sidecar(fake_engine)
    fake_engine.write_bytes(fake_engine.read_bytes()[:100])
    with pytest.raises(EngineMismatchError, match="truncated"):
        check_engine_sidecar(fake_engine, sidecar, tensorrt_version="10.16.1.11", compute_capability="8.9")
    fake_engine.write_bytes(b"x" * sidecar["bytes"])
    with pytest.raises(EngineMismatchError, match="sha256 differs"):
        check_engine_sidecar(fake_engine, sidecar, tensorrt_version="10.16.1.11", compute_capability="8.9")
    sidecar_path(fake_engine).unlink()
    with pytest.raises(EngineMismatchError, match="no sidecar tiny.plan.json"):
        read_sidecar(fake_engine)


def test_engine_input_contract():
    ok = np.zeros((4, 3, 32, 32), np.float32)
    check_engine_input(ok, (3, 32, 32), 1, 16, "e.plan")
    check_engine_input(torch.from_numpy(ok), (3, 32, 32), 1, 16, "e.plan")
    with pytest.raises(TypeError, match="must be float32.*float16"):
        check_engine_input(ok.astype(np.float16), (3, 32, 32), 1, 16, "e.plan")
    with pytest.raises(TypeError, match="uint8"):
        check_engine_input(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), (3, 32, 32), 1, 16, "e.plan")
    with pytest.raises(ValueError, match=r"batch of 17 is outside the engine's profile \[1, 16\]"):
        check_engine_input(np.zeros((17, 3, 32, 32), np.float32), (3, 32, 32), 1, 16, "e.plan")
    with pytest.raises(ValueError, match="does not match"):
        check_engine_input(np.zeros((2, 3, 64, 64), np.float32), (3, 32, 32), 1, 16, "e.plan")


def test_batch_profile_parsing():
    assert parse_batch("1,8,32") == (1, 8, 32) and parse_batch(None) == (1, 8, 32) and parse_batch([2, 2, 2])
    for bad in ("8,1,32", "0,1,2", "1,8"):
        with pytest.raises(ExportError, match="min,opt,max"):
            parse_batch(bad)


def test_tensorrt_export_without_tensorrt_or_gpu_says_why(tiny, tmp_path):
    try:
        import tensorrt  # noqa: F401
        if torch.cuda.is_available():
            pytest.skip("TensorRT and a GPU are present (see the gpu tests)")
    except ImportError:
        pass
    with pytest.raises(ExportError, match=r"TensorRT is not installed|needs a CUDA GPU"):
        export(tiny[0], "tensorrt", tmp_path / "x.plan", precision="fp16")


# --- Triton repository
def _model_config(model_dir):
    from google.protobuf import text_format

    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def test_triton_onnxruntime_variant_of_shipped_classifier(tmp_path):
    """The served layout: an ensemble (image bytes in, JSON out) around Python pre/post models and the network on
    Triton's ONNX Runtime backend (NAME_net)."""
    import onnx

    model = load_model(SHIPPED)
    ensemble_dir = export(model, "triton", tmp_path / "repo", serving="onnxruntime", max_batch_size=16)
    ensemble = _model_config(ensemble_dir)
    assert ensemble.name == "grocery_resnet10t" and ensemble.platform == "ensemble"
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == [
        "grocery_resnet10t_pre", "grocery_resnet10t_net", "grocery_resnet10t_post"]
    assert ensemble.input[0].name == "IMAGE" and ensemble.output[0].name == "RESULT"
    assert ensemble.input[0].data_type == ensemble.output[0].data_type == 13  # TYPE_STRING (BYTES)
    for step in ("pre", "post"):
        config = _model_config(tmp_path / "repo" / f"grocery_resnet10t_{step}")
        assert config.backend == "python" and config.dynamic_batching.max_queue_delay_microseconds > 0
    model_dir = tmp_path / "repo" / "grocery_resnet10t_net"
    config = _model_config(model_dir)
    artifact = model_dir / "1" / "model.onnx"
    graph = onnx.load(str(artifact)).graph
    onnx_in = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    onnx_out = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    assert config.name == "grocery_resnet10t_net" and config.platform == "onnxruntime_onnx"
    assert config.backend == "onnxruntime" and config.max_batch_size == 16
    assert list(config.input[0].dims) == onnx_in[1:] == [3, 112, 112] and config.input[0].name == "images"
    assert list(config.output[0].dims) == onnx_out[1:] == [len(model.card.class_names)]
    assert config.output[0].name == graph.output[0].name == "logits"
    assert config.input[0].data_type == config.output[0].data_type == 11  # TYPE_FP32
    assert config.instance_group[0].kind == 2 and config.dynamic_batching.max_queue_delay_microseconds > 0  # CPU
    labels = (model_dir / config.output[0].label_filename).read_text().splitlines()
    assert labels == model.card.class_names
    info = json.loads((model_dir / "vision.json").read_text())
    assert info["card"]["preprocessing"] == model.card.preprocessing and info["parity"]["top1_agreement"] == 1.0
    assert len(verify_triton_repository(tmp_path / "repo")) >= 10


def test_triton_plan_config_takes_batch_from_the_profile(fake_engine, tmp_path):
    model_dir = write_triton_model(fake_engine, tmp_path / "repo")
    config = _model_config(model_dir)
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 16
    assert list(config.input[0].dims) == [3, 32, 32] and list(config.output[0].dims) == [3]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 16]
    assert config.instance_group[0].kind == 1  # KIND_GPU
    assert (model_dir / "1" / "model.plan").read_bytes() == fake_engine.read_bytes()
    with pytest.raises(ExportError, match="exceeds the engine's profile max 16; rebuild with --batch 1,4,64"):
        write_triton_model(fake_engine, tmp_path / "repo", max_batch_size=64)


def test_triton_refuses_a_fixed_batch_onnx(tiny, tmp_path):
    path = export_onnx(tiny[0], tmp_path / "fixed.onnx", dynamic_batch=False)
    with pytest.raises(ExportError, match="batch axis is fixed"):
        write_triton_model(path, tmp_path / "repo")


# --- the exporter table, the CLI, other families
def test_exporter_refuses_options_a_format_does_not_take(tiny, tmp_path):
    with pytest.raises(ExportError, match=r"format 'onnx' does not take \['precision'\]"):
        export(tiny[0], "onnx", tmp_path / "x.onnx", precision="int8")
    with pytest.raises(ExportError, match="unknown export format 'coreml'"):
        export(tiny[0], "coreml", tmp_path / "x")
    assert {"onnx", "onnx-int8", "tensorrt", "triton"} <= set(FORMATS)


def test_export_cli_onnx_int8_and_bad_folder(tiny, tmp_path, capsys):

    from vision.commands.export import main

    weights = tiny[1] / "tiny.safetensors"
    out = tmp_path / "t.int8.onnx"
    assert main(["--model", str(weights), "--format", "onnx-int8", "--calib-dir", str(SAMPLE / "train"),
                 "--out", str(out)]) == 0
    assert out.is_file() and '"precision": "int8"' in capsys.readouterr().err
    from vision.export.quantize import read_calibration_record

    assert read_calibration_record(out)["tuned_for"] in ("vnni", "avx2", "generic")  # auto: this CPU's
    for_avx2 = tmp_path / "t.avx2.int8.onnx"
    assert main(["--model", str(weights), "--format", "onnx-int8", "--calib-dir", str(SAMPLE / "train"),
                 "--tuned-for", "avx2", "--out", str(for_avx2)]) == 0
    record = read_calibration_record(for_avx2)
    assert (record["tuned_for"], record["activations"], record["reduce_range"]) == ("avx2", "uint8", True)
    with pytest.raises(SystemExit, match=r"format 'onnx' does not take \['tuned_for'\]"):  # the exporter's table
        main(["--model", str(weights), "--format", "onnx", "--tuned-for", "avx2"])
    with pytest.raises(SystemExit, match="error: calibration folder .* has 0 readable"):
        main(["--model", str(weights), "--format", "onnx-int8", "--calib-dir", str(tmp_path), "--out",
              str(tmp_path / "u.onnx")])


def test_detector_onnx_parity(tmp_path):
    from vision.tasks.cards import detection_card
    from vision.zoo.registry import build_model

    card = detection_card("det", {"yaml": "yolov8n.yaml", "num_classes": 2, "imgsz": 64})
    torch.manual_seed(0)
    model = build_model(card).eval()
    # PyTorch's default init shrinks activations layer by layer: the untrained head then gives one tied score and
    # box per anchor and NMS picks among ties at random. He init keeps them distinct, as in a trained detector.
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight)
    for branch in model.model[-1].cv3:
        torch.nn.init.constant_(branch[-1].bias, -2.0)
    model.card = card
    path = export_onnx(model, tmp_path / "det.onnx")
    _, output = read_onnx_metadata(path)
    report = json.loads((tmp_path / "det.onnx.parity.json").read_text())
    assert output == "predictions" and report["output"] == "predictions" and report["top1_agreement"] is None
    assert report["max_rel_diff"] < PARITY_GATES["fp32"]["max_rel_diff"]
    assert report["detections"] > 0 and report["box_agreement"] == 1.0
    import onnxruntime as ort

    out = ort.InferenceSession(str(path)).run(None, {"images": np.random.rand(3, 3, 64, 64).astype(np.float32)})[0]
    assert out.shape[:2] == (3, 4 + 2)  # (N, 4 + classes, anchors): NMS is outside the graph
    # the box decode's expectation over the DFL bins is traced without softmax or transpose (the faster form,
    # same values: the parity above), and the torch model keeps ultralytics' own forward
    import onnx

    decode = [n.op_type for n in onnx.load(str(path)).graph.node if "/dfl/" in n.name]
    assert "Exp" in decode and not {"Softmax", "Transpose", "Conv"} & set(decode)
    dfl = model.model[-1].dfl
    assert "forward" not in vars(dfl) and type(dfl).__module__.startswith("ultralytics")


def test_feature_extractor_auto_prefers_a_fresh_export(tiny, tmp_path, monkeypatch):
    model, root = tiny
    monkeypatch.setenv("VISION_ZOO_DIR", str(root))
    export_dir = tmp_path / "export"
    assert FeatureExtractor.from_pretrained("tiny", export_dir=export_dir).backend.backend == "torch"
    export_onnx(model, export_dir / "tiny.features.onnx", output="features")
    assert FeatureExtractor.from_pretrained("tiny", export_dir=export_dir).backend.backend == "onnxruntime"
    stale = load_model(root / "tiny.safetensors")
    stale.card.sha256 = "0" * 64  # an export of an older version of the model
    export_onnx(stale, export_dir / "tiny.features.onnx", output="features")
    assert FeatureExtractor.from_pretrained("tiny", export_dir=export_dir).backend.backend == "torch"
    with pytest.raises(ValueError, match="backend 'tensorrt' needs a .plan"):
        FeatureExtractor.from_pretrained("tiny", backend="tensorrt")


# --- real TensorRT (GPU machines with the [tensorrt] extra)
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_engine_build_parity_and_refusals(tiny, tmp_path, precision):
    pytest.importorskip("tensorrt")
    from vision.export.tensorrt import TensorRTEngine, full_fp32

    model = tiny[0].cuda()  # the exporter's references run without TF32 (full_fp32), so fp32 meets 1e-4
    plan = export(model, "tensorrt", tmp_path / f"tiny.{precision}.plan", precision=precision, batch="2,4,8",
                  output="features", **({"calib_dir": SAMPLE / "train"} if precision == "int8" else {}))
    sidecar = read_sidecar(plan)
    assert sidecar["precision"] == precision and sidecar["batch_profile"]["max"] == 8
    assert sidecar["tf32"] is (precision != "fp32")  # fp32 plans clear BuilderFlag.TF32
    assert plan.read_bytes()[:4] != b"{" and sidecar["sha256"]  # a plain plan, no JSON prepended
    report = json.loads(plan.with_name(plan.name + ".parity.json").read_text())
    assert report["gate"]["precision"] == precision
    images = list_images(SAMPLE / "val")[:10]
    on_trt = FeatureExtractor.from_pretrained(plan, backend="tensorrt")(images)  # slices of 8 and 2
    with full_fp32():
        on_torch = FeatureExtractor.from_pretrained(tiny[1] / "tiny.safetensors", backend="torch")(images)
    assert (on_trt * on_torch).sum(1).min() > PARITY_GATES[precision]["min_cosine"]
    one = FeatureExtractor.from_pretrained(plan, backend="tensorrt")(images[:1])  # 1 < min 2: padded
    assert float(one[0] @ on_trt[0]) > PARITY_GATES[precision]["min_cosine"]
    engine = TensorRTEngine(plan)
    assert engine.stream.cuda_stream != 0  # its own stream, not the default one
    for rows in (1, 9):
        with pytest.raises(ValueError, match="outside the engine's profile"):
            engine(np.zeros((rows, 3, 32, 32), np.float32))
    with pytest.raises(TypeError, match="float32"):
        engine(np.zeros((2, 3, 32, 32), np.float16))
    plan.write_bytes(plan.read_bytes()[:1000])
    with pytest.raises(EngineMismatchError, match="truncated"):
        TensorRTEngine(plan)


def test_embedding_family_exports_and_extracts_alike(tmp_path):
    from vision.zoo import ModelCard
    from vision.zoo.registry import build_model

    card = ModelCard(name="emb", task="embedding", architecture="test_resnet", config={"embedding_size": 16},
                     preprocessing={"input_size": 32, "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.5] * 3})
    torch.manual_seed(0)
    save_model(build_model(card).eval(), card, tmp_path)
    model = load_model(tmp_path / "emb.safetensors")
    path = export(model, "onnx", tmp_path / "emb.onnx")
    assert read_onnx_metadata(path)[1] == "embedding"
    report = json.loads((tmp_path / "emb.onnx.parity.json").read_text())
    assert report["top1_agreement"] is None and report["min_cosine"] > 0.9999
    images = list_images(SAMPLE / "val")[:3]
    on_torch = FeatureExtractor.from_pretrained(tmp_path / "emb.safetensors", backend="torch")(images)
    on_ort = FeatureExtractor.from_pretrained(path)(images)
    assert on_torch.shape == on_ort.shape == (3, 16) and (on_torch * on_ort).sum(1).min() > 0.9999


def test_failed_int8_preprocessing_is_an_export_error_and_leaves_no_files(tmp_path, monkeypatch):
    """onnxruntime's shape inference writes temporary files into the working folder; the exporter runs it in its
    scratch folder, retries without its symbolic inference (which fails on the detector graph) and reports a
    failure of both as an ExportError."""
    import onnxruntime.quantization.shape_inference as shape_inference

    from vision.export import ExportError, export
    from vision.zoo import load_model

    tries = []

    def failing(source, target, skip_symbolic_shape=False, **_):
        tries.append(skip_symbolic_shape)
        Path("leftover.tmp").write_text("x")
        raise Exception("Incomplete symbolic shape inference")

    monkeypatch.setattr(shape_inference, "quant_pre_process", failing)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExportError, match="INT8 pre-processing .* failed for this classification graph"):
        export(load_model("grocery_resnet10t"), "onnx-int8", tmp_path / "out" / "g.int8.onnx",
               calib_dir=SAMPLE / "train")
    assert tries == [False, True] and sorted(p.name for p in tmp_path.rglob("*")) == []


def test_export_tool_refuses_missing_calibration_and_a_wrong_ultralytics_suffix(tmp_path, capsys):

    import vision.commands.export as export_tool
    from vision.export import ExportError, export
    from vision.zoo import load_model

    with pytest.raises(SystemExit) as exit_info:
        export_tool.main(["--model", "grocery_resnet10t", "--format", "onnx-int8", "--out", str(tmp_path / "m.onnx")])
    assert exit_info.value.code == 2 and "needs --calib-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_tool.main(["--model", "logo_yolo11n", "--format", "ultralytics", "--out", str(tmp_path / "logo.bin")])
    assert ".pt" in capsys.readouterr().err
    with pytest.raises(ExportError, match="needs calib_dir"):
        export(load_model("grocery_resnet10t"), "onnx-int8", tmp_path / "m.int8.onnx")
    with pytest.raises(ExportError, match="must end in .pt"):
        export(load_model("logo_yolo11n"), "ultralytics", tmp_path / "logo.bin")
    assert not list(tmp_path.iterdir())
    assert export_tool.default_out("m", "onnx", "features").name == "m.features.onnx"  # where auto looks
