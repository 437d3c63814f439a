"""Cluster outputs: ``clusters.csv`` (``id, cluster, score, reason``; one row per image, singletons included),
``clusters.parquet`` (with pyarrow), ``summary.json`` and ``clusters.html`` (the largest and the most uncertain
clusters as thumbnails, weakest members first, and the images whose membership is weakest overall). Every value
shown in the page is escaped with ``html.escape(quote=True)``.

Example::

    write_cluster_report(vision.cluster("photos/", model="grocery_lite0"), "runs/clusters/")
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path

from vision.clustering.core import ClusterResult


def _e(value) -> str:
    return escape(str(value), quote=True)


def cluster_page(result: ClusterResult, largest: int = 15, uncertain: int = 15, weakest: int = 30,
                 thumb: int = 112, per_cluster: int = 16) -> str:
    from vision.dedup.report import thumbnail

    clusters = {k: v for k, v in result.clusters().items() if len(v) > 1}
    scores, ids, best = result.scores, result.catalog.ids, result.grouping.best_edges()

    def figure(i: int) -> str:
        e = best[i]
        how = f"{e.reason} {e.score:.3f}" if e else "single"
        name = os.path.basename(ids[i])
        return (f"<figure><img src='{_e(thumbnail(ids[i], thumb))}' alt='{_e(name)}' title='{_e(ids[i])}'>"
                f"<figcaption>{_e(name)}<br>score {_e(f'{scores[i]:.3f}')}<br>{_e(how)}</figcaption></figure>")

    def section(title: str, chosen: list[str]) -> str:
        parts = [f"<h2>{_e(title)}</h2>"]
        for label in chosen:
            rows = sorted(clusters[label], key=lambda i: scores[i])  # weakest members first
            more = f"; first {per_cluster} shown" if len(rows) > per_cluster else ""
            parts.append(f"<div class='cluster'><p>{_e(label)}: {_e(len(rows))} images; weakest membership "
                         f"{_e(f'{scores[rows[0]]:.3f}')}{_e(more)}</p>"
                         + "".join(figure(i) for i in rows[:per_cluster]) + "</div>")
        return "\n".join(parts)

    by_size = list(clusters)[:largest]
    by_doubt = sorted(clusters, key=lambda c: (min(scores[i] for i in clusters[c]), c))[:uncertain]
    members = [i for rows in clusters.values() for i in rows]
    weak = sorted(members, key=lambda i: scores[i])[:weakest]
    style = ("body{font-family:sans-serif}.cluster{border-top:1px solid #ccc;margin:8px 0}"
             f"figure{{display:inline-block;margin:4px;width:{thumb + 8}px;font-size:11px;vertical-align:top}}"
             "img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Product clusters</title><style>{style}"
            f"</style></head><body><h1>Product clusters</h1><pre>{_e(json.dumps(result.summary(), indent=1))}</pre>"
            + section(f"Largest {len(by_size)} clusters", by_size)
            + section(f"Most uncertain {len(by_doubt)} clusters (lowest membership score)", by_doubt)
            + f"<h2>{_e(f'Weakest {len(weak)} memberships')}</h2><div class='cluster'>"
            + "".join(figure(i) for i in weak) + "</div></body></html>\n")


def write_cluster_report(result: ClusterResult, folder: str | os.PathLike) -> dict[str, str]:
    """Write every output to ``folder``; returns ``{kind: path}``."""
    from vision.dedup.report import unreadable_lines, write_csv, write_parquet
    from vision.fileio import atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = result.rows()
    written = {"csv": str(write_csv(rows, folder / "clusters.csv"))}
    if write_parquet(rows, folder / "clusters.parquet"):
        written["parquet"] = str(folder / "clusters.parquet")
    atomic_write_text(folder / "unreadable.txt", unreadable_lines(result.catalog.skipped))
    written["unreadable"] = str(folder / "unreadable.txt")
    atomic_write_text(folder / "clusters.html", cluster_page(result))
    written["html"] = str(folder / "clusters.html")
    atomic_write_text(folder / "summary.json", json.dumps(result.summary(), indent=1) + "\n")
    written["summary"] = str(folder / "summary.json")
    return written
