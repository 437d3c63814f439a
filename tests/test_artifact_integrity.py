"""Artifacts are what their writer recorded, or are refused: ONNX exports and TensorRT plans against their recorded
sha256 (also under backend="auto"), Triton repositories against vision.sha256, galleries bound to their model and
checked field by field, feature files written as one pair, empty extractions refused; and a seeded fuzz of every
loader (ONNX, parity report, plan sidecar, gallery) that accepts only a clean result or our own error type."""

import json
import logging
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from vision.brands.gallery import BrandGallery, GalleryError
from vision.brands.recognition import BrandRecognizer
from vision.data.io import list_images
from vision.export import ArtifactIntegrityError, ExportError, export_onnx, verify_artifact
from vision.export.onnx import parity_report_path, read_parity_report, verify_recorded_digest
from vision.export.quantize import export_onnx_int8
from vision.export.tensorrt import (
    EngineIntegrityError,
    EngineMismatchError,
    build_sidecar,
    check_engine_sidecar,
    read_sidecar,
    sidecar_path,
)
from vision.export.triton import DIGESTS, verify_triton_repository, write_triton_model
from vision.features import ExtractError, FeatureExtractor, NpyWriter, ids_path_of, load_features
from vision.fileio import sha256_file
from vision.models.classifier import ProductClassifier
from vision.zoo import ModelCard, load_model, save_model

from .conftest import REPO, SAMPLE
from .test_zoo import _card

pytest.importorskip("onnxruntime")
TRT_VERSION, GPU = "10.16.1.11", ("NVIDIA L4", "8.9")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny classifier in its own zoo folder (so its card has a sha256) and its features ONNX export."""
    root = tmp_path_factory.mktemp("integrity")
    torch.manual_seed(0)
    save_model(ProductClassifier("test_resnet", 3, 2).eval(), _card(), root)
    model = load_model(root / "tiny.safetensors")
    onnx_path = export_onnx(model, root / "tiny.features.onnx", output="features")
    return model, root, onnx_path


def _copy_export(onnx_path: Path, folder: Path, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / (name or onnx_path.name)
    out.write_bytes(onnx_path.read_bytes())
    parity_report_path(out).write_bytes(parity_report_path(onnx_path).read_bytes())
    return out


def _tamper_weights(path: Path) -> None:
    """Scale one initializer, keeping the graph and its metadata (card, output kind) as they were."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    init = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 0.5, init.name))
    onnx.save(proto, str(path))


# --- item 4: exports are checked against the digest recorded at export time
def test_export_records_the_digest_of_the_final_bytes(tiny, tmp_path):
    model, _, onnx_path = tiny
    report = read_parity_report(onnx_path)
    assert report["sha256"] == sha256_file(onnx_path) and report["bytes"] == onnx_path.stat().st_size
    assert report["model"] == "tiny" and report["format"] == "onnx"
    int8 = export_onnx_int8(model, tmp_path / "tiny.int8.onnx", calib_dir=SAMPLE / "train", max_images=32,
                            output="features")  # the metadata is written after quantisation: hashed after that
    assert read_parity_report(int8)["sha256"] == sha256_file(int8) and verify_artifact(int8) == [int8]


def test_tampered_onnx_is_refused_by_every_loader(tiny, tmp_path, monkeypatch):
    model, root, onnx_path = tiny
    export_dir = tmp_path / "export"
    path = _copy_export(onnx_path, export_dir)
    monkeypatch.setenv("VISION_ZOO_DIR", str(root))
    assert FeatureExtractor.from_pretrained("tiny", export_dir=export_dir).backend.backend == "onnxruntime"

    _tamper_weights(path)
    rebuild = r"vision export --model tiny --format onnx --output-kind features --out .*tiny\.features\.onnx"
    for load in (lambda: FeatureExtractor.from_pretrained(path, backend="onnxruntime"),
                 lambda: FeatureExtractor.from_pretrained(path),                       # auto, by suffix
                 lambda: FeatureExtractor.from_pretrained("tiny", export_dir=export_dir),  # auto: no silent fallback
                 lambda: write_triton_model(path, tmp_path / "repo"),
                 lambda: verify_artifact(path)):
        with pytest.raises(ArtifactIntegrityError, match=rf"tiny\.features\.onnx: .*sha256 differs.*{rebuild}"):
            load()
    assert not (tmp_path / "repo").exists()

    # no record at all (an export from before digests, or a file dropped in): refused the same way
    report = read_parity_report(onnx_path)
    path.write_bytes(onnx_path.read_bytes())
    parity_report_path(path).write_text(json.dumps({k: v for k, v in report.items() if k != "sha256"}))
    with pytest.raises(ArtifactIntegrityError, match="records no sha256"):
        FeatureExtractor.from_pretrained("tiny", export_dir=export_dir)
    parity_report_path(path).unlink()
    with pytest.raises(ArtifactIntegrityError, match=r"no parity report tiny\.features\.onnx\.parity\.json"):
        FeatureExtractor.from_pretrained(path, backend="onnxruntime")
    # an export that is simply absent still falls back to torch
    path.unlink()
    assert FeatureExtractor.from_pretrained("tiny", export_dir=export_dir).backend.backend == "torch"


def _fake_plan(card: ModelCard, path: Path, tensorrt_version: str = TRT_VERSION) -> Path:
    path.write_bytes(b"\x00fake serialized engine" * 50)
    sidecar = build_sidecar(path, card=card, output="features", precision="fp16", batch=(1, 4, 16),
                            input_shape=(-1, 3, 32, 32), output_shape=(4, 8), tensorrt_version=tensorrt_version,
                            gpu_name=GPU[0], compute_capability=GPU[1])
    sidecar_path(path).write_text(json.dumps(sidecar))
    return path


@pytest.fixture
def fake_gpu(monkeypatch):
    """This process as a machine with CUDA and TensorRT TRT_VERSION on an L4 (no engine is ever deserialized)."""
    import vision.export.tensorrt as trt_module

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__=TRT_VERSION))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(trt_module, "current_gpu", lambda device=0: GPU)


def test_auto_raises_for_a_tampered_plan_and_falls_back_for_another_gpu(tiny, tmp_path, monkeypatch, fake_gpu):
    model, root, onnx_path = tiny
    monkeypatch.setenv("VISION_ZOO_DIR", str(root))
    export_dir = tmp_path / "export"
    _copy_export(onnx_path, export_dir)
    plan = _fake_plan(model.card, export_dir / "tiny.features.plan", tensorrt_version="10.3.0")
    with pytest.warns(UserWarning, match=r"tiny\.features\.plan: not used .*built with TensorRT 10\.3\.0"):
        fx = FeatureExtractor.from_pretrained("tiny", export_dir=export_dir)
    assert fx.backend.backend == "onnxruntime"   # another TensorRT: the next backend, with a warning

    _fake_plan(model.card, plan)
    plan.write_bytes(plan.read_bytes()[:-1] + b"\x01")    # same size, other bytes
    with pytest.raises(EngineIntegrityError, match=r"tiny\.features\.plan: sha256 differs .*rebuild it here: "
                                                   r"vision export --model tiny --format tensorrt"):
        FeatureExtractor.from_pretrained("tiny", export_dir=export_dir)
    sidecar_path(plan).unlink()
    with pytest.raises(EngineIntegrityError, match="no sidecar tiny.features.plan.json"):
        FeatureExtractor.from_pretrained("tiny", export_dir=export_dir)
    assert issubclass(EngineIntegrityError, EngineMismatchError) and issubclass(EngineIntegrityError,
                                                                                ArtifactIntegrityError)


def test_triton_repository_records_and_checks_digests(tiny, tmp_path, capsys):
    model, _, onnx_path = tiny
    repo = tmp_path / "repo"
    onnx_dir = write_triton_model(onnx_path, repo, name="tiny_onnx")
    plan_dir = write_triton_model(_fake_plan(model.card, tmp_path / "tiny.plan"), repo, name="tiny_plan")
    write_triton_model(onnx_path, repo, name="tiny_onnx", version=2)   # a second version keeps the first's record
    lines = (onnx_dir / DIGESTS).read_text().splitlines()   # every file of the folder (issue 29, item 8)
    assert [line.split("  ")[1] for line in lines] == ["1/model.onnx", "2/model.onnx", "config.pbtxt",
                                                       "vision.json"]
    assert lines[0].split("  ")[0] == sha256_file(onnx_dir / "1" / "model.onnx") == sha256_file(onnx_path)
    checked = verify_triton_repository(repo)
    assert {p.relative_to(repo).as_posix() for p in checked} == {
        "tiny_onnx/1/model.onnx", "tiny_onnx/2/model.onnx", "tiny_onnx/config.pbtxt", "tiny_onnx/vision.json",
        "tiny_plan/1/model.plan", "tiny_plan/config.pbtxt", "tiny_plan/vision.json"}
    assert verify_triton_repository(plan_dir) == [plan_dir / p for p in ("1/model.plan", "config.pbtxt",
                                                                          "vision.json")]

    from vision.commands.export import main

    assert main(["--verify", str(repo)]) == 0 and "7 file(s) match" in capsys.readouterr().err
    model_file = onnx_dir / "2" / "model.onnx"
    model_file.write_bytes(model_file.read_bytes() + b"\x00")
    with pytest.raises(ArtifactIntegrityError, match=r"tiny_onnx/2/model\.onnx: sha256 differs .*vision "
                                                     r"export --model tiny --format triton --serving "
                                                     r"onnxruntime --name tiny_onnx"):
        verify_triton_repository(repo)
    with pytest.raises(SystemExit, match="error: .*model.onnx: sha256 differs"):
        main(["--verify", str(repo)])
    (onnx_dir / DIGESTS).write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    with pytest.raises(ArtifactIntegrityError, match=r"2/model\.onnx: not recorded in .*vision\.sha256"):
        verify_triton_repository(onnx_dir)
    (plan_dir / DIGESTS).unlink()
    with pytest.raises(ArtifactIntegrityError, match=r"tiny_plan: no vision\.sha256"):
        verify_triton_repository(plan_dir)


# --- item 5: a gallery that names no model is not searched with one, unless asked to
def test_unbound_gallery_is_refused_unless_allowed(tmp_path, caplog):
    card = ModelCard(name="emb", task="embedding", architecture="test_resnet", config={}, preprocessing={},
                     sha256="ab" * 32)
    extractor = types.SimpleNamespace(card=card, dim=8)
    vectors = np.eye(8, dtype=np.float32)[:2]
    for name, sha in (("", ""), ("emb", ""), ("", "ab" * 32)):
        gallery = BrandGallery(8, model_name=name, model_sha256=sha)
        gallery.add_many(["a", "b"], vectors)
        with pytest.raises(GalleryError, match="cannot tell whether the gallery was built with model 'emb'.*"
                                               "allow_unbound=True"):
            BrandRecognizer(extractor, gallery)
        with pytest.raises(GalleryError, match="records no model"):
            BrandGallery.load(gallery.save(tmp_path / "g.npz"), model=card)
        with caplog.at_level(logging.WARNING, logger="vision.brands.gallery"):
            BrandRecognizer(extractor, gallery, allow_unbound=True)
        assert "allow_unbound=True" in caplog.text
        caplog.clear()
    bare = types.SimpleNamespace(card=ModelCard(**{**card.to_dict(), "sha256": ""}), dim=8)
    bound = BrandGallery(8, model_name="emb", model_sha256="ab" * 32)
    bound.add_many(["a", "b"], vectors)
    with pytest.raises(GalleryError, match="model 'emb' has no sha256"):
        BrandRecognizer(bare, bound)
    BrandRecognizer(extractor, bound)


def test_shipped_gallery_is_bound_to_its_model():
    gallery = BrandGallery.load(REPO / "weights" / "simple_icons_gallery.npz")
    assert gallery.model_name == "brand_ensemble" and len(gallery.model_sha256) == 64


# --- item 8: a features .npy and its ids are one unit
def _write_pair(path: Path, rows: int, dim: int = 4, fill: float = 1.0) -> None:
    with NpyWriter(path) as writer:
        writer.write([f"img{i}.jpg" for i in range(rows)], np.full((rows, dim), fill, np.float32))


@pytest.mark.parametrize("crash_at", ["npy_tmp", "ids_replace", "npy_replace"])
def test_a_crash_never_leaves_a_mixed_feature_pair(tmp_path, monkeypatch, crash_at):
    out = tmp_path / "f.npy"
    _write_pair(out, 3, fill=1.0)
    real_replace, real_header = os.replace, np.lib.format.write_array_header_1_0

    def replace(src, dst):
        if Path(dst) == (ids_path_of(out) if crash_at == "ids_replace" else out):
            raise OSError("simulated crash")
        return real_replace(src, dst)

    def header(*args):
        raise OSError("simulated crash")

    if crash_at == "npy_tmp":
        monkeypatch.setattr(np.lib.format, "write_array_header_1_0", header)
    else:
        monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="simulated"):
        _write_pair(out, 5, fill=2.0)
    monkeypatch.setattr(os, "replace", real_replace)
    monkeypatch.setattr(np.lib.format, "write_array_header_1_0", real_header)
    if crash_at == "npy_tmp":   # nothing committed: the old pair
        ids, feats = load_features(out)
        assert len(ids) == len(feats) == 3 and (feats == 1.0).all()
    else:                       # mid-commit: no .npy, so no pair to misread
        assert not out.exists()
        with pytest.raises(ExtractError, match="no such features file"):
            load_features(out)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    _write_pair(out, 5, fill=2.0)
    ids, feats = load_features(out)
    assert len(ids) == len(feats) == 5 and (feats == 2.0).all()


def test_mismatched_feature_pair_is_named(tmp_path):
    out = tmp_path / "f.npy"
    _write_pair(out, 3)
    ids_path_of(out).write_text("a.jpg\nb.jpg\n")
    with pytest.raises(ExtractError, match=r"f\.npy: \(3, 4\) features for 2 ids in f\.npy\.ids\.txt"):
        load_features(out)
    ids_path_of(out).unlink()
    with pytest.raises(ExtractError, match="ids file f.npy.ids.txt is missing"):
        load_features(out)


# --- item 11: gallery files are checked field by field at load time
def _gallery_file(path: Path, meta=None, vectors=None, owner=None, raw_meta=None) -> Path:
    base = {"format": 1, "dim": 4, "model_name": "m", "model_sha256": "ab" * 32, "threshold": 0.5, "index": "flat",
            "hnsw_m": 32, "ef_search": 64, "nlist": None, "nprobe": 16}
    meta = base if meta is None else meta
    vectors = np.eye(4, dtype=np.float32)[:2] if vectors is None else vectors
    owner = np.array(["a", "b"]) if owner is None else owner
    with open(path, "wb") as f:
        np.savez(f, vectors=vectors, owner=owner,
                 meta=np.array(json.dumps(meta) if raw_meta is None else raw_meta))
    return path


GOOD_META = {"format": 1, "dim": 4, "model_name": "m", "model_sha256": "ab" * 32, "threshold": 0.5,
             "index": "flat", "hnsw_m": 32, "ef_search": 64, "nlist": None, "nprobe": 16}


@pytest.mark.parametrize("kwargs, field", [
    ({"meta": {k: v for k, v in GOOD_META.items() if k != "dim"}}, "'dim'"),
    ({"meta": [1, 2, 3]}, "'meta' must be a JSON object"),
    ({"meta": {**GOOD_META, "dim": "4"}}, "'dim'"),
    ({"meta": {**GOOD_META, "threshold": float("nan")}}, "'threshold'"),
    ({"meta": {**GOOD_META, "model_name": 3}}, "'model_name'"),
    ({"meta": {**GOOD_META, "index": "lsh"}}, "'index'"),
    ({"meta": {**GOOD_META, "nprobe": 0}}, "'nprobe'"),
    ({"raw_meta": "{not json"}, "'meta' is not JSON"),
    ({"vectors": np.array([[np.nan, 0, 0, 0], [0, 1, 0, 0]], np.float32)}, r"'vectors' row 0 \(brand 'a'\) holds NaN"),
    ({"vectors": np.eye(4, dtype=np.int64)[:2]}, "'vectors' must be a float"),
    ({"vectors": np.eye(4, dtype=np.float32)[:3]}, "3 vectors for 2 brand names"),
    ({"vectors": 2 * np.eye(4, dtype=np.float32)[:2]}, "'vectors' row 0 .* norm 2"),
    ({"owner": np.array([1, 2])}, "'owner' must be a 1-D array of brand names"),
    ({"owner": np.array(["a", "unknown"])}, "'owner' row 1"),
])
def test_bad_gallery_fields_are_named_at_load(tmp_path, kwargs, field):
    path = _gallery_file(tmp_path / "g.npz", **kwargs)
    with pytest.raises(GalleryError, match=rf"g\.npz: .*{field}"):
        BrandGallery.load(path)


def test_garbage_gallery_files_are_gallery_errors(tmp_path):
    good = _gallery_file(tmp_path / "good.npz", meta=GOOD_META).read_bytes()
    assert BrandGallery.load(tmp_path / "good.npz").brands == ["a", "b"]
    for name, data in (("zip.npz", b"PK\x03\x04" + b"\x00" * 100), ("half.npz", good[:len(good) // 2]),
                       ("npy.npz", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }"
                                   + b" " * 70 + b"\n" + b"\x00" * 4)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(GalleryError, match=rf"{name}: not a readable gallery file"):
            BrandGallery.load(tmp_path / name)


# --- item 14: nothing to extract is an error, and nothing is written
def test_empty_input_folder_is_an_error(tiny, tmp_path):
    _, root, _ = tiny
    fx = FeatureExtractor.from_pretrained(root / "tiny.safetensors", backend="torch")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExtractError, match=rf"{empty}: no images"):
        fx.extract_folder(empty, tmp_path / "f.npy")
    (empty / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ExtractError, match=r"none of its 1 image\(s\) could be read \(.*broken\.jpg"):
        fx.extract_folder(empty, tmp_path / "f.npy")
    assert not (tmp_path / "f.npy").exists() and not ids_path_of(tmp_path / "f.npy").exists()

    from vision.commands.extract import main

    (empty / "broken.jpg").unlink()
    with pytest.raises(SystemExit, match=rf"error: no image files .* in folder\(s\): {empty}"):
        main(["--model", str(root / "tiny.safetensors"), "--backend", "torch", "--images", str(empty),
              "--out", str(tmp_path / "f.npy")])
    assert list(tmp_path.glob("f.npy*")) == []


# --- fuzz: random bytes, truncations, flips and wrong-typed fields into every loader
def _mutations(rng: np.random.Generator, data: bytes, count: int) -> list[bytes]:
    out = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            out.append(rng.bytes(int(rng.integers(0, 2 * len(data) + 1))))
        elif kind == 1:
            out.append(data[:int(rng.integers(0, len(data)))])
        else:
            flipped = bytearray(data)
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 9))):
                flipped[pos] ^= 1 << int(rng.integers(0, 8))
            out.append(bytes(flipped))
    return out


_JSON_VALUES = [None, True, 0, -1, 1.5, float("nan"), "x", "", [], [1], {}, {"a": 1}]


def _field_mutations(rng: np.random.Generator, record: dict, count: int) -> list[dict]:
    """``record`` with one (possibly nested) field replaced by a value of another type, or removed."""
    out = []
    for _ in range(count):
        mutated = json.loads(json.dumps(record))
        target = mutated
        keys = list(target)
        key = keys[int(rng.integers(len(keys)))]
        if isinstance(target[key], dict) and target[key] and rng.random() < 0.5:
            target = target[key]
            key = list(target)[int(rng.integers(len(target)))]
        if rng.random() < 0.2:
            del target[key]
        else:
            target[key] = _JSON_VALUES[int(rng.integers(len(_JSON_VALUES)))]
        out.append(mutated)
    return out


def test_fuzz_every_loader_gives_a_clean_result_or_our_error(tiny, tmp_path):
    model, _, onnx_path = tiny
    rng = np.random.default_rng(20261129)
    outcomes = {"ok": 0, "refused": 0}

    def attempt(load):
        try:
            load()
            outcomes["ok"] += 1
        except (ExportError, ExtractError, GalleryError):
            outcomes["refused"] += 1

    # ONNX bytes, re-recorded so that the bytes reach onnx and onnxruntime (a digest mismatch is the easy case)
    image = np.full((40, 40, 3), 128, np.uint8)
    path = _copy_export(onnx_path, tmp_path / "onnx")
    report = read_parity_report(onnx_path)
    for data in _mutations(rng, onnx_path.read_bytes(), 60):
        path.write_bytes(data)
        parity_report_path(path).write_text(json.dumps({**report, "sha256": sha256_file(path), "bytes": len(data)}))
        attempt(lambda: FeatureExtractor.from_pretrained(path, backend="onnxruntime")([image]))
    # the parity report (the ONNX file's integrity record)
    path.write_bytes(onnx_path.read_bytes())
    text = parity_report_path(onnx_path).read_bytes()
    cases = _mutations(rng, text, 30) + [json.dumps(m).encode() for m in _field_mutations(rng, report, 30)]
    for data in cases:
        parity_report_path(path).write_bytes(data)
        attempt(lambda: verify_recorded_digest(path))
    # the TensorRT sidecar (plain Python: no TensorRT or GPU)
    plan = _fake_plan(model.card, tmp_path / "tiny.plan")
    sidecar = json.loads(sidecar_path(plan).read_text())
    cases = _mutations(rng, sidecar_path(plan).read_bytes(), 30) + [
        json.dumps(m).encode() for m in _field_mutations(rng, sidecar, 50)]
    for data in cases:
        sidecar_path(plan).write_bytes(data)
        attempt(lambda: check_engine_sidecar(plan, read_sidecar(plan), tensorrt_version=TRT_VERSION,
                                             compute_capability=GPU[1], gpu_name=GPU[0]))
    # gallery .npz: bytes, and well-formed files with one metadata field of another type
    gallery_path = _gallery_file(tmp_path / "g.npz", meta=GOOD_META)
    query = np.eye(4, dtype=np.float32)[:1]
    for data in _mutations(rng, gallery_path.read_bytes(), 40):
        gallery_path.write_bytes(data)
        attempt(lambda: BrandGallery.load(gallery_path).identify(query))
    for meta in _field_mutations(rng, GOOD_META, 40):
        _gallery_file(gallery_path, meta=meta)
        attempt(lambda: BrandGallery.load(gallery_path).identify(query))
    assert outcomes["ok"] > 0 and outcomes["refused"] > 100, outcomes


def test_extracted_pair_reads_back(tiny, tmp_path):
    """The pair written by extract_folder (from a verified ONNX export) reads back through load_features."""
    _, root, onnx_path = tiny
    out = tmp_path / "f.npy"
    summary = FeatureExtractor.from_pretrained(onnx_path).extract_folder(SAMPLE / "val", out, batch_size=4)
    ids, feats = load_features(out)
    assert len(ids) == len(feats) == summary["count"] == len(list_images(SAMPLE / "val"))


def test_build_gallery_refuses_a_model_it_cannot_bind(tmp_path, capsys):
    from vision.zoo.registry import build_model

    card = ModelCard(name="emb", task="embedding", architecture="test_resnet", config={"embedding_size": 8},
                     preprocessing={"input_size": 32, "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.5] * 3})
    save_model(build_model(card).eval(), card, tmp_path / "zoo")
    bare = tmp_path / "emb.safetensors"   # outside its manifest: loads, but with no sha256 to record
    bare.write_bytes((tmp_path / "zoo" / "emb.safetensors").read_bytes())
    from vision.commands import build_gallery

    assert build_gallery.main(["--embedder", str(bare), "--folder", str(tmp_path), "--out",
                               str(tmp_path / "g.npz")]) == 1
    assert "has no sha256" in capsys.readouterr().err and not (tmp_path / "g.npz").exists()
