"""LightningCLI for every task: configs are YAML files in ``configs/`` (repeat ``--config`` to layer them).

Data properties are linked into the model at instantiation (the number of classes, class
names, the coarse table and the eval preprocessing), so an experiment file never repeats them.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import io
import re
import shlex
import sys
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from vision.reports import RunReport
from vision.tasks import all_links
from vision.training import CheckpointError


def _default_precision() -> str:
    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def trainer_defaults() -> dict:
    """Defaults that suit the users: any accelerator, mixed precision on GPU, safe checkpoints."""
    return {
        "accelerator": "auto",
        "devices": "auto",
        "precision": _default_precision(),
        "plugins": [{"class_path": "vision.training.AtomicCheckpointIO"}],
    }


class VisionCLI(LightningCLI):
    """``tools/train.py``: fit, then (with ``--zoo-name``) evaluate and save the model to the zoo.

    ``model`` and ``data`` are any LightningModule / LightningDataModule given by ``class_path``
    (the task table lives in the configs); a task module offers ``eval_model`` and ``model_card``
    to be saved to the zoo.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for source, target in all_links():  # the task table's data -> model links
            parser.link_arguments(source, target, apply_on="instantiate")
        parser.add_argument("--resume", type=str | None, default=None,
                            help="'last' to continue from <run>/checkpoints/last.ckpt, or a checkpoint path")
        parser.add_argument("--zoo-name", "--zoo_name", type=str | None, default=None,
                            help="after training, save the (EMA) weights to the zoo under this name")
        parser.add_argument("--zoo-dir", "--zoo_dir", type=str | None, default=None,
                            help="zoo folder (default: $VISION_ZOO_DIR, else your zoo, ~/.local/share/vision/zoo)")
        parser.add_argument("--zoo-half", "--zoo_half", type=bool, default=False,
                            help="store zoo weights as float16")
        parser.add_argument("--zoo-notes", "--zoo_notes", type=str, default="",
                            help="free text stored in the model card")
        parser.add_argument("--zoo-licence", "--zoo_licence", type=str, default="",
                            help="the weights' licence, stored in the card")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.filename": "epoch{epoch:03d}",
            "checkpoint.auto_insert_metric_name": False,
            "checkpoint.save_last": True,
            # Lightning writes last.ckpt only when a top-k checkpoint is written in the same step, so
            # "top-1 by recency" (monitor=None) is what keeps last.ckpt current after every epoch for --resume.
            "checkpoint.save_top_k": 1,
            "checkpoint.monitor": None,
            "checkpoint.every_n_epochs": 1,
        })


def checkpoint_dir(trainer: pl.Trainer) -> Path:
    """Where ``--resume last`` looks: the checkpoint callback's folder, pinned by :func:`pin_checkpoint_dir`."""
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.dirpath:
            return Path(cb.dirpath)
    return Path(trainer.default_root_dir) / "checkpoints"


def pin_checkpoint_dir(trainer: pl.Trainer) -> None:
    """Give checkpoint callbacks without ``dirpath`` ``<default_root_dir>/checkpoints``.

    Lightning would otherwise put them under the logger's ``version_N/`` (a new folder each run), where
    ``--resume last`` of the next run cannot know to look.
    """
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and not cb.dirpath:
            cb.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")


def resolve_resume(resume: str | None, trainer: pl.Trainer) -> str | None:
    if not resume:
        return None
    if resume == "last":
        folder = checkpoint_dir(trainer)
        if not any(folder.glob("last*.ckpt")):
            raise FileNotFoundError(f"--resume last: no last*.ckpt in {folder}; start without --resume")
        # Lightning's own "last": the newest of last.ckpt, last-v1.ckpt, ... (a second run in the folder writes -v1)
        return "last"
    if not Path(resume).is_file():
        raise FileNotFoundError(f"--resume: checkpoint {resume} not found")
    return resume


def main(args: list[str] | None = None, prog: str = "python tools/train.py") -> VisionCLI:
    """Entry point of ``tools/train.py`` and ``vision train``; ``args`` replaces ``sys.argv[1:]`` (for tests and
    notebooks), ``prog`` is how the command was invoked (the card records ``prog`` + the arguments).

    Ctrl-C ends in ``SystemExit(130)`` after one ``error: interrupted; ...`` line naming the checkpoint kept.
    """
    argv = sys.argv[1:] if args is None else args
    with warnings.catch_warnings(), one_line_config_errors():
        # explicit ``args`` are the point of this parameter; LightningCLI would warn whenever sys.argv is not empty
        warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python")
        cli = VisionCLI(pl.LightningModule, pl.LightningDataModule, subclass_mode_model=True,
                        subclass_mode_data=True, run=False, args=args, trainer_defaults=trainer_defaults(),
                        seed_everything_default=0, save_config_kwargs={"overwrite": True},
                        # no top-level --optimizer/--lr_scheduler: they would silently replace the task's recipe
                        # (warmup + cosine, no-decay groups); the optimiser is the module's `optimizer` argument
                        auto_configure_optimizers=False,
                        # no prefix matching: a misspelt --trainer.max_epoch is an error, not --trainer.max_epochs
                        parser_kwargs={"default_env": False, "allow_abbrev": False})
    cfg = cli.config
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    pin_checkpoint_dir(trainer)
    report = RunReport()  # <run>/report/index.html: curves, final metrics, confusion matrix, config, card
    trainer.callbacks.append(report)
    ckpt = resolve_resume(cfg.get("resume"), trainer)
    with exit_130_when_interrupted(trainer, report):
        try:
            trainer.fit(model, datamodule=data, ckpt_path=ckpt, weights_only=True)
        except CheckpointError as e:  # --resume with a file we refuse: one line, not a traceback
            raise SystemExit(f"error: --resume: {e}") from None
        if cfg.get("zoo_name"):
            card = save_to_zoo(cli, argv, prog)
            if card is not None:
                report.card = card.to_dict()
                report.write(trainer)
    if trainer.is_global_zero and report.page is not None:
        print(f"report: {report.page}", file=sys.stderr)
    return cli


@contextlib.contextmanager
def exit_130_when_interrupted(trainer: pl.Trainer, report: RunReport):
    """Ctrl-C: Lightning catches the KeyboardInterrupt, runs the callbacks' ``on_exception`` and calls
    ``sys.exit(1)``; make that the shell's 130 (like every other ``vision`` command) with one line that says which
    checkpoint is kept (checkpoints are written atomically, so it is whole) and where the report is."""
    try:
        yield
    except SystemExit as e:
        if not trainer.interrupted or e.code not in (1, None):
            raise
        if trainer.is_global_zero:
            last = sorted(checkpoint_dir(trainer).glob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
            kept = (f"the last checkpoint is kept: {last[-1]}; continue with --resume last" if last else
                    "no checkpoint was written yet; start again")
            where = f" (report: {report.page})" if report.page is not None else ""
            print(f"error: interrupted; {kept}{where}", file=sys.stderr)
        raise SystemExit(130) from None


@contextlib.contextmanager
def one_line_config_errors():
    """Turn jsonargparse's 60-line usage dump for a bad config key or value into ``error: <cause>; did you mean
    ...`` (one line, exit 2). Help and --print_config output pass through untouched."""
    captured = io.StringIO()
    real = sys.stderr
    sys.stderr = captured
    try:
        yield
    except SystemExit as e:
        sys.stderr = real
        if e.code in (0, None):
            real.write(captured.getvalue())
            raise
        raise SystemExit(f"error: {config_error(captured.getvalue())}") from None
    except Exception as e:  # noqa: BLE001 - instantiation: jsonargparse wraps our own errors (a missing manifest...)
        sys.stderr = real
        ours = _our_error(e)
        if ours is None:
            real.write(captured.getvalue())
            raise
        raise SystemExit(f"error: {ours}") from None
    finally:
        sys.stderr = real
    real.write(captured.getvalue())


def _our_error(error: BaseException) -> BaseException | None:
    """The first error of ours (a vision error type, or a missing file) in ``error``'s chain, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if type(error).__module__.startswith("vision.") or isinstance(error, FileNotFoundError):
            return error
        error = error.__cause__ or error.__context__
    return None


def config_error(text: str) -> str:
    """The cause in jsonargparse's error output, with the closest valid key when one is near."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [line for line in lines if re.search(r"not accepted|unrecognized arguments|does not exist|not expected|"
                                                  r"not a valid|Does not validate|No action for key|expected",
                                                  line, re.IGNORECASE)]
    cause = next((line for line in causes if "not accepted" in line or "unrecognized" in line),
                 causes[0] if causes else (lines[-1] if lines else "invalid configuration"))
    cause = re.sub(r"^error:\s*", "", cause)
    known = set(re.findall(r"--[\w.-]+", text))  # with '-': --zoo-name
    for class_path in re.findall(r"class_path '([\w.]+)'", text):
        with contextlib.suppress(Exception):
            from vision.tasks import resolve

            module, _, name = class_path.rpartition(".")
            known |= set(inspect.signature(resolve(f"{module}:{name}").__init__).parameters) - {"self"}
    bad = re.findall(r"(--[\w.-]+)|[Oo]ption '(\w+)'|Key '([\w.]+)'", cause)
    for groups in bad:
        key = next(g for g in groups if g)
        # a bare name (a config file's "Group 'trainer' does not accept option 'max_epoch'") against bare names
        pool = known if key.startswith("--") else {k.rsplit(".", 1)[-1].lstrip("-") for k in known}
        close = difflib.get_close_matches(key, sorted(pool - {key}), n=1, cutoff=0.75)
        if close:
            return f"{cause}; did you mean {close[0]!r}?"
    return f"{cause}; run with --help (or --print_config) to see the valid keys"


def save_to_zoo(cli: VisionCLI, argv: list[str], prog: str = "python tools/train.py"):
    """Validate the final (EMA) weights and write them with their card to the zoo; the card on rank 0."""
    from vision.zoo import save_model

    cfg, trainer, model = cli.config, cli.trainer, cli.model
    # every rank validates (the metrics all-reduce), only rank 0 writes
    results = trainer.validate(model, datamodule=cli.datamodule, verbose=False)[0]
    card = None
    if trainer.is_global_zero:
        metrics = {f"val_{k.split('/', 1)[1]}": round(float(v), 4) for k, v in results.items()
                   if k.startswith("val/")}
        card = model.model_card(cfg.zoo_name, metrics=metrics, notes=cfg.get("zoo_notes", ""),
                                licence=cfg.get("zoo_licence", ""),
                                command=f"{prog} {shlex.join(argv)}")  # as invoked: vision train or the script
        card = save_model(model.eval_model, card, cfg.get("zoo_dir"), half=cfg.get("zoo_half", False))
        print(f"saved {card.name} to the zoo: {card.file} sha256={card.sha256[:12]} metrics={card.metrics}")
    trainer.strategy.barrier("vision_zoo_save")  # no rank exits (or reads the zoo) before the file is in place
    return card
