"""Re-exporting over a previous export (issue 29, weak items): a crash at any step leaves the previous ONNX export
(or the new one) verifiable and served by backend="auto"; ``--out`` an existing folder writes the default file name
inside it, and the library refuses a folder with a clear ExportError."""


import pytest
import torch

import vision.export.onnx as onnx_export
import vision.fileio as fileio
from vision.export import ArtifactIntegrityError, ExportError, export, export_onnx, verify_artifact
from vision.export.onnx import REPLACES_KEY, parity_report_path, read_parity_report
from vision.features import FeatureExtractor
from vision.models.classifier import ProductClassifier
from vision.zoo import load_model, save_model

from .test_zoo import _card

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("reexport")
    torch.manual_seed(0)
    save_model(ProductClassifier("test_resnet", 3, 2).eval(), _card(), root)
    model = load_model(root / "tiny.safetensors")
    return model, root, export_onnx(model, root / "tiny.features.onnx", output="features")


def _copy(onnx_path, folder):
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / onnx_path.name
    out.write_bytes(onnx_path.read_bytes())
    parity_report_path(out).write_bytes(parity_report_path(onnx_path).read_bytes())
    return out


class Crash(BaseException):
    pass


@pytest.mark.parametrize("at", ["move", "final_report"])
def test_a_crash_while_re_exporting_keeps_a_verifiable_export(tiny, tmp_path, monkeypatch, at):
    model, root, onnx_path = tiny
    export_dir = tmp_path / "export"
    path = _copy(onnx_path, export_dir)
    old_bytes, old_report = path.read_bytes(), read_parity_report(path)
    real_replace, real_report = fileio.os.replace, onnx_export.write_parity_report

    def replace(src, dst):
        if at == "move" and str(dst) == str(path):
            raise Crash("killed before the new file was moved in")
        real_replace(src, dst)

    def write_report(artifact, report):
        if at == "final_report" and REPLACES_KEY not in report:
            raise Crash("killed before the plain report was written")
        return real_report(artifact, report)

    monkeypatch.setattr(fileio.os, "replace", replace)
    monkeypatch.setattr(onnx_export, "write_parity_report", write_report)
    with pytest.raises(Crash):
        export_onnx(model, path, output="features", simplify=False)   # other bytes than the first export
    monkeypatch.undo()

    assert REPLACES_KEY in read_parity_report(path)   # the crash fell between the steps
    if at == "move":   # the previous export, whole
        assert path.read_bytes() == old_bytes
        assert onnx_export.verify_recorded_digest(path) == {k: v for k, v in old_report.items()}
    else:              # the new export, whole
        assert path.read_bytes() != old_bytes and onnx_export.verify_recorded_digest(path)["simplified"] is False
    assert verify_artifact(path) == [path]
    monkeypatch.setenv("VISION_ZOO_DIR", str(root))
    assert FeatureExtractor.from_pretrained("tiny", export_dir=export_dir).backend.backend == "onnxruntime"

    if at == "final_report":   # (one export per case: they take seconds)
        return
    export_onnx(model, path, output="features")   # the next export ends with a plain report
    assert REPLACES_KEY not in read_parity_report(path) and verify_artifact(path) == [path]


def test_the_previous_record_is_no_pass_for_other_bytes(tiny, tmp_path):
    """A report still holding its predecessor accepts that file or the new one, never a third."""
    _, _, onnx_path = tiny
    path = _copy(onnx_path, tmp_path)
    onnx_export.keep_previous_record(path, {**read_parity_report(path), "sha256": "0" * 64, "bytes": 1})
    assert verify_artifact(path) == [path]
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ArtifactIntegrityError, match=r"tiny\.features\.onnx: .*refusing it"):
        verify_artifact(path)


def test_export_out_an_existing_folder(tiny, tmp_path, capsys):
    model, root, _ = tiny
    folder = tmp_path / "exports"
    folder.mkdir()
    with pytest.raises(ExportError, match=r"exports: is a folder; give the export a file path"):
        export(model, "onnx", folder)
    with pytest.raises(ExportError, match=r"exports: is a folder"):
        export(model, "onnx-int8", folder, calib_dir=folder)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match=r"file: exists and is not a folder; a Triton repository is a folder"):
        export(model, "triton", tmp_path / "file")

    from vision.commands.export import main

    assert main(["--model", str(root / "tiny.safetensors"), "--format", "onnx", "--output-kind", "features",
                 "--out", str(folder)]) == 0
    assert verify_artifact(folder / "tiny.features.onnx") and f"wrote {folder / 'tiny.features.onnx'}" in \
        capsys.readouterr().err
