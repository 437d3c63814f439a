"""The ``vision`` command: ``vision <command> [options]`` (also ``python -m vision``).

Each command lives in its own module, imported only when that command runs, so ``vision --help`` answers at once.
A user mistake ends in one line ``error: <cause>; <what to do>`` and a non-zero exit; ``VISION_DEBUG=1`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import math
import os
import sys
from pathlib import Path
from typing import Iterator

# command -> ("module:function", one-line help); the function takes argv and returns an exit code (or None)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("vision.commands.train:main", "train any task from YAML configs (LightningCLI)"),
    "predict": ("vision.commands.predict:main", "predictions of any zoo model or export, as JSON lines"),
    "eval": ("vision.commands.eval:main", "metrics of any zoo model on a labelled split (top-k, mAP, recall@k)"),
    "export": ("vision.commands.export:main", "export a zoo model: ONNX, INT8 ONNX, TensorRT, Triton, ultralytics .pt"),
    "extract": ("vision.commands.extract:main", "feature vectors of a folder or manifest (local, Ray Data, Lightning)"),
    "recognize": ("vision.commands.recognize:main", "brands of the logos in photos, or 'unknown' (detector, embedder, "
                  "gallery)"),
    "build-gallery": ("vision.commands.build_gallery:main", "build and calibrate a brand gallery (.npz)"),
    "make-logo-dataset": ("vision.commands.make_logo_dataset:main", "a YOLO logo-detection dataset: simple-icons "
                          "marks pasted on photos"),
    "make-impostors": ("vision.commands.make_impostors:main", "impostor crops of brand-free photos (open-set "
                       "calibration)"),
    "make-verifier-data": ("vision.commands.make_verifier_data:main", "train/val manifests of a logo verifier "
                           "(logo vs brand-free crops)"),
    "make-brand-dataset": ("vision.commands.make_brand_dataset:main",
                           "the brand metric-learning set from simple-icons"),
    "benchmark": ("vision.commands.benchmark:main", "speed of zoo models per runtime and batch size, side by side"),
    "cluster": ("vision.commands.cluster:main", "group a catalog's photos by product, or assign uploads via an index"),
    "dedup": ("vision.commands.dedup:main", "duplicate and near-duplicate images in a catalog, or uploads vs an index"),
    "zoo": ("vision.commands.zoo:main", "list the models in your zoo and the shipped one"),
    "serve": ("vision.commands.serve:main", "serve zoo models and the brand recogniser on Triton Inference Server"),
}


class UsageError(ValueError):
    """Options that do not fit together or do not fit the model (e.g. ``--draw`` with an embedder)."""


def _errors() -> tuple[type[BaseException], ...]:
    """Our error types: a user mistake, reported in one line."""
    from vision.data.datasets import ManifestError
    from vision.data.io import ImageLoadError, NoImagesError
    from vision.ultralytics_compat import MissingExtraError
    from vision.zoo import ZooError

    errors: list[type[BaseException]] = [UsageError, ZooError, ManifestError, ImageLoadError, NoImagesError,
                                         FileNotFoundError, MissingExtraError]
    for module, name in (("vision.export", "ExportError"), ("vision.brands.gallery", "GalleryError"),
                         ("vision.models.detector", "ArchitectureError"), ("vision.serving.runtime", "ServingError"),
                         ("vision.benchmarking", "BenchmarkError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


class HelpFormatter(argparse.HelpFormatter):
    """Lists each option under its first spelling only: the later ones are old spellings kept working
    (``--out-dir`` for ``--out``, ``--zoo_dir`` for ``--zoo-dir``), not part of the vocabulary."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if len(action.option_strings) > 1 and action.option_strings[0].startswith("--"):
            action = copy.copy(action)
            action.option_strings = action.option_strings[:1]
        return super()._format_action_invocation(action)


class CommandParser(argparse.ArgumentParser):
    """argparse with the one-line error of every other mistake: ``error: <cause>; <what to do>`` (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see '{self.prog} --help'\n")


def command_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """The argument parser of a command: its docstring's first paragraph as description, old spellings hidden."""
    return CommandParser(prog=prog, description=" ".join(doc.strip().split("\n\n")[0].split()),
                         formatter_class=HelpFormatter)


# The flags every command spells and means the same way (README: "One flag vocabulary").
def add_images(ap: argparse.ArgumentParser, required: bool = True, what: str = "") -> None:
    """``--images`` and ``--allow-outside-paths`` (give ``args.allow_outside_paths`` to :func:`image_inputs`)."""
    ap.add_argument("--images", nargs="+", required=required,
                    help="image files, folders (recursive), globs ('shelf/*.jpg') and/or manifests ('path, ...' "
                         "lines, relative to the manifest)" + what)
    ap.add_argument("--allow-outside-paths", action="store_true",
                    help="let manifests list absolute paths and paths outside their own folder (refused by default: "
                         "a manifest from an upload must not read other files)")


def pixel_count(text: str) -> int:
    """A pixel count as typed: ``64000000``, ``64e6`` or ``64M`` (argparse ``type=``)."""
    value = text.strip()
    scale = 1_000_000 if value[-1:] in ("M", "m") else 1
    try:
        number = float(value[:-1] if scale > 1 else value) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pixel count (e.g. 64000000, 64e6 or 64M)") from None
    if not (math.isfinite(number) and number >= 1):
        raise argparse.ArgumentTypeError(f"{text!r}: a pixel count must be at least 1")
    return int(number)


def add_device(ap: argparse.ArgumentParser, what: str = "") -> None:
    ap.add_argument("--device", help="cuda, cuda:1 or cpu (default: CUDA when available)" + what)


def add_verifier(ap: argparse.ArgumentParser, what: str = "") -> None:
    """``--verifier``, ``--verifier-power``, ``--verifier-detector-conf``: a logo verifier rescoring the detector's
    boxes (:class:`vision.brands.verification.VerifiedDetector`)."""
    ap.add_argument("--verifier", help="logo verifier (a background/logo classifier, zoo name or file) rescoring the "
                                       "detector's boxes (vision.brands.verification)" + what)
    ap.add_argument("--verifier-power", type=float, default=0.75,
                    help="the verifier's weight in the rescored detection confidence (weighted geometric mean)")
    ap.add_argument("--verifier-detector-conf", type=float, default=None,
                    help="the detector confidence down to which boxes go to the verifier (default: the confidence "
                         "the rescored boxes need)")


def add_zoo_dir(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--zoo-dir", "--zoo_dir", metavar="DIR",
                    help="look model (and gallery) names up in this zoo folder only "
                                                   "(default: $VISION_ZOO_DIR, else your zoo, then the shipped one)")


def add_no_progress(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--no-progress", action="store_true",
                    help="no progress bars (they are drawn only when stderr is a terminal anyway)")


def image_inputs(items: list[str], *, allow_outside: bool = False, skipped: list | None = None) -> list[Path]:
    """The image paths of ``--images``: files as given, folders (recursive), globs and manifests, in order.

    A missing path, a glob matching nothing, a folder without images or an empty manifest is an error here,
    before any model loads; files listed in a manifest that cannot be read are skipped later, like any image.
    A manifest entry that is absolute or outside the manifest's folder is a ``ManifestError`` unless
    ``allow_outside`` (:func:`vision.data.datasets.manifest_images`). Folder entries that cannot be listed (a looping
    symlink, a path too long) go to ``skipped`` as ``(path, reason)``, or into one warning.
    """
    import glob

    from vision.data.datasets import manifest_images
    from vision.data.io import IMG_EXTENSIONS, NoImagesError, collect_images

    found: list[Path] = []
    for item in items:
        if not item.strip():  # Path("") is the current folder: an empty --images value must not read it
            raise UsageError("--images: an empty path; give an image file, a folder, a glob or a manifest")
        path = Path(item)
        if glob.has_magic(item) and not path.exists():
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise FileNotFoundError(f"no file matches {item!r}")
            found += collect_images(matches, skipped=skipped)
        elif path.is_file() and path.suffix.lower() not in IMG_EXTENSIONS:
            listed = manifest_images(path, allow_outside=allow_outside)
            if not listed:
                raise NoImagesError(f"manifest {path} lists no image")
            found += listed
        else:
            found += collect_images([path], skipped=skipped)
    return found


@contextlib.contextmanager
def zoo_dir_scope(zoo_dir: str | None) -> Iterator[None]:
    """``--zoo-dir`` for library calls without a ``zoo_dir=`` parameter: ``$VISION_ZOO_DIR`` is the same lookup
    (that one folder only, :func:`vision.zoo.zoo_search_path`), set for this command only."""
    if not zoo_dir:
        yield
        return
    before = os.environ.get("VISION_ZOO_DIR")
    os.environ["VISION_ZOO_DIR"] = str(zoo_dir)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("VISION_ZOO_DIR", None)
        else:
            os.environ["VISION_ZOO_DIR"] = before


def note(*parts, **kwargs) -> None:
    """A line for the person at the terminal (what was written, what was skipped): stderr, so stdout carries only
    results and reports."""
    print(*parts, **{"file": sys.stderr, **kwargs})


@contextlib.contextmanager
def results_output(out: Path | None) -> Iterator:
    """Where a command writes its JSON Lines results: stdout, or ``out``.

    A file is written as ``<out>.partial`` and renamed to ``out`` once the command finishes, so a file under the
    asked name is always complete; an interrupted or failed run leaves the ``.partial`` file, and says so on stderr.
    An ``out`` that is an existing folder, or a name without a suffix, gets ``results.jsonl`` inside it.
    """
    if out is None:
        yield sys.stdout
        return
    out = Path(out)
    if out.is_dir() or not out.suffix:
        out = out / "results.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    f = partial.open("w", encoding="utf-8")
    try:
        yield f
    except BaseException:
        f.close()
        print(f"note: the run did not finish; the results written so far are in {partial}", file=sys.stderr)
        raise
    f.close()
    os.replace(partial, out)


def results_path(out: Path | None) -> Path | None:
    """The file :func:`results_output` writes for ``out``."""
    if out is None:
        return None
    out = Path(out)
    return out / "results.jsonl" if out.is_dir() or not out.suffix else out


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: vision <command> [options]    (vision <command> --help for its options)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The ``vision`` command. A reader that goes away (``vision zoo | head -3``) ends it quietly, as with ``cat``."""
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):  # stdout may be a pytest capture without a descriptor
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141  # 128 + SIGPIPE, what a shell reports for a process killed by the broken pipe


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from vision import __version__

        print(f"vision {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "run 'vision --help' for the list"
        print(f"error: unknown command {name!r}; {hint}", file=sys.stderr)
        return 2
    module, _, function = COMMANDS[name][0].partition(":")
    run = getattr(importlib.import_module(module), function)
    from vision.progress import quiet_third_party

    try:
        with quiet_third_party(device_lines=name == "train"):
            code = run(rest)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - sorted below: ours are one line, anything else is a bug to show
        if os.environ.get("VISION_DEBUG") or not isinstance(e, _errors()):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0  # a command may return its report instead of a code
