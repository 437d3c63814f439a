"""tools/interpolate_weights.py: WiSE-FT weight interpolation of a model and its fine-tune."""

import pytest
import torch

from .conftest import load_script

iw = load_script("tools/interpolate_weights.py")


def test_interpolation_mixes_floats_and_keeps_the_finetunes_counters():
    base = {"w": torch.zeros(2, 3), "bn.num_batches_tracked": torch.tensor(5)}
    tuned = {"w": torch.ones(2, 3), "bn.num_batches_tracked": torch.tensor(9)}
    out = iw.interpolate_state(base, tuned, 0.25)
    assert torch.allclose(out["w"], torch.full((2, 3), 0.25)) and out["bn.num_batches_tracked"].item() == 9
    assert torch.equal(iw.interpolate_state(base, tuned, 1.0)["w"], tuned["w"])
    with pytest.raises(ValueError, match="tensor w: shape"):
        iw.interpolate_state({"w": torch.zeros(3)}, {"w": torch.zeros(4)}, 0.5)
    with pytest.raises(ValueError, match="different tensors"):
        iw.interpolate_state({"w": torch.zeros(3)}, {"v": torch.zeros(3)}, 0.5)
    assert iw.main(["--base", "a", "--finetuned", "b", "--alpha", "2", "--zoo-dir", "z", "--zoo-name", "n"]) == 2
