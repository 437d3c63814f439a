"""tools/train.py end to end: configs parse, train -> zoo -> reload -> predict, kill -> resume (the rest of the
`vision train` surface: tests/test_train_surface.py)."""

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from vision.cli import main
from vision.inference import ImageClassifier
from vision.zoo import load_model

from .conftest import REPO, SAMPLE, SHARED_GROCERY
from .resume_check import kill_mid_epoch_and_resume

CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))
TINY = ["--model.backbone", "test_resnet", "--data.input_size", "32", "--data.num_workers", "0",
        "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c.relative_to(REPO)) for c in CONFIGS])
def test_every_config_parses(config, capsys):
    if "shared/datasets" in config.read_text() and not SHARED_GROCERY.exists():
        pytest.skip("config uses ../shared/datasets, not present")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "model:" in capsys.readouterr().out


def test_train_save_reload_predict_matches_in_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    cli = main(["--config", "configs/classification/demo.yaml", *TINY, "--trainer.max_epochs", "2",
                "--trainer.limit_train_batches", "3", "--trainer.default_root_dir", str(tmp_path / "run"),
                "--zoo_name", "e2e", "--zoo_dir", str(tmp_path / "zoo")])
    card = json.loads((tmp_path / "zoo" / "manifest.json").read_text())["models"]["e2e"]
    assert card["task"] == "classification" and card["class_names"][5] == "Oatly-Oat-Milk"
    assert "val_top1" in card["metrics"] and card["command"].startswith("python tools/train.py --config")
    assert card["preprocessing"]["input_size"] == 32
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    # every run writes its report: curves, final metrics and (with a zoo save) the card
    page = __import__("html").unescape((tmp_path / "run" / "report" / "index.html").read_text())
    assert (tmp_path / "run" / "report" / "curves.png").stat().st_size > 0
    assert "val/top1" in page and "Model card" in page and '"name": "e2e"' in page and "2 validated epoch(s)" in page

    images = sorted((SAMPLE / "val").rglob("*.jpg"))[:6]
    in_memory = ImageClassifier(_with_card(cli.model.eval_model, load_model("e2e", zoo_dir=tmp_path / "zoo").card),
                                device="cpu")
    reloaded = ImageClassifier.from_pretrained(tmp_path / "zoo" / "e2e.safetensors", device="cpu")
    assert torch.equal(in_memory.logits(images), reloaded.logits(images))
    preds = reloaded.predict(images, topk=3)
    assert len(preds) == 6 and len(preds[0]["topk"]) == 3 and preds[0]["coarse"] in card["coarse_names"]

    # the Lightning checkpoint loads too (weights_only, EMA weights), giving the same logits
    from_ckpt = ImageClassifier.from_pretrained(tmp_path / "run" / "checkpoints" / "last.ckpt", device="cpu")
    assert torch.allclose(from_ckpt.logits(images), reloaded.logits(images), atol=1e-5)


def _with_card(model, card):
    model.card = card
    return model


def test_eval_and_predict_tools(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    main(["--config", "configs/classification/demo.yaml", *TINY, "--trainer.max_epochs", "1",
          "--trainer.limit_train_batches", "2", "--trainer.default_root_dir", str(tmp_path / "run"),
          "--zoo-name", "tools", "--zoo-dir", str(tmp_path / "zoo")])  # the kebab spelling of every command
    weights = str(tmp_path / "zoo" / "tools.safetensors")
    # what tools/eval.py and tools/predict.py run
    from vision.commands import eval as eval_tool
    from vision.commands import predict as predict_tool

    report = eval_tool.main(["--model", weights, "--data", str(SAMPLE / "val.txt"), "--classes",
                             str(SAMPLE / "classes.csv"), "--workers", "0", "--out-dir", str(tmp_path / "eval")])
    assert report["images"] == 32 and 0 <= report["top1"] <= report["top5"] <= 1 and "coarse_top1" in report
    assert list((tmp_path / "eval").rglob("test_epoch000.png"))

    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in sorted((SAMPLE / "val" / "Fruit").rglob("*.jpg"))[:3]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "preds.jsonl"
    assert predict_tool.main(["--model", weights, "--images", str(folder), "--topk", "2", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3 and all(len(x["topk"]) == 2 for x in lines)
    assert not any("broken" in x["image"] for x in lines)


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    base = [sys.executable, str(REPO / "tools" / "train.py"), "--config", "configs/classification/demo.yaml", *TINY,
            "--trainer.default_root_dir", str(run), "--trainer.limit_val_batches", "1",
            "--trainer.callbacks+=tests.slow_callback.SlowBatches"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    last = run / "checkpoints" / "last.ckpt"
    kill_mid_epoch_and_resume(base, env, last, settle=0.5)  # well inside the next epoch (6 batches x 0.2 s)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(FileNotFoundError, match="no last\\*.ckpt in"):
        main(["--config", "configs/classification/demo.yaml", *TINY, "--trainer.default_root_dir",
              str(tmp_path / "never"), "--resume", "last"])


def test_resume_last_finds_checkpoints_when_a_logger_is_on(tmp_path, monkeypatch):
    # with a logger Lightning would file checkpoints under lightning_logs/version_N/; the CLI pins them
    monkeypatch.chdir(REPO)
    common = ["--config", "configs/classification/demo.yaml", "--model.backbone", "test_resnet",
              "--data.input_size", "32", "--data.num_workers", "0", "--trainer.enable_progress_bar", "false",
              "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
              "--trainer.default_root_dir", str(tmp_path / "run")]
    main([*common, "--trainer.max_epochs", "1"])
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "run" / "lightning_logs").is_dir()  # the logger itself still writes its versions
    cli = main([*common, "--trainer.max_epochs", "2", "--resume", "last"])
    assert cli.trainer.current_epoch == 2 and cli.trainer.global_step == 4


def test_resume_last_takes_the_newest_last_checkpoint(tmp_path, monkeypatch):
    """A second run in the same folder writes last-v1.ckpt; --resume last must not restore the stale last.ckpt."""
    monkeypatch.chdir(REPO)
    common = ["--config", "configs/classification/demo.yaml", *TINY, "--trainer.limit_train_batches", "2",
              "--trainer.limit_val_batches", "1", "--trainer.default_root_dir", str(tmp_path / "run")]
    main([*common, "--trainer.max_epochs", "1"])
    main([*common, "--trainer.max_epochs", "2"])  # a fresh run: Lightning versions its last checkpoint
    folder = tmp_path / "run" / "checkpoints"
    assert (folder / "last.ckpt").is_file() and (folder / "last-v1.ckpt").is_file()
    cli = main([*common, "--trainer.max_epochs", "3", "--resume", "last"])
    assert Path(cli.trainer.ckpt_path).name == "last-v1.ckpt"
    assert cli.trainer.global_step == 6  # 2 epochs restored + 1 trained, not 1 + 2


def test_top_level_optimizer_flag_is_not_offered(tmp_path, monkeypatch, capsys):
    """LightningCLI's --optimizer would silently replace the recipe (warmup + cosine, no-decay groups)."""
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", "configs/classification/demo.yaml", *TINY, "--optimizer", "SGD",
              "--trainer.default_root_dir", str(tmp_path / "run")])
    assert str(exit_info.value.code).startswith("error: unrecognized arguments: --optimizer SGD")
