"""The ``vision`` command: fast help, one-line errors, every task through ``vision predict``, ``vision zoo``."""

import json
import subprocess
import sys

import pytest

from vision.commands import COMMANDS, main

from .conftest import REPO, SAMPLE


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vision", *args], capture_output=True, text=True, cwd=REPO)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_imports_no_heavy_library(command):
    """``--help`` answers before torch, Lightning or ultralytics load (the check behind "under 1 s")."""
    args = ["--help"] if command is None else [command, "--help"]
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "vision", *args], capture_output=True,
                         text=True, cwd=REPO)
    assert out.returncode == 0 and "usage:" in out.stdout
    loaded = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time")}
    assert not loaded & {"torch", "pytorch_lightning", "ultralytics", "timm", "albumentations"}, command


def test_user_mistakes_are_one_line_errors_with_a_non_zero_exit():
    out = _run("predcit")
    assert out.returncode == 2 and out.stderr.strip() == "error: unknown command 'predcit'; did you mean 'predict'?"
    out = _run("predict", "--model", "grocery_resnet1Ot", "--images", str(SAMPLE / "val"))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and lines[-1].startswith("error: no model named 'grocery_resnet1Ot'")
    assert "did you mean ['grocery_resnet10t'" in lines[-1] and "Traceback" not in out.stderr
    out = _run("predict", "--model", "grocery_resnet10t", "--images", str(REPO / "no-such-folder"))
    assert out.returncode == 1 and "Traceback" not in out.stderr and "no-such-folder" in out.stderr


def test_predict_every_task(tmp_path, capsys):
    photo = sorted((SAMPLE / "val").rglob("*.jpg"))[0]
    for name, key in (("grocery_resnet10t", "topk"), ("logo_yolo11n", "detections"), ("brand_resnet10t", "vector")):
        out = tmp_path / f"{name}.jsonl"
        assert main(["predict", "--model", name, "--device", "cpu", "--images", str(photo), "--out", str(out)]) == 0
        line = json.loads(out.read_text())
        assert line["image"] == str(photo) and key in line, name
    assert main(["predict", "--model", "brand_resnet10t", "--images", str(photo), "--draw", str(tmp_path)]) == 1
    assert "--draw needs a classifier or a detector" in capsys.readouterr().err


def test_zoo_lists_the_shipped_models(capsys):
    assert main(["zoo", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"grocery_resnet10t", "logo_yolo11n", "brand_resnet10t"} <= {r["name"] for r in rows}
    assert all(r["size_mb"] and r["task"] for r in rows)
    assert {r["name"]: r["licence"].split(" ")[0] for r in rows if r["zoo"].endswith("weights")} == {
        "grocery_resnet10t": "Apache-2.0", "brand_resnet10t": "Apache-2.0", "logo_yolo11n": "AGPL-3.0"}


def test_zoo_demo_page_shows_every_shipped_model(tmp_path):
    sys.path.insert(0, str(REPO / "tools"))
    import zoo_demo

    assert zoo_demo.main(["--out", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text()
    assert page.count("<figure>") == 12 and "grocery_resnet10t" in page and "Brand recognition" in page
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"classification", "detection", "recognition"}
    assert all((tmp_path / src).is_file() for src in __import__("re").findall(r'src="([^"]+)"', page))


def test_eval_scores_every_task(tmp_path, capsys):
    """Detectors get mAP on a data.yaml, embedders recall@k on gallery/query folders, classifiers top-k."""
    from vision.synth.brand_dataset import write_brand_dataset

    det = main(["eval", "--model", "logo_yolo11n", "--device", "cpu", "--workers", "0", "--batch-size", "4",
                "--data", str(REPO / "data" / "logo_sample" / "data.yaml"), "--out", str(tmp_path / "det")])
    assert det == 0
    report = json.loads((tmp_path / "det" / "metrics.json").read_text())
    assert report["task"] == "detection" and 0.3 < report["mAP50"] <= 1 and "mAP50-95" in report

    brands = tmp_path / "brands"
    write_brand_dataset(brands, [SAMPLE / "train"], val_backgrounds=[SAMPLE / "val"], size=64, train_clean=1,
                        train_wild=1, queries=2, max_brands=6, background_size=96)
    assert main(["eval", "--model", "brand_resnet10t", "--device", "cpu", "--data", str(brands / "val"),
                 "--out", str(tmp_path / "emb")]) == 0
    report = json.loads((tmp_path / "emb" / "metrics.json").read_text())
    assert report["task"] == "embedding" and 0 <= report["recall_at_1"] <= report["recall_at_5"] <= 1

    assert main(["eval", "--model", "logo_yolo11n", "--data", str(SAMPLE / "val.txt")]) == 1
    assert "must be a YOLO data.yaml" in capsys.readouterr().err


def test_light_choice_lists_agree_with_the_library():
    """Commands spell some choices out so that --help loads no torch; they must match the library's tables."""
    from vision import gallery, retrieval
    from vision.commands import build_gallery, export, extract, make_logo_dataset
    from vision.synth import yolo
    from vision.export import FORMATS
    from vision.predictors import BACKENDS

    assert set(export.FORMAT_NAMES) == set(FORMATS) and set(extract.BACKENDS) == set(BACKENDS)
    assert set(build_gallery.MERGES) == set(gallery.MERGES) and set(build_gallery.INDEX_KINDS) == set(
        retrieval.INDEX_KINDS)
    assert set(make_logo_dataset.MODES) == set(yolo.MODES)
    from vision import benchmarking
    from vision.commands import benchmark

    assert benchmark.parser().get_default("backends") == ",".join(benchmarking.BACKENDS)


@pytest.mark.parametrize("args, expected", [
    (["--trainer.max_epocs", "2"], "error: unrecognized arguments: --trainer.max_epocs 2; did you mean "
                                   "'--trainer.max_epochs'?"),
    (["--model.init_args.bakbone", "resnet10t"], "error: Option 'bakbone' is not accepted; did you mean 'backbone'?"),
    (["--data.init_args.train", "/no/such/manifest.txt"], "error: manifest /no/such/manifest.txt not found"),
    (["--model.init_args.backbone", "resnet10_t"], "error: unknown timm backbone 'resnet10_t'; did you mean"),
])
def test_train_config_mistakes_are_one_line(args, expected, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", "configs/classification/demo.yaml", "--data.init_args.num_workers", "0", *args])
    message = str(exit_info.value.code)
    assert message.startswith(expected) and "\n" not in message, message
    assert "usage:" not in capsys.readouterr().err  # jsonargparse's 60-line dump is gone
