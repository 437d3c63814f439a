"""``vision zoo``: the models and galleries of your zoo and the shipped one, as a table (``--json``, ``--markdown``).

    vision zoo                          # name, task, headline metric, size, licence, shipped or yours
    vision zoo '*resnet*' --task classification
    vision zoo --markdown               # the README's zoo table
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys

from vision.commands import UsageError, add_zoo_dir, command_parser


def headline(task: str, metrics: dict) -> str:
    """``"top-1 0.851"``: the task's headline metric (the task table's) from a card's metrics, or the first one."""
    from vision.tasks import TASKS

    key, label = TASKS[task].headline if task in TASKS else ("", "")
    if key and key in metrics:
        return f"{label} {metrics[key]:.3f}"
    return next((f"{k} {v:g}" for k, v in metrics.items()), "not recorded")


def reproduce_by(command: str) -> str:
    """The card's command cut after its config: ``python tools/train.py --config X ...``."""
    m = re.search(r"(python tools/train\.py|vision train) --config \S+", command or "")
    return f"{m[0]} ..." if m else (command or "not recorded")


def rows(zoo_dir=None, pattern: str | None = None, task: str | None = None) -> list[dict]:
    """One dict per model and gallery along the zoo search path (a model of yours shadows a shipped one)."""
    from vision.tasks import TASKS
    from vision.zoo import read_manifest, shipped_zoo_dir, zoo_search_path

    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task {task!r}; known tasks: {', '.join(sorted(TASKS))}")
    shipped = shipped_zoo_dir().resolve()
    out, seen = [], set()
    for folder in zoo_search_path(zoo_dir):
        origin = "shipped" if folder.resolve() == shipped else "yours"
        for name, card in sorted(read_manifest(folder).items()):
            if name in seen or (task and card.task != task) or (pattern and not fnmatch.fnmatchcase(name, pattern)):
                continue
            seen.add(name)
            path = folder / card.file
            out.append({"name": name, "kind": "model", "task": card.task, "architecture": card.architecture,
                        "input": card.preprocessing.get("input_size"), "headline": headline(card.task, card.metrics),
                        "metrics": card.metrics, "size_mb": round(path.stat().st_size / 1e6, 1) if path.is_file()
                        else None, "licence": card.licence or "not recorded", "origin": origin,
                        "reproduce_by": reproduce_by(card.command), "zoo": str(folder)})
        if task in (None, "embedding"):
            for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
                if path.stem in seen or (pattern and not fnmatch.fnmatchcase(path.stem, pattern)):
                    continue
                seen.add(path.stem)
                out.append({"name": path.stem, "kind": "gallery", "task": "gallery", "architecture": "",
                            "input": None, "headline": "", "metrics": {},
                            "size_mb": round(path.stat().st_size / 1e6, 1),
                            "licence": "", "origin": origin, "reproduce_by": "vision build-gallery ...",
                            "zoo": str(folder)})
    return out


def markdown(table: list[dict]) -> str:
    lines = ["| name | task | headline metric (val) | licence | reproduce by |", "|---|---|---|---|---|"]
    for r in table:
        if r["kind"] == "model":
            lines.append(f"| `{r['name']}` | {r['task']} | {r['headline']} | {r['licence'].split(' (')[0]} | "
                         f"`{r['reproduce_by']}` |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = command_parser("vision zoo", __doc__)
    add_zoo_dir(ap)
    ap.add_argument("pattern", nargs="?", help="only names matching this shell-style pattern, e.g. '*resnet*'")
    ap.add_argument("--task", help="only models of this task")
    fmt = ap.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object per model or gallery instead of a table")
    fmt.add_argument("--markdown", action="store_true", help="the models as a Markdown table (the README's)")
    args = ap.parse_args(argv)

    from vision.zoo import zoo_search_path

    table = rows(args.zoo_dir, args.pattern, args.task)
    if args.json:
        for row in table:
            print(json.dumps(row))
        return 0
    if not table:
        print("no models found in " + ", ".join(map(str, zoo_search_path(args.zoo_dir))), file=sys.stderr)
        return 1
    if args.markdown:
        print(markdown(table))
        return 0
    header = ("name", "task", "headline (val)", "size MB", "licence", "origin")
    cells = [(r["name"], r["task"], r["headline"], str(r["size_mb"]), r["licence"].split(" (")[0], r["origin"])
             for r in table]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(header)]
    for row in (header, tuple("-" * w for w in widths), *cells):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0
