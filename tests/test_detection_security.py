"""Detection artifacts and datasets that try to run code: architecture records (model cards, manifests,
checkpoints, ultralytics .pt files) and ultralytics label caches. Each payload test asserts that its marker file
is never created."""

import json
import pickle
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from vision import ultralytics_compat as ulc
from vision.data.detection import LabelError, YoloDataModule, check_yolo_labels
from vision.models.detector import ArchitectureError, build_detection_model, export_ultralytics_pt
from vision.tasks.cards import detection_card
from vision.zoo import ZooError, load_model, registry, save_model

from .conftest import REPO

LOGO_SAMPLE = REPO / "data" / "logo_sample"
HPARAMS = {"yaml": "yolov8n.yaml", "num_classes": 1, "class_names": ["logo"], "imgsz": 64}


def _payload(marker: Path) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).touch() and None or nn.SiLU()"


def _evil_yaml(folder: Path, marker: Path) -> Path:
    """yolov8n with an ``activation`` that ultralytics' parser would eval(): it touches ``marker``."""
    record = {k: v for k, v in ulc.model_yaml("yolov8n.yaml").items() if k not in ("scale", "yaml_file")}
    path = folder / "evil.yaml"
    path.write_text(yaml.safe_dump({**record, "activation": _payload(marker)}))
    return path


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return build_detection_model("yolov8n.yaml", 1, ["logo"]).eval()


@pytest.fixture
def zoo(detector, tmp_path):
    save_model(detector, detection_card("logo", dict(HPARAMS)), tmp_path / "zoo")
    return tmp_path / "zoo"


def _crafted_file(source: Path, target: Path, yaml_name: str) -> Path:
    """``source`` with its embedded card pointing at ``yaml_name`` and a digest recomputed to match, as anyone
    can: the digest detects damage, it is not a signature."""
    with safe_open(str(source), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    card = json.loads(meta["vision.card"])
    card["architecture"] = card["config"]["yaml"] = yaml_name
    card_json = json.dumps(card)
    save_file(tensors, str(target), metadata={"vision.card": card_json,
                                              "vision.sha256": registry.content_sha256(card_json, tensors)})
    return target


def _yaml_names(tmp_path: Path, marker: Path) -> list[str]:
    evil = _evil_yaml(tmp_path, marker)
    return [str(evil), "evil.yaml", f"../{tmp_path.name}/evil.yaml", "../" * 12 + str(evil).lstrip("/")]


# --- item 1: a detection model card runs code
def test_lone_safetensors_naming_a_foreign_yaml_is_refused(zoo, tmp_path, monkeypatch):
    from vision.inference import LogoDetector

    marker = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)  # a bare name must not find ./evil.yaml either
    for i, name in enumerate(_yaml_names(tmp_path, marker)):
        lone = _crafted_file(zoo / "logo.safetensors", tmp_path / f"lone{i}.safetensors", name)
        with pytest.raises(ZooError, match="shipped with ultralytics"):
            load_model(lone)
        with pytest.raises(ZooError, match="shipped with ultralytics"):
            LogoDetector.from_pretrained(lone)
    from vision.commands import predict

    with pytest.raises(ZooError, match="shipped with ultralytics"):
        predict.main(["--model", str(lone), "--images", str(LOGO_SAMPLE / "images" / "val")])
    assert not marker.exists()


def test_zoo_with_an_edited_manifest_is_refused(zoo, tmp_path):
    marker = tmp_path / "pwned"
    evil = str(_evil_yaml(tmp_path, marker))
    manifest_path = zoo / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["models"]["logo"]
    entry["architecture"] = entry["config"]["yaml"] = evil  # the weights' sha256 still matches
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ZooError):
        load_model("logo", zoo_dir=zoo)
    # a zoo whose file and manifest were both rewritten consistently reaches the builder, which refuses it
    _crafted_file(zoo / "logo.safetensors", zoo / "logo.safetensors", evil)
    entry["sha256"] = registry.sha256_file(zoo / "logo.safetensors")
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ZooError, match="not a path|bare name"):
        load_model("logo", zoo_dir=zoo)
    assert not marker.exists()


def test_weights_only_checkpoint_naming_a_foreign_yaml_is_refused(detector, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "run.ckpt"
    torch.save({"vision_task": "detection", "epoch": 0, "global_step": 1,
                "state_dict": {f"model.{k}": v for k, v in detector.state_dict().items()},
                "hyper_parameters": {**HPARAMS, "yaml": str(_evil_yaml(tmp_path, marker))}}, path)
    with pytest.raises(ZooError, match="not a path|bare name"):
        load_model(path)
    assert not marker.exists()


def test_ultralytics_pt_whose_architecture_record_carries_code_is_refused(tmp_path):
    from vision.tasks.detection import LogoDetectionModule

    marker = tmp_path / "pwned"
    model = build_detection_model("yolov8n.yaml", 1, ["logo"])
    model.yaml["activation"] = _payload(marker)  # a rebuild from this record (ultralytics' trainer) would eval it
    path = export_ultralytics_pt(model, tmp_path / "start.pt", imgsz=64)
    with pytest.raises(ArchitectureError, match=r"start\.pt model\.yaml: field 'activation' is \"__import__"):
        LogoDetectionModule("yolov8n.yaml", weights=str(path))
    assert not marker.exists()
    good = export_ultralytics_pt(build_detection_model("yolov8n.yaml", 1, ["logo"]), tmp_path / "good.pt", imgsz=64)
    assert ulc.load_ultralytics_pt(good).yaml["yaml_file"] == "yolov8n.yaml"


@pytest.mark.parametrize("edit, field", [
    (lambda r: r.update(activation="__import__('os').system('true') or nn.SiLU()"), "activation"),
    (lambda r: r["backbone"][0].__setitem__(2, "attempt_load_weights"), "backbone[0].module"),  # globals() lookup
    (lambda r: r["backbone"][0].__setitem__(2, "torchvision.ops.Whatever"), "backbone[0].module"),
    (lambda r: r["backbone"][1].__setitem__(2, "Detect"), "backbone[1].module"),
    (lambda r: r["head"][-1].__setitem__(2, "Classify"), "head[12].module"),
    (lambda r: r["backbone"][0][3].__setitem__(0, "__import__('os')"), "backbone[0].args[0]"),
    (lambda r: r["backbone"][0][3].__setitem__(0, "d"), "backbone[0].args[0]"),  # locals() of parse_model
    (lambda r: r["backbone"][0][3].__setitem__(0, {"a": 1}), "backbone[0].args[0]"),
    (lambda r: r["backbone"][0][3].__setitem__(0, float("nan")), "backbone[0].args[0]"),
    (lambda r: r["backbone"][0][3].__setitem__(0, 10 ** 9), "backbone[0].args[0]"),
    (lambda r: r["backbone"][1].__setitem__(0, "-1"), "backbone[1].from"),
    (lambda r: r["backbone"][1].__setitem__(0, 5), "backbone[1].from"),
    (lambda r: r["backbone"][1].__setitem__(1, True), "backbone[1].repeats"),
    (lambda r: r["backbone"].__setitem__(1, [-1, 1, "Conv"]), "backbone[1]"),
    (lambda r: r.update(scales={"n": [0.33, "0.25", 1024]}), "scales"),
    (lambda r: r.update(scale="q"), "scale"),
    (lambda r: r.update(yaml_loader="!!python/object"), "yaml_loader"),
])
def test_architecture_schema_names_field_and_value(edit, field):
    record = ulc.model_yaml("yolov8n.yaml")
    edit(record)
    with pytest.raises(ArchitectureError, match=f"field '{re.escape(field)}' is "):
        ulc.detection_model(record, 1)
    ulc.detection_model(ulc.model_yaml("yolov8n.yaml"), 1)  # the untouched record builds


def test_parser_is_run_without_eval_as_a_second_lock(tmp_path):
    # should check_architecture ever let an activation through, ultralytics' restricted parser must not eval it
    tasks = sys.modules["ultralytics.nn.tasks"] if "ultralytics.nn.tasks" in sys.modules else None
    if tasks is None:
        ulc.detection_model_class()
        tasks = sys.modules["ultralytics.nn.tasks"]
    marker = tmp_path / "pwned"
    record = {**ulc.model_yaml("yolov8n.yaml"), "nc": 1, "activation": _payload(marker)}
    with ulc._no_eval_parsing(tasks), pytest.raises(TypeError, match="unsupported activation"):
        tasks.DetectionModel(record, ch=3, nc=1, verbose=False)
    assert not marker.exists()


# --- item 2: a dataset's label cache runs code
class _TouchOnUnpickle:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_foreign_label_cache_is_ignored_never_loaded_nor_written(tmp_path):
    shutil.copytree(LOGO_SAMPLE, tmp_path / "logo")
    marker = tmp_path / "pwned"
    planted = tmp_path / "logo" / "labels" / "train.cache"
    with open(planted, "wb") as f:  # a file object: np.save would append .npy to a name
        np.save(f, np.array({"version": "1.0.12", "hash": _TouchOnUnpickle(str(marker)), "labels": []}),
                allow_pickle=True)
    data = YoloDataModule(str(tmp_path / "logo" / "data.yaml"), imgsz=64, batch_size=4, num_workers=0)
    with pytest.warns(UserWarning, match=r"train\.cache: ignored this ultralytics label cache"):
        data.setup("fit")
    assert not marker.exists()
    assert len(data.datasets["train"]) == 24 and len(data.datasets["val"]) > 0
    assert sorted((tmp_path / "logo").rglob("*.cache")) == [planted]  # nothing written beside the labels
    batch = next(iter(data.train_dataloader()))
    assert batch["img"].shape[-2:] == (64, 64)
    assert len(pickle.loads(pickle.dumps(data.datasets["val"]))) > 0  # loader workers under spawn get a copy


# --- item 9: nan/inf in a label line
def test_non_finite_label_values_are_reported_with_file_and_line(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    path = labels / "a.txt"
    path.write_text("0 0.5 0.5 0.2 0.2\nnan 0.5 0.5 0.2 0.2\ninf 0.5 0.5 0.2 0.2\n0 0.5 nan 0.2 0.2\n"
                    "0 0.5 0.5 -inf 0.2\n")
    with pytest.warns(UserWarning, match="malformed") as record:
        report = check_yolo_labels(labels, num_classes=1)
    text = str(record[0].message)
    for line in (2, 3, 4, 5):
        assert f"{path}:{line}: non-finite value" in text
    assert report.cleaned[path] == "0 0.5 0.5 0.2 0.2\n" and len(report.issues) == 4
    with pytest.raises(LabelError, match=rf"{path.name}:2: non-finite value"):
        check_yolo_labels(labels, num_classes=1, strict=True)


# --- item 14: a label file without its image
def test_label_file_without_image_is_counted_and_reported(tmp_path):
    shutil.copytree(LOGO_SAMPLE, tmp_path / "logo")
    labels, images = tmp_path / "logo" / "labels" / "train", tmp_path / "logo" / "images" / "train"
    orphan = labels / "no_such_image.txt"
    orphan.write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.warns(UserWarning, match=r"1 label file\(s\) .* have no image") as record:
        report = check_yolo_labels(labels, num_classes=1, images_dir=images)
    assert report.without_image == [orphan] and str(orphan) in str(record[0].message)
    assert report.files == 24
    data = YoloDataModule(str(tmp_path / "logo" / "data.yaml"), imgsz=64, batch_size=4, num_workers=0)
    with pytest.warns(UserWarning, match="have no image"):
        data.setup("fit")
    assert data.label_checks["train"].without_image == [orphan]
    assert data.label_checks["val"].without_image == []


def test_fuzz_label_files_and_data_yaml_give_a_result_or_our_error(tmp_path):
    """Random bytes, truncations and flips of YOLO label files and data.yaml: a report or LabelError, nothing raw."""
    import random
    import warnings

    from vision.data.detection import LabelError, check_yolo_labels, read_data_yaml

    rng = random.Random(0)
    label = b"0 0.5 0.5 0.2 0.3\n0 0.1 0.2 0.05 0.05\n"
    data_yaml = (LOGO_SAMPLE / "data.yaml").read_bytes()
    cases = 0
    for i in range(120):
        kind = i % 3
        for original, name in ((label, "labels/a.txt"), (data_yaml, "data.yaml")):
            blob = bytearray(original)
            if kind == 0:
                blob = bytearray(rng.randbytes(rng.randint(0, 80)))
            elif kind == 1:
                blob = blob[:rng.randint(0, len(blob))]
            else:
                for _ in range(rng.randint(1, 4)):
                    if blob:
                        blob[rng.randrange(len(blob))] = rng.randrange(256)
            case = tmp_path / f"case{i}_{name.replace('/', '_')}"
            (case / "labels").mkdir(parents=True)
            (case / name).write_bytes(bytes(blob))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for strict in (False, True):
                    try:
                        if name == "data.yaml":
                            read_data_yaml(case / name)
                        else:
                            check_yolo_labels(case / "labels", num_classes=1, strict=strict)
                    except LabelError:
                        pass
            cases += 1
    assert cases == 240
