"""The library outside its checkout: zoo resolution order, the shipped zoo inside the wheel, user saves."""

import os
import subprocess
import sys
import zipfile

import pytest
import torch

from vision.zoo import (
    ModelCard,
    ZooError,
    default_zoo_dir,
    list_models,
    load_model,
    save_model,
    shipped_zoo_dir,
    user_zoo_dir,
    zoo_search_path,
)

from .conftest import REPO


def _tiny(name: str) -> tuple[torch.nn.Module, ModelCard]:
    from vision.tasks.networks import embedder

    card = ModelCard(name=name, task="embedding", architecture="test_resnet", config={"embedding_size": 8},
                     preprocessing={"input_size": 32, "crop_pct": 1.0})
    return embedder(card), card


def test_resolution_order_and_user_saves_never_touch_the_shipped_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VISION_ZOO_DIR", raising=False)
    assert user_zoo_dir() == tmp_path / "home" / "zoo" and default_zoo_dir() == user_zoo_dir()
    assert zoo_search_path() == [user_zoo_dir(), shipped_zoo_dir()] and shipped_zoo_dir() == REPO / "weights"
    before = (REPO / "weights" / "manifest.json").read_bytes()
    net, card = _tiny("mine")
    save_model(net, card)  # no zoo_dir: your zoo
    assert (user_zoo_dir() / "mine.safetensors").is_file()
    assert (REPO / "weights" / "manifest.json").read_bytes() == before
    assert {"mine", "grocery_resnet10t"} <= set(list_models())  # yours and the shipped ones
    assert load_model("mine").card.name == "mine" and load_model("grocery_resnet10t").card.task == "classification"

    # a model of yours shadows a shipped one of the same name; zoo_dir= and $VISION_ZOO_DIR search only there
    net, card = _tiny("grocery_resnet10t")
    save_model(net, card)
    assert load_model("grocery_resnet10t").card.task == "embedding"
    assert load_model("grocery_resnet10t", zoo_dir=REPO / "weights").card.task == "classification"
    monkeypatch.setenv("VISION_ZOO_DIR", str(tmp_path / "other"))
    assert zoo_search_path() == [tmp_path / "other"]
    with pytest.raises(ZooError, match=r"no model named 'mine'.*VISION_ZOO_DIR"):
        load_model("mine")


def test_shipped_gallery_is_found_by_name(monkeypatch):
    from vision.brands.gallery import BrandGallery

    assert len(BrandGallery.load("simple_icons_gallery")) > 3000


@pytest.mark.slow
def test_wheel_carries_the_shipped_zoo_and_loads_it_from_outside_the_checkout(tmp_path):
    """Build the wheel, and import it (on top of this environment's dependencies) from another folder."""
    import shutil

    # build from a copy of the files git would commit: a checkout's build/ and *.egg-info (left by earlier builds
    # and editable installs) could add modules a fresh clone's wheel would not have, or drop deleted ones
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    source = tmp_path / "source"
    for name in files:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("vision_zoo-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"vision/weights/manifest.json", "vision/weights/grocery_resnet10t.safetensors",
            "vision/weights/simple_icons_gallery.npz", "vision/tasks/__init__.py"} <= set(names)
    assert not [n for n in names if n.startswith(("weights/", "tests/", "tools/")) or "/demo/" in n]
    packaged = {n for n in names if n.startswith("vision/") and n.endswith(".py")}
    in_tree = {str(p.relative_to(REPO)) for p in (REPO / "vision").rglob("*.py")}
    assert packaged == in_tree  # every module of the tree, and nothing that is not in it any more
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(target)
    code = ("import vision, sys; assert vision.__file__.startswith(sys.argv[1]), vision.__file__; "
            "from vision.zoo import shipped_zoo_dir; print(shipped_zoo_dir()); "
            "print(sorted(vision.list_models())); m = vision.load_model('grocery_resnet10t'); print(m.card.sha256)")
    env = {**os.environ, "PYTHONPATH": str(target), "VISION_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0] == str(target / "vision" / "weights")
    assert "brand_resnet10t" in lines[1] and "logo_yolo11n" in lines[1] and len(lines[2]) == 64


def test_without_the_detection_extra_only_detection_needs_ultralytics():
    """ultralytics (AGPL-3.0) is the optional extra [detection]: the other tasks load without it; the detector
    says which extra to install."""
    code = """
import importlib.abc, sys
class NoUltralytics(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "ultralytics" or name.startswith("ultralytics."):
            raise ModuleNotFoundError("No module named 'ultralytics'", name="ultralytics")
sys.meta_path.insert(0, NoUltralytics())
import vision
vision.load_model("grocery_resnet10t"); vision.load_model("brand_resnet10t")
from vision.ultralytics_compat import MissingExtraError
try:
    vision.load_model("logo_yolo11n")
except MissingExtraError as e:
    print("refused:", e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "pip install 'vision-zoo[detection]'" in out.stdout
