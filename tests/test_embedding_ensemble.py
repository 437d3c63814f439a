"""EmbeddingEnsemble and tools/ensemble_embedders.py: several embedders saved, loaded and exported as one."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from .conftest import load_script

ee = load_script("tools/ensemble_embedders.py")

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
HALF = ([0.5] * 3, [0.5] * 3)


def _members(tmp_path):
    """Two tiny zoo embedders unlike each other: resnet10t at 32 px (ImageNet normalisation), 8-d, and
    resnet14t at 48 px (0.5 normalisation), 6-d."""
    from vision.data.preprocessing import Preprocessing
    from vision.models.embedder import EmbeddingNet
    from vision.tasks.cards import embedding_card
    from vision.zoo import save_model

    files = []
    for seed, (name, arch, dim, size, (mean, std)) in enumerate((("small", "resnet10t", 8, 32, IMAGENET),
                                                                 ("large", "resnet14t", 6, 48, HALF))):
        torch.manual_seed(seed)
        net = EmbeddingNet(arch, dim).eval()
        with torch.no_grad():   # BN statistics that are not the identity, so the renormalisation matters
            net(torch.randn(8, 3, size, size))
        hp = {"backbone": arch, "embedding_size": dim, "num_classes": 3,
              "preprocessing": Preprocessing(input_size=size, crop_pct=1.0, mean=mean, std=std).to_dict()}
        save_model(net, embedding_card(name, hp), tmp_path)
        files.append(str(tmp_path / f"{name}.safetensors"))
    return files


def test_an_ensemble_is_its_members_weighted_and_concatenated(tmp_path):
    from vision.zoo import load_model

    files = _members(tmp_path)
    assert ee.main(["--members", *files, "--weights", "0.75", "0.25", "--zoo-dir", str(tmp_path),
                    "--zoo-name", "ens"]) == 0
    ens = load_model("ens", zoo_dir=tmp_path).eval()   # sha256-checked like any zoo model
    small, large = (load_model(f).eval() for f in files)
    card = ens.card
    assert card.architecture == "ensemble" and card.config["embedding_size"] == 14
    assert card.preprocessing["input_size"] == 48 and card.preprocessing["mean"] == HALF[0]   # the largest member's
    assert [m["name"] for m in card.config["members"]] == ["small", "large"] and "0.75 x small" in card.notes
    # an image in [0, 1] as each member's own preprocessing gives it, and as the ensemble's does
    pixels = torch.rand(2, 3, 48, 48)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET)
    small_in = (F.interpolate(pixels, size=(32, 32), mode="bilinear", align_corners=False) - mean) / std
    with torch.no_grad():
        out = ens((pixels - 0.5) / 0.5)
        expected = torch.cat([small(small_in) * 0.75 ** 0.5, large((pixels - 0.5) / 0.5) * 0.25 ** 0.5], dim=1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    # so a cosine of two ensemble vectors is the weighted mean of the members' cosines
    a, b = out
    cos_small = F.cosine_similarity(expected[0, :8], expected[1, :8], dim=0)
    cos_large = F.cosine_similarity(expected[0, 8:], expected[1, 8:], dim=0)
    torch.testing.assert_close(a @ b, 0.75 * cos_small + 0.25 * cos_large, atol=1e-5, rtol=1e-4)


def test_an_ensemble_extracts_features_and_exports_to_onnx_like_any_embedder(tmp_path):
    import onnxruntime as ort

    import vision
    from vision.export.onnx import export_onnx
    from vision.zoo import load_model

    files = _members(tmp_path)
    assert ee.main(["--members", *files, "--zoo-dir", str(tmp_path), "--zoo-name", "ens", "--zoo-half"]) == 0
    from safetensors import safe_open

    with safe_open(str(tmp_path / "ens.safetensors"), "pt") as stored:   # float16 on disk, float32 once loaded
        assert stored.get_tensor("members.1.neck.0.weight").dtype == torch.float16
    image = (np.random.default_rng(0).random((60, 50, 3)) * 255).astype(np.uint8)
    vectors = vision.predictor(str(tmp_path / "ens.safetensors"))(image)[0].vector
    assert vectors.shape == (14,) and abs(float(np.linalg.norm(vectors)) - 1) < 1e-5
    net = load_model("ens", zoo_dir=tmp_path).eval()
    path = export_onnx(net, tmp_path / "ens.onnx")   # its own parity check against torch passes, too
    x = torch.randn(3, 3, 48, 48)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(onnx_out, net(x).numpy(), atol=1e-4)


def test_bad_ensembles_are_refused(tmp_path, capsys):
    from vision.data.preprocessing import Preprocessing
    from vision.models.embedder import EmbeddingEnsemble, EmbeddingNet
    from vision.tasks.cards import embedding_card
    from vision.zoo import save_model

    files = _members(tmp_path)
    zoo = ["--zoo-dir", str(tmp_path), "--zoo-name", "x"]
    assert ee.main(["--members", files[0], *zoo]) == 2
    assert ee.main(["--members", *files, "--weights", "0.5", "0.6", *zoo]) == 2
    assert ee.main(["--members", *files, "--weights", "1.0", *zoo]) == 2
    assert "sum to 1" in capsys.readouterr().err
    hp = {"backbone": "resnet10t", "embedding_size": 4, "num_classes": 3,
          "preprocessing": Preprocessing(input_size=32, crop_pct=0.875).to_dict()}
    save_model(EmbeddingNet("resnet10t", 4), embedding_card("cropped", hp), tmp_path)
    assert ee.main(["--members", files[0], str(tmp_path / "cropped.safetensors"), *zoo]) == 1
    assert "crop_pct 0.875" in capsys.readouterr().err
    assert ee.main(["--members", files[0], "grocery_resnet10t", *zoo]) == 1   # a classifier is no member
    assert "not a single embedder" in capsys.readouterr().err
    member = {"architecture": "resnet10t", "embedding_size": 4, "input_size": 32, "mean": HALF[0], "std": HALF[1]}
    with pytest.raises(ValueError, match="at least 2 members"):
        EmbeddingEnsemble([dict(member, weight=1.0)], 32, *HALF)
