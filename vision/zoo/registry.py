"""The model zoo: a folder of safetensors files and a ``manifest.json`` describing them.

``load_model`` takes a zoo name, a ``.safetensors`` path or a Lightning ``.ckpt`` path and
returns an eval-mode ``nn.Module`` with its :class:`ModelCard` attached as ``model.card``.
Weights are read with safetensors (or ``torch.load(weights_only=True)`` for checkpoints) and
the sha256 recorded in the manifest is checked before any tensor is loaded. A lone file (one no manifest
beside it lists) is checked against the digest of its card and tensors that ``save_model`` stores in its own
metadata. Saving takes a lock on the manifest and never overwrites the file the manifest points at.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import difflib
import hashlib
import json
import logging
import os
import pickle
import platform
import re
import secrets
from pathlib import Path
from typing import Any, Iterator

import filelock
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

import vision.tasks  # TASKS read at each use, never bound here: a task registered later is found
from vision.fileio import atomic_path, atomic_write_text, sha256_file
from vision.zoo.card import MAX_SIZE, ModelCard, ZooError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
_CARD_KEY = "vision.card"
_DIGEST_KEY = "vision.sha256"  # of the card and the tensors, see content_sha256
_LOCK = ".manifest.json.lock"
_LOCK_TIMEOUT_S = 600
# what the manifest's sha256 covers: the file, and through the card embedded in it every field of the entry but
# these (licence, metrics and notes included: an edit of the manifest alone is refused, not trusted). The digest
# cannot be inside the file it hashes; name and file say where the entry points (an alias may list the file too).
_UNEMBEDDED_FIELDS = ("sha256", "name", "file")

log = logging.getLogger(__name__)


def shipped_zoo_dir() -> Path:
    """The models that ship with vision: ``vision/weights`` inside an installed wheel, the repository's
    ``weights/`` folder in a checkout (or an editable install)."""
    installed = Path(__file__).resolve().parents[1] / "weights"
    return installed if (installed / MANIFEST).is_file() else Path(__file__).resolve().parents[2] / "weights"


def vision_home() -> Path:
    """Your vision folder (your zoo, your exports): ``$VISION_HOME``, else ``$XDG_DATA_HOME/vision``
    (``~/.local/share/vision``). Never the package or a checkout, whatever the current folder."""
    if os.environ.get("VISION_HOME"):
        return Path(os.environ["VISION_HOME"]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home).expanduser() / "vision"


def user_zoo_dir() -> Path:
    """Where models you train are saved by default: ``$VISION_HOME/zoo``, else ``$XDG_DATA_HOME/vision/zoo``
    (``~/.local/share/vision/zoo``). Never the shipped zoo."""
    return vision_home() / "zoo"


def zoo_search_path(zoo_dir: str | Path | None = None) -> list[Path]:
    """The zoos a model name is looked up in, first match wins: ``zoo_dir`` if given, else ``$VISION_ZOO_DIR``
    if set, else your zoo (:func:`user_zoo_dir`) and then the shipped one (:func:`shipped_zoo_dir`)."""
    if zoo_dir:
        return [Path(zoo_dir)]
    if os.environ.get("VISION_ZOO_DIR"):
        return [Path(os.environ["VISION_ZOO_DIR"]).expanduser()]
    return list(dict.fromkeys([user_zoo_dir(), shipped_zoo_dir()]))


def default_zoo_dir() -> Path:
    """Where :func:`save_model` writes when no ``zoo_dir`` is given: ``$VISION_ZOO_DIR`` if set, else your zoo
    (:func:`user_zoo_dir`)."""
    env = os.environ.get("VISION_ZOO_DIR")
    return Path(env).expanduser() if env else user_zoo_dir()


def find_card(name: str, zoo_dir: str | Path | None = None) -> tuple[ModelCard, Path] | None:
    """The card of zoo model ``name`` and the zoo folder holding it, searched along :func:`zoo_search_path`."""
    for folder in zoo_search_path(zoo_dir):
        card = read_manifest(folder).get(name)
        if card is not None:
            return card, folder
    return None


def build_model(card: ModelCard) -> nn.Module:
    tasks = vision.tasks.TASKS
    if card.task not in tasks:
        raise ZooError(f"model {card.name!r}: unknown task {card.task!r}; known tasks: {sorted(tasks)}")
    try:
        return tasks[card.task].load("network")(card)
    except (RuntimeError, ValueError, TypeError, KeyError, OSError) as e:  # e.g. timm: "Unknown model"
        raise ZooError(f"model {card.name!r}: cannot build {card.task} network {card.architecture!r} with config "
                       f"{card.config} ({type(e).__name__}: {e})") from None


# --- manifest
def read_manifest(zoo_dir: str | Path | None = None) -> dict[str, ModelCard]:
    """The cards of one zoo folder by name (default: the first of :func:`zoo_search_path`); a missing manifest is
    an empty zoo, a malformed one a :class:`ZooError`."""
    path = Path(zoo_dir or zoo_search_path()[0]) / MANIFEST
    if not path.is_file():
        return {}
    raw = _parse_json(_read_text(path), str(path))
    if not isinstance(raw, dict):
        raise ZooError(f"{path}: a manifest must be a JSON object with 'format' and 'models', got {type(raw).__name__}")
    if raw.get("format", MANIFEST_FORMAT) != MANIFEST_FORMAT:
        raise ZooError(f"{path}: field 'format' is {raw['format']!r}; this version of vision reads format "
                       f"{MANIFEST_FORMAT}")
    if not isinstance(raw.get("models"), dict):
        raise ZooError(f"{path}: field 'models' must be an object mapping model names to cards")
    cards = {}
    for name, entry in raw["models"].items():
        where = f"{path} models.{name}"
        card = ModelCard.from_dict(entry, where=where)
        if card.name != name:
            raise ZooError(f"{where}: field 'name' is {card.name!r} but the entry is listed as {name!r}")
        if not card.file or not card.sha256:
            raise ZooError(f"{where}: field {'file' if not card.file else 'sha256'!r} is empty; "
                           "a manifest entry needs its weights file and that file's sha256")
        cards[name] = card
    return cards


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")  # tolerate the BOM some editors add
    except UnicodeDecodeError as e:
        raise ZooError(f"{path}: not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8") from None


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ZooError(f"{where}: not valid JSON (line {e.lineno}): {e.msg}") from None
    except RecursionError:
        raise ZooError(f"{where}: not valid JSON (nested too deeply)") from None


def _write_manifest(cards: dict[str, ModelCard], zoo_dir: Path) -> None:
    body = {"format": MANIFEST_FORMAT, "models": {name: cards[name].to_dict() for name in sorted(cards)}}
    atomic_write_text(zoo_dir / MANIFEST, json.dumps(body, indent=1, sort_keys=True) + "\n")


@contextlib.contextmanager
def _manifest_lock(zoo_dir: Path) -> Iterator[None]:
    """Serialise saves into one zoo across processes (readers need no lock: the manifest is replaced atomically)."""
    zoo_dir.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(zoo_dir / _LOCK, timeout=_LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise ZooError(f"{zoo_dir / _LOCK}: another process has been saving to this zoo for {_LOCK_TIMEOUT_S} s; "
                       "wait for it to finish and save again") from None
    try:
        yield
    finally:
        lock.release()


def list_models(pattern: str | None = None, task: str | None = None, zoo_dir: str | Path | None = None
                ) -> list[str]:
    """Names of the models in the zoos of :func:`zoo_search_path` (yours and the shipped ones), optionally those
    matching a shell-style ``pattern`` (as timm's: ``"*resnet*"``) and of one ``task``.

    Example::

        vision.list_models("*resnet*", task="classification")   # ['grocery_resnet10t']
    """
    import fnmatch

    names = {n for folder in zoo_search_path(zoo_dir) for n, c in read_manifest(folder).items()
             if (task is None or c.task == task) and (pattern is None or fnmatch.fnmatchcase(n, pattern))}
    return sorted(names)


def list_galleries(pattern: str | None = None, zoo_dir: str | Path | None = None) -> list[str]:
    """Names of the brand galleries (``*.npz``) in the zoos of :func:`zoo_search_path`, each loadable by name
    (``BrandGallery.load(name)``, ``BrandRecognizer.from_pretrained(..., gallery=name)``), optionally those
    matching a shell-style ``pattern``.

    Example::

        vision.list_galleries()   # ['simple_icons_gallery']
    """
    import fnmatch

    names = {p.stem for folder in zoo_search_path(zoo_dir) if folder.is_dir() for p in folder.glob("*.npz")
             if p.is_file() and (pattern is None or fnmatch.fnmatchcase(p.stem, pattern))}
    return sorted(names)


def save_model(model: nn.Module, card: ModelCard, zoo_dir: str | Path | None = None, *,
               half: bool = False) -> ModelCard:
    """Write the weights with their card into the zoo, hash them and record them in the manifest.

    The file is ``<name>.safetensors``, or ``<name>.<random>.safetensors`` while the manifest still points at
    that name: the previous version stays loadable until the manifest names its successor, and is removed after.
    ``half=True`` stores float tensors as float16 (half the file size; loading casts back to float32).
    """
    zoo_dir = Path(zoo_dir or default_zoo_dir())
    card.created = card.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    card.versions = card.versions or _versions()
    card.validate(where=f"model card {card.name!r}")
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    with _manifest_lock(zoo_dir):
        cards = read_manifest(zoo_dir)
        previous = cards.get(card.name)
        card.file, card.sha256 = _unused_file_name(card.name, cards), ""
        card_json = card.to_json()
        with atomic_path(zoo_dir / card.file) as tmp:
            save_file(state, str(tmp), metadata={_CARD_KEY: card_json, _DIGEST_KEY: content_sha256(card_json, state)})
        card.sha256 = sha256_file(zoo_dir / card.file)
        cards[card.name] = card
        _write_manifest(cards, zoo_dir)
        _remove_unlisted_versions(card.name, previous, cards, zoo_dir)
    return card


def _unused_file_name(name: str, cards: dict[str, ModelCard]) -> str:
    taken = {c.file for c in cards.values()}
    file = f"{name}.safetensors"
    while file in taken:
        file = f"{name}.{secrets.token_hex(4)}.safetensors"
    return file


def _remove_unlisted_versions(name: str, previous: ModelCard | None, cards: dict[str, ModelCard], zoo_dir: Path
                              ) -> None:
    """Remove the replaced file and versions left by saves that crashed before the manifest named them.

    Runs under the manifest lock, so no other save is writing one of these files.
    """
    listed = {c.file for c in cards.values()}
    version = re.compile(re.escape(name) + r"\.[0-9a-f]{8}\.safetensors")
    stale = {f.name for f in zoo_dir.iterdir() if version.fullmatch(f.name)}
    if previous:
        stale.add(previous.file)
    for file in stale - listed:
        (zoo_dir / file).unlink(missing_ok=True)


def content_sha256(card_json: str, tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the card JSON and every tensor's name, dtype, shape and bytes, in name order.

    ``save_model`` stores it in the file's metadata, so a lone file can be verified without a manifest.
    """
    names = sorted(tensors)
    index = json.dumps({"card": card_json, "tensors": [[n, str(tensors[n].dtype), list(tensors[n].shape)]
                                                       for n in names]})
    h = hashlib.sha256(index.encode())
    for n in names:
        h.update(tensors[n].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _versions() -> dict[str, str]:
    import timm

    from vision import __version__

    return {"vision": __version__, "torch": torch.__version__, "timm": timm.__version__,
            "python": platform.python_version()}


# --- loading
def load_model(name_or_path: str | Path, zoo_dir: str | Path | None = None, device: str | torch.device = "cpu",
               *, allow_unverified: bool = False) -> nn.Module:
    """A ready, eval-mode model with ``model.card`` set.

    A zoo name or a file listed in the manifest beside it is checked against the manifest's sha256, any other
    ``.safetensors`` file against the digest in its own metadata; ``allow_unverified=True`` loads a file that
    has none (saved by an older vision) with a logged warning.

    Example::

        model = vision.load_model("grocery_resnet10t")
        model.card.class_names[:3]
    """
    source = Path(name_or_path)
    if source.suffix == ".ckpt":
        model, card = _from_lightning_checkpoint(source)
    elif source.suffix == ".safetensors" or source.exists():
        model, card = _from_weights_file(source, allow_unverified)
    else:
        model, card = _from_zoo(str(name_or_path), zoo_dir)
    model.card = card
    model.pretrained_cfg = card.pretrained_cfg()  # timm's data-config helpers read the card's preprocessing
    return model.to(device).eval()


def _from_zoo(name: str, zoo_dir: str | Path | None) -> tuple[nn.Module, ModelCard]:
    found = find_card(name, zoo_dir)
    if found is None:
        searched = zoo_search_path(zoo_dir)
        known = list_models(zoo_dir=zoo_dir)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {close}?" if close else f"available: {known or 'none'}"
        raise ZooError(f"no model named {name!r} in {', '.join(str(f / MANIFEST) for f in searched)}; {hint} "
                       "(set zoo_dir= or $VISION_ZOO_DIR to use another zoo)")
    card, folder = found
    return _load_verified(folder / card.file, card)


def _from_weights_file(path: Path, allow_unverified: bool) -> tuple[nn.Module, ModelCard]:
    if not path.is_file():
        raise ZooError(f"weights file {path} not found")
    # a file listed in a manifest beside it is checked against that manifest's hash
    for card in read_manifest(path.parent).values():
        if card.file == path.name:
            return _load_verified(path, card)
    meta, tensors = _read_safetensors(path)
    card_json = _card_json(meta, path)
    expected = meta.get(_DIGEST_KEY)
    if expected is None:
        if not allow_unverified:
            raise ZooError(f"{path}: no '{_DIGEST_KEY}' digest in its metadata (saved by an older vision), so its "
                           "weights cannot be verified; re-save it with vision.save_model, or load it with "
                           "load_model(path, allow_unverified=True) if you trust it")
        log.warning("%s: loading without verification (no '%s' digest; allow_unverified=True)", path, _DIGEST_KEY)
    elif (actual := content_sha256(card_json, tensors)) != expected:
        raise ZooError(f"{path}: sha256 mismatch of card and tensors (metadata {expected[:12]}..., file "
                       f"{actual[:12]}...); the file is corrupt or was modified: restore it from its source or "
                       "save the model again")
    return _build_with_state(path, _parse_card(card_json, path), tensors)


def read_card(path: str | Path) -> ModelCard:
    """The card embedded in a zoo ``.safetensors`` file's metadata (not verified: see ``load_model``)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise ZooError(f"{path}: not a readable safetensors file ({e})") from None
    return _parse_card(_card_json(meta, path), path)


def _read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise ZooError(f"{path}: not a readable safetensors file ({e})") from None


def _card_json(meta: dict[str, str], path: Path) -> str:
    if _CARD_KEY not in meta:
        raise ZooError(f"{path}: safetensors file has no '{_CARD_KEY}' metadata; it was not saved by vision.save_model")
    return meta[_CARD_KEY]


def _parse_card(card_json: str, path: Path) -> ModelCard:
    where = f"{path} metadata {_CARD_KEY}"
    return ModelCard.from_dict(_parse_json(card_json, where), where=where)


def _load_verified(path: Path, card: ModelCard) -> tuple[nn.Module, ModelCard]:
    if not path.is_file():
        raise ZooError(f"model {card.name!r}: weights file {path} is missing")
    actual = sha256_file(path)
    if actual != card.sha256:
        raise ZooError(f"model {card.name!r}: sha256 mismatch for {path} (manifest {card.sha256[:12]}..., "
                       f"file {actual[:12]}...); the file is corrupt or was replaced: restore it or save the "
                       "model again")
    meta, tensors = _read_safetensors(path)
    # the hash covers the file, not the manifest entry: the entry must equal the card the file carries
    embedded = _parse_card(_card_json(meta, path), path)
    entry, inside = card.to_dict(), embedded.to_dict()
    differ = [f for f in entry if f not in _UNEMBEDDED_FIELDS and entry[f] != inside.get(f)]
    if differ:
        raise ZooError(f"model {card.name!r}: the manifest entry and the card in {path} differ in {differ}; "
                       "the manifest was edited or damaged: restore it, or re-save the model with "
                       "vision.save_model")
    return _build_with_state(path, card, tensors)


def _build_with_state(path: Path, card: ModelCard, tensors: dict[str, torch.Tensor]) -> tuple[nn.Module, ModelCard]:
    model = build_model(card)
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    _load_state_dict(model, state, str(path))
    return model, card


def _load_state_dict(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ZooError(f"{where}: weights do not match the architecture: {str(e).strip().splitlines()[-1]}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ZooError(f"{where}: weights do not match the architecture: missing {result.missing_keys[:5]}, "
                       f"unexpected {result.unexpected_keys[:5]}")


def _from_lightning_checkpoint(path: Path) -> tuple[nn.Module, ModelCard]:
    if not path.is_file():
        raise ZooError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - bad bytes surface as pickle, zip, EOF, runtime or value errors
        # our words, not torch's: its message advises weights_only=False, i.e. running the file's code
        raise ZooError(checkpoint_load_error(path, e)) from None
    task, hparams = _check_checkpoint(ckpt, path)
    _check_sizes(hparams, ckpt["state_dict"], path)
    try:
        card = vision.tasks.TASKS[task].load("card")(path.stem, hparams)
    except ZooError:
        raise
    except KeyError as e:
        raise ZooError(f"{path}: field 'hyper_parameters.{e.args[0]}' is missing") from None
    except (TypeError, ValueError) as e:
        raise ZooError(f"{path}: field 'hyper_parameters' does not describe a {task} model ({e})") from None
    card.validate(where=f"{path} hyper_parameters")
    model = build_model(card)
    prefix = "ema.module." if any(k.startswith("ema.module.") for k in ckpt["state_dict"]) else "model."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    _load_state_dict(model, state, str(path))
    return model, card


def checkpoint_load_error(path, error: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``path``, in our words: torch's own message advises
    ``weights_only=False`` (running the file's code), which vision never does and never suggests."""
    if isinstance(error, pickle.UnpicklingError):
        return (f"{path}: holds objects other than tensors and plain values (pickled classes or code), which "
                "vision never unpickles; use a checkpoint written by vision's own training")
    return (f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: the file is empty, truncated or "
            "damaged); use another checkpoint, e.g. an earlier epoch's")


def _check_sizes(hparams: dict, state: dict[str, torch.Tensor], path: Path) -> None:
    """Class counts and widths of the hyper-parameters within bounds and matched by the checkpoint's tensors,
    before a card lists that many class names or a network allocates that many rows."""
    for key in ("num_classes", "num_coarse_classes", "embedding_size"):
        value = hparams.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_SIZE:
            raise ZooError(f"{path}: field 'hyper_parameters.{key}' must be an integer in 1..{MAX_SIZE:,}, got "
                           f"{repr(value)[:40]}")
        if key != "num_coarse_classes" and not any(value in t.shape for t in state.values()):
            raise ZooError(f"{path}: field 'hyper_parameters.{key}' is {value} but no tensor of 'state_dict' has "
                           "that size; the hyper-parameters were edited or belong to another model")


def _check_checkpoint(ckpt: Any, path: Path) -> tuple[str, dict]:
    """The task and hyper-parameters of a Lightning checkpoint of a vision task module, or a :class:`ZooError`."""
    if not isinstance(ckpt, dict):
        raise ZooError(f"{path}: a checkpoint must be a dict as Lightning saves it, got {type(ckpt).__name__}")
    task = ckpt.get("vision_task")
    if not isinstance(task, str) or task not in vision.tasks.TASKS:
        raise ZooError(f"{path}: not a vision checkpoint with a known task (field 'vision_task' is {task!r}; "
                       f"known: {sorted(vision.tasks.TASKS)})")
    for key in ("state_dict", "hyper_parameters"):
        if key not in ckpt:
            raise ZooError(f"{path}: field {key!r} is missing; not a Lightning checkpoint of a vision task module")
        if not isinstance(ckpt[key], dict) or not all(isinstance(k, str) for k in ckpt[key]):
            raise ZooError(f"{path}: field {key!r} must be a dict with string keys, got {type(ckpt[key]).__name__}")
    bad = next((k for k, v in ckpt["state_dict"].items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        kind = type(ckpt["state_dict"][bad]).__name__
        raise ZooError(f"{path}: field 'state_dict.{bad}' must be a tensor, got {kind}")
    return task, ckpt["hyper_parameters"]
