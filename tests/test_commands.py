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
    """``--help`` answers in under 1 s: before torch, Lightning or ultralytics load (0.1-0.26 s measured on 2 busy
    cores)."""
    import time

    args = ["--help"] if command is None else [command, "--help"]
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "vision", *args], capture_output=True,
                         text=True, cwd=REPO)
    assert time.perf_counter() - start < 1.0, command
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


def test_task_specific_classes_refuse_another_task_in_one_line():
    from vision.inference import ImageClassifier
    from vision.zoo import load_model

    for name in ("logo_yolo11n", "brand_resnet10t"):  # were AttributeError / IndexError deep inside
        with pytest.raises(ValueError, match=f"ImageClassifier needs a classification model; '{name}' is a"):
            ImageClassifier(load_model(name))


def test_predict_every_task(tmp_path, capsys):
    photo = sorted((SAMPLE / "val").rglob("*.jpg"))[0]
    for name, key in (("grocery_resnet10t", "topk"), ("logo_yolo11n", "detections"), ("brand_resnet10t", "vector")):
        out = tmp_path / f"{name}.jsonl"
        assert main(["predict", "--model", name, "--device", "cpu", "--images", str(photo), "--out", str(out)]) == 0
        line = json.loads(out.read_text())
        assert line["image"] == str(photo) and key in line, name
    assert main(["predict", "--model", "brand_resnet10t", "--images", str(photo), "--draw", str(tmp_path)]) == 1
    assert "--draw needs a classifier or a detector" in capsys.readouterr().err


def test_predict_threads_gives_the_same_results(tmp_path, capsys):
    import torch

    photos = [str(p) for p in sorted((SAMPLE / "val").rglob("*.jpg"))[:3]]
    lines = {}
    threads = torch.get_num_threads()
    try:
        for given in (None, 1):   # one thread leaves a core to read the next batch on (where there is one)
            out = tmp_path / f"{given}.jsonl"
            extra = [] if given is None else ["--threads", str(given)]
            assert main(["predict", "--model", "grocery_resnet10t", "--device", "cpu", "--batch-size", "1",
                         "--images", *photos, "--out", str(out), *extra]) == 0
            lines[given] = [json.loads(line) for line in out.read_text().splitlines()]
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert [r["topk"][0]["index"] for r in lines[1]] == [r["topk"][0]["index"] for r in lines[None]]
    assert len(lines[1]) == 3
    assert main(["predict", "--model", "grocery_resnet10t", "--images", photos[0], "--threads", "0"]) == 1
    assert "--threads must be 1 or more" in capsys.readouterr().err


def test_predict_workers_run_an_export_and_are_refused_on_torch(tmp_path, capsys):
    from vision.export.onnx import export_onnx
    from vision.zoo import load_model

    onnx = export_onnx(load_model("grocery_resnet10t"), tmp_path / "grocery.onnx")
    photos = [str(p) for p in sorted((SAMPLE / "val").rglob("*.jpg"))[:4]]
    lines = {}
    for workers in ("1", "2"):
        out = tmp_path / f"{workers}.jsonl"
        assert main(["predict", "--model", str(onnx), "--device", "cpu", "--batch-size", "1", "--workers", workers,
                     "--images", *photos, "--out", str(out)]) == 0
        lines[workers] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["image"] for r in lines["2"]] == photos   # in input order
    assert [r["topk"][0]["index"] for r in lines["2"]] == [r["topk"][0]["index"] for r in lines["1"]]
    capsys.readouterr()
    assert main(["predict", "--model", "grocery_resnet10t", "--backend", "torch", "--images", photos[0],
                 "--workers", "2"]) == 1
    assert "workers=2 runs batches at once on one ONNX Runtime session" in capsys.readouterr().err
    assert main(["predict", "--model", str(onnx), "--images", photos[0], "--workers", "0"]) == 1
    assert "--workers must be 1 or more" in capsys.readouterr().err


def test_zoo_lists_the_shipped_models(capsys):
    assert main(["zoo", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"grocery_resnet10t", "logo_yolo11n", "brand_resnet10t"} <= {r["name"] for r in rows}
    assert all(r["size_mb"] and r["task"] for r in rows)
    assert {r["name"] for r in rows if r["kind"] == "gallery"} == {"simple_icons_gallery"}
    assert {r["name"]: r["licence"].split(" ")[0] for r in rows
            if r["zoo"].endswith("weights") and r["kind"] == "model"} == {
        "grocery_resnet10t": "Apache-2.0", "brand_resnet10t": "Apache-2.0", "brand_ensemble": "Apache-2.0",
        "logo_yolo11n": "AGPL-3.0",
        "logo_verifier_lite0": "Apache-2.0", "grocery_lite0": "Apache-2.0"}


def test_zoo_demo_page_shows_every_shipped_model_with_ground_truth(tmp_path):
    from .conftest import load_script

    zoo_demo = load_script("tools/zoo_demo.py")
    (tmp_path / "run" / "version_0" / "report").mkdir(parents=True)
    (tmp_path / "run" / "version_0" / "report" / "index.html").write_text("report")
    assert zoo_demo.main(["--out", str(tmp_path / "page"), "--trained", "grocery_resnet10t",
                          "--report", str(tmp_path / "run")]) == 0
    tmp_path = tmp_path / "page"
    page = (tmp_path / "index.html").read_text()
    assert page.count("<figure>") == 16 and "grocery_lite0" in page and "Brand recognition" in page
    assert "truth: <b>Banana</b>" in page and "truth: 2 logos" in page
    assert "The model you just trained: grocery_resnet10t" in page and "../run/version_0/report/index.html" in page
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"classification", "trained", "detection", "recognition"}
    assert all((tmp_path / src).is_file() for src in __import__("re").findall(r'src="([^"]+)"', page))


def test_eval_scores_every_task(tmp_path, capsys):
    """Detectors get mAP on a data.yaml, embedders recall@k on gallery/query folders, classifiers top-k."""
    from vision.synth.brand_dataset import write_brand_dataset

    # a data.yaml whose train split is not there: evaluation reads the val split only
    (tmp_path / "data.yaml").write_text(f"path: {REPO / 'data' / 'logo_sample'}\ntrain: images/not-here\n"
                                        "val: images/val\nnames:\n  0: logo\n")
    det = main(["eval", "--model", "logo_yolo11n", "--device", "cpu", "--workers", "0", "--batch-size", "4",
                "--data", str(tmp_path / "data.yaml"), "--out", str(tmp_path / "det")])
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
    from vision import retrieval
    from vision.brands import gallery
    from vision.commands import build_gallery, export, extract, make_logo_dataset
    from vision.export import FORMATS
    from vision.predictors import BACKENDS
    from vision.scale.engines import ENGINES
    from vision.synth import yolo

    assert set(export.FORMAT_NAMES) == set(FORMATS) and set(extract.BACKENDS) == set(BACKENDS)
    from vision.export.quantize import TUNED_FOR

    assert export.INT8_TARGETS == TUNED_FOR
    assert extract.ENGINES == ENGINES
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


# --- one flag vocabulary (README: "One flag vocabulary")
VOCABULARY = {  # command -> the common flags it takes (the meaning is the same in each)
    "predict": {"--model", "--images", "--out", "--device", "--batch-size", "--zoo-dir", "--no-progress"},
    "eval": {"--model", "--data", "--out", "--device", "--batch-size", "--workers", "--zoo-dir", "--no-progress"},
    "extract": {"--model", "--images", "--out", "--device", "--batch-size", "--workers", "--zoo-dir",
                "--no-progress"},
    "recognize": {"--images", "--out", "--device", "--batch-size", "--zoo-dir", "--no-progress"},
    "export": {"--model", "--out", "--device", "--zoo-dir"},
    "benchmark": {"--model", "--images", "--data", "--out", "--device", "--zoo-dir", "--no-progress"},
    "zoo": {"--zoo-dir"},
    "build-gallery": {"--out", "--device", "--batch-size"},
    "dedup": {"--model", "--images", "--out", "--device", "--batch-size"},
    "make-logo-dataset": {"--out"},
    "make-brand-dataset": {"--out", "--workers"},
    "make-impostors": {"--out", "--device", "--zoo-dir"},
}
OLD_SPELLINGS = {"eval": ["--out-dir"], "export": ["--output", "--batch", "--zoo_dir"],
                 "benchmark": ["--batch", "--end-to-end", "--accuracy", "--output"], "predict": ["--zoo_dir"]}


def _help_options(command: str, capsys) -> set[str]:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    import re

    return set(re.findall(r"^\s+(--[\w-]+)", capsys.readouterr().out, re.MULTILINE))


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "train"])
def test_every_command_speaks_one_kebab_case_vocabulary(command, capsys):
    """Common flags are spelled the same everywhere; --help shows kebab case only, old spellings stay hidden."""
    import re

    options = _help_options(command, capsys)
    assert VOCABULARY.get(command, set()) <= options, sorted(VOCABULARY[command] - options)
    assert all(re.fullmatch(r"--[a-z0-9]+(-[a-z0-9]+)*", o) for o in options), sorted(options)
    assert not set(OLD_SPELLINGS.get(command, [])) & options


def test_old_spellings_still_parse_to_the_new_flags():
    from vision.commands import benchmark
    from vision.commands import eval as eval_command

    args = benchmark.parser().parse_args(["--model", "m", "--batch", "1,2", "--end-to-end", "photos", "--accuracy",
                                          "val.txt", "--output", "features", "--zoo_dir", "zoo"])
    assert (args.batch_sizes, str(args.images), str(args.data), args.output, args.zoo_dir) == (
        "1,2", "photos", "val.txt", "features", "zoo")
    args = eval_command.parser().parse_args(["--model", "m", "--data", "d", "--out-dir", "runs/x"])
    assert str(args.out) == "runs/x"


def test_option_mistakes_are_one_line(capsys):
    """argparse's usage dump is replaced by the one-line error every other mistake gets (exit 2)."""
    for argv, cause in ((["predict"], "the following arguments are required: --model, --images"),
                        (["export", "--model", "m", "--device", "cuda"], "only a TensorRT build takes a device"),
                        (["eval", "--model", "m", "--data", "d", "--batch-size", "many"], "invalid int value")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ") and cause in err
        assert f"see 'vision {argv[0]} --help'" in err


def test_images_takes_files_folders_globs_and_manifests(tmp_path):
    from vision.commands import image_inputs
    from vision.data.io import NoImagesError

    photos = sorted((SAMPLE / "val").rglob("*.jpg"))[:3]
    folder = tmp_path / "folder"
    folder.mkdir()
    for p in photos:
        (folder / p.name).write_bytes(p.read_bytes())
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"# a comment\nfolder/{photos[0].name}, 3\n{photos[1]}\n")
    found = image_inputs([str(photos[2]), str(folder), str(tmp_path / "folder" / "*.jpg"), str(manifest)],
                         allow_outside=True)  # the absolute line is opted in (refused by default)
    assert found[0] == photos[2] and len(found) == 1 + 3 + 3 + 2
    assert found[-2:] == [folder / photos[0].name, photos[1]]  # manifest paths are relative to the manifest
    with pytest.raises(FileNotFoundError, match="no file matches"):
        image_inputs([str(tmp_path / "*.png")])
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(NoImagesError, match="lists no image"):
        image_inputs([str(tmp_path / "empty.txt")])


def test_extract_takes_globs_and_zoo_dir(tmp_path, capsys):
    import numpy as np

    photos = str(SAMPLE / "val" / "Fruit" / "*" / "*.jpg")
    out = tmp_path / "f.npy"
    assert main(["extract", "--model", "brand_resnet10t", "--images", photos, "--zoo-dir", str(REPO / "weights"),
                 "--device", "cpu", "--batch-size", "4", "--out", str(out)]) == 0
    count = len(__import__("glob").glob(photos))
    assert np.load(out).shape[0] == count == len((tmp_path / "f.npy.ids.txt").read_text().splitlines())
    with pytest.raises(SystemExit) as exit_info:  # --zoo-dir is the only zoo looked in
        main(["extract", "--model", "brand_resnet10t", "--images", photos, "--zoo-dir", str(tmp_path),
              "--out", str(tmp_path / "g.npy")])
    assert str(exit_info.value.code).startswith("error: no model named 'brand_resnet10t'")
    assert not (tmp_path / "g.npy").exists()


def test_recognize_batches_photos_and_looks_names_up_in_zoo_dir(tmp_path, monkeypatch, capsys):
    import os

    from vision.commands import recognize

    seen = {}

    class Recognizer:
        @classmethod
        def from_pretrained(cls, embedder, gallery, **kwargs):
            seen["zoo"] = os.environ.get("VISION_ZOO_DIR")
            return cls()

        def predict(self, images, batch_size=16):
            seen.setdefault("batches", []).append(len(images))
            return [[] for _ in images]

    monkeypatch.setattr(recognize, "recognizer_class", lambda: Recognizer)
    photos = sorted((SAMPLE / "val" / "Fruit").rglob("*.jpg"))[:5]
    assert recognize.main(["--images", *map(str, photos), "--embedder", "e", "--gallery", "g", "--batch-size", "2",
                           "--zoo-dir", str(tmp_path), "--no-draw", "--out", str(tmp_path / "out")]) == 0
    assert seen == {"zoo": str(tmp_path), "batches": [2, 2, 1]} and os.environ.get("VISION_ZOO_DIR") is None
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 5


# --- progress bars and quiet third-party libraries
class _Terminal(__import__("io").StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_only_on_a_terminal_and_not_with_no_progress(monkeypatch):
    from vision.progress import progress_bar, progress_wanted

    for stream, enabled, drawn in ((_Terminal(), True, True), (_Terminal(), False, False),
                                   (__import__("io").StringIO(), True, False)):
        monkeypatch.setattr(sys, "stderr", stream)
        list(progress_bar(range(3), enabled=enabled, desc="work"))
        assert ("work: 100%" in stream.getvalue()) == drawn == progress_wanted(enabled)


def test_benchmark_draws_progress_on_a_terminal(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    result = main(["benchmark", "--model", "brand_resnet10t", "--backends", "torch", "--batch-sizes", "1",
                   "--seconds", "0.05", "--rounds", "1", "--out", str(tmp_path / "b.json")])
    assert result == 0 and "brand_resnet10t: 100%" in terminal.getvalue() and "2/2" in terminal.getvalue()


def test_commands_silence_third_party_noise_only_inside():
    import logging
    import warnings

    from vision.progress import quiet_third_party

    class Lines(logging.Handler):
        def __init__(self):
            super().__init__(logging.INFO)
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    lightning, lines = logging.getLogger("pytorch_lightning.utilities.rank_zero"), Lines()
    level, lightning.level = lightning.level, logging.INFO
    lightning.addHandler(lines)
    noise = ["`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)` instead.",
             "Starting from v1.9.0, `tensorboardX` has been removed as a dependency"]
    try:
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            with quiet_third_party():
                warnings.warn(noise[0], FutureWarning, stacklevel=1)
                warnings.warn(noise[1], UserWarning, stacklevel=1)
                warnings.warn("a real problem", UserWarning, stacklevel=1)
                for line in ("💡 Tip: For seamless cloud logging", "GPU available: False, used: False", "Epoch 3"):
                    lightning.info(line)
            warnings.warn(noise[0], FutureWarning, stacklevel=1)  # outside a command, the library changes nothing
            lightning.info("💡 Tip: outside")
    finally:
        lightning.removeHandler(lines)
        lightning.level = level
    assert [str(w.message) for w in shown] == ["a real problem", noise[0]]
    assert lines.lines == ["Epoch 3", "💡 Tip: outside"]


def _shipped_classes_folder(folder):
    """An ImageFolder of 8 sample photos under the shipped classifier's class names."""
    for photo in sorted((SAMPLE / "val").rglob("*.jpg"))[::4]:
        (folder / photo.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / photo.parent.name / photo.name).write_bytes(photo.read_bytes())
    return folder


def test_eval_prints_only_useful_lines(tmp_path):
    """The whole command in a fresh process: stdout one JSON report, stderr nothing (no Lightning adverts, device
    lines or deprecation warnings)."""
    out = _run("eval", "--model", "grocery_resnet10t", "--data", str(_shipped_classes_folder(tmp_path / "data")),
               "--workers", "0", "--device", "cpu", "--out", str(tmp_path / "eval"))
    assert out.returncode == 0, out.stderr
    assert out.stderr == "" and json.loads(out.stdout)["images"] == 8


def test_eval_draws_progress_on_a_terminal(tmp_path, monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    args = ["eval", "--model", "grocery_resnet10t", "--data", str(_shipped_classes_folder(tmp_path / "data")),
            "--workers", "0", "--device", "cpu", "--batch-size", "4", "--out", str(tmp_path / "eval")]
    assert main(args) == 0
    drawn = terminal.getvalue()
    assert "eval: 100%" in drawn and "2/2" in drawn
    assert main([*args, "--no-progress"]) == 0 and terminal.getvalue() == drawn
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["images"] == 8  # stdout: the reports only


def test_dataset_commands_main_path_on_the_committed_photos(tmp_path, capsys):
    logos, brands = tmp_path / "logos", tmp_path / "brands"
    assert main(["make-logo-dataset", "--backgrounds", str(SAMPLE / "train"), "--val-backgrounds", str(SAMPLE / "val"),
                 "--out", str(logos), "--train-images", "3", "--val-images", "2", "--imgsz", "96",
                 "--max-brands", "4"]) == 0
    assert len(list((logos / "images" / "train").iterdir())) == 3 == len(list((logos / "labels" / "train").iterdir()))
    assert (logos / "data.yaml").is_file() and len(list((logos / "images" / "val").iterdir())) == 2
    assert main(["make-brand-dataset", "--backgrounds", str(SAMPLE / "train"), "--val-backgrounds", str(SAMPLE / "val"),
                 "--out", str(brands), "--size", "48", "--train-clean", "1", "--train-wild", "1", "--queries", "1",
                 "--max-brands", "3"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["brands"] == {"train": 3, "val": 3, "test": 3} and not summary["skipped"]
    assert len(list((brands / "val" / "query").iterdir())) == 3


def test_recognize_main_path_on_the_committed_photos(tmp_path, capsys):
    photos = sorted((REPO / "data" / "logo_sample" / "images" / "val").glob("*.jpg"))[:2]
    assert main(["recognize", "--images", *map(str, photos), "--detector", "logo_yolo11n", "--embedder",
                 "brand_ensemble", "--gallery", "simple_icons_gallery", "--device", "cpu", "--out",
                 str(tmp_path), "--draw", str(tmp_path / "annotated")]) == 0
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [line["image"] for line in lines] == list(map(str, photos)) and all(line["logos"] for line in lines)
    assert all({"box", "brand", "score"} <= set(logo) for line in lines for logo in line["logos"])
    assert len(list((tmp_path / "annotated").glob("*.png"))) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and json.loads(captured.err.strip().splitlines()[-1])["images"] == 2


# --- dedup and make-brand-dataset: the same vocabulary, one-line option errors, progress only on a terminal
def test_dedup_and_brand_dataset_speak_the_vocabulary(capsys):
    assert {"--model", "--images", "--out", "--device", "--batch-size", "--zoo-dir", "--no-progress"} <= \
        _help_options("dedup", capsys)
    assert {"--out", "--workers", "--no-progress"} <= _help_options("make-brand-dataset", capsys)


@pytest.mark.parametrize("argv, cause", [
    (["dedup"], "give --images and/or --features"),
    (["dedup", "--images", "x", "--batch-size", "many"], "invalid int value"),
    (["dedup", "--index", "idx"], "--index needs --query"),
    (["dedup", "--images", "x", "--query", "y", "--out", "o"], "--query needs --index"),
    (["make-brand-dataset"], "the following arguments are required: --backgrounds, --out"),
    (["make-brand-dataset", "--backgrounds", "b", "--out", "o", "--workers", "two"], "invalid int value"),
])
def test_dedup_and_brand_dataset_option_mistakes_are_one_line(argv, cause, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ") and cause in err, err
    assert f"see 'vision {argv[0]} --help'" in err


def test_dedup_takes_globs_manifests_zoo_dir_and_draws_progress_on_a_terminal(tmp_path, monkeypatch, capsys):
    photos = sorted((SAMPLE / "val" / "Fruit").rglob("*.jpg"))[:3]
    (tmp_path / "copy.jpg").write_bytes(photos[0].read_bytes())
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"copy.jpg\n{photos[1]}\n")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    args = ["dedup", "--images", str(photos[0].parent / "*.jpg"), str(manifest), "--out", str(tmp_path / "rep"),
            "--allow-outside-paths"]  # the manifest lists an absolute path on purpose
    assert main(args) == 0  # no --model: the exact and pHash stages only
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    count = len(list(photos[0].parent.glob("*.jpg"))) + 2
    assert summary["images"] == count and summary["groups"] >= 1  # the byte copy in the manifest
    drawn = terminal.getvalue()
    assert "scan: 100%" in drawn and f"{count}/{count}" in drawn
    assert main([*args, "--no-progress"]) == 0 and terminal.getvalue() == drawn
    with pytest.raises(SystemExit) as exit_info:  # --zoo-dir is the only zoo looked in, before any image is read
        main([*args, "--model", "grocery_resnet10t", "--zoo-dir", str(tmp_path)])
    assert str(exit_info.value.code).startswith("error: no model named 'grocery_resnet10t'")
    capsys.readouterr()


def test_brand_dataset_progress_only_on_a_terminal(tmp_path, monkeypatch, capsys):
    args = ["make-brand-dataset", "--backgrounds", str(SAMPLE / "train" / "Fruit"), "--size", "32", "--train-clean",
            "1", "--train-wild", "1", "--splits", "train", "--max-brands", "2"]
    piped = __import__("io").StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "brands" not in piped.getvalue() and "\r" not in piped.getvalue()  # a log gets no bar
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main([*args, "--out", str(tmp_path / "b")]) == 0 and "brands: 100%" in terminal.getvalue()
    drawn = terminal.getvalue()
    assert main([*args, "--out", str(tmp_path / "c"), "--no-progress"]) == 0 and terminal.getvalue() == drawn
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["brands"] == {"train": 2}


def test_vision_extract_is_the_library_call_of_the_command(tmp_path):
    """``vision.extract`` writes what ``vision extract`` writes; options of another engine are refused by name."""
    import vision
    from vision.features import ExtractError, load_features

    summary = vision.extract("grocery_resnet10t", SAMPLE / "val" / "Fruit", tmp_path / "f.npy", backend="torch",
                             device="cpu", progress=False)
    ids, vectors = load_features(tmp_path / "f.npy")
    assert summary["count"] == len(ids) == len(vectors) > 0
    with pytest.raises(ExtractError, match="num_actors"):
        vision.extract("grocery_resnet10t", SAMPLE / "val", tmp_path / "g.npy", num_actors=2)
    with pytest.raises(ExtractError, match="engine 'spark'"):
        vision.extract("grocery_resnet10t", SAMPLE / "val", tmp_path / "g.npy", engine="spark")
