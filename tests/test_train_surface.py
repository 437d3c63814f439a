"""``vision train`` / ``tools/train.py`` surface: no silent key abbreviation, Ctrl-C exits 130, one report per run
version folder with the headline metrics, the card records the command as invoked."""

import html
import json
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch

from vision.cli import main as train_main
from vision.commands import main as vision_main
from vision.reports import RunReport

from .conftest import REPO

DEMO = ["--config", "configs/classification/demo.yaml"]
TINY = ["--model.backbone", "test_resnet", "--data.input_size", "32", "--data.num_workers", "0",
        "--trainer.enable_progress_bar", "false", "--trainer.limit_train_batches", "2",
        "--trainer.limit_val_batches", "1"]


class SigintInSecondEpoch(pl.Callback):
    """Sends the process a real SIGINT (Ctrl-C) at the first step after epoch 0's checkpoint was written."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("args, expected", [
    (["--trainer.max_epoch", "1"], "error: unrecognized arguments: --trainer.max_epoch 1; did you mean "
                                   "'--trainer.max_epochs'?"),
    (["--trainer.max_epoch=1"], "error: unrecognized arguments: --trainer.max_epoch=1; did you mean "
                                "'--trainer.max_epochs'?"),
    (["--zoo-nam", "x"], "error: unrecognized arguments: --zoo-nam x; did you mean '--zoo-name'?"),
    (["--checkpoint.save_las", "true"], "error: unrecognized arguments: --checkpoint.save_las true; did you mean "
                                        "'--checkpoint.save_last'?"),
])
def test_a_prefix_of_a_key_is_refused_not_expanded(args, expected, monkeypatch):
    """argparse's prefix matching took --trainer.max_epoch as --trainer.max_epochs without a word."""
    monkeypatch.chdir(REPO)
    for run in (lambda: vision_main(["train", *DEMO, *args, "--print_config"]),
                lambda: train_main([*DEMO, *args, "--print_config"])):
        with pytest.raises(SystemExit) as exit_info:
            run()
        assert exit_info.value.code == expected  # one line, exit status 1


def test_a_misspelt_key_in_a_config_file_gets_a_did_you_mean(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    (tmp_path / "mine.yaml").write_text("trainer:\n  max_epoch: 1\n")
    with pytest.raises(SystemExit) as exit_info:
        vision_main(["train", *DEMO, "--config", str(tmp_path / "mine.yaml"), "--print_config"])
    assert exit_info.value.code == ("error: Group 'trainer' does not accept option 'max_epoch'; "
                                    "did you mean 'max_epochs'?")


def test_sigint_exits_130_and_keeps_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "vision", "train", *DEMO, *TINY, "--trainer.logger", "false",
         "--trainer.max_epochs", "5", "--trainer.default_root_dir", str(run),
         "--trainer.callbacks+=tests.test_train_surface.SigintInSecondEpoch"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    last_line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 130, proc.stderr[-3000:]
    last = run / "checkpoints" / "last.ckpt"
    assert last_line == (f"error: interrupted; the last checkpoint is kept: {last}; continue with --resume last "
                         f"(report: {run / 'report' / 'index.html'})")
    assert "Traceback" not in proc.stderr
    saved = torch.load(last, weights_only=True)  # whole, and the finished epoch 0
    assert saved["epoch"] == 0 and saved["global_step"] == 2
    page = (run / "report" / "index.html").read_text()
    assert "1 validated epoch(s); 2 optimiser steps (interrupted)" in page


def test_two_runs_into_one_folder_get_a_report_each_with_headline_metrics(tmp_path, monkeypatch, capsys):
    """The second run replaced the first one's report (one epoch of curves beside the first run's config); the
    final-metrics table listed losses only (the callback read the metrics before the module logged top-1)."""
    monkeypatch.chdir(REPO)
    root = tmp_path / "run"
    common = [*DEMO, *TINY, "--trainer.default_root_dir", str(root)]
    train_main([*common, "--trainer.max_epochs", "2"])
    assert vision_main(["train", *common, "--trainer.max_epochs", "1", "--zoo-name", "surface",
                        "--zoo-dir", str(tmp_path / "zoo")]) == 0
    err = capsys.readouterr().err
    first, second = (root / "lightning_logs" / v / "report" / "index.html" for v in ("version_0", "version_1"))
    assert f"report: {first}" in err and f"report: {second}" in err
    assert not (root / "report").exists()
    pages = [html.unescape(p.read_text()) for p in (first, second)]
    assert "2 validated epoch(s)" in pages[0] and "max_epochs: 2" in pages[0] and "max_epochs: 1" not in pages[0]
    assert "1 validated epoch(s)" in pages[1] and "max_epochs: 1" in pages[1] and "max_epochs: 2" not in pages[1]
    assert "Model card" in pages[1] and "Model card" not in pages[0]
    for page in pages:
        assert all(f"<tr><th>{label}</th>" in page for label in ("top-1", "top-5", "coarse top-1")), page[:2000]
        assert "<tr><td>val/top1</td>" in page
    # the confusion matrix shown is the run's own (the latest validation: after the zoo save's, epoch 1)
    for page, report in zip(pages, (first, second)):
        shown = page.split("alt='confusion matrix'")[0].rsplit("src='", 1)[1].split("'")[0]
        assert shown.startswith("../confusion/val_epoch") and (report.parent / shown).is_file()
    # ... and the card says how it was made: through the vision command
    card = json.loads((tmp_path / "zoo" / "manifest.json").read_text())["models"]["surface"]
    assert card["command"].startswith("vision train --config configs/classification/demo.yaml")


@pytest.mark.parametrize("task, labels", [("detection", ["mAP50", "mAP50-95"]), ("embedding", ["recall@1"])])
def test_report_table_leads_with_each_tasks_headline_metrics(task, labels, tmp_path):
    report = RunReport()
    report.run_dir, report.task = tmp_path, task
    report.history = [{"epoch": 0.0, "train/loss": 2.0, "val/mAP50": 0.5, "val/mAP50-95": 0.3,
                       "val/recall_at_1": 0.8}]
    trainer = SimpleNamespace(default_root_dir=str(tmp_path), global_step=7, interrupted=False)
    page = report.write(trainer).read_text()
    table = page.split("<h2>Final metrics</h2>")[1].split("</table>")[0]
    shown = [row.split("</th>")[0] for row in table.split("<tr><th>")[1:]]
    assert shown == labels
    assert table.index("<th>") < table.index("train/loss")
