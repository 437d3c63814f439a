"""A reader's baseline for the cross-style brand benchmark: contact sheets of the logos the recogniser misses.

How far are the cross-style goals (icons >= 0.85, wordmarks >= 0.80 end to end) from what the photos allow? Some
composited marks are blurred, tiny, turned or covered past recognition. This script runs the default recogniser
(``BrandRecognizer.from_pretrained(brand_ensemble, simple_icons_gallery, logo_yolo11n)``, text read when the
``[ocr]`` extra is installed) on the benchmark's val photos, finds the queries it does not name right (no detection
with IoU >= 0.5 to the mark's box accepted as its brand) and draws their true boxes, numbered and unlabelled, on
contact sheets, so that a reader can write down the brand each one shows without being told::

    python -m benchmarks.cross_style_sheets --data runs/brand_robustness/data --out runs/sheets   # sheets + index
    python -m benchmarks.cross_style_sheets --data runs/brand_robustness/data --out runs/sheets \\
        --score benchmarks/results/cross_style_readings.yaml                                    # the figures

The readings file maps each kind's sheet numbers to the brand the reader names (a gallery slug) or ``"?"``:
``icon: {0: biome, 1: "?"}``. The score counts, per kind, the recogniser's right queries, the missed ones the
reader named right, and the ceiling their union gives. ``--score`` reuses ``<out>/index.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vision.brands.detection_rule import IOU_MATCH, iou  # the benchmarks' own match of a detection to a mark

TILE, COLUMNS, ROWS = 160, 8, 4


def recognise(data: Path) -> list[dict]:
    """Per cross-style query: its kind, brand and whether the default recogniser names it right."""
    from vision.brands.recognition import BrandRecognizer
    from vision.data.io import load_image

    folder = data / "cross_style"
    queries = json.loads((folder / "queries.json").read_text())
    recognizer = BrandRecognizer.from_pretrained("brand_ensemble", "simple_icons_gallery", "logo_yolo11n",
                                                 device="cpu")
    out = []
    for i, query in enumerate(queries):
        logos = recognizer([load_image(folder / query["image"])])[0].boxes
        right = any(iou(logo["box"], query["box"]) >= IOU_MATCH and logo["brand"] == query["brand"] for logo in logos)
        out.append({"query": i, "image": query["image"], "box": query["box"], "kind": query["kind"],
                    "brand": query["brand"], "right": right})
    return out


def sheets(data: Path, rows: list[dict], out: Path) -> dict:
    """Numbered, unlabelled tiles of each kind's missed queries (their true box with a 15% margin, as the text
    reader frames a logo), 32 to a sheet: ``<out>/<kind>_<n>.png``."""
    import cv2
    import numpy as np

    from vision.brands.recognition import text_crop

    out.mkdir(parents=True, exist_ok=True)
    index = {}
    for kind in sorted({r["kind"] for r in rows}):
        missed = [r for r in rows if r["kind"] == kind and not r["right"]]
        index[kind] = [r["query"] for r in missed]
        tiles = []
        for n, r in enumerate(missed):
            image = cv2.imread(str(data / "cross_style" / r["image"]))
            crop = text_crop(image, r["box"], 0.15)
            scale = min(TILE / crop.shape[1], TILE / crop.shape[0])
            crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))),
                              interpolation=cv2.INTER_CUBIC)
            tile = np.full((TILE + 18, TILE + 8, 3), 255, np.uint8)
            tile[:crop.shape[0], :crop.shape[1]] = crop
            cv2.putText(tile, str(n), (2, TILE + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1)
            tiles.append(tile)
        per_sheet = COLUMNS * ROWS
        for s in range(0, len(tiles), per_sheet):
            page = tiles[s:s + per_sheet]
            page += [np.full_like(tiles[0], 255)] * (-len(page) % COLUMNS)
            grid = np.vstack([np.hstack(page[i:i + COLUMNS]) for i in range(0, len(page), COLUMNS)])
            cv2.imwrite(str(out / f"{kind}_{s // per_sheet}.png"), grid)
    return index


def score(rows: list[dict], index: dict, readings: dict) -> dict:
    """Per kind: queries, right by the recogniser, missed ones the reader named right, and the ceiling."""
    figures = {}
    for kind, queries in index.items():
        named = readings.get(kind) or {}
        unknown = set(named) - set(range(len(queries)))
        if unknown:
            raise ValueError(f"readings for {kind}: no sheet tile numbered {sorted(unknown)[:5]}")
        total = sum(r["kind"] == kind for r in rows)
        right = sum(r["kind"] == kind and r["right"] for r in rows)
        reader = sum(str(named.get(n, "?")) == rows[q]["brand"] for n, q in enumerate(queries))
        unread = sum(str(named.get(n, "?")) == "?" for n in range(len(queries)))
        figures[kind] = {"queries": total, "recogniser_right": right, "missed": len(queries),
                         "missed_named_by_reader": reader, "missed_unread_by_reader": unread,
                         "missed_named_wrong_by_reader": len(queries) - reader - unread,
                         "recogniser_recall": round(right / total, 3),
                         "ceiling_recogniser_or_reader": round((right + reader) / total, 3)}
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="brand_robustness --data folder (cross_style/)")
    ap.add_argument("--out", type=Path, required=True, help="sheets and index.json")
    ap.add_argument("--score", type=Path, help="a readings YAML: print the figures")
    args = ap.parse_args(argv)
    index_path = args.out / "index.json"
    if args.score is None or not index_path.exists():
        rows = recognise(args.data)
        index = sheets(args.data, rows, args.out)
        index_path.write_text(json.dumps({"rows": rows, "index": index}, indent=1))
        print(f"sheets of {sum(map(len, index.values()))} missed queries in {args.out}", file=sys.stderr)
    saved = json.loads(index_path.read_text())
    if args.score is not None:
        import yaml

        readings = yaml.safe_load(args.score.read_text()) or {}
        result = score(saved["rows"], saved["index"], readings)
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
