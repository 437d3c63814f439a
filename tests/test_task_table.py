"""The task table is the one place a task is declared: every part it names resolves, and the rest reads it."""

import importlib

import pytest

from vision.tasks import TASKS, all_links, get_task, output_meaning, resolve

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
