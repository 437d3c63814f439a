"""A one-page report of every training run: the curves of each logged metric per epoch, the final numbers, the
latest confusion matrix (classifiers), the resolved config and the zoo card when one was saved.

``tools/train.py`` / ``vision train`` add :class:`RunReport` to every run; it writes ``<run>/report/curves.png`` and
``<run>/report/index.html`` on rank 0 (plain file writes only: no collective runs in a rank-dependent branch).
``<run>`` is the run's own folder, where the logger writes its metrics and Lightning its ``config.yaml``
(``<root>/lightning_logs/version_N``; ``<root>`` itself with ``--trainer.logger false``), so a second run into the
same ``default_root_dir`` gets a report of its own instead of mixing into the first one's.
"""

from __future__ import annotations

import html
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


def headline_metrics(task: str) -> tuple[tuple[str, str], ...]:
    """The logged metrics a task is judged by, with their labels (the task table's ``report_metrics``)."""
    from vision.tasks import TASKS

    return TASKS[task].report_metrics if task in TASKS else ()


class RunReport(pl.Callback):
    """Collects the epoch-level metrics Lightning logged and writes the report when fitting ends."""

    def __init__(self, folder: str | None = None):
        self.folder = folder
        self.history: list[dict[str, float]] = []
        self.card: dict[str, Any] | None = None
        self.run_dir: Path | None = None
        self.task = ""
        self.page: Path | None = None
        self._started = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # on every rank: trainer.log_dir is a broadcast under DDP (the write below runs on rank 0 only)
        self.run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        self.task = getattr(pl_module, "task", "")
        self._started = time.time()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # not on_validation_epoch_end: callbacks run before the module's own hook, which logs the epoch's top-1 /
        # mAP / recall, so the row would miss them (or hold the previous epoch's)
        from pytorch_lightning.trainer.states import TrainerFn

        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return  # the sanity check and a later trainer.validate() are not epochs of the run
        row = {"epoch": float(trainer.current_epoch)}
        for name, value in trainer.callback_metrics.items():
            try:
                row[name] = float(value)
            except (TypeError, ValueError):
                continue
        self.history.append(row)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}  # a resumed run's report keeps the epochs before the crash

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.write(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # an interrupted (Ctrl-C) or failed run still shows the epochs it finished
        if trainer.is_global_zero and self.run_dir is not None:
            self.write(trainer)

    def report_dir(self, trainer: pl.Trainer) -> Path:
        return Path(self.folder) if self.folder else self._run_dir(trainer) / "report"

    def _run_dir(self, trainer: pl.Trainer) -> Path:
        # set in on_fit_start; before fitting (a report written by hand) only the root is known without a broadcast
        return self.run_dir or Path(trainer.default_root_dir)

    def write(self, trainer: pl.Trainer) -> Path:
        """Write ``curves.png`` and ``index.html`` (again, e.g. after the zoo save added the card)."""
        out = self.report_dir(trainer)
        out.mkdir(parents=True, exist_ok=True)
        run = self._run_dir(trainer)
        curves = plot_curves(self.history, out / "curves.png") if self.history else None
        # this run's files only: its own folder, and (with no logger, where runs share the root) written since it began
        config = run / "config.yaml" if (run / "config.yaml").is_file() else None
        confusion = _latest(p for p in run.glob("confusion/val_epoch*.png") if p.stat().st_mtime >= self._started - 1)
        final = {k: v for k, v in (self.history[-1] if self.history else {}).items() if k != "epoch"}
        headline = [(label, final[key]) for key, label in headline_metrics(self.task) if key in final]
        rows = "".join(f"<tr><th>{html.escape(label)}</th><td>{v:.4g}</td></tr>" for label, v in headline)
        rows += "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in sorted(final.items()))
        status = " (interrupted)" if getattr(trainer, "interrupted", False) else ""  # a stand-in trainer has none
        parts = [f"<h1>Training run: {html.escape(str(run))}</h1>",
                 f"<p>{len(self.history)} validated epoch(s); {trainer.global_step} optimiser steps{status}.</p>",
                 f"<h2>Final metrics</h2><table>{rows}</table>"]
        if curves:
            parts.append(f"<h2>Curves</h2>{_img(curves.name, 'metric curves')}")
        if confusion:
            # the path holds the run folder's name (logger name and version, user-chosen): escaped like every text
            parts.append(f"<h2>Confusion matrix (latest validation)</h2>"
                         f"{_img(os.path.relpath(confusion, out), 'confusion matrix', 'max-width:900px')}")
        if self.card:
            card = {k: v for k, v in self.card.items() if k not in ("class_names", "coarse_names", "fine_to_coarse")}
            parts.append(f"<h2>Model card</h2><pre>{html.escape(json.dumps(card, indent=1))}</pre>")
        if config:
            parts.append(f"<h2>Config</h2><pre>{html.escape(config.read_text(encoding='utf-8'))}</pre>")
        page = self.page = out / "index.html"
        page.write_text("<!doctype html><meta charset='utf-8'><title>training run</title><style>body{font-family:"
                        "sans-serif;margin:2em}td{padding:0 1em}pre{background:#f4f4f4;padding:1em}</style>"
                        + "".join(parts), encoding="utf-8")
        return page


def plot_curves(history: list[dict[str, float]], path: Path) -> Path:
    """One panel per metric (``train/loss``, ``val/top1``, ...) against the epoch, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = sorted({k for row in history for k in row if k != "epoch"})
    cols = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(4 * cols, 2.8 * rows))
    FigureCanvasAgg(fig)
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        points = [(row["epoch"], row[name]) for row in history if name in row]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3)
        ax.set_title(name, fontsize=9, parse_math=False, usetex=False)  # a metric name is not mathtext
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def _img(src: str, alt: str, style: str = "") -> str:
    """An ``<img>`` tag, every attribute escaped (``quote=True``: a quote in a path cannot end the attribute)."""
    attrs = f"src='{html.escape(src, quote=True)}' alt='{html.escape(alt, quote=True)}'"
    return f"<img {attrs}" + (f" style='{html.escape(style, quote=True)}'" if style else "") + ">"


def _latest(paths) -> Path | None:
    found = sorted(paths, key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None
