"""The record that travels with every trained model (timm's ``pretrained_cfg`` idea)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from vision.data.transforms import Preprocessing


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

    def __post_init__(self) -> None:
        Preprocessing.from_dict(self.preprocessing)  # validate early, naming the bad field

    @property
    def data_config(self) -> Preprocessing:
        return Preprocessing.from_dict(self.preprocessing)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "model card") -> "ModelCard":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        missing = {"name", "task", "architecture", "config", "preprocessing"} - set(d)
        if unknown or missing:
            raise ValueError(f"{where}: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)
