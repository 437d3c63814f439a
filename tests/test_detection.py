"""Logo detection: ultralytics YOLO through our Lightning stack, zoo round trip, inference API, label checks."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from vision.data.detection import LabelError, YoloDataModule, check_yolo_labels, read_data_yaml
from vision.inference import LogoDetector, draw_detections, letterbox_to_original
from vision.tasks.detection import LogoDetectionModule
from vision.zoo import load_model, save_model

from .conftest import REPO

LOGO_SAMPLE = REPO / "data" / "logo_sample"
IMGSZ = 96


@pytest.fixture
def logo_data(tmp_path) -> Path:
    """A copy of the committed sample, so tests may edit its labels."""
    shutil.copytree(LOGO_SAMPLE, tmp_path / "logo_sample")
    return tmp_path / "logo_sample" / "data.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny fit (2 train batches, 1 val batch) shared by the tests that need a network."""
    root = tmp_path_factory.mktemp("fit")
    shutil.copytree(LOGO_SAMPLE, root / "logo_sample")
    data = YoloDataModule(str(root / "logo_sample" / "data.yaml"), imgsz=IMGSZ, batch_size=8, num_workers=0)
    module = LogoDetectionModule("yolov8n.yaml", num_classes=data.num_classes, class_names=data.class_names,
                                 preprocessing=data.preprocessing_dict, ema_decay=0.9)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=data)
    return module, trainer, data


def test_fit_gives_finite_loss_and_map(trained):
    _, trainer, _ = trained
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"])
    assert {"val/mAP50", "val/mAP50-95"} <= set(metrics)
    assert 0 <= float(metrics["val/mAP50-95"]) <= float(metrics["val/mAP50"]) <= 1


def test_committed_sample_is_portable():
    data = read_data_yaml(LOGO_SAMPLE / "data.yaml")
    assert Path(data["path"]) == LOGO_SAMPLE.resolve() and data["names"] == {0: "logo"}
    assert len(list((LOGO_SAMPLE / "images" / "train").glob("*.jpg"))) == 24
    assert sum(f.stat().st_size for f in LOGO_SAMPLE.rglob("*") if f.is_file()) < 1.5e6


def test_zoo_round_trip_same_raw_outputs(trained, tmp_path):
    module, _, _ = trained
    card = save_model(module.eval_model, module.model_card("t"), tmp_path)
    assert card.task == "detection" and card.architecture == "yolov8n.yaml"
    assert card.preprocessing["input_size"] == IMGSZ and card.preprocessing["mean"] == [0.0, 0.0, 0.0]
    reloaded = load_model("t", zoo_dir=tmp_path)
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    module.eval_model.eval()
    with torch.no_grad():
        assert torch.equal(module.eval_model(x)[0], reloaded(x)[0])
    images = sorted((LOGO_SAMPLE / "images" / "val").glob("*.jpg"))[:2]
    assert torch.equal(LogoDetector(reloaded).raw_outputs(images),
                       LogoDetector(_with_card(module.eval_model, reloaded.card)).raw_outputs(images))


def _with_card(model, card):
    model.card = card
    return model


def test_letterbox_mapping_known_numbers():
    # 200x400 (h, w) into 128: gain 0.32, resized 64x128, 32 px of padding above and below
    boxes = torch.tensor([[10.0, 42.0, 50.0, 72.0]])
    mapped = letterbox_to_original(boxes, (128, 128), (200, 400))
    assert torch.allclose(mapped, torch.tensor([[31.25, 31.25, 156.25, 125.0]]))
    assert torch.equal(boxes, torch.tensor([[10.0, 42.0, 50.0, 72.0]]))  # input untouched


def test_match_predictions_iou_thresholds():
    from vision.tasks.detection import match_predictions

    # two targets; predictions: exact on target 0, IoU 0.6 with target 1, a duplicate of target 0, wrong class
    iou = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.6, 0.0, 0.0]])
    tp = match_predictions(torch.tensor([0.0, 0.0, 0.0, 1.0]), torch.tensor([0.0, 0.0]), iou)
    assert tp[0].all() and not tp[2].any() and not tp[3].any()  # a target is matched once; classes must agree
    assert tp[1].tolist() == [True, True, True] + [False] * 7  # thresholds 0.5, 0.55, 0.6


def test_detector_boxes_in_original_pixels(trained, tmp_path):
    module, _, _ = trained
    card = module.model_card("d")
    model = _with_card(module.eval_model, card)
    detector = LogoDetector(model, conf=0.0, iou=0.7, max_det=5)  # the top 5 have well-separated scores
    wide = np.zeros((150, 500, 3), dtype=np.uint8)
    wide[40:110, 100:300] = 255
    inputs = [wide, Image.fromarray(wide), torch.from_numpy(wide).permute(2, 0, 1)]
    results = detector.predict(inputs)
    assert len(results) == 3
    for other in results[1:]:  # the same pixels from numpy, PIL and a CHW tensor (batch rows may differ by 1 ulp)
        assert [d["class_id"] for d in other] == [d["class_id"] for d in results[0]]
        for key in ("box", "score"):
            assert np.allclose([d[key] for d in other], [d[key] for d in results[0]], atol=1e-3)
    assert results[0], "conf=0 should keep some boxes"
    for det in results[0]:
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 <= x2 <= 500 and 0 <= y1 <= y2 <= 150
        assert det["label"] == "logo" and det["class_id"] == 0 and 0 <= det["score"] <= 1
    out = draw_detections(wide, results[0][:3], tmp_path / "drawn.png")
    assert Image.open(out).size == (500, 150)


def test_bad_label_lines_reported_and_skipped(logo_data):
    labels = logo_data.parent / "labels" / "train"
    first = sorted(labels.glob("*.txt"))[0]
    good_lines = first.read_text().splitlines()
    bad_lines = ["0 0.5 0.5 0.2", "3 0.5 0.5 0.2 0.2", "0 1.5 0.5 0.2 0.2"]  # lines 2, 3, 4
    first.write_text("\n".join([good_lines[0], *bad_lines, *good_lines[1:]]) + "\n")
    (labels / "train_000001.txt").write_text("")  # a background
    with pytest.warns(UserWarning, match="malformed") as record:
        report = check_yolo_labels(labels, num_classes=1)
    text = str(record[0].message)
    assert f"{first}:2: expected 5 fields" in text and f"{first}:3: class id 3" in text and f"{first}:4: coord" in text
    assert report.cleaned[first].splitlines() == good_lines and report.backgrounds == 1
    with pytest.raises(LabelError, match=r":2: expected 5 fields"):
        check_yolo_labels(labels, num_classes=1, strict=True)

    # the datamodule keeps the image with its good boxes (ultralytics alone would drop the whole file)
    data = YoloDataModule(str(logo_data), imgsz=64, batch_size=4, num_workers=0)
    with pytest.warns(UserWarning, match="malformed"):
        data.setup("fit")
    train = data.datasets["train"]
    assert len(train) == 24
    index = [Path(f).stem for f in train.im_files].index(first.stem)
    assert len(train.labels[index]["cls"]) == len(good_lines)
    with pytest.raises(LabelError):
        YoloDataModule(str(logo_data), imgsz=64, num_workers=0, strict_labels=True).setup("fit")


def _run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_import_vision_does_not_import_ultralytics():
    result = _run_python("""
        import sys, vision, vision.tasks.detection, vision.data.detection, vision.inference
        assert 'ultralytics' not in sys.modules, 'ultralytics imported'
    """, dict(os.environ))
    assert result.returncode == 0, result.stderr


def test_compat_import_stays_in_its_config_dir_and_restores_globals(tmp_path):
    home, xdg, cache = tmp_path / "home", tmp_path / "xdg", tmp_path / "cache"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(xdg), "VISION_CACHE_DIR": str(cache),
           "MPLCONFIGDIR": str(tmp_path / "mpl")}
    env.pop("YOLO_CONFIG_DIR", None)
    env.pop("OMP_NUM_THREADS", None)
    result = _run_python("""
        import os, warnings, numpy as np, torch, cv2, json
        from PIL import Image
        from vision import ultralytics_compat as ulc  # imports vision (timm, scipy add their own filters)
        def state():
            return (list(warnings.filters), torch.save, Image.open, cv2.getNumThreads(),
                    np.get_printoptions()['linewidth'])
        before = state()
        ulc.detection_model_class(); ulc.yolo_class(); ulc.metrics_module()
        after = state()
        assert before == after, (before, after)
        assert 'OMP_NUM_THREADS' not in os.environ
        assert os.environ['YOLO_OFFLINE'] == 'true' and os.environ['YOLO_AUTOINSTALL'] == 'false'
        import ultralytics.utils as u
        assert not u.ONLINE
        print(json.dumps(str(u.SETTINGS_FILE)))
    """, env)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip().splitlines()[-1].strip('"')).is_relative_to(cache / "ultralytics")
    stray = [p for p in tmp_path.rglob("*") if "ultralytics" in str(p).lower()
             and not p.is_relative_to(cache / "ultralytics") and p != cache]
    assert not stray, stray
    assert not list(home.rglob("*")) and not xdg.exists()


def test_ultralytics_pt_export_loads_and_predicts_same_boxes(trained, tmp_path):
    from vision import ultralytics_compat as ulc
    from vision.models.detector import export_ultralytics_pt

    module, _, _ = trained
    model = _with_card(module.eval_model, module.model_card("pt"))
    path = export_ultralytics_pt(model, tmp_path / "logo.pt", imgsz=IMGSZ)
    image = sorted((LOGO_SAMPLE / "images" / "val").glob("*.jpg"))[0]
    ours = LogoDetector(model, conf=0.01, iou=0.7, max_det=20).predict([image])[0]
    yolo = ulc.yolo_class()(str(path), task="detect")
    result = yolo.predict(str(image), imgsz=IMGSZ, conf=0.01, iou=0.7, max_det=20, verbose=False, device="cpu")[0]
    theirs = result.boxes.xyxy.cpu()
    assert result.names == {0: "logo"}
    assert len(ours) == len(theirs) > 0
    assert torch.allclose(torch.tensor([d["box"] for d in ours]), theirs, atol=0.05)
    # our loader reads the same file with ultralytics' restricted (weights_only) unpickler: a fine-tuning start
    restored = ulc.load_ultralytics_pt(path)
    assert restored.names == {0: "logo"}
    start = LogoDetectionModule("yolov8n.yaml", weights=str(path), num_classes=1, class_names=["logo"])
    for key, value in model.state_dict().items():
        assert torch.equal(start.model.state_dict()[key], value), key
    with pytest.raises(FileNotFoundError):
        LogoDetectionModule("yolov8n.yaml", weights=str(tmp_path / "yolov8n.pt"))  # never downloaded


def test_train_cli_end_to_end(tmp_path, monkeypatch, logo_data):
    from vision.cli import main

    monkeypatch.chdir(REPO)
    main(["--config", "configs/detection/logo_yolo11n.yaml", "--data.data_yaml", str(logo_data),
          "--data.imgsz", str(IMGSZ), "--data.batch_size", "8", "--data.num_workers", "0",
          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
          "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
          "--trainer.default_root_dir", str(tmp_path / "run"),
          "--zoo_name", "logo", "--zoo_dir", str(tmp_path / "zoo")])
    card = json.loads((tmp_path / "zoo" / "manifest.json").read_text())["models"]["logo"]
    assert card["task"] == "detection" and card["architecture"] == "yolo11n.yaml"
    assert card["class_names"] == ["logo"] and card["preprocessing"]["input_size"] == IMGSZ
    assert {"val_mAP50", "val_mAP50-95"} <= set(card["metrics"])
    detector = LogoDetector.from_pretrained(tmp_path / "zoo" / "logo.safetensors")
    assert isinstance(detector.predict(sorted((LOGO_SAMPLE / "images" / "val").glob("*.jpg"))[0]), list)
    # the Lightning checkpoint loads through the zoo too (weights_only)
    from_ckpt = load_model(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert from_ckpt.card.task == "detection"


def test_close_mosaic_switches_train_transforms(logo_data):
    data = YoloDataModule(str(logo_data), imgsz=IMGSZ, batch_size=4, num_workers=0, close_mosaic=2)
    data.setup("fit")

    def mosaic_probability(compose=None):  # ultralytics nests Compose([Mosaic(p), ...]) inside its pipeline
        for t in (compose or data.datasets["train"].transforms).transforms:
            if type(t).__name__ == "Mosaic":
                return t.p
            if hasattr(t, "transforms") and (p := mosaic_probability(t)) is not None:
                return p
        return None

    assert mosaic_probability() == 1.0
    data.set_epoch(0, 5)
    data.set_epoch(2, 5)
    assert not data.mosaic_closed and mosaic_probability() == 1.0
    data.set_epoch(3, 5)  # epochs 3 and 4 are the last two
    assert data.mosaic_closed and mosaic_probability() in (None, 0.0)
    batch = next(iter(data.train_dataloader()))
    assert batch["img"].shape[-2:] == (IMGSZ, IMGSZ)
    with pytest.raises(ValueError, match="close_mosaic"):
        YoloDataModule(str(logo_data), imgsz=IMGSZ, close_mosaic=-1)


def test_predict_tool_writes_detections_and_drawings(trained, tmp_path, capsys):
    from vision.commands import predict

    module, _, _ = trained
    save_model(module.eval_model, module.model_card("logo_t"), tmp_path / "zoo")
    images = tmp_path / "imgs"
    shutil.copytree(LOGO_SAMPLE / "images" / "val", images / "a")
    shutil.copytree(LOGO_SAMPLE / "images" / "val", images / "b")  # same file names in two folders
    (images / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "preds.jsonl"
    rc = predict.main(["--model", str(tmp_path / "zoo" / "logo_t.safetensors"), "--images", str(images),
                       "--conf", "0.0", "--device", "cpu", "--out", str(out), "--draw", str(tmp_path / "drawn")])
    assert rc == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 16
    first = lines[0]
    assert (first["width"], first["height"]) == Image.open(first["image"]).size
    assert first["detections"] and {"box", "score", "label", "class_id"} <= set(first["detections"][0])
    assert len(list((tmp_path / "drawn").glob("*.png"))) == 16  # no drawing overwrote another
    assert "skipped 1 of 17" in capsys.readouterr().err


def _gather_worker(rank: int, world: int, init_file: str, results) -> None:
    import torch.distributed as dist

    from vision.training import gather_lists

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results[rank] = gather_lists([{"rank": rank, "tp": np.full((rank + 1, 10), True)}])
    finally:
        dist.destroy_process_group()


def test_gather_lists_merges_validation_stats_across_ranks(tmp_path):
    import torch.multiprocessing as mp

    from vision.training import gather_lists

    assert gather_lists([1, 2]) == [1, 2]  # no process group: unchanged
    results = mp.Manager().dict()
    mp.spawn(_gather_worker, args=(2, str(tmp_path / "pg"), results), nprocs=2)
    for rank in range(2):
        merged = results[rank]
        assert [m["rank"] for m in merged] == [0, 1]
        assert [m["tp"].shape for m in merged] == [(1, 10), (2, 10)]


def test_export_tool_writes_checked_ultralytics_pt(trained, tmp_path):
    import vision.commands.export as export_tool
    from vision.export import ExportError, export

    module, _, _ = trained
    save_model(module.eval_model, module.model_card("logo_pt"), tmp_path / "zoo")
    out = tmp_path / "logo_pt.pt"
    assert export_tool.main(["--model", str(tmp_path / "zoo" / "logo_pt.safetensors"), "--format", "ultralytics",
                             "--out", str(out)]) == 0
    report = json.loads(out.with_name(out.name + ".parity.json").read_text())
    assert report["passed"] and report["max_abs_diff"] <= 1e-4
    classifier = load_model(REPO / "weights" / "grocery_resnet10t.safetensors")
    with pytest.raises(ExportError, match="holds detectors"):
        export(classifier, "ultralytics", tmp_path / "clf.pt")
