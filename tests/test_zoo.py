import json

import pytest
import torch
from safetensors.torch import save_file

import vision
from vision.models.backbones import create_backbone
from vision.models.classifier import ProductClassifier
from vision.zoo import ModelCard, ZooError, list_models, load_model, read_card, save_model


def _card(name="tiny", **kw):
    return ModelCard(name=name, task="classification", architecture="test_resnet",
                     config={"num_classes": 3, "num_coarse_classes": 2},
                     preprocessing={"input_size": 32, "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.5] * 3,
                                    "interpolation": "bilinear"},
                     class_names=["a", "b", "c"], coarse_names=["x", "y"], fine_to_coarse=[0, 0, 1], **kw)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = ProductClassifier("test_resnet", 3, 2).eval()
    card = save_model(model, _card(metrics={"val_top1": 0.5}), tmp_path)
    return model, card, tmp_path


def test_save_and_load_by_name_gives_identical_outputs(saved):
    model, card, zoo = saved
    assert list_models(zoo_dir=zoo) == ["tiny"] and list_models(task="detection", zoo_dir=zoo) == []
    loaded = load_model("tiny", zoo_dir=zoo)
    assert not loaded.training and loaded.card.class_names == ["a", "b", "c"]
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), loaded(x))
    manifest = json.loads((zoo / "manifest.json").read_text())
    entry = manifest["models"]["tiny"]
    assert entry["sha256"] == card.sha256 and len(entry["sha256"]) == 64
    assert entry["metrics"] == {"val_top1": 0.5} and entry["versions"]["torch"] == torch.__version__


def test_file_carries_its_own_card_and_loads_by_path(saved, tmp_path_factory):
    model, card, zoo = saved
    other = tmp_path_factory.mktemp("elsewhere") / "copy.safetensors"
    other.write_bytes((zoo / card.file).read_bytes())
    assert read_card(other).preprocessing["input_size"] == 32
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(load_model(other)(x), model(x))


def test_sha256_mismatch_is_refused(saved):
    _, card, zoo = saved
    path = zoo / card.file
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ZooError, match="sha256 mismatch"):
        load_model("tiny", zoo_dir=zoo)
    with pytest.raises(ZooError, match="sha256 mismatch"):
        load_model(path)  # by path too: the manifest beside it lists the file


def test_unknown_name_suggests_close_matches(saved):
    with pytest.raises(ZooError, match=r"did you mean \['tiny'\]"):
        load_model("tinny", zoo_dir=saved[2])


def test_missing_file_and_foreign_safetensors_are_clear_errors(saved, tmp_path_factory):
    _, card, zoo = saved
    (zoo / card.file).unlink()
    with pytest.raises(ZooError, match="is missing"):
        load_model("tiny", zoo_dir=zoo)
    foreign = tmp_path_factory.mktemp("f") / "foreign.safetensors"
    save_file({"w": torch.zeros(1)}, str(foreign))
    with pytest.raises(ZooError, match="no 'vision.card' metadata"):
        load_model(foreign)


def test_half_storage_loads_back_as_float32(tmp_path):
    model = ProductClassifier("test_resnet", 3, 2).eval()
    save_model(model, _card(), tmp_path, half=True)
    loaded = load_model("tiny", zoo_dir=tmp_path)
    assert loaded.head.weight.dtype == torch.float32
    assert torch.allclose(loaded.head.weight, model.head.weight, atol=1e-3)


def test_corrupt_manifest_names_the_file(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ZooError, match="manifest.json: not valid JSON"):
        list_models(zoo_dir=tmp_path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_backbone_loads_local_pretrained_file_without_network(tmp_path, suffix):
    torch.manual_seed(1)
    source = create_backbone("test_resnet")
    path = tmp_path / f"w{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    loaded = create_backbone("test_resnet", pretrained=str(path))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


def test_backbone_missing_local_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        create_backbone("test_resnet", pretrained=str(tmp_path / "nope.safetensors"))


def test_public_api():
    assert callable(vision.load_model) and callable(vision.list_models)
    assert vision.ImageClassifier is not None


SHIPPED_ZOO = __import__("pathlib").Path(__file__).resolve().parents[1] / "weights"


@pytest.mark.parametrize("name", sorted(json.loads((SHIPPED_ZOO / "manifest.json").read_text())["models"]))
def test_every_shipped_model_loads_verified_and_runs(name):
    """The registry sweep: each model in weights/ matches its sha256, builds from its card and runs forward."""
    model = load_model(name, zoo_dir=SHIPPED_ZOO)
    card = model.card
    assert card.name == name and (SHIPPED_ZOO / card.file).stat().st_size <= 20e6
    size = card.preprocessing["input_size"]
    with torch.no_grad():
        out = model(torch.rand(2, 3, size, size))
    out = out[0] if isinstance(out, (tuple, list)) else out
    assert out.shape[0] == 2 and torch.isfinite(out).all()
    if card.class_names and card.task != "embedding":
        assert len(card.class_names) == card.config["num_classes"]


def test_timm_resolves_the_cards_preprocessing_on_a_loaded_model():
    import timm.data

    model = load_model("grocery_resnet10t", zoo_dir=SHIPPED_ZOO)
    config = timm.data.resolve_model_data_config(model)
    pre = model.card.data_config
    assert config["input_size"] == (3, pre.input_size, pre.input_size) == (3, 112, 112)
    assert config["interpolation"] == pre.interpolation and config["crop_pct"] == pre.crop_pct
    assert tuple(config["mean"]) == tuple(pre.mean)


def test_list_models_filters_by_pattern_and_task():
    assert list_models("*resnet*", zoo_dir=SHIPPED_ZOO) == ["brand_resnet10t", "grocery_resnet10t"]
    assert list_models("*resnet*", task="classification", zoo_dir=SHIPPED_ZOO) == ["grocery_resnet10t"]
    assert list_models(task="detection", zoo_dir=SHIPPED_ZOO) == ["logo_yolo11n"]
    assert list_models("nothing*", zoo_dir=SHIPPED_ZOO) == []
