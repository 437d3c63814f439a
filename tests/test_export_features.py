import json

import numpy as np
import pytest
import torch
from PIL import Image

from vision.data.io import list_images
from vision.export import ExportError, export_onnx, parity_report, read_onnx_metadata
from vision.export.onnx import PARITY_GATES
from vision.features import FeatureExtractor
from vision.models.classifier import ProductClassifier
from vision.zoo import load_model, save_model

from .conftest import SAMPLE
from .test_zoo import _card

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny saved classifier and its two ONNX exports (logits, features)."""
    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    save_model(ProductClassifier("test_resnet", 3, 2).eval(), _card(), root)
    weights = root / "tiny.safetensors"
    model = load_model(weights)
    samples = list_images(SAMPLE / "val")[:2]
    logits = export_onnx(model, root / "tiny_logits.onnx", output="logits", sample_images=samples)
    features = export_onnx(model, root / "tiny_features.onnx", output="features")
    return model, weights, logits, features


@pytest.fixture(scope="module")
def mixed_images():
    gray = np.linspace(0, 255, 40 * 50, dtype=np.float32).reshape(40, 50).astype(np.uint8)
    rgba = Image.new("RGBA", (45, 30), (200, 40, 10, 128))
    return [*list_images(SAMPLE / "val")[:3], gray, rgba]


def test_onnx_carries_card_and_passes_parity(exported):
    model, _, logits, features = exported
    for path, output in ((logits, "logits"), (features, "features")):
        card, kind = read_onnx_metadata(path)
        assert card == model.card and kind == output
        report = json.loads(path.with_name(path.name + ".parity.json").read_text())
        assert report["max_abs_diff"] < 1e-3 and report["min_cosine"] > 0.9999 and report["output"] == output
    assert json.loads(logits.with_name(logits.name + ".parity.json").read_text())["images"] == 4 + 2
    assert json.loads(logits.with_name(logits.name + ".parity.json").read_text())["top1_agreement"] == 1.0


def test_onnx_batch_axis_is_dynamic(exported):
    model, _, logits, _ = exported
    report = parity_report(model, logits, torch.randn(7, 3, 32, 32))
    assert report["images"] == 7 and report["top1_agreement"] == 1.0


def test_torch_and_onnxruntime_features_agree(exported, mixed_images):
    model, weights, _, features = exported
    on_torch = FeatureExtractor.from_pretrained(weights, backend="torch")(mixed_images, batch_size=2)
    on_ort = FeatureExtractor.from_pretrained(features, backend="onnxruntime")(mixed_images, batch_size=2)
    assert on_torch.dtype == on_ort.dtype == np.float32
    assert on_torch.shape == on_ort.shape == (5, model.num_features)
    assert FeatureExtractor.from_pretrained(features)([]).shape == (0, model.num_features)
    np.testing.assert_allclose(np.linalg.norm(on_torch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(on_ort, axis=1), 1.0, atol=1e-5)
    assert (on_torch * on_ort).sum(1).min() > 0.9999


def test_extract_folder_skips_unreadable_files(exported, tmp_path):
    _, weights, _, features = exported
    folder = tmp_path / "images" / "nested"
    folder.mkdir(parents=True)
    for src in list_images(SAMPLE / "val")[:3]:
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    for model in (weights, features):
        out = tmp_path / f"{model.stem}.npy"
        with pytest.warns(UserWarning, match=r"skipped 1 of 4 unreadable.*broken\.jpg"):
            summary = FeatureExtractor.from_pretrained(model).extract_folder(tmp_path / "images", out, batch_size=2)
        feats = np.load(out)
        ids = (tmp_path / f"{model.stem}.npy.ids.txt").read_text().splitlines()
        assert feats.shape == (3, summary["dim"]) and summary["count"] == 3 and len(ids) == 3
        assert all("broken" not in i for i in ids)
        np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)


def test_extract_from_manifest(exported, tmp_path):
    _, weights, _, _ = exported
    manifest = tmp_path / "list.txt"  # entries relative to the manifest's folder (absolute ones are refused)
    for p in list_images(SAMPLE / "val")[:2]:
        (tmp_path / p.name).write_bytes(p.read_bytes())
    manifest.write_text("".join(f"{p.name}, 0\n" for p in list_images(SAMPLE / "val")[:2]) + "\n# comment\n")
    summary = FeatureExtractor.from_pretrained(weights).extract_folder(manifest, tmp_path / "m.npy")
    assert summary["count"] == 2 and np.load(tmp_path / "m.npy").shape == (2, exported[0].num_features)


def test_parquet_without_pyarrow_is_a_clear_error(exported, tmp_path):
    try:
        import pyarrow  # noqa: F401
        pytest.skip("pyarrow is installed")
    except ImportError:
        pass
    with pytest.raises(ImportError, match="needs pyarrow"):
        FeatureExtractor.from_pretrained(exported[1]).extract_folder(SAMPLE / "val", tmp_path / "f.parquet")


def test_export_refuses_models_without_card(tmp_path):
    with pytest.raises(ExportError, match="without a model card"):
        export_onnx(ProductClassifier("test_resnet", 3).eval(), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_parity_failure_refuses_export_and_leaves_no_file(exported, tmp_path, monkeypatch):
    monkeypatch.setitem(PARITY_GATES, "fp32", {**PARITY_GATES["fp32"], "max_rel_diff": -1.0})
    with pytest.raises(ExportError, match=r"does not match torch at fp32 \(max rel diff .*\"min_cosine\""):
        export_onnx(exported[0], tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_unknown_output(exported, tmp_path):
    with pytest.raises(ExportError, match="unknown output 'boxes'"):
        export_onnx(exported[0], tmp_path / "x.onnx", output="boxes")


def test_logits_onnx_is_refused_for_features(exported):
    with pytest.raises(ValueError, match="output='features'"):
        FeatureExtractor.from_pretrained(exported[2], backend="onnxruntime")
    with pytest.raises(ValueError, match="backend='onnxruntime'"):
        FeatureExtractor.from_pretrained(exported[3], backend="torch")


def test_onnxruntime_threads_are_set_and_checked(exported, mixed_images):
    """``threads`` sets ONNX Runtime's intra-op threads (the dedup scan gives the network half the cores its
    readers share); the vectors do not depend on it; a bad count is refused before a session is made."""
    _, _, _, features = exported
    one = FeatureExtractor.from_pretrained(features, threads=1)
    assert one.backend.session.get_session_options().intra_op_num_threads == 1
    default = FeatureExtractor.from_pretrained(features)
    np.testing.assert_allclose(one(mixed_images), default(mixed_images), atol=1e-5)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="threads must be a whole number"):
            FeatureExtractor.from_pretrained(features, threads=bad)
