"""Benchmark scripts (run from a checkout as ``python -m benchmarks.<name>``); shared helpers below."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def finish_report(report: dict, script: str, argv: list[str] | None, out: Path | None) -> dict:
    """``report`` with the machine (hardware, versions) and the command that made it; the hardware printed, and
    the whole written to ``out`` as JSON when given."""
    from vision.benchmarking import hardware, versions

    report = {**report, "hardware": hardware(), "versions": versions(),
              "command": " ".join([f"python -m benchmarks.{script}", *(argv if argv is not None else sys.argv[1:])])}
    print(f"\nhardware: {report['hardware']}")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
    return report
