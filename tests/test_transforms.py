import numpy as np
import pytest
import torch

from vision.data.transforms import TRAIN_PRESETS, Preprocessing, build_eval_transform, build_train_transform


@pytest.mark.parametrize("preset", sorted(TRAIN_PRESETS))
def test_every_preset_produces_the_input_size(preset):
    pre = Preprocessing(input_size=48)
    image = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    out = build_train_transform(preset, pre)(image=image)["image"]
    assert out.shape == (3, 48, 48) and out.dtype == torch.float32


def test_eval_transform_resizes_shorter_side_then_centre_crops():
    pre = Preprocessing(input_size=32, crop_pct=0.5, mean=(0, 0, 0), std=(1, 1, 1))
    assert pre.resize_size == 64
    image = np.zeros((64, 128, 3), dtype=np.uint8)
    image[:, 48:80] = 255  # a white band in the middle 32 columns of the resized 64x128 image
    out = build_eval_transform(pre)(image=image)["image"]
    assert out.shape == (3, 32, 32)
    assert torch.allclose(out, torch.ones_like(out))  # the centre crop sees only the band


def test_eval_transform_normalises_with_recorded_mean_std():
    pre = Preprocessing(input_size=8, crop_pct=1.0, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    out = build_eval_transform(pre)(image=np.full((8, 8, 3), 255, np.uint8))["image"]
    assert torch.allclose(out, torch.full_like(out, 2.0))


def test_preprocessing_round_trips_and_validates():
    pre = Preprocessing(input_size=112, crop_pct=0.9, interpolation="bicubic")
    assert Preprocessing.from_dict(pre.to_dict()) == pre
    with pytest.raises(ValueError, match="crop_pct"):
        Preprocessing(crop_pct=2.0)
    with pytest.raises(ValueError, match="interpolation"):
        Preprocessing(interpolation="lanczos9")
    with pytest.raises(ValueError, match="unknown preprocessing field"):
        Preprocessing.from_dict({"input_size": 10, "size": 3})


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="unknown train preset 'fancy'"):
        build_train_transform("fancy", Preprocessing())
