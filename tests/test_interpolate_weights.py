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


def test_several_finetunes_are_averaged_first():
    base = {"w": torch.zeros(2), "n": torch.tensor(1)}
    tuned = [{"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(7)},
             {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(8)}]
    out = iw.interpolate_state(base, tuned, 0.5)
    assert torch.allclose(out["w"], torch.tensor([1.0, 2.0])) and out["n"].item() == 7
    with pytest.raises(ValueError, match="tensor w: shape"):
        iw.interpolate_state(base, [tuned[0], {"w": torch.zeros(3), "n": torch.tensor(1)}], 0.5)


def test_a_soup_of_zoo_models_matches_the_arithmetic(tmp_path):
    from vision.models.embedder import EmbeddingNet
    from vision.tasks.cards import embedding_card
    from vision.zoo import load_model, save_model

    hp = {"backbone": "resnet10t", "embedding_size": 8, "loss": "MultiSimilarityLoss", "num_classes": 3}
    files = []
    for seed, name in enumerate(("base", "ft_a", "ft_b")):
        torch.manual_seed(seed)
        save_model(EmbeddingNet("resnet10t", 8), embedding_card(name, hp), tmp_path)
        files.append(str(tmp_path / f"{name}.safetensors"))
    assert iw.main(["--base", files[0], "--finetuned", files[1], files[2], "--alpha", "0.5",
                    "--zoo-dir", str(tmp_path), "--zoo-name", "soup"]) == 0
    states = [load_model(f).state_dict() for f in files]
    soup = load_model("soup", zoo_dir=tmp_path)
    key = "neck.0.weight"
    torch.testing.assert_close(soup.state_dict()[key], 0.5 * states[0][key] + 0.25 * (states[1][key] + states[2][key]))
    assert "the mean of ft_a" in soup.card.notes


def test_a_finetune_at_another_input_size_needs_the_flag_and_keeps_its_size(tmp_path, capsys):
    from vision.data.preprocessing import Preprocessing
    from vision.models.embedder import EmbeddingNet
    from vision.tasks.cards import embedding_card
    from vision.zoo import load_model, save_model

    files = []
    for seed, (name, size) in enumerate((("base64", 64), ("ft96", 96))):
        torch.manual_seed(seed)
        hp = {"backbone": "resnet10t", "embedding_size": 8, "num_classes": 3,
              "preprocessing": Preprocessing(input_size=size, crop_pct=1.0).to_dict()}
        save_model(EmbeddingNet("resnet10t", 8), embedding_card(name, hp), tmp_path)
        files.append(str(tmp_path / f"{name}.safetensors"))
    args = ["--base", files[0], "--finetuned", files[1], "--alpha", "0.5", "--zoo-dir", str(tmp_path)]
    assert iw.main(args + ["--zoo-name", "refused"]) == 1
    assert "differ in preprocessing" in capsys.readouterr().err
    assert iw.main(args + ["--zoo-name", "wise", "--any-input-size"]) == 0
    assert load_model("wise", zoo_dir=tmp_path).card.preprocessing["input_size"] == 96
