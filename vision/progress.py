"""Console output for the command-line tools: warnings that do not break tqdm progress bars."""

from __future__ import annotations

import contextlib
import sys
import warnings
from typing import Iterator

from tqdm import tqdm


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
