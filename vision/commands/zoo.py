"""``vision zoo``: the models of your zoo and the shipped one, as a table (or JSON)."""

from __future__ import annotations

import fnmatch
import json
import sys

from vision.commands import add_zoo_dir, command_parser


def main(argv: list[str] | None = None) -> int:
    ap = command_parser("vision zoo", __doc__)
    add_zoo_dir(ap)
    ap.add_argument("pattern", nargs="?", help="only names matching this shell-style pattern, e.g. '*resnet*'")
    ap.add_argument("--task", help="only models of this task")
    ap.add_argument("--json", action="store_true", help="one JSON object per model instead of a table")
    args = ap.parse_args(argv)

    from vision.zoo import read_manifest, zoo_search_path

    rows, seen = [], set()
    for folder in zoo_search_path(args.zoo_dir):
        for name, card in sorted(read_manifest(folder).items()):
            if name in seen or (args.task and card.task != args.task) or \
                    (args.pattern and not fnmatch.fnmatchcase(name, args.pattern)):
                continue  # a model of yours shadows a shipped one of the same name
            seen.add(name)
            path = folder / card.file
            rows.append({"name": name, "task": card.task, "architecture": card.architecture,
                         "input": card.preprocessing.get("input_size"), "metrics": card.metrics,
                         "size_mb": round(path.stat().st_size / 1e6, 1) if path.is_file() else None,
                         "licence": card.licence or "not recorded", "zoo": str(folder)})
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        print("no models found in " + ", ".join(map(str, zoo_search_path(args.zoo_dir))), file=sys.stderr)
        return 1
    header = ("name", "task", "input", "size MB", "metrics", "licence")
    table = [(r["name"], r["task"], str(r["input"]), str(r["size_mb"]),
              ", ".join(f"{k} {v:g}" for k, v in list(r["metrics"].items())[:2]), r["licence"].split(" (")[0])
             for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    for row in (header, tuple("-" * w for w in widths), *table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0

