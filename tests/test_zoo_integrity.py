"""Zoo artifacts under damage, crashes and concurrency: verified lone files, crash-safe re-saves, a locked
manifest, atomic writes, schema errors and a fuzz of every loader (only a clean result or ZooError)."""

import json
import logging
import os
import random
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vision import fileio
from vision.models.classifier import ProductClassifier
from vision.zoo import ModelCard, ZooError, list_models, load_model, read_manifest, registry, save_model

REPO = Path(__file__).resolve().parents[1]
PRE = {"input_size": 32, "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear"}


def _card(name="tiny", **kw):
    return ModelCard(name=name, task="classification", architecture="test_resnet",
                     config={"num_classes": 3, "num_coarse_classes": 2}, preprocessing=dict(PRE),
                     class_names=["a", "b", "c"], coarse_names=["x", "y"], fine_to_coarse=[0, 0, 1], **kw)


def _model(seed=0):
    torch.manual_seed(seed)
    return ProductClassifier("test_resnet", 3, 2).eval()


def _same(a, b):
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


@pytest.fixture
def zoo(tmp_path):
    model = _model()
    card = save_model(model, _card(), tmp_path / "zoo")
    return model, card, tmp_path / "zoo"


def _lone_copy(zoo_dir, card, folder):
    folder.mkdir(exist_ok=True)
    path = folder / "lone.safetensors"
    path.write_bytes((zoo_dir / card.file).read_bytes())
    return path


def _data_start(data: bytes) -> int:
    return 8 + struct.unpack("<Q", data[:8])[0]


# --- item 3: a lone .safetensors carries a digest of its card and tensors
def test_lone_file_with_a_flipped_tensor_byte_is_refused(zoo, tmp_path):
    model, card, zoo_dir = zoo
    path = _lone_copy(zoo_dir, card, tmp_path / "elsewhere")
    assert _same(load_model(path), model)  # intact: verified by its own digest, no manifest beside it
    data = bytearray(path.read_bytes())
    start = _data_start(data)
    data[(start + len(data)) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ZooError, match=r"lone\.safetensors: sha256 mismatch of card and tensors"):
        load_model(path)


def test_lone_file_with_an_edited_card_is_refused(zoo, tmp_path):
    _, card, zoo_dir = zoo
    path = _lone_copy(zoo_dir, card, tmp_path / "elsewhere")
    path.write_bytes(path.read_bytes().replace(b'\\"a\\"', b'\\"z\\"', 1))  # a class name, same length
    with pytest.raises(ZooError, match="sha256 mismatch"):
        load_model(path)


def test_lone_file_without_digest_loads_only_when_allowed_and_logged(zoo, tmp_path, caplog):
    model, card, zoo_dir = zoo
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    path = tmp_path / "old.safetensors"
    save_file(state, str(path), metadata={"vision.card": card.to_json()})  # as an older vision saved it
    with pytest.raises(ZooError, match=r"old\.safetensors: no 'vision.sha256' digest.*allow_unverified=True"):
        load_model(path)
    with caplog.at_level(logging.WARNING, logger="vision.zoo.registry"):
        assert _same(load_model(path, allow_unverified=True), model)
    assert any("old.safetensors" in r.getMessage() and "without verification" in r.getMessage()
               for r in caplog.records)


# --- item 6: re-saving a name never loses the model
def test_crash_between_weights_and_manifest_keeps_the_old_model(zoo, monkeypatch):
    old_model, old_card, zoo_dir = zoo
    old_sha = old_card.sha256

    def crash(*_):
        raise OSError("killed before the manifest was written")

    monkeypatch.setattr(registry, "_write_manifest", crash)
    with pytest.raises(OSError, match="killed"):
        save_model(_model(seed=1), _card(), zoo_dir)
    monkeypatch.undo()
    survivor = load_model("tiny", zoo_dir=zoo_dir)
    assert survivor.card.sha256 == old_sha and _same(survivor, old_model)

    new_model = _model(seed=2)
    new_card = save_model(new_model, _card(), zoo_dir)
    assert new_card.file != old_card.file and _same(load_model("tiny", zoo_dir=zoo_dir), new_model)
    # the replaced file and the crashed save's file are gone
    assert sorted(p.name for p in zoo_dir.glob("*.safetensors")) == [new_card.file]


def test_resave_keeps_a_file_another_entry_lists(zoo):
    _, card, zoo_dir = zoo
    manifest = json.loads((zoo_dir / "manifest.json").read_text())
    manifest["models"]["alias"] = dict(manifest["models"]["tiny"], name="alias")
    (zoo_dir / "manifest.json").write_text(json.dumps(manifest))
    save_model(_model(seed=1), _card(), zoo_dir)
    assert (zoo_dir / card.file).is_file() and load_model("alias", zoo_dir=zoo_dir).card.sha256 == card.sha256


# --- item 7: concurrent saves into one zoo keep every entry
SAVER = """
import sys, time, pathlib
import torch
from vision.models.classifier import ProductClassifier
from vision.zoo import ModelCard, save_model
zoo, tag, ready, go = sys.argv[1:5]
pre = {"input_size": 32, "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear"}
model = ProductClassifier("test_resnet", 3, None).eval()
pathlib.Path(ready).touch()
while not pathlib.Path(go).exists():
    time.sleep(0.01)
for i in range(10):
    save_model(model, ModelCard(name=f"{tag}{i}", task="classification", architecture="test_resnet",
                                config={"num_classes": 3}, preprocessing=pre), zoo)
"""


def test_two_processes_saving_into_one_zoo_keep_every_entry(tmp_path):
    zoo_dir, go = tmp_path / "zoo", tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(zoo_dir), tag, str(tmp_path / tag), str(go)],
                              env=env, cwd=REPO, stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    deadline = time.monotonic() + 120
    while not all((tmp_path / tag).exists() for tag in ("a", "b")) and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    go.touch()  # both start saving at the same moment
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    names = [f"{tag}{i}" for tag in ("a", "b") for i in range(10)]
    assert list_models(zoo_dir=zoo_dir) == sorted(names)
    for name in names:
        assert load_model(name, zoo_dir=zoo_dir).card.name == name


# --- item 8: atomic writes
def test_atomic_write_fsyncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), target.exists() and target.read_text() == "new"))
        real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", spy)
    fileio.atomic_write_text(target, "new")
    assert synced == [(False, False), (True, True)]  # the temp file before the rename, the folder after it


def test_stale_temps_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "card.json"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".card.json.{dead.pid}.abcd1234.tmp"
    live = tmp_path / f".card.json.{os.getpid()}.abcd1234.tmp"  # a concurrent writer in this process
    old_legacy, new_legacy = tmp_path / ".card.json.oldoldol.tmp", tmp_path / ".card.json.newnewne.tmp"
    other_path = tmp_path / f".card.json.5.{dead.pid}.abcd1234.tmp"  # a temp of "card.json.5", not ours
    for p in (stale, live, old_legacy, new_legacy, other_path):
        p.write_text("partial")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old_legacy, (two_days_ago, two_days_ago))
    fileio.atomic_write_text(target, "done")
    assert target.read_text() == "done"
    assert not stale.exists() and not old_legacy.exists()
    assert live.exists() and new_legacy.exists() and other_path.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".card.json.")) == sorted(
        p.name for p in (live, new_legacy, other_path))  # and no temp of its own left behind


# --- item 12: cards, manifests and checkpoints checked against a schema
def _ckpt(**changes):
    model = _model()
    ckpt = {"epoch": 0, "global_step": 1, "vision_task": "classification",
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"backbone": "test_resnet", "num_classes": 3, "num_coarse_classes": 2,
                                 "preprocessing": dict(PRE), "class_names": ["a", "b", "c"],
                                 "coarse_names": ["x", "y"], "fine_to_coarse": [0, 0, 1]}}
    for key, value in changes.items():
        if value is None:
            ckpt.pop(key)
        else:
            ckpt[key] = value
    return ckpt


@pytest.mark.parametrize("ckpt, match", [
    ([1, 2, 3], "a checkpoint must be a dict.*got list"),
    (_ckpt(hyper_parameters=None), "field 'hyper_parameters' is missing"),
    (_ckpt(state_dict=None), "field 'state_dict' is missing"),
    (_ckpt(state_dict=[1]), "field 'state_dict' must be a dict"),
    (_ckpt(state_dict={"model.w": 1.0}), r"field 'state_dict.model.w' must be a tensor"),
    (_ckpt(vision_task=["classification"]), "field 'vision_task'"),
    (_ckpt(hyper_parameters={"num_classes": 3}), r"field 'hyper_parameters.backbone' is missing"),
    (_ckpt(hyper_parameters={"backbone": "test_resnet", "num_classes": "3", "class_names": ["a", "b", "c"]}),
     r"field 'hyper_parameters.num_classes' must be an integer in 1..100,000, got '3'"),
])
def test_malformed_checkpoint_names_file_and_field(tmp_path, ckpt, match):
    path = tmp_path / "run.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(ZooError, match=rf"run\.ckpt.*{match}"):
        load_model(path)


def test_lightning_like_checkpoint_loads(tmp_path):
    torch.save(_ckpt(), tmp_path / "run.ckpt")
    assert _same(load_model(tmp_path / "run.ckpt"), _model())


def _edit_entry(zoo_dir, edit):
    manifest = json.loads((zoo_dir / "manifest.json").read_text())
    edit(manifest["models"]["tiny"])
    (zoo_dir / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("edit, match", [
    (lambda e: e["config"].pop("num_classes"), r"field 'config.num_classes' is missing"),
    (lambda e: e["config"].update(num_classes=0), r"field 'config.num_classes' must be an integer in 1..100,000"),
    (lambda e: e["config"].update(num_coarse_classes="2"), r"field 'config.num_coarse_classes'"),
    (lambda e: e.update(class_names=[1, 2, 3]), r"field 'class_names' must be a list of strings"),
    (lambda e: e.update(class_names=["a"]), r"field 'class_names' has 1 names but config.num_classes is 3"),
    (lambda e: e.update(fine_to_coarse=[0, 0, 5]), r"field 'fine_to_coarse' points at coarse class 5"),
    (lambda e: e.update(name=7), r"field 'name'"),
    (lambda e: e.update(file="../../etc/passwd"), r"field 'file' must be a file name in the zoo folder"),
    (lambda e: e.update(sha256=""), r"field 'sha256' is empty"),
    (lambda e: e.update(metrics={"top1": "high"}), r"field 'metrics' must be an object of numbers"),
    (lambda e: e.update(task="segmentation"), r"field 'task' is 'segmentation'"),
    (lambda e: e.update(preprocessing=dict(PRE, input_size="big")), r"field 'preprocessing' is invalid"),
    (lambda e: e.update(task="detection", config={"num_classes": 3}), r"field 'config.yaml' is missing"),
    (lambda e: e.update(task="embedding", config={"embedding_size": -1}), r"field 'config.embedding_size'"),
    (lambda e: e.update(extra=1), r"unknown fields \['extra'\]"),
])
def test_malformed_manifest_card_names_file_and_field(zoo, edit, match):
    zoo_dir = zoo[2]
    _edit_entry(zoo_dir, edit)
    with pytest.raises(ZooError, match=rf"manifest\.json models\.tiny: {match}"):
        load_model("tiny", zoo_dir=zoo_dir)


@pytest.mark.parametrize("body, match", [
    ("[1, 2]", "a manifest must be a JSON object.*got list"),
    ('{"format": 1, "models": []}', "field 'models' must be an object"),
    ('{"format": 1, "models": {"tiny": "tiny.safetensors"}}', r"models\.tiny: a model card must be an object"),
    ('{"format": 9, "models": {}}', "field 'format' is 9"),
])
def test_malformed_manifest_structure_names_the_file(tmp_path, body, match):
    (tmp_path / "manifest.json").write_text(body)
    with pytest.raises(ZooError, match=rf"manifest\.json.*{match}"):
        list_models(zoo_dir=tmp_path)


def test_manifest_encoding_bom_loads_and_non_utf8_is_named(zoo):
    _, _, zoo_dir = zoo
    path = zoo_dir / "manifest.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_model("tiny", zoo_dir=zoo_dir).card.name == "tiny"
    path.write_bytes(path.read_bytes().replace(b'"a"', b'"\xe9"', 1))
    with pytest.raises(ZooError, match=r"manifest\.json: not UTF-8"):
        list_models(zoo_dir=zoo_dir)


def test_save_model_refuses_an_invalid_card_before_writing(tmp_path):
    card = _card()
    card.config = {"num_coarse_classes": 2}
    with pytest.raises(ZooError, match=r"model card 'tiny': field 'config.num_classes' is missing"):
        save_model(_model(), card, tmp_path)
    assert not list(tmp_path.iterdir())


# --- fuzz: truncations, byte flips and random bytes of every zoo artifact
def _expect_clean_or_zoo_error(load, label):
    try:
        load()
    except ZooError:
        pass
    except Exception as e:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{label}: {type(e).__name__}: {e}")


def _damaged(data: bytes, rng: random.Random, regions: list[tuple[int, int]], n_trunc: int, n_flip: int, n_rand: int):
    cuts = sorted({0, 1, 7, 8, 9, len(data) - 1, *(rng.randrange(len(data)) for _ in range(n_trunc))})
    for cut in cuts:
        yield f"truncated at {cut}", data[:cut]
    for _ in range(n_flip):
        lo, hi = rng.choice(regions)
        pos = rng.randrange(lo, hi)
        flipped = bytearray(data)
        flipped[pos] ^= 1 << rng.randrange(8)
        yield f"bit flip at {pos}", bytes(flipped)
    for _ in range(n_rand):
        yield "random bytes", rng.randbytes(rng.choice([0, 3, 64, 4096]))


def test_fuzz_loaders_give_a_clean_result_or_zoo_error(zoo, tmp_path):
    rng = random.Random(20261129)
    _, card, zoo_dir = zoo

    # a lone .safetensors: every damaged copy must be refused (or, in principle, load cleanly)
    weights = (zoo_dir / card.file).read_bytes()
    start = _data_start(weights)
    path = tmp_path / "fuzz" / "w.safetensors"
    path.parent.mkdir()
    loaded = 0
    for label, data in _damaged(weights, rng, [(0, 8), (8, start), (start, len(weights))], 40, 80, 10):
        path.write_bytes(data)
        try:
            load_model(path)
            loaded += 1
        except ZooError:
            pass
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"safetensors {label}: {type(e).__name__}: {e}")
    assert loaded == 0  # every change is caught by the header parser or the digest

    # manifest.json
    manifest = (zoo_dir / "manifest.json").read_bytes()
    for label, data in _damaged(manifest, rng, [(0, len(manifest))], 40, 40, 10):
        (zoo_dir / "manifest.json").write_bytes(data)
        _expect_clean_or_zoo_error(lambda: load_model("tiny", zoo_dir=zoo_dir), f"manifest {label}")
    (zoo_dir / "manifest.json").write_bytes(b"\xef\xbb\xbf" + manifest)
    assert list_models(zoo_dir=zoo_dir) == ["tiny"]

    # a Lightning-like .ckpt
    ckpt = tmp_path / "fuzz" / "run.ckpt"
    torch.save(_ckpt(), ckpt)
    good = ckpt.read_bytes()
    for label, data in _damaged(good, rng, [(0, 512), (0, len(good))], 30, 30, 10):
        ckpt.write_bytes(data)
        _expect_clean_or_zoo_error(lambda: load_model(ckpt), f"ckpt {label}")


def test_read_manifest_of_a_missing_zoo_is_empty(tmp_path):
    assert read_manifest(tmp_path) == {}


def test_manifest_entry_must_agree_with_the_card_in_its_file(zoo):
    _, _, zoo_dir = zoo
    _edit_entry(zoo_dir, lambda e: e["preprocessing"].update(mean=[0.4, 0.5, 0.5]))
    with pytest.raises(ZooError, match=r"the card in .*tiny\.safetensors differ in \['preprocessing'\]"):
        load_model("tiny", zoo_dir=zoo_dir)


def test_unbuildable_architecture_is_a_zoo_error():
    card = _card()
    card.architecture = "no_such_backbone"
    with pytest.raises(ZooError, match="cannot build classification network 'no_such_backbone'"):
        registry.build_model(card)
