"""A one-page report of every training run: the curves of each logged metric per epoch, the final numbers, the
latest confusion matrix (classifiers), the resolved config and the zoo card when one was saved.

``tools/train.py`` / ``vision train`` add :class:`RunReport` to every run; it writes ``<run>/report/curves.png`` and
``<run>/report/index.html`` on rank 0 (plain file writes only: no collective runs in a rank-dependent branch).
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


class RunReport(pl.Callback):
    """Collects the epoch-level metrics Lightning logged and writes the report when fitting ends."""

    def __init__(self, folder: str | None = None):
        self.folder = folder
        self.history: list[dict[str, float]] = []
        self.card: dict[str, Any] | None = None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
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

    def report_dir(self, trainer: pl.Trainer) -> Path:
        return Path(self.folder or Path(trainer.default_root_dir) / "report")

    def write(self, trainer: pl.Trainer) -> Path:
        """Write ``curves.png`` and ``index.html`` (again, e.g. after the zoo save added the card)."""
        out = self.report_dir(trainer)
        out.mkdir(parents=True, exist_ok=True)
        curves = plot_curves(self.history, out / "curves.png") if self.history else None
        config = _first_existing(Path(trainer.default_root_dir).rglob("config.yaml"))
        confusion = _latest(Path(trainer.default_root_dir).rglob("confusion/val_epoch*.png"))
        final = {k: v for k, v in (self.history[-1] if self.history else {}).items() if k != "epoch"}
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in sorted(final.items()))
        parts = [f"<h1>Training run: {html.escape(str(trainer.default_root_dir))}</h1>",
                 f"<p>{len(self.history)} validated epoch(s); {trainer.global_step} optimiser steps.</p>",
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
        page = out / "index.html"
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


def _first_existing(paths) -> Path | None:
    return next(iter(sorted(paths)), None)


def _latest(paths) -> Path | None:
    found = sorted(paths, key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None
