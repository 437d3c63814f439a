"""The record that travels with every trained model (timm's ``pretrained_cfg`` idea), and its schema."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from vision.data.preprocessing import Preprocessing
from vision.names import text_line


class ZooError(ValueError):
    """A zoo lookup, file, card or manifest problem; the message names the model, file or field."""


@dataclass
class ModelCard:
    """What a model is and how to feed it: stored in the zoo manifest and inside the weights file.

    ``config`` holds the task-specific constructor arguments (e.g. backbone name, class count)
    so the network can be rebuilt without any training code.
    """

    name: str
    task: str
    architecture: str
    config: dict[str, Any]
    preprocessing: dict[str, Any]
    class_names: list[str] = field(default_factory=list)
    coarse_names: list[str] | None = None
    fine_to_coarse: list[int] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    command: str = ""
    notes: str = ""
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    file: str = ""
    sha256: str = ""
    licence: str = ""

    def __post_init__(self) -> None:
        Preprocessing.from_dict(self.preprocessing)  # validate early, naming the bad field

    @property
    def data_config(self) -> Preprocessing:
        return Preprocessing.from_dict(self.preprocessing)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's ``pretrained_cfg`` record of this model (set on every loaded zoo model), so
        ``timm.data.resolve_model_data_config(model)`` gives the card's preprocessing, not timm's defaults."""
        pre = self.data_config
        return {"architecture": self.architecture, "tag": self.name, "input_size": (3, pre.input_size, pre.input_size),
                "crop_pct": pre.crop_pct, "crop_mode": "center", "interpolation": pre.interpolation,
                "mean": tuple(pre.mean), "std": tuple(pre.std),
                "num_classes": self.config.get("num_classes", len(self.class_names))}

    def validate(self, where: str = "model card") -> None:
        """Raise :class:`ZooError` naming ``where`` and the field if the card breaks :data:`CARD_FIELDS`."""
        check_card_dict(self.to_dict(), where)

    @classmethod
    def from_dict(cls, d: Any, where: str = "model card") -> "ModelCard":
        check_card_dict(d, where)
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)


# --- schema: a check and the words for what it expects, per field
Check = tuple[Callable[[Any], bool], str]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def _is_str_map(v: Any, value: Callable[[Any], bool]) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and value(x) for k, x in v.items())


def _is_plain_name(v: Any) -> bool:
    # becomes a file name in the zoo folder: no path separators, nothing that points elsewhere
    return isinstance(v, str) and v not in ("", ".", "..") and not re.search(r"[/\\\x00]", v)


# class counts and embedding sizes build layers of that width: far above any real head, far below a memory bomb
MAX_SIZE = 100_000

_STRING: Check = (lambda v: isinstance(v, str), "a string")
_POSITIVE_INT: Check = (lambda v: _is_int(v) and 0 < v <= MAX_SIZE, f"an integer in 1..{MAX_SIZE:,}")

CARD_FIELDS: dict[str, Check] = {
    "name": (_is_plain_name, "a non-empty name without path separators"),
    "task": _STRING,
    "architecture": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "config": (lambda v: _is_str_map(v, lambda x: True), "an object"),
    "preprocessing": (lambda v: _is_str_map(v, lambda x: True), "an object"),
    "class_names": (_is_str_list, "a list of strings"),
    "coarse_names": (lambda v: v is None or _is_str_list(v), "a list of strings or null"),
    "fine_to_coarse": (lambda v: v is None or (isinstance(v, list) and all(_is_int(i) and i >= 0 for i in v)),
                       "a list of integers >= 0 or null"),
    "metrics": (lambda v: _is_str_map(v, lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)),
                "an object of numbers"),
    "command": _STRING,
    "notes": _STRING,
    "created": _STRING,
    "versions": (lambda v: _is_str_map(v, lambda x: isinstance(x, str)), "an object of strings"),
    "file": (lambda v: v == "" or _is_plain_name(v), "a file name in the zoo folder (no path separators)"),
    "licence": _STRING,
    "sha256": (lambda v: isinstance(v, str) and re.fullmatch(r"([0-9a-f]{64})?", v) is not None,
               "64 lowercase hex digits or empty"),
}
REQUIRED_FIELDS = ("name", "task", "architecture", "config", "preprocessing")

# the checks a task's card config names (vision.tasks.TASKS[...].config: key -> (check name, required))
CONFIG_CHECKS: dict[str, Check] = {
    "int>0": _POSITIVE_INT,
    "int>0|null": (lambda v: v is None or (_is_int(v) and 0 < v <= MAX_SIZE), f"an integer in 1..{MAX_SIZE:,} or null"),
    "non-empty str": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    # an architecture shipped with ultralytics, by bare name: never a path (the builder checks its schema too)
    "yaml name": (lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.ya?ml", v) is not None,
                  "the bare name of an architecture YAML shipped with ultralytics (e.g. 'yolo11n.yaml')"),
}


def _shown(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_card_dict(d: Any, where: str = "model card") -> None:
    """Check a card's fields, its task's ``config`` keys and its preprocessing; raise :class:`ZooError` naming
    ``where`` (the file) and the field."""
    if not isinstance(d, dict):
        raise ZooError(f"{where}: a model card must be an object, got {type(d).__name__}")
    unknown = sorted(str(k) for k in set(d) - set(CARD_FIELDS))
    missing = [k for k in REQUIRED_FIELDS if k not in d]
    if unknown or missing:
        raise ZooError(f"{where}: unknown fields {unknown}, missing fields {missing}")
    for key, (ok, expected) in CARD_FIELDS.items():
        if key in d and not ok(d[key]):
            raise ZooError(f"{where}: field {key!r} must be {expected}, got {_shown(d[key])}")
    from vision.tasks import TASKS

    task, config = d["task"], d["config"]
    if task not in TASKS:
        raise ZooError(f"{where}: field 'task' is {task!r}; known tasks: {sorted(TASKS)}")
    for key, (check, required) in TASKS[task].config.items():
        ok, expected = CONFIG_CHECKS[check]
        if key not in config:
            if required:
                raise ZooError(f"{where}: field 'config.{key}' is missing (a {task} card needs {expected})")
        elif not ok(config[key]):
            raise ZooError(f"{where}: field 'config.{key}' must be {expected}, got {_shown(config[key])}")
    _check_consistency(d, where)
    try:
        Preprocessing.from_dict(d["preprocessing"])
    except (TypeError, ValueError) as e:
        raise ZooError(f"{where}: field 'preprocessing' is invalid: {e}") from None


def _check_consistency(d: dict[str, Any], where: str) -> None:
    # mismatches here would surface later as an IndexError in the middle of inference
    num_classes, names = d["config"].get("num_classes"), d.get("class_names") or []
    for key in ("class_names", "coarse_names"):  # written one per line into labels.txt by exports
        for i, name in enumerate(d.get(key) or []):
            text_line(name, f"{where}: field '{key}[{i}]'", ZooError)
    if num_classes is not None and names and len(names) != num_classes:
        raise ZooError(f"{where}: field 'class_names' has {len(names)} names but config.num_classes is {num_classes}")
    fine_to_coarse, coarse = d.get("fine_to_coarse"), d.get("coarse_names")
    if fine_to_coarse is not None and names and len(fine_to_coarse) != len(names):
        raise ZooError(f"{where}: field 'fine_to_coarse' has {len(fine_to_coarse)} entries for {len(names)} classes")
    if fine_to_coarse and coarse is not None and max(fine_to_coarse) >= len(coarse):
        raise ZooError(f"{where}: field 'fine_to_coarse' points at coarse class {max(fine_to_coarse)} "
                       f"but coarse_names has {len(coarse)}")
