"""The task table is the one place a task is declared: every part it names resolves, and the rest reads it."""

import importlib

import pytest

from vision.tasks import TASKS, Task, all_links, get_task, output_meaning, resolve

PARTS = ("network", "card", "module", "datamodule")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_part_of_every_task_resolves(name):
    task = get_task(name)
    for part in PARTS:
        assert callable(task.load(part)), (name, part)
    for kind in task.outputs:
        assert callable(task.output_wrapper(kind)) and output_meaning(kind) != kind
    assert task.feature_output is None or task.feature_output in task.outputs
    assert task.load("module").task == name  # the checkpoint tag is the table's name
    for kind in task.outputs:  # every output kind has a head and a result type, the output's own or the task's
        assert callable(task.output_head(kind)) and isinstance(task.output_result(kind), type)


def test_heads_and_result_types_are_read_from_the_table():
    import vision.predictors
    from vision.predictors import ClassificationHead, DetectionHead, EmbeddingHead
    from vision.results import Classification, Detections, Embedding, result_type

    assert not hasattr(vision.predictors, "HEADS")  # no second dispatch table beside this one
    clf = get_task("classification")
    assert (clf.output_head("logits"), clf.output_head("features")) == (ClassificationHead, EmbeddingHead)
    assert get_task("detection").output_head("predictions") is DetectionHead
    assert result_type("classification") is Classification and result_type("classification", "features") is Embedding
    assert result_type("detection") is Detections and result_type("embedding") is Embedding


def test_output_networks_need_no_exporter():
    """The torch runtime's output network and default output live beside the wrappers; the exporter re-exports
    them with its own error type."""
    import vision.export.onnx as onnx_export
    from vision.export import ExportError
    from vision.models import outputs
    from vision.zoo import load_model

    model = load_model("grocery_resnet10t")
    assert outputs.default_output(model.card) == "logits"
    assert outputs.output_network(model, "logits") is model
    with pytest.raises(ValueError, match="unknown output 'boxes'"):
        outputs.output_network(model, "boxes")
    with pytest.raises(ExportError, match="unknown output 'boxes'"):
        onnx_export.output_network(model, "boxes")
    assert onnx_export.default_output(model.card) == "logits"


def test_card_builders_import_no_lightning_or_ultralytics():
    import subprocess
    import sys

    code = ("import sys; from vision.tasks import TASKS\n"
            "for t in TASKS.values(): t.load('card')\n"
            "print(sorted(m for m in ('pytorch_lightning', 'lightning', 'ultralytics', 'albumentations') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_card_config_checks_and_links_come_from_the_table():
    from vision.zoo.card import CONFIG_CHECKS

    for task in TASKS.values():
        assert {check for check, _ in task.config.values()} <= set(CONFIG_CHECKS)
        for source, target in task.links:
            assert source.startswith("data.") and target.startswith("model.init_args.")
    assert len(all_links()) == len(set(all_links()))


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="known tasks"):
        get_task("segmentation")
    with pytest.raises(ValueError, match="has no output"):
        get_task("detection").output_wrapper("logits")
    with pytest.raises(ValueError, match="names no 'module'"):
        Task(**{**get_task("detection").__dict__, "module": ""}).load("module")
    assert resolve("vision.tasks:get_task") is get_task


def test_interpolation_names_match_the_transform_flags():
    transforms = importlib.import_module("vision.data.transforms")
    assert set(transforms._INTERPOLATIONS) == set(transforms.INTERPOLATIONS)


def test_a_detection_card_names_its_architecture_by_bare_yaml_name_only():
    from vision.zoo.card import ZooError, check_card_dict

    card = {"name": "d", "task": "detection", "architecture": "yolo11n.yaml", "class_names": ["logo"],
            "config": {"yaml": "yolo11n.yaml", "num_classes": 1},
            "preprocessing": {"input_size": 64, "crop_pct": 1.0}}
    check_card_dict(card)
    for bad in ("/tmp/evil.yaml", "../evil.yaml", "sub/evil.yaml", "evil.py", ""):
        with pytest.raises(ZooError, match="config.yaml"):
            check_card_dict({**card, "config": {"yaml": bad, "num_classes": 1}})
