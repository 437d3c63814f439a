"""vision.predictor(): one interface for every task on torch and ONNX Runtime; streaming; typed results."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vision.predictors import Predictor, iter_images, predictor
from vision.results import Classification, Detections, Embedding

from .conftest import REPO, SAMPLE

REFERENCE = REPO / "tests" / "reference"
RECORD = json.loads((REFERENCE / "shipped_outputs.json").read_text())
PHOTOS = [str(REPO / p) for p in RECORD["photos"]]
COMPOSITES = [str(REPO / p) for p in RECORD["composites"]]


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE / "shipped_outputs.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def onnx_exports(tmp_path_factory):
    """Every shipped model exported to ONNX (parity-gated by the exporter itself)."""
    from vision.export.onnx import export_onnx
    from vision.zoo import load_model

    out = tmp_path_factory.mktemp("onnx")
    return {name: export_onnx(load_model(name), out / f"{name}.onnx") for name in RECORD["models"]}


def test_torch_predictor_gives_the_recorded_outputs_of_every_shipped_model(reference):
    clf = predictor("grocery_resnet10t", device="cpu", topk=3)
    probs = torch.from_numpy(reference["grocery_resnet10t.logits"]).softmax(-1)
    for result, row in zip(clf(PHOTOS, batch_size=3), probs):
        assert isinstance(result, Classification) and result.topk[0]["index"] == int(row.argmax())
        assert result.topk[0]["score"] == pytest.approx(float(row.max()), abs=1e-5)

    emb = predictor("brand_resnet10t", device="cpu")(PHOTOS)
    np.testing.assert_allclose(np.stack([r.vector for r in emb]), reference["brand_resnet10t.features"], atol=1e-5)
    feats = predictor("grocery_resnet10t", device="cpu", output="features")(PHOTOS)
    np.testing.assert_allclose(np.stack([r.vector for r in feats]), reference["grocery_resnet10t.features"],
                               atol=1e-5)

    det = predictor("logo_yolo11n", device="cpu")(COMPOSITES)
    for got, want in zip(det, RECORD["models"]["logo_yolo11n"]["detections"], strict=True):
        assert isinstance(got, Detections) and len(got) == len(want)
        np.testing.assert_allclose([d["box"] for d in got.boxes], [d["box"] for d in want], atol=0.05)


@pytest.mark.parametrize("name", sorted(RECORD["models"]))
def test_onnx_runtime_predictor_matches_torch_for_every_task(name, onnx_exports):
    images = COMPOSITES if RECORD["models"][name]["task"] == "detection" else PHOTOS
    torch_results = predictor(name, backend="torch", device="cpu")(images)
    onnx = predictor(onnx_exports[name], device="cpu")  # auto: the suffix picks ONNX Runtime
    assert onnx.backend == "onnxruntime" and onnx.card.name == name
    for a, b in zip(torch_results, onnx(images, batch_size=2), strict=True):
        assert type(a) is type(b) and a.source == b.source
        if isinstance(a, Classification):
            assert [t["index"] for t in a.topk] == [t["index"] for t in b.topk]
        elif isinstance(a, Detections):
            assert len(a) == len(b) and len(a) > 0
            np.testing.assert_allclose([d["box"] for d in a.boxes], [d["box"] for d in b.boxes], atol=0.5)
        else:
            assert float(a.vector @ b.vector) > 0.9999


def test_auto_backend_uses_a_fresh_export_of_the_zoo_model(onnx_exports, tmp_path):
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    source = onnx_exports["brand_resnet10t"]
    copy = export_dir / "brand_resnet10t.embedding.onnx"
    copy.write_bytes(source.read_bytes())
    Path(f"{copy}.parity.json").write_bytes(Path(f"{source}.parity.json").read_bytes())
    assert predictor("brand_resnet10t", export_dir=export_dir, device="cpu").backend == "onnxruntime"
    assert predictor("grocery_resnet10t", export_dir=export_dir, device="cpu").backend == "torch"  # none exported

    # a tampered export is refused, never served and never silently replaced by torch
    from vision.export import ArtifactIntegrityError

    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="brand_resnet10t.embedding.onnx"):
        predictor("brand_resnet10t", export_dir=export_dir, device="cpu")
    with pytest.raises(ArtifactIntegrityError):
        predictor(copy, device="cpu")


def test_streaming_reads_one_batch_at_a_time():
    pulled = itertools.count()

    def thousand_paths():
        for _ in range(1000):
            next(pulled)
            yield PHOTOS[0]

    p = predictor("brand_resnet10t", device="cpu")
    sizes = []
    run = p.runtime
    p.runtime = lambda batch: (sizes.append(len(batch)), run(batch))[1]
    first = list(itertools.islice(p.stream(thousand_paths(), batch_size=8), 3))
    assert len(first) == 3 and sizes == [8] and next(pulled) == 8  # one batch read, not 1,000 images


def test_read_ahead_gives_the_same_results_reading_at_most_one_batch_ahead(onnx_exports, tmp_path):
    import threading

    from vision.predictors import available_cores

    # by default it reads ahead where the network leaves a core free: faster there, slower where it takes them all
    onnx = onnx_exports["brand_resnet10t"]
    assert not predictor(onnx, device="cpu").reads_ahead()  # onnxruntime's own count: every core
    assert predictor(onnx, device="cpu", threads=1).reads_ahead() == (available_cores() > 1)
    p = predictor("brand_resnet10t", device="cpu")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(available_cores())
        assert not p.reads_ahead()
        torch.set_num_threads(1)
        assert p.reads_ahead() == (available_cores() > 1)
    finally:
        torch.set_num_threads(threads)
    images = PHOTOS * 3
    plain = p(images, batch_size=2)
    ahead = p(images, batch_size=2, read_ahead=True)
    assert [r.source for r in ahead] == [r.source for r in plain]
    assert all(np.allclose(a.vector, b.vector, atol=1e-6) for a, b in zip(ahead, plain))
    assert set(p.speed) == {"decode", "preprocess", "inference", "postprocess"}

    pulled = itertools.count()

    def thousand_paths():
        for _ in range(1000):
            next(pulled)
            yield PHOTOS[0]

    readers = lambda: [t for t in threading.enumerate() if t.name.startswith("vision-read-ahead")]  # noqa: E731
    stream = p.stream(thousand_paths(), batch_size=8, read_ahead=True)
    first = list(itertools.islice(stream, 3))
    assert len(first) == 3 and len(readers()) == 1
    stream.close()  # waits for the batch being read, then closes the reader
    assert next(pulled) <= 16 and not readers()  # the batch running and the one read ahead, not 1,000 images

    # errors keep their order: an unreadable image in the second batch raises after the first batch's results
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    from vision.data.io import ImageLoadError

    got = []
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        for result in p.stream([PHOTOS[0], PHOTOS[1], tmp_path / "broken.jpg"], batch_size=2, read_ahead=True):
            got.append(result.source)
    assert got == PHOTOS[:2] and not readers()
    assert len(p([PHOTOS[0], tmp_path / "broken.jpg", PHOTOS[1]], batch_size=1, on_error="skip",
                 read_ahead=True)) == 2
    assert [s for s, _ in p.skipped] == [str(tmp_path / "broken.jpg")]


def test_one_ahead_computes_the_next_item_in_one_background_thread():
    import threading

    from vision.predictors import one_ahead

    where, closed = [], []

    def items(n, fail_at=None):
        try:
            for i in range(n):
                if i == fail_at:
                    raise ValueError(f"item {i}")
                where.append(threading.current_thread().name)
                yield i
        finally:
            closed.append(n)

    assert list(one_ahead(items(4))) == [0, 1, 2, 3]
    assert where[0] == threading.current_thread().name   # the first in the caller's thread
    assert all(name.startswith("vision-read-ahead") for name in where[1:]) and closed == [4]
    where.clear()
    assert list(one_ahead(items(4), enabled=False)) == [0, 1, 2, 3]
    assert set(where) == {threading.current_thread().name}
    got = []
    with pytest.raises(ValueError, match="item 2"):   # raised where the item would have come
        for i in one_ahead(items(5, fail_at=2)):
            got.append(i)
    assert got == [0, 1]
    stream = one_ahead(items(100))
    assert next(stream) == 0
    stream.close()   # the item being computed finishes, then the source is closed: no thread is left
    assert closed[-1] == 100
    assert not [t for t in threading.enumerate() if t.name.startswith("vision-read-ahead")]


def test_workers_run_batches_at_once_with_results_in_input_order(onnx_exports, tmp_path):
    import threading

    onnx = onnx_exports["logo_yolo11n"]
    images = (PHOTOS + COMPOSITES) * 2
    plain = predictor(onnx, device="cpu")(images, batch_size=1)
    p = predictor(onnx, device="cpu", workers=2)
    assert p.workers == 2 and p.runtime.threads >= 1   # the cores shared out between the workers
    ran_in = set()
    run = p.runtime
    p.runtime = lambda batch: (ran_in.add(threading.current_thread().name), run(batch))[1]
    p.runtime.backend = "onnxruntime"
    two = p(images, batch_size=1)
    assert [r.source for r in two] == [r.source for r in plain]   # the input order, not the finishing order
    assert [r.boxes for r in two] == [r.boxes for r in plain]
    assert ran_in and all(name.startswith("vision-worker") for name in ran_in)
    assert set(p.speed) == {"decode", "preprocess", "inference", "postprocess"}
    assert p(images[:3], batch_size=2)[2].source == images[2]   # a last, short batch

    workers = lambda: [t for t in threading.enumerate() if t.name.startswith("vision-worker")]  # noqa: E731
    pulled = itertools.count()

    def thousand_paths():
        for _ in range(1000):
            next(pulled)
            yield PHOTOS[0]

    stream = p.stream(thousand_paths(), batch_size=4)
    assert len(list(itertools.islice(stream, 5))) == 5
    stream.close()   # the queued batch is cancelled, the running ones finish: no worker is left
    assert next(pulled) <= 4 * 5 and not workers()   # workers running + one queued + one read, not 1,000 images

    # an unreadable image: raised after the results before it, or skipped and listed
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    from vision.data.io import ImageLoadError

    got = []
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        for result in p.stream([PHOTOS[0], PHOTOS[1], tmp_path / "broken.jpg", PHOTOS[0]], batch_size=1):
            got.append(result.source)
    assert got == PHOTOS[:2] and not workers()
    assert len(p([PHOTOS[0], tmp_path / "broken.jpg", PHOTOS[1]], batch_size=1, on_error="skip")) == 2
    assert [s for s, _ in p.skipped] == [str(tmp_path / "broken.jpg")]


def test_workers_are_refused_where_batches_cannot_run_at_once(onnx_exports):
    with pytest.raises(ValueError, match="workers=2 runs batches at once on one ONNX Runtime session; the torch"):
        predictor("logo_yolo11n", backend="torch", device="cpu", workers=2)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers must be an integer >= 1"):
            predictor(onnx_exports["logo_yolo11n"], device="cpu", workers=bad)


def test_in_flight_keeps_order_and_raises_where_the_item_was():
    import threading
    import time

    from vision.predictors import in_flight

    closed = []

    def items(n, fail_at=None):
        try:
            for i in range(n):
                if i == fail_at:
                    raise KeyError(f"reading item {i}")
                yield i
        finally:
            closed.append(n)

    def slow_first(i):   # the first item finishes last: the order is still the input's
        time.sleep(0.05 if i == 0 else 0.0)
        if i == 3:
            raise ValueError("item 3")
        return i * 10

    assert list(in_flight(items(3), slow_first, 2)) == [0, 10, 20] and closed == [3]
    got = []
    with pytest.raises(ValueError, match="item 3"):
        for value in in_flight(items(6), slow_first, 3):
            got.append(value)
    assert got == [0, 10, 20] and closed[-1] == 6
    got = []
    with pytest.raises(KeyError, match="reading item 2"):   # an error reading: after the results read before it
        for value in in_flight(items(6, fail_at=2), slow_first, 3):
            got.append(value)
    assert got == [0, 10]
    assert not [t for t in threading.enumerate() if t.name.startswith("vision-worker")]


def test_inputs_folder_glob_in_memory_and_unreadable(tmp_path):
    folder = SAMPLE / "val" / "Fruit" / "Banana"
    assert [s for s, _ in iter_images(folder)] == [str(p) for p in sorted(folder.glob("*.jpg"))]
    assert len(list(iter_images(str(folder / "*.jpg")))) == len(list(folder.glob("*.jpg")))
    rgb = np.zeros((40, 50, 3), np.uint8)
    assert [s for s, _ in iter_images([rgb, torch.zeros(3, 8, 8)])] == ["<input 0>", "<input 1>"]
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        list(iter_images(tmp_path / "nothing-here"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        list(iter_images(tmp_path / "empty"))
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    p = predictor("brand_resnet10t", device="cpu")
    assert len(p([PHOTOS[0], tmp_path / "broken.jpg"], on_error="skip")) == 1
    assert p.skipped[0][0].endswith("broken.jpg")
    from vision.data.io import ImageLoadError

    with pytest.raises(ImageLoadError):
        p([tmp_path / "broken.jpg"])


def test_results_serialise_and_draw(tmp_path):
    det = predictor("logo_yolo11n", device="cpu")(COMPOSITES[0])[0]
    line = json.loads(json.dumps(det.to_dict()))
    assert line["task"] == "detection" and line["width"] == 320 and len(line["detections"]) == len(det)
    assert det.save(tmp_path / "det").stat().st_size > 0
    assert det.save(tmp_path / "shelf.1").name == "shelf.1.png" != det.save(tmp_path / "shelf.2").name
    clf = predictor("grocery_resnet10t", device="cpu")(PHOTOS[:1])[0]
    assert clf.to_dict()["topk"][0]["label"] == clf.label and clf.to_dict()["coarse"] == clf.coarse
    from PIL import Image

    assert clf.plot().size == Image.open(PHOTOS[0]).size
    emb = predictor("brand_resnet10t", device="cpu")(np.full((64, 64, 3), 200, np.uint8))[0]
    assert isinstance(emb, Embedding) and emb.to_dict()["dim"] == 128
    with pytest.raises(ValueError, match="in-memory image"):
        emb.plot()


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown backend"):
        predictor("grocery_resnet10t", backend="tflite")
    with pytest.raises(ValueError, match="runs .onnx files"):
        predictor("grocery_resnet10t", backend="onnxruntime")
    with pytest.raises(ValueError, match="batch_size"):
        list(predictor("brand_resnet10t", device="cpu").stream(PHOTOS, batch_size=0))
    with pytest.raises(ValueError, match="no predictor head"):
        Predictor(type("R", (), {"card": None, "output": "heatmap", "backend": "x"})())


def test_brand_recognizer_is_a_pipeline_of_predictors_on_any_backend(onnx_exports, tmp_path):
    from vision.brands.recognition import BrandRecognizer
    from vision.results import Recognitions

    on_torch = BrandRecognizer.from_pretrained("brand_ensemble", "simple_icons_gallery", detector="logo_yolo11n",
                                               device="cpu", embedder_backend="torch", detector_backend="torch")
    on_ort = BrandRecognizer.from_pretrained(onnx_exports["brand_ensemble"], "simple_icons_gallery",
                                             detector=onnx_exports["logo_yolo11n"], device="cpu")
    assert on_ort.detector.backend == on_ort.extractor.predictor.backend == "onnxruntime"
    a, b = on_torch(COMPOSITES, batch_size=2), list(on_ort.stream(COMPOSITES, batch_size=2))
    assert all(isinstance(r, Recognitions) for r in a + b) and sum(len(r) for r in a) > 0
    for x, y in zip(a, b, strict=True):
        assert [d["best"] for d in x.boxes] == [d["best"] for d in y.boxes]
        np.testing.assert_allclose([d["score"] for d in x.boxes], [d["score"] for d in y.boxes], atol=1e-3)
    line = json.loads(json.dumps(a[0].to_dict()))
    assert line["task"] == "recognition" and {"box", "brand", "score", "best"} <= set(line["logos"][0])
    assert a[0].save(tmp_path / "brands").stat().st_size > 0
    legacy = on_torch.predict(COMPOSITES[0])[0]  # the earlier dict API, same results
    assert [d["brand"] for d in legacy] == [d["brand"] for d in a[0].boxes]
    np.testing.assert_allclose([d["score"] for d in legacy], [d["score"] for d in a[0].boxes], atol=1e-4)


def test_every_export_format_has_a_runtime_that_loads_it(tmp_path):
    """The predictor's backends come from the exporter's format table: an export format without a loader fails."""
    from vision.export import EXTERNAL_RUNTIMES, FORMATS, export
    from vision.predictors import BACKENDS, SUFFIX_BACKENDS
    from vision.tasks import resolve
    from vision.zoo import load_model

    for name, fmt in FORMATS.items():
        if fmt.runtime in BACKENDS:
            assert SUFFIX_BACKENDS[Path(f"x{fmt.suffix}").suffix] == fmt.runtime, name
        else:
            assert callable(resolve(EXTERNAL_RUNTIMES[fmt.runtime])), name  # served elsewhere, verified here
    model = load_model("brand_resnet10t")
    reference = predictor("brand_resnet10t", backend="torch", device="cpu")(PHOTOS)
    for name in ("onnx", "onnx-int8"):  # the CPU runtimes; TensorRT: tests/test_export_deploy.py (GPU)
        options = {"calib_dir": SAMPLE / "train"} if name == "onnx-int8" else {}
        path = export(model, name, tmp_path / f"brand{FORMATS[name].suffix}", **options)
        results = predictor(path, device="cpu")(PHOTOS)
        assert min(float(a.vector @ b.vector) for a, b in zip(reference, results)) > 0.95, name


@pytest.mark.gpu
def test_detector_from_its_tensorrt_plan_gives_the_torch_boxes(tmp_path):
    pytest.importorskip("tensorrt")
    from vision.export import export
    from vision.zoo import load_model

    plan = export(load_model("logo_yolo11n"), "tensorrt", tmp_path / "logo.plan", precision="fp32", batch="1,4,8")
    on_trt = predictor(plan, device="cuda")
    assert on_trt.backend == "tensorrt"
    for a, b in zip(predictor("logo_yolo11n", backend="torch", device="cuda")(COMPOSITES), on_trt(COMPOSITES),
                    strict=True):
        assert len(a) == len(b)
        np.testing.assert_allclose([d["box"] for d in a.boxes], [d["box"] for d in b.boxes], atol=1.0)
