"""Dedup outputs: the per-image table (CSV, and Parquet when pyarrow is installed), the keep list, and an HTML
contact sheet of the largest and the most uncertain groups (thumbnails inlined as small base64 JPEGs, so the page
is one self-contained file).

Example::

    write_report(result, "runs/dedup/")     # groups.csv, groups.parquet, keep.txt, unreadable.txt, contact_sheet.html
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vision.dedup.catalog import default_workers
from vision.dedup.search import DedupResult

COLUMNS = ("id", "group", "representative", "reason", "score")


def write_csv(rows: list[dict], path: Path) -> Path:
    from vision.fileio import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return path


def write_parquet(rows: list[dict], path: Path) -> Path | None:
    """The rows as Parquet; ``None`` (nothing written) without pyarrow."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    from vision.fileio import atomic_path

    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows), str(tmp))
    return path


def thumbnail(path: str, size: int = 128, quality: int = 70) -> str:
    """A ``data:`` URI of a small JPEG of ``path`` (an empty string if it cannot be read)."""
    from PIL import Image

    from vision.data.io import ImageLoadError, load_image

    try:
        image = Image.fromarray(load_image(path, draft_size=size))
    except (ImageLoadError, OSError):
        return ""
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def contact_sheet(result: DedupResult, largest: int = 20, uncertain: int = 20, thumb: int = 128,
                  per_group: int = 24) -> str:
    """HTML: the ``largest`` biggest groups and the ``uncertain`` groups merged closest to a threshold, each image
    with its thumbnail, score and the stage that matched it (the kept image is outlined; at most ``per_group``
    images of a group are shown, the kept one first)."""
    groups = result.groups()
    root = result.grouping.root
    margins = result.uncertainty()
    reps = result.representatives()
    best = result.grouping.best_edges()
    by_margin = sorted(groups, key=lambda g: (margins.get(root[g[0]], float("inf")), -len(g)))

    def shown(g: list[int]) -> list[int]:
        return sorted(g, key=lambda i: i != reps[root[g[0]]])[:per_group]

    # each image shown is read once (the two sections often show the same groups), on the reading threads
    wanted = list(dict.fromkeys(i for g in groups[:largest] + by_margin[:uncertain] for i in shown(g)))
    with ThreadPoolExecutor(default_workers()) as pool:
        thumbs = dict(zip(wanted, pool.map(lambda i: thumbnail(result.catalog.ids[i], thumb), wanted)))

    def section(title: str, chosen: list[list[int]]) -> str:
        parts = [f"<h2>{html.escape(title)}</h2>"]
        for g in chosen:
            r = root[g[0]]
            margin = margins.get(r, float("inf"))
            parts.append(f"<div class='group'><p>{len(g)} images; smallest margin over threshold: "
                         f"{'exact' if margin == float('inf') else f'{margin:.4f}'}"
                         f"{f'; first {per_group} shown' if len(g) > per_group else ''}</p>")
            for i in shown(g):
                e = best[i]
                kept = " kept" if reps[r] == i else ""
                label = f"{e.reason} {e.score:.3f}" if e else ""
                name = os.path.basename(result.catalog.ids[i])
                parts.append(f"<figure class='{kept.strip()}'><img src='{thumbs[i]}' "
                             f"alt='{html.escape(name)}' title='{html.escape(result.catalog.ids[i])}'>"
                             f"<figcaption>{html.escape(name)}<br>{html.escape(label)}{kept}</figcaption></figure>")
            parts.append("</div>")
        return "\n".join(parts)

    style = ("body{font-family:sans-serif}.group{border-top:1px solid #ccc;margin:8px 0}"
             f"figure{{display:inline-block;margin:4px;width:{thumb + 8}px;font-size:11px;vertical-align:top}}"
             "figure.kept img{outline:3px solid #2a2}img{max-width:100%}")
    s = result.summary()
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Duplicate groups</title><style>{style}"
            f"</style></head><body><h1>Duplicate groups</h1><pre>{html.escape(json.dumps(s, indent=1))}</pre>"
            + section(f"Largest {min(largest, len(groups))} groups", groups[:largest])
            + section(f"Most uncertain {min(uncertain, len(groups))} groups", by_margin[:uncertain])
            + "</body></html>\n")


def unreadable_lines(skipped) -> str:
    """``unreadable.txt``: ``path<TAB>reason`` lines; a path that holds a line break (the reason it was skipped)
    is written as a JSON string, so every entry stays on its line."""
    from vision.dedup.catalog import unlistable_name

    return "".join(f"{json.dumps(p) if unlistable_name(p) else p}\t{why}\n" for p, why in skipped)


def write_report(result: DedupResult, folder: str | os.PathLike, html_groups: int = 20) -> dict[str, str]:
    """Write every output to ``folder``; returns ``{kind: path}``."""
    from vision.fileio import atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = result.rows()
    written = {"csv": str(write_csv(rows, folder / "groups.csv"))}
    parquet = write_parquet(rows, folder / "groups.parquet")
    if parquet:
        written["parquet"] = str(parquet)
    from vision.dedup.catalog import DedupError
    from vision.names import text_line

    # one path per line, read by cleanup scripts: a name that would split is never written (scan_images skips it)
    atomic_write_text(folder / "keep.txt",
                      "".join(f"{text_line(i, 'keep.txt: image path', DedupError)}\n" for i in result.keep()))
    written["keep"] = str(folder / "keep.txt")
    atomic_write_text(folder / "unreadable.txt", unreadable_lines(result.catalog.skipped))
    written["unreadable"] = str(folder / "unreadable.txt")
    atomic_write_text(folder / "contact_sheet.html", contact_sheet(result, html_groups, html_groups))
    written["html"] = str(folder / "contact_sheet.html")
    atomic_write_text(folder / "summary.json", json.dumps(result.summary(), indent=1) + "\n")
    written["summary"] = str(folder / "summary.json")
    return written
