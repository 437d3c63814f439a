import os

# Tests never touch the network: hub downloads fail fast instead of hanging.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# the user's zoo (where saves go by default) is a fresh folder: tests never write to ~/.local/share/vision or see
# models a developer trained there
os.environ["VISION_HOME"] = __import__("tempfile").mkdtemp(prefix="vision-home-")
os.environ.pop("VISION_ZOO_DIR", None)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "grocery_sample"
SHARED_GROCERY = REPO.parent / "shared" / "datasets" / "grocery_store"

# under pytest-xdist each worker gets one thread: the workers share the cores
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))


def load_script(relative: str):
    """A script of the checkout that is not part of the package (``"benchmarks/brand_eval.py"``, a tool) as a module,
    so a test can call its functions and ``main``."""
    import importlib.util

    path = REPO / relative
    spec = importlib.util.spec_from_file_location(f"script_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture
def tiny_data_kwargs() -> dict:
    """The committed sample at a tiny size: fast enough for unit and end-to-end tests on CPU."""
    return dict(train=str(SAMPLE / "train.txt"), val=str(SAMPLE / "val.txt"), classes=str(SAMPLE / "classes.csv"),
                input_size=32, batch_size=16, num_workers=0, train_preset="light")


@pytest.fixture
def fake_npm_registry(monkeypatch):
    """``serve(tarball_bytes) -> urls``: every ``urllib.request.urlopen`` answers with those bytes (no network) and
    the requested URLs are appended to ``urls``."""
    import io
    import urllib.request

    urls, payload = [], {}

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout: urls.append(url) or Response(payload["tarball"]))

    def serve(tarball: bytes) -> list[str]:
        payload["tarball"] = tarball
        return urls

    return serve
