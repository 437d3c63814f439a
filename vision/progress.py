"""Console output for the command-line tools: progress bars on stderr, warnings that do not break them, and the
third-party chatter a command should not print."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import warnings
from typing import Iterable, Iterator

from tqdm import tqdm


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs) -> tqdm:
    """A tqdm bar on stderr, shown only when stderr is a terminal and ``enabled`` (``--no-progress`` turns it off),
    so logs and pipes get no carriage-return lines.

        for path in progress_bar(files, enabled=not args.no_progress, desc="recognize", unit="img"): ...
    """
    return tqdm(iterable, disable=None if enabled else True, file=sys.stderr, dynamic_ncols=True, **kwargs)


def progress_wanted(enabled: bool = True) -> bool:
    """Whether :func:`progress_bar` would draw: for libraries that take a flag (``Trainer(enable_progress_bar=)``)."""
    return enabled and sys.stderr.isatty()


@contextlib.contextmanager
def warnings_above_progress_bar() -> Iterator[None]:
    """Show each warning raised inside as one ``warning: ...`` line above the progress bar.

    Skipped inputs are reported with ``warnings.warn`` by the library; Python's default
    ``file:line: Category`` format would both clutter and tear a running tqdm bar.
    """
    def show(message, category, filename, lineno, file=None, line=None):
        tqdm.write(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


# Warnings of libraries we call that tell a user of a command nothing they can act on (message regex, category).
NOISE_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # Lightning calling a deprecated torch.utils._pytree API
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    # Lightning's default logger without tensorboard: we read metrics.csv and write our own report
    (r"Starting from v1\.9\.0, `tensorboardX` has been removed", Warning),
    # the EMA copy of the network is a submodule kept in eval mode on purpose
    (r"Found \d+ module\(s\) in eval mode at the start of training", Warning),
    # timm's moved-module shims, reached through third-party imports
    (r"Importing from timm\.\w+(\.\w+)* is deprecated", FutureWarning),
)
# Lightning's informational lines: adverts in every command; the device lines only where a Trainer is an
# implementation detail (eval), not in train, where they say what the run uses.
ADVERTS = (r"💡 Tip:", r"Loading `train_dataloader` to estimate number of stepping batches")
DEVICE_LINES = (r"^GPU available:", r"^TPU available:", r"^HPU available:", r"^LOCAL_RANK: \d+ - CUDA_VISIBLE_DEVICES",
                r"^Seed set to")
# ultralytics' banners (its own stdout handler: they would land in a command's JSON output); its warnings and the
# corrupt-image lines of a label scan stay
ULTRALYTICS_BANNERS = (r"Fast image access", r"albumentations: ", r"Ultralytics \S+ 🚀", r"summary( \(fused\))?: ")
LIGHTNING_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                     "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                     "pytorch_lightning.accelerators.cuda", "lightning.pytorch.accelerators.cuda")


class _DropMatching(logging.Filter):
    def __init__(self, patterns: Iterable[str]):
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


@contextlib.contextmanager
def quiet_third_party(device_lines: bool = False) -> Iterator[None]:
    """Silence the deprecation noise and adverts of Lightning, torch, timm and ultralytics for one command.

    Scoped to the command entry (``vision.commands.main``), never set at import: a program that imports the
    library keeps its own warning filters and logging. ``device_lines``: keep Lightning's "GPU available" lines.
    """
    filters = [(logging.getLogger(name), _DropMatching(ADVERTS if device_lines else ADVERTS + DEVICE_LINES))
               for name in LIGHTNING_LOGGERS]
    filters.append((logging.getLogger("ultralytics"), _DropMatching(ULTRALYTICS_BANNERS)))
    with warnings.catch_warnings():
        for message, category in NOISE_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        for logger, drop in filters:
            logger.addFilter(drop)
        try:
            yield
        finally:
            for logger, drop in filters:
                logger.removeFilter(drop)
