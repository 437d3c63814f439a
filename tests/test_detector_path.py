"""The fast detector path (issue 25 item 2) gives what the plain path gave: ultralytics' letterbox, the unfused
network on a host copy of its output, ultralytics' NMS and box mapping, on committed images of several sizes."""

import numpy as np
import pytest
import torch

from vision import predictors
from vision import ultralytics_compat as ulc
from vision.data.io import load_image
from vision.models.outputs import output_network
from vision.zoo import load_model

# a square logo composite (no resize), a square photo (downscaled) and a portrait photo (downscaled, padded)
IMAGES = ["data/logo_sample/images/val/val_000000.jpg", "data/grocery_sample/val/Fruit/Banana/Banana_001.jpg",
          "data/grocery_sample/train/Fruit/Apple/Granny-Smith/Granny-Smith_007.jpg"]


@pytest.fixture(scope="module")
def model():
    return load_model("logo_yolo11n")


@pytest.fixture(scope="module")
def detector(model):
    return predictors.Predictor(predictors.TorchRuntime(model, "predictions", "cpu"), conf=0.05)


@pytest.fixture(scope="module")
def images():
    arrays = [load_image(p) for p in IMAGES]
    assert len({a.shape for a in arrays}) == 3, "the sample images must keep three different sizes"
    return arrays


def plain_path(model, arrays, conf=0.05, iou=0.7):
    """The path before issue 25: ultralytics' LetterBox per image, unfused network, numpy output, NMS on it."""
    size = model.card.data_config.input_size
    letterbox = ulc.letterbox(size, auto=False, scaleup=True)
    batch = torch.stack([torch.from_numpy(np.ascontiguousarray(letterbox(image=im).transpose(2, 0, 1)))
                         for im in arrays]).float() / 255
    with torch.inference_mode():
        output = output_network(model, "predictions").eval()(batch).numpy()
    kept = ulc.non_max_suppression(torch.from_numpy(output), conf=conf, iou=iou)
    return [torch.cat([ulc.ops().scale_boxes((size, size), det[:, :4].clone(), im.shape[:2]), det[:, 4:]], 1)
            for det, im in zip(kept, arrays)]


@pytest.mark.parametrize("shape", [(320, 320), (348, 464), (464, 348), (97, 1000), (1000, 3), (1, 1), (200, 150)])
def test_letterbox_into_is_ultralytics_letterbox(shape):
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), np.uint8)
    canvas = np.full((320, 320, 3), predictors.LETTERBOX_PAD, np.uint8)
    predictors.letterbox_into(image, canvas)
    np.testing.assert_array_equal(canvas, ulc.letterbox(320, auto=False, scaleup=True)(image=image))


def test_detections_match_the_plain_path(model, detector, images):
    got = detector(images, batch_size=3)
    want = plain_path(model, images)
    assert sum(len(w) for w in want) >= 3, "too few boxes to compare; lower conf"
    for result, expected in zip(got, want, strict=True):
        assert len(result.boxes) == len(expected)
        np.testing.assert_allclose([b["box"] for b in result.boxes], expected[:, :4].numpy().reshape(-1, 4),
                                   atol=0.02)
        np.testing.assert_allclose([b["score"] for b in result.boxes], expected[:, 4].numpy(), atol=1e-4)
        assert [b["class_id"] for b in result.boxes] == expected[:, 5].int().tolist()


def test_the_onnx_head_takes_host_arrays_the_same(detector, images):
    """Runtimes without a device tensor (ONNX Runtime, TensorRT, serving) hand numpy to the same head."""
    p = detector
    batch, shapes = p.head.preprocess(images)
    from_tensor = p.head.postprocess(p.runtime.tensor(batch), shapes, IMAGES)
    from_numpy = p.head.postprocess(p.runtime(batch), shapes, IMAGES)
    assert [r.boxes for r in from_tensor] == [r.boxes for r in from_numpy]


@pytest.mark.parametrize("conf", [0.001, 0.05, 0.25, 0.99])
def test_host_nms_gives_ultralytics_rows(detector, images, conf):
    """The NMS for host outputs keeps ultralytics' rows in ultralytics' order: the shipped detector's output (many
    weak boxes at 0.001, none at 0.99) and a random three-class output with ties across classes."""
    batch, _ = detector.head.preprocess(images)
    rng = np.random.default_rng(0)
    many = rng.random((2, 4 + 3, 500), dtype=np.float32) * np.float32(300)
    many[:, 4:] /= 300
    many[0, 5, :50] = many[0, 4, :50]  # a class tie: the first class wins, as torch's max gives it
    for output in (detector.runtime(batch), many):
        want = ulc.non_max_suppression(torch.from_numpy(output.copy()), conf=conf, iou=0.7, max_det=300)
        got = predictors.host_nms(output, conf=conf, iou=0.7, max_det=300)
        assert len(got) == len(want) and all(torch.equal(g, w) for g, w in zip(got, want))
    assert conf > 0.9 or sum(len(g) for g in got) > 10


def test_the_folded_network_is_a_copy(model, detector):
    runtime = detector.runtime
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert has_bn, "the zoo model keeps its batch norms (trainable, exports unchanged)"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in runtime.network.modules())


def test_speed_reports_every_stage_per_image(detector):
    p = detector
    p(IMAGES[:1], batch_size=1)
    assert list(p.speed) == list(predictors.STAGES)
    assert all(v > 0 for v in p.speed.values()), p.speed


def test_benchmark_end_to_end_rows_carry_the_stage_times(detector):
    from types import SimpleNamespace

    from vision.benchmarking import markdown, time_end_to_end

    rows = time_end_to_end({"torch": detector}, IMAGES[:1], [1], SimpleNamespace(rounds=1))
    assert list(rows[0]["ms_per_image"]) == list(predictors.STAGES)
    table = markdown({"models": [{"model": "m", "task": "detection", "rows": [], "end_to_end": rows,
                                  "accuracy": None, "notes": []}], "hardware": {}, "threads": 1, "versions": {},
                      "wall_seconds": 0})
    assert "ms/image: decode, preprocess, inference, postprocess" in table
    assert rows[0]["reads_ahead"] is False   # one image in batches of one: nothing to read ahead, whatever the threads
    rows[0]["reads_ahead"] = True   # a runtime on fewer threads than cores: the row says so
    table = markdown({"models": [{"model": "m", "task": "detection", "rows": [], "end_to_end": rows,
                                  "accuracy": None, "notes": []}], "hardware": {}, "threads": 1, "versions": {},
                      "wall_seconds": 0})
    assert "| torch (reads ahead) |" in table


def test_onnx_runtime_workers_spin_briefly_by_default(monkeypatch, tmp_path):
    """Unbounded spin-waiting took the cores decode and preprocess need (2.1x slower end to end on a shared CPU);
    no spinning lost 20-27% at batch 1 on idle cores; a bound of SPIN_US microseconds keeps both gains."""
    from types import SimpleNamespace

    import vision.export.onnx as onnx_export

    seen = {}
    io = SimpleNamespace(name="images", shape=["batch", 3, 320, 320])
    fake = SimpleNamespace(get_inputs=lambda: [io], get_outputs=lambda: [io])
    monkeypatch.setattr(onnx_export, "verify_recorded_digest", lambda path: None)
    monkeypatch.setattr(onnx_export, "read_onnx_metadata", lambda path: (SimpleNamespace(name="m"), "predictions"))
    monkeypatch.setattr(onnx_export, "onnx_session", lambda path, providers, options=None: seen.update(
        options=options) or fake)
    def entry(key):
        try:
            return seen["options"].get_session_config_entry(key)
        except RuntimeError:   # onnxruntime's answer for a key never set
            return None

    def entries():
        return [entry("session.intra_op.allow_spinning"), entry("session.intra_op.spin_duration_us")]

    predictors.OnnxRuntime(tmp_path / "m.onnx", device="cpu")
    assert entries() == ["1", str(predictors.SPIN_US)]
    predictors.OnnxRuntime(tmp_path / "m.onnx", device="cpu", spin=200, threads=3)
    assert entries() == ["1", "200"] and seen["options"].intra_op_num_threads == 3
    predictors.OnnxRuntime(tmp_path / "m.onnx", device="cpu", spin=True)   # onnxruntime's own spinning
    assert entries() == ["1", None]
    for never in (False, 0):
        predictors.OnnxRuntime(tmp_path / "m.onnx", device="cpu", spin=never)
        assert entries() == ["0", None]
    monkeypatch.setattr(predictors, "_ort_version", lambda: (1, 20))   # no bound known: no spinning by default
    predictors.OnnxRuntime(tmp_path / "m.onnx", device="cpu")
    assert entries() == ["0", None]
    for bad in (-1, 1.5, "50"):
        with pytest.raises(ValueError, match="spin must be"):
            predictors.ort_session_options(spin=bad)
    with pytest.raises(ValueError, match="threads must be"):
        predictors.ort_session_options(threads=0)


def test_the_served_network_stub_never_spins(monkeypatch, tmp_path):
    """Three stub processes per request share the cores: spinning in the network stub cost the served classifier
    14% at 16 clients (benchmarks/results/serving.md), so it asks for none whatever the predictor's default."""
    from vision.serving.models import OnnxNetwork

    made = {}
    monkeypatch.setattr(predictors, "OnnxRuntime", lambda path, **kwargs: made.update(path=path, **kwargs))
    stub = OnnxNetwork()
    stub.version_dir, stub.info = tmp_path, {"network_input": "images", "network_output": "logits"}
    stub.setup()
    assert made == {"path": tmp_path / "model.onnx", "device": "cpu", "spin": False}
