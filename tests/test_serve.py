"""vision serve: a real tritonserver (the nvidia-pytriton wheel's, prepared once) on loopback, one per module.

The runtime and the ONNX exports are cached in pytest's cache folder (``.pytest_cache/d/vision-triton``), so only the
first run downloads the wheel (~60 MB, PyPI) and exports; without network the module is skipped with the reason.
"""

import concurrent.futures
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, SAMPLE

tritonclient = pytest.importorskip("tritonclient.grpc")
http = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

MODELS = ["grocery_resnet10t", "logo_yolo11n", "brand_resnet10t"]
GROCERY = sorted((SAMPLE / "val").rglob("*.jpg"))[:4]
LOGOS = sorted((REPO / "data" / "logo_sample" / "images" / "val").glob("*.jpg"))[:3]


@pytest.fixture(scope="module")
def triton_home(pytestconfig, tmp_path_factory):
    cache = getattr(pytestconfig, "cache", None)
    home = cache.mkdir("vision-triton") if cache is not None else tmp_path_factory.mktemp("vision-triton")
    previous = os.environ.get("VISION_TRITON_HOME")
    os.environ["VISION_TRITON_HOME"] = str(home)
    yield Path(home)
    if previous is None:
        os.environ.pop("VISION_TRITON_HOME", None)
    else:
        os.environ["VISION_TRITON_HOME"] = previous


@pytest.fixture(scope="module")
def runtime(triton_home):
    from vision.serving import ServingError, prepare_runtime

    try:
        return prepare_runtime()
    except ServingError as e:  # no PyPI here: nothing to serve with
        pytest.skip(f"the Triton runtime cannot be prepared: {e}")


@pytest.fixture(scope="module")
def server(runtime, tmp_path_factory):
    from vision.serving import TritonServer, build_repository

    repository = tmp_path_factory.mktemp("served") / "repository"
    build_repository(MODELS, repository, recognizer=True, env=runtime.env)
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0, runtime=runtime) as running:
        yield running


def _images(paths) -> np.ndarray:
    return np.array([[Path(p).read_bytes()] for p in paths], dtype=np.object_)


def _grpc(server, model, images, name="IMAGE", timeout=None):
    client = tritonclient.InferenceServerClient(server.grpc_url)
    tensor = tritonclient.InferInput(name, list(images.shape), "BYTES")
    tensor.set_data_from_numpy(images)
    answer = client.infer(model, [tensor], client_timeout=timeout)
    return [json.loads(row[0]) for row in answer.as_numpy("RESULT")]


def _http(server, model, images):
    client = http.InferenceServerClient(server.http_url)
    tensor = http.InferInput("IMAGE", list(images.shape), "BYTES")
    tensor.set_data_from_numpy(images)
    return [json.loads(row[0]) for row in client.infer(model, [tensor]).as_numpy("RESULT")]


def _same(got, want, key: str = "") -> bool:
    """Equal documents, up to one unit of the last printed digit (the server's threads sum in another order than
    this process's: 0.672434 against 0.672435 was seen); strings, ints, keys and lengths exactly."""
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(_same(got[k], want[k], k) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(_same(g, w, key) for g, w in zip(got, want))
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return abs(got - want) <= (0.0101 if key == "box" else 1.01e-6)  # boxes print 2 decimals, scores 6
    return got == want and type(got) is type(want)


def _expected(runtime, name, paths) -> list[dict]:
    """What vision predict writes for ``paths`` with the served network (the same ONNX file, ONNX Runtime), the
    image named as the server names it: by its place in the request."""
    import vision
    from vision.serving.runtime import runtime_home

    (onnx_file,) = (runtime_home() / "onnx").glob(f"{name}.*.onnx")
    results = vision.predictor(onnx_file)([str(p) for p in paths])
    return [{**r.to_dict(), "image": f"<input {i}>"} for i, r in enumerate(results)]


@pytest.mark.parametrize("name, paths", [("grocery_resnet10t", GROCERY), ("logo_yolo11n", LOGOS),
                                         ("brand_resnet10t", GROCERY[:2])])
def test_served_results_equal_vision_predict_over_grpc_and_http(server, runtime, name, paths):
    expected = _expected(runtime, name, paths)
    for got in (_grpc(server, name, _images(paths)), _http(server, name, _images(paths))):
        assert _same(got, expected), (got, expected)


def test_served_recognizer_equals_vision_recognize(server):
    from vision.brands import DEFAULT_DETECTOR, DEFAULT_EMBEDDER, DEFAULT_GALLERY
    from vision.brands.recognition import BrandRecognizer
    from vision.data.io import load_image

    recognizer = BrandRecognizer.from_pretrained(DEFAULT_EMBEDDER, DEFAULT_GALLERY, detector=DEFAULT_DETECTOR,
                                                 device="cpu", embedder_backend="torch", detector_backend="torch")
    arrays = [load_image(p) for p in LOGOS]
    expected = [{"image": f"<input {i}>", "width": a.shape[1], "height": a.shape[0], "logos": logos}
                for i, (a, logos) in enumerate(zip(arrays, recognizer.predict(arrays)))]
    assert any(doc["logos"] for doc in expected)  # the sample has logos to recognise
    got = _grpc(server, "brand_recognizer", _images(LOGOS))
    assert _same(got, json.loads(json.dumps(expected))), (got, expected)


def _batch_counts(server, model) -> dict[int, int]:
    client = tritonclient.InferenceServerClient(server.grpc_url)
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}


def test_concurrent_clients_each_get_their_own_result_and_batches_form(server, runtime):
    """8 clients x 6 requests of one random image each: every answer is its own image's, and the network step ran
    batches of more than one request (Triton's statistics)."""
    expected = {p.name: r for p, r in zip(GROCERY, _expected(runtime, "grocery_resnet10t", GROCERY))}
    before = _batch_counts(server, "grocery_resnet10t_net")

    def client(seed):
        rng, answers = random.Random(seed), []
        for _ in range(6):
            path = rng.choice(GROCERY)
            answers.append((path.name, _grpc(server, "grocery_resnet10t", _images([path]))[0]))
        return answers

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = [a for batch in pool.map(client, range(8)) for a in batch]
    assert len(answers) == 48
    for name, got in answers:
        want = expected[name]
        assert [t["label"] for t in got["topk"]] == [t["label"] for t in want["topk"]], name
        assert np.allclose([t["score"] for t in got["topk"]], [t["score"] for t in want["topk"]], atol=2e-6)
    after = _batch_counts(server, "grocery_resnet10t_net")
    assert any(size > 1 and count > before.get(size, 0) for size, count in after.items()), after


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` (no pixel data: a decoder that trusted it would allocate)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("case, images, input_name, message", [
    ("not an image", np.array([[b"hello, not an image"]], dtype=np.object_), "IMAGE", "IMAGE[0]: not an image"),
    ("truncated JPEG", np.array([[GROCERY[0].read_bytes()[:600]]], dtype=np.object_), "IMAGE", "IMAGE[0]: truncated"),
    ("20000x20000 PNG", np.array([[_png_header(20000, 20000)]], dtype=np.object_), "IMAGE", "decompression-bomb"),
    ("no bytes", np.array([[b""]], dtype=np.object_), "IMAGE", "IMAGE[0]: no bytes"),
    ("empty tensor", np.zeros((0, 1), dtype=np.object_), "IMAGE", ""),
    ("wrong input name", np.array([[b"x"]], dtype=np.object_), "PICTURE", "PICTURE"),
    ("batch over the maximum", np.array([[GROCERY[0].read_bytes()]] * 9, dtype=np.object_), "IMAGE", "batch"),
])
def test_bad_requests_get_their_own_error_and_the_server_stays_ready(server, case, images, input_name, message):
    with pytest.raises(InferenceServerException) as caught:
        _grpc(server, "grocery_resnet10t", images, name=input_name, timeout=60)
    assert message in str(caught.value), (case, str(caught.value))
    assert server.ready()
    assert _grpc(server, "grocery_resnet10t", _images(GROCERY[:1]))[0]["topk"]


def _stub_pids(repository: Path, model: str) -> list[int]:
    """The Python-backend stub processes of ``model`` served from ``repository``."""
    script = str(Path(repository).resolve() / model / "1" / "model.py").encode()
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if len(args) > 1 and args[0].endswith(b"triton_python_backend_stub") and args[1] == script:
            pids.append(int(entry.name))
    return pids


def test_a_killed_stub_is_reported_then_restarted_without_hanging(server):
    """Triton reports a dead stub on each request (within a second, no hang); the server's watcher reloads the
    model, and it answers again."""
    (pid,) = _stub_pids(server.repository, "grocery_resnet10t_post")
    os.kill(pid, signal.SIGKILL)  # the stub process of one instance, started by this module's server
    start, errors, answered = time.monotonic(), [], None
    while time.monotonic() - start < 90 and answered is None:
        try:
            answered = _grpc(server, "grocery_resnet10t", _images(GROCERY[:1]), timeout=30)
        except InferenceServerException as e:
            errors.append(str(e))
            time.sleep(0.5)
    assert answered is not None and answered[0]["topk"], errors[-1:]
    assert all("is not healthy" in e for e in errors), errors
    assert "grocery_resnet10t_post" in server.reloads and server.ready()
    assert _stub_pids(server.repository, "grocery_resnet10t_post") not in ([], [pid])


def test_vision_serve_starts_listens_and_stops_on_ctrl_c(runtime, tmp_path):
    """The command on a one-model repository: prints where it listens once ready, Ctrl-C ends it and its stubs."""
    from vision.serving import build_repository
    from vision.serving.server import free_port

    repository = tmp_path / "repository"
    build_repository(["brand_resnet10t"], repository, env=runtime.env)
    for step in ("brand_resnet10t", "brand_resnet10t_pre", "brand_resnet10t_post"):  # one stub starts sooner
        shutil.rmtree(repository / step)
    ports = [str(free_port()) for _ in range(3)]
    process = subprocess.Popen([sys.executable, "-m", "vision", "serve", "--repository", str(repository),
                                "--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port", ports[2]],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               env={**os.environ})
    try:
        line = process.stdout.readline()
        where = json.loads(line)
        assert where["http"] == f"http://127.0.0.1:{ports[0]}" and where["models"] == ["brand_resnet10t_net"]
        import urllib.request

        with urllib.request.urlopen(f"{where['http']}/v2/health/ready", timeout=5) as answer:
            assert answer.status == 200
        stubs = _stub_pids(repository, "brand_resnet10t_net")
        assert stubs
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 130
    finally:
        if process.poll() is None:
            process.kill()
    time.sleep(1)
    assert not [p for p in stubs if Path(f"/proc/{p}").exists()]
