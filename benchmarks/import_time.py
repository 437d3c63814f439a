#!/usr/bin/env python
"""Import time of ``vision`` and of the brand-recognition pipeline, now and at an earlier commit, side by side.

    python -m benchmarks.import_time --before 3f992e7 --repeats 7

Each statement runs in a fresh interpreter ``--repeats`` times, alternating between the two trees (a git worktree
of ``--before`` in a temporary folder and this checkout); the table gives medians and the ratio. Also lists which
heavy libraries each statement loads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATEMENTS = {
    "import vision": "import vision",
    "recognition pipeline": "from vision.brands.recognition import BrandRecognizer",
    "predictor API": "from vision.predictors import predictor",
}
HEAVY = ("torch", "timm", "pytorch_lightning", "ultralytics", "albumentations", "faiss", "resvg_py",
         "simple_icons_pack", "onnxruntime")


def measure(tree: Path, statement: str) -> tuple[float, list[str]]:
    code = ("import time, sys, json; t = time.perf_counter(); " + statement + "; dt = time.perf_counter() - t; "
            f"print(json.dumps([dt, [m for m in {HEAVY!r} if m in sys.modules]]))")
    if not (tree / "vision" / "predictors.py").exists() and "predictors" in statement:
        return float("nan"), []
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        return float("nan"), [out.stderr.strip().splitlines()[-1][:80]]
    seconds, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    return seconds, loaded


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="3f992e7", help="the commit to compare with")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("runs/benchmark/import_time.json"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vision-before-") as scratch:
        before = Path(scratch) / "tree"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(before), args.before],
                       check=True)
        try:
            rows = []
            for label, statement in STATEMENTS.items():
                times: dict[str, list[float]] = {"before": [], "now": []}
                loaded = {}
                for _ in range(args.repeats):
                    for name, tree in (("before", before), ("now", REPO)):
                        seconds, loaded[name] = measure(tree, statement)
                        times[name].append(seconds)
                med = {k: statistics.median(v) for k, v in times.items()}
                both = med["before"] == med["before"] and med["now"] == med["now"]  # NaN: not in that tree
                rows.append({"statement": label, "before_s": round(med["before"], 3) if both else None,
                             "now_s": round(med["now"], 3), "speedup": round(med["before"] / med["now"], 1) if both
                             else None,
                             "loads_before": loaded["before"], "loads_now": loaded["now"]})
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)], check=False)
    result = {"before": args.before, "repeats": args.repeats, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"| statement | {args.before} (s) | now (s) | speedup | heavy modules now |\n|---|---|---|---|---|")
    for r in rows:
        speedup = f"{r['speedup']}x" if r["speedup"] else "-"
        print(f"| {r['statement']} | {r['before_s'] or '-'} | {r['now_s']} | {speedup} | "
              f"{', '.join(r['loads_now']) or 'none'} |")
    return result


if __name__ == "__main__":
    main()
