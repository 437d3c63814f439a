"""Triton Inference Server model repositories: the network step of a served model (TensorRT plans on a GPU, ONNX
files on Triton's ONNX Runtime backend) and the folder writer every served model folder goes through
(:func:`write_model_folder`; the served layout around the network, image bytes in and ``vision predict``'s JSON out,
is :mod:`vision.serving.repository`, written by its :func:`~vision.serving.repository.export_triton`).

Layout written for ``write_triton_model(artifact, "export/triton")``::

    export/triton/<model>/config.pbtxt      name, platform, max_batch_size, input/output dims without the batch
                                            axis, dynamic batching, instance group (KIND_GPU / KIND_CPU)
    export/triton/<model>/1/model.plan      or 1/model.onnx: the artifact, byte for byte
    export/triton/<model>/labels.txt        class names (logits outputs: Triton's classification extension)
    export/triton/<model>/vision.json       the model card, preprocessing and the artifact's sidecar / parity report
    export/triton/<model>/vision.sha256     sha256 of every other file of the model folder (config.pbtxt,
                                            vision.json, labels.txt, <version>/*) as written, in ``sha256sum``
                                            format (Triton ignores the file; ``sha256sum -c`` reads it)

The model name (``name``, or the card's name plus the backend) must be a plain name
(:func:`vision.names.check_plain_name`) and its folder must lie inside the repository; every string in
``config.pbtxt`` is written through :func:`vision.names.pbtxt_string` and every label through
:func:`vision.names.text_line`, so no name or class adds a line.

The artifact is checked against its own export record before it is copied, and the copy against the artifact;
:func:`verify_triton_repository` checks a repository (or one model folder) against ``vision.sha256`` and refuses
any file that differs, is missing, or has no record (an extra ``1/evil.onnx`` included).

A model folder is replaced whole: the new one is written beside it (``.<model>.new.<pid>.*/model``, fsynced) and swapped
in with one ``renameat2(RENAME_EXCHANGE)`` under the lock ``<repository>/.<model>.lock``; a crash at any point
leaves the previous model folder complete and verifiable. (Where the exchange is not available, two renames;
a crash between them leaves the old folder at ``.<model>.old.<pid>.*``, which the next write of the model puts
back.) Other versions already in the folder are carried over when they match its record.

``max_batch_size`` is the TensorRT profile's max for plans (a larger batch could not run) and a choice for ONNX
files, whose batch axis is dynamic. A client of the network step alone must preprocess as ``vision.json`` says (the
graph starts at the normalised NCHW tensor); clients of the served model send image bytes.

Example::

    write_triton_model("export/grocery.onnx", "export/triton", name="grocery_resnet10t_onnx", max_batch_size=32)
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from vision.export.onnx import (
    INPUT_NAME,
    ArtifactIntegrityError,
    ExportError,
    parity_report_path,
    read_onnx_metadata,
    read_parity_report,
    verify_recorded_digest,
)
from vision.fileio import _fsync_folder, _process_alive, sha256_file
from vision.names import PLAIN_NAME, check_plain_name, pbtxt_string, text_line
from vision.store import file_lock
from vision.tasks import output_meaning

DEFAULT_ONNX_MAX_BATCH = 32
MAX_QUEUE_DELAY_US = 100
# artifact suffix -> (platform, backend, file name in the version folder, default instance kind)
SERVING = {
    ".plan": ("tensorrt_plan", "tensorrt", "model.plan", "KIND_GPU"),
    ".onnx": ("onnxruntime_onnx", "onnxruntime", "model.onnx", "KIND_CPU"),
}
INSTANCE_KINDS = ("KIND_GPU", "KIND_CPU")
DIGESTS = "vision.sha256"   # in the model folder: Triton reads config.pbtxt and numbered version folders only
MAX_DIGESTS_BYTES = 1 << 20  # a record of a few files; anything larger was not written by us
_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<kind>new|old)\.(?P<pid>\d+)\.[A-Za-z0-9_]+")


def write_triton_model(artifact: str | Path, repository: str | Path, *, name: str | None = None,
                       max_batch_size: int | None = None, instance_kind: str | None = None, instance_count: int = 1,
                       version: int = 1) -> Path:
    """Add ``artifact`` (``.plan`` with its sidecar, or ``.onnx`` from our exporters) to a Triton repository as
    model ``name`` (default: the card's name plus the backend); returns the model folder. The folder is written
    beside the old one and swapped in whole (see the module docstring)."""
    artifact = Path(artifact)
    if artifact.suffix not in SERVING:
        raise ExportError(f"{artifact}: Triton serving needs a TensorRT .plan or an .onnx file, got "
                          f"{artifact.suffix or 'no suffix'!r}")
    platform, backend, filename, default_kind = SERVING[artifact.suffix]
    if name is not None:  # before any work: a bad name is the caller's mistake, whatever the artifact
        check_plain_name(name, "Triton model name", ExportError)
    kind = instance_kind or default_kind
    if kind not in INSTANCE_KINDS:
        raise ExportError(f"unknown instance kind {kind!r}; choose one of {list(INSTANCE_KINDS)}")
    for field, value in (("version", version), ("instance_count", instance_count), ("max_batch_size", max_batch_size)):
        if value is not None and (type(value) is not int or value < 1):
            raise ExportError(f"Triton {field} must be a whole number of at least 1, got {value!r}")
    repository = Path(repository)
    if repository.exists() and not repository.is_dir():
        raise ExportError(f"{repository}: exists and is not a folder; a Triton repository is a folder of model "
                          "folders: give --out a folder")
    if artifact.suffix == ".plan":
        io, info = _plan_io(artifact, max_batch_size)
    else:
        io, info = _onnx_io(artifact, max_batch_size)
    card = info["card"]
    if name is None:  # the card's name becomes a folder name and a config string: the same rule
        name = f"{check_plain_name(card['name'], f'{artifact}: model card name', ExportError)}_{backend}"
        check_plain_name(name, "Triton model name", ExportError)
    labels = io["output"] == "logits" and card["class_names"]
    config = _config_text(artifact, name, platform, backend, io, kind, instance_count, labels)
    labels_text = "".join(f"{text_line(c, f'{artifact}: class {i} (labels.txt line {i + 1})', ExportError)}\n"
                          for i, c in enumerate(card["class_names"])) if labels else None
    vision_json = json.dumps({**info, "artifact": artifact.name, "output": io["output"],
                              "output_meaning": output_meaning(io["output"])}, indent=1) + "\n"

    files: dict[str, bytes | Path] = {f"{version}/{filename}": artifact, "vision.json": vision_json.encode(),
                                      "config.pbtxt": config.encode()}
    if labels_text is not None:
        files["labels.txt"] = labels_text.encode()
    return write_model_folder(repository, name, files, version=version,
                              expected={f"{version}/{filename}": info["sha256"]})


def write_model_folder(repository: str | Path, name: str, files: dict[str, bytes | Path], *, version: int = 1,
                       expected: dict[str, str] | None = None) -> Path:
    """Write model folder ``name`` of a Triton repository from ``files`` (``{relative path: bytes or a file to
    copy}``, ``config.pbtxt`` among them) with its ``vision.sha256`` record, and swap it in whole (see the module
    docstring); other recorded versions of the old folder are carried over. ``expected``: sha256 a copied file must
    have (checked after the copy). Returns the model folder."""
    check_plain_name(name, "Triton model name", ExportError)
    repository = Path(repository)
    if repository.exists() and not repository.is_dir():
        raise ExportError(f"{repository}: exists and is not a folder; a Triton repository is a folder of model "
                          "folders: give --out a folder")
    for rel in files:
        parts = rel.split("/")
        if rel == DIGESTS or any(p in ("", ".", "..") or "\\" in p for p in parts):
            raise ExportError(f"Triton model {name}: file name {rel!r} is not a plain relative path")
    repository.mkdir(parents=True, exist_ok=True)
    model_dir = repository / name
    if model_dir.resolve().parent != repository.resolve():  # plain names cannot escape; say so if one ever does
        raise ExportError(f"Triton model name {name!r}: its folder {model_dir.resolve()} is not inside the "
                          f"repository {repository.resolve()}")
    with file_lock(repository / f".{name}.lock", f"Triton model folder {name}", ExportError):
        _recover(repository, name)
        if model_dir.is_symlink() or (model_dir.exists() and not model_dir.is_dir()):
            raise ExportError(f"{model_dir}: not a folder (a link or a file); remove it and export again")
        # the new folder one level down: Triton finds no config.pbtxt nor version folder in the holder
        holder = Path(tempfile.mkdtemp(prefix=f".{name}.new.{os.getpid()}.", dir=repository))
        tmp = holder / "model"
        try:
            (tmp / str(version)).mkdir(parents=True)
            for rel, content in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, Path):
                    shutil.copyfile(content, tmp / rel)
                    if (expected or {}).get(rel) not in (None, sha256_file(tmp / rel)):
                        raise ArtifactIntegrityError(f"{content}: changed while it was copied into {model_dir}; run "
                                                     "the export again")
                else:
                    (tmp / rel).write_bytes(content)
            _carry_versions(model_dir, tmp, skip=str(version))
            (tmp / DIGESTS).write_text(format_digests({rel: sha256_file(tmp / rel) for rel in _files(tmp)}),
                                       encoding="utf-8")
            _fsync_tree(tmp)
            _switch(tmp, model_dir)  # the commit point
        finally:
            shutil.rmtree(holder, ignore_errors=True)  # the new folder on failure, the old one after a swap
    return model_dir


def _config_text(artifact: Path, name: str, platform: str, backend: str, io: dict, kind: str, instance_count: int,
                 labels: bool) -> str:
    """``config.pbtxt``: every string through :func:`pbtxt_string`, numbers checked to be ints."""
    def q(value, what):
        return pbtxt_string(value, f"{artifact}: {what}", ExportError)

    def ints(values, what):
        values = list(values)
        if not all(type(v) is int for v in values):
            raise ExportError(f"{artifact}: {what} must be whole numbers, got {values!r}")
        return ", ".join(map(str, values))

    batch = io["max_batch_size"]
    preferred = sorted({b for b in (io.get("opt_batch"), batch) if b and b > 1})
    label = f"\n    label_filename: {q('labels.txt', 'label file')}" if labels else ""
    source = q(artifact.name, "artifact file name")
    return f"""# written by vision.export.triton from {source}; preprocessing: vision.json
name: {q(name, 'Triton model name')}
platform: {q(platform, 'platform')}
backend: {q(backend, 'backend')}
max_batch_size: {ints([batch], 'max_batch_size')}
input [
  {{
    name: {q(INPUT_NAME, 'input name')}
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ {ints(io['input_dims'], 'input dims')} ]
  }}
]
output [
  {{
    name: {q(io['output'], 'output name')}
    data_type: TYPE_FP32
    dims: [ {ints(io['output_dims'], 'output dims')} ]{label}
  }}
]
dynamic_batching {{
  preferred_batch_size: [ {ints(preferred or [batch], 'preferred batch sizes')} ]
  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}
}}
instance_group [
  {{
    count: {ints([instance_count], 'instance count')}
    kind: {kind}
  }}
]
"""


def _files(folder: Path) -> list[str]:
    """Relative posix paths of every file under ``folder`` but ``vision.sha256``; links and other non-files are
    an :class:`ArtifactIntegrityError` (nothing but plain files is ever written there)."""
    found = []
    for top, dirs, files in os.walk(folder):
        for entry in sorted(dirs) + sorted(files):
            path = Path(top) / entry
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                raise ArtifactIntegrityError(f"{path}: a link or special file in a Triton model folder, which holds "
                                             f"plain files only; refusing {folder.name}. {_rebuild(folder)}")
            if entry in files and not (top == str(folder) and entry == DIGESTS):
                found.append(path.relative_to(folder).as_posix())
    return sorted(found)


def _carry_versions(model_dir: Path, tmp: Path, skip: str) -> None:
    """Copy the other version folders of the old model folder into ``tmp``, those whose files match its record
    (a damaged or unrecorded version is not carried: the rebuild replaces it)."""
    if not model_dir.is_dir():
        return
    try:
        digests, files = _read_digests(model_dir), _files(model_dir)
    except ArtifactIntegrityError:
        return
    by_version: dict[str, list[str]] = {}
    for rel in files:
        head, _, rest = rel.partition("/")
        if rest and head.isdigit() and head != skip:
            by_version.setdefault(head, []).append(rel)
    for rels in by_version.values():
        if all(digests.get(rel) == sha256_file(model_dir / rel) for rel in rels):
            for rel in rels:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(model_dir / rel, tmp / rel)


def _fsync_tree(folder: Path) -> None:
    for top, _, files in os.walk(folder, topdown=False):
        for name in files:
            with open(Path(top) / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_folder(Path(top))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one ``renameat2(RENAME_EXCHANGE)`` (Linux); False where that is not available."""
    func = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None) if os.name == "posix" else None
    if func is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if func(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):  # a filesystem or kernel without it
        return False
    raise OSError(err, os.strerror(err), str(b))


def _switch(new: Path, model_dir: Path) -> None:
    """Make ``new`` the model folder; afterwards ``new`` holds the previous one (or nothing)."""
    if not model_dir.exists():
        os.rename(new, model_dir)
    elif not _exchange(new, model_dir):
        old = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.old.{os.getpid()}.", dir=model_dir.parent))
        os.rename(model_dir, old / "model")
        os.rename(new, model_dir)  # a crash just before: _recover puts the old folder back
        os.rename(old / "model", new)
        old.rmdir()
    _fsync_folder(model_dir.parent)


def _recover(repository: Path, name: str) -> None:
    """Under the model's lock: put back a folder that a crash left at ``.<name>.old.*`` (two-rename switch) and
    remove the temporary folders of dead writers."""
    for path in sorted(repository.iterdir()):
        m = _TEMP.fullmatch(path.name)
        if not m or m["name"] != name or not path.is_dir() or _process_alive(int(m["pid"])):
            continue
        if m["kind"] == "old" and (path / "model").is_dir() and not (repository / name).exists():
            os.rename(path / "model", repository / name)
        shutil.rmtree(path, ignore_errors=True)


def format_digests(digests: dict[str, str]) -> str:
    """``sha256sum`` lines (``<hex>  <path>``), sorted by path."""
    return "".join(f"{sha}  {name}\n" for name, sha in sorted(digests.items()))


def _read_digests(model_dir: Path) -> dict[str, str]:
    """``{relative path: sha256}`` from ``vision.sha256``; a missing, oversized or malformed record is an
    :class:`ArtifactIntegrityError` naming the file (and line)."""
    path = model_dir / DIGESTS
    try:
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise ArtifactIntegrityError(f"{path}: not a plain file; refusing {model_dir.name}. {_rebuild(model_dir)}")
        if path.stat().st_size > MAX_DIGESTS_BYTES:
            raise ArtifactIntegrityError(f"{path}: {path.stat().st_size} bytes, far more than a record of a model "
                                         f"folder; refusing {model_dir.name}. {_rebuild(model_dir)}")
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ArtifactIntegrityError(f"{model_dir}: no {DIGESTS} recording the model files' sha256, so nothing says "
                                     f"they are the exported ones; refusing it. {_rebuild(model_dir)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ArtifactIntegrityError(f"{path}: not readable ({e}); refusing {model_dir.name}. "
                                     f"{_rebuild(model_dir)}") from None
    digests = {}
    for number, line in enumerate(lines, 1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *]([^/\\].*)", line)
        if (match is None or "\\" in match[2] or any(p in ("", ".", "..") for p in match[2].split("/"))
                or match[2] == DIGESTS or match[2] in digests):
            raise ArtifactIntegrityError(f"{path}, line {number}: expected '<sha256>  <relative path>' (each path "
                                         f"once), got {line[:80]!r}; refusing {model_dir.name}. {_rebuild(model_dir)}")
        digests[match[2]] = match[1]
    return digests


def verify_triton_repository(path: str | Path) -> list[Path]:
    """Check every file of every model folder of a Triton repository written by :func:`write_triton_model` (or of
    one model folder) against its ``vision.sha256``: ``config.pbtxt``, ``vision.json``, ``labels.txt`` and each
    version folder's files; returns the files checked. A file that differs from its record, is missing, or has no
    record (an extra file anywhere in the folder), a link, and a folder in the repository that is not a recorded
    model are each an :class:`ArtifactIntegrityError` naming it and the rebuild.

    Example::

        verify_triton_repository("export/triton")   # before pointing tritonserver --model-repository at it
    """
    root = Path(path)
    if not root.is_dir():
        raise ExportError(f"{root}: no such Triton repository folder")
    if (root / "config.pbtxt").exists() or (root / DIGESTS).exists():
        models = [root]
    else:
        models = []
        for entry in sorted(root.iterdir()):
            if entry.name.endswith(".lock") and entry.is_file() and not entry.is_symlink() or _is_holder(entry):
                continue  # our locks, and the temporary folders of a write in progress (or of a crashed one)
            if entry.is_symlink() or (entry.is_dir() and not (entry / "config.pbtxt").is_file()):
                raise ArtifactIntegrityError(f"{entry}: not a model folder written by vision (a link, or no "
                                             f"config.pbtxt); Triton would try to load it: remove it or rebuild it")
            if entry.is_dir():
                models.append(entry)
    if not models:
        raise ExportError(f"{root}: no Triton model folders (with a config.pbtxt) in it")
    checked = []
    for model_dir in models:
        digests = _read_digests(model_dir)
        present = _files(model_dir)
        for name in present + sorted(set(digests) - set(present)):
            file = model_dir / name
            if name not in digests:
                raise ArtifactIntegrityError(f"{file}: not recorded in {model_dir / DIGESTS}; refusing it. "
                                             f"{_rebuild(model_dir)}")
            if not file.is_file():
                raise ArtifactIntegrityError(f"{file}: recorded in {model_dir / DIGESTS} but missing. "
                                             f"{_rebuild(model_dir)}")
            if sha256_file(file) != digests[name]:
                raise ArtifactIntegrityError(f"{file}: sha256 differs from the one in {model_dir / DIGESTS}: the file "
                                             f"is corrupt or was modified after export; refusing it. "
                                             f"{_rebuild(model_dir)}")
            checked.append(file)
        if "config.pbtxt" not in digests:
            raise ArtifactIntegrityError(f"{model_dir}: {DIGESTS} does not record config.pbtxt (written before "
                                         f"model folders were recorded whole); refusing it. {_rebuild(model_dir)}")
    return checked


def _is_holder(entry: Path) -> bool:
    """A temporary folder of a writer: our name, and nothing in it but a ``model`` folder (nothing Triton loads)."""
    if not _TEMP.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
        return False
    return all(c.name == "model" and c.is_dir() and not c.is_symlink() for c in entry.iterdir())


def _rebuild(model_dir: Path) -> str:
    try:
        if (model_dir / "vision.json").stat().st_size > MAX_DIGESTS_BYTES:
            raise ValueError("too large to be ours")
        info = json.loads((model_dir / "vision.json").read_text(encoding="utf-8"))
        model = check_plain_name(info["card"]["name"], "model")
    except Exception:  # any unreadable vision.json or odd name: the hint then names no model
        model = "MODEL"
    config = model_dir / "config.pbtxt"
    text = config.read_text(errors="replace")[:4096] if config.is_file() and not config.is_symlink() else ""
    serving = ("tensorrt" if any(model_dir.glob("*/model.plan")) else
               "onnxruntime" if "onnxruntime" in text else "python")
    name = re.sub(r"_(pre|net|post)$", "", model_dir.name) if PLAIN_NAME.fullmatch(model_dir.name) else "NAME"
    return (f"Rebuild it: vision export --model {model} --format triton --serving {serving} "
            f"--name {name} --out {model_dir.parent}")


def _plan_io(plan: Path, max_batch_size: int | None) -> tuple[dict, dict]:
    from vision.export.tensorrt import check_plan_digest, read_sidecar

    sidecar = read_sidecar(plan)
    check_plan_digest(plan, sidecar)
    profile = sidecar["batch_profile"]
    if max_batch_size is not None and max_batch_size > profile["max"]:
        raise ExportError(f"{plan}: max_batch_size {max_batch_size} exceeds the engine's profile max "
                          f"{profile['max']}; rebuild with --batch {profile['min']},{profile['opt']},{max_batch_size}")
    io = {"max_batch_size": max_batch_size or profile["max"], "opt_batch": profile["opt"],
          "input_dims": sidecar["input"]["shape"][1:], "output": sidecar["output"]["name"],
          "output_dims": sidecar["output"]["shape"][1:]}
    return io, {"card": sidecar["card"], "sidecar": sidecar, "parity": _parity(plan), "sha256": sidecar["sha256"]}


def _onnx_io(path: Path, max_batch_size: int | None) -> tuple[dict, dict]:
    import onnx

    report = verify_recorded_digest(path)
    card, output = read_onnx_metadata(path)
    graph = onnx.load(str(path), load_external_data=False).graph
    (inp,), (out,) = graph.input, graph.output

    def dims(value) -> list:
        return [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]

    in_dims, out_dims = dims(inp), dims(out)
    if in_dims[0] != -1 or out_dims[0] != -1:
        raise ExportError(f"{path}: the batch axis is fixed ({in_dims[0]}); Triton batching needs an export with "
                          "a dynamic batch axis (export_onnx(dynamic_batch=True))")
    if -1 in in_dims[1:] + out_dims[1:]:
        raise ExportError(f"{path}: only the batch axis may be dynamic (input {in_dims}, output {out_dims})")
    io = {"max_batch_size": max_batch_size or DEFAULT_ONNX_MAX_BATCH, "input_dims": in_dims[1:], "output": output,
          "output_dims": out_dims[1:]}
    return io, {"card": card.to_dict(), "parity": report, "sha256": report["sha256"]}


def serving_io(artifact: str | Path, max_batch_size: int | None = None) -> tuple[dict, dict]:
    """``({"max_batch_size", "input_dims", "output", "output_dims"}, {"card", "sha256", ...})`` of an ONNX export or
    a TensorRT plan (dims without the batch axis), checked as :func:`write_triton_model` checks them."""
    artifact = Path(artifact)
    return _plan_io(artifact, max_batch_size) if artifact.suffix == ".plan" else _onnx_io(artifact, max_batch_size)


def _parity(plan: Path) -> dict | None:
    """A plan's parity report, if it has one (a plan from ``build_engine`` alone has none; its sidecar is its
    integrity record)."""
    return read_parity_report(plan) if parity_report_path(plan).is_file() else None
