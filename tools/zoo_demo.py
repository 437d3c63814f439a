#!/usr/bin/env python
"""Run every shipped model on committed sample photos and write annotated images plus one HTML page.

    python tools/zoo_demo.py --out runs/demo/zoo        # then open runs/demo/zoo/index.html

The classifier labels Grocery Store photos, the detector boxes logos on generated composites, and the brand
recogniser (detector -> crops -> embeddings -> simple-icons gallery) names the brand of each box or says
"unknown". Everything runs on CPU in well under a minute.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PHOTOS = ["val/Fruit/Banana/Banana_003.jpg", "val/Fruit/Apple/Granny-Smith/Granny-Smith_001.jpg",
          "val/Packages/Oat-Milk/Oatly-Oat-Milk/Oatly-Oat-Milk_001.jpg",
          "val/Packages/Soyghurt/Alpro-Vanilla-Soyghurt/Alpro-Vanilla-Soyghurt_003.jpg"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/demo/zoo"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--trained",
                    help="a model you just trained (zoo name or .safetensors), shown beside the shipped one")
    ap.add_argument("--report", type=Path, help="its training run folder (the newest report/index.html is linked)")
    args = ap.parse_args(argv)

    from vision.brands.recognition import BrandRecognizer
    from vision.predictors import predictor

    start = time.perf_counter()
    photos = [REPO / "data" / "grocery_sample" / p for p in PHOTOS]
    composites = sorted((REPO / "data" / "logo_sample" / "images" / "val").glob("*.jpg"))[:4]
    sections = []
    classify = predictor("grocery_lite0", device=args.device, topk=3)
    sections.append(("Fine-grained classification: grocery_lite0", classify(photos), "classification"))
    if args.trained:
        trained = predictor(args.trained, device=args.device, topk=3)
        sections.append((f"The model you just trained: {Path(args.trained).stem}", trained(photos), "trained"))
    detect = predictor("logo_yolo11n", device=args.device)
    sections.append(("Logo detection: logo_yolo11n", detect(composites), "detection"))
    recognise = BrandRecognizer.from_pretrained("brand_ensemble", "simple_icons_gallery", detector="logo_yolo11n",
                                                device=args.device)
    sections.append(("Brand recognition: logo_yolo11n + brand_ensemble + simple-icons gallery",
                     recognise(composites), "recognition"))
    args.out.mkdir(parents=True, exist_ok=True)
    val_brands = set(json.loads((REPO / "data" / "logo_sample" / "brands.json").read_text())["split"]["val"])
    body = []
    for title, results, task in sections:
        cards = []
        for i, result in enumerate(results):
            image = result.save(args.out / f"{task}_{i}_{Path(result.source).name}")
            cards.append(f'<figure><img src="{html.escape(image.name)}"><figcaption>{_caption(result, val_brands)}'
                         f"</figcaption></figure>")
        link = ""
        if task == "trained" and args.report is not None:
            reports = sorted(args.report.glob("**/report/index.html"), key=lambda p: p.stat().st_mtime)
            if reports:
                link = f"<p><a href='{html.escape(os.path.relpath(reports[-1], args.out), quote=True)}'>its training " \
                       "report</a></p>"
        body.append(f"<h2>{html.escape(title)}</h2>{link}<div class='row'>{''.join(cards)}</div>")
    page = args.out / "index.html"
    page.write_text(
        "<!doctype html><meta charset='utf-8'><title>vision model zoo</title><style>body{font-family:sans-serif;"
        "margin:2em}.row{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0;width:320px}img{max-width:320px;"
        "max-height:320px}figcaption{font-size:13px;overflow-wrap:anywhere}.ok{color:#070}.bad{color:#b00}</style>"
        "<h1>vision: the shipped zoo on sample photos</h1>"
        + "".join(body) + f"<p>Made by <code>python tools/zoo_demo.py</code> in {time.perf_counter() - start:.1f} s."
        "</p>", encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps(
        {task: [r.to_dict() for r in results] for _, results, task in sections}, indent=1) + "\n")
    print(f"wrote {page} ({sum(len(r) for _, r, _ in sections)} annotated images)", file=sys.stderr)
    return 0


def _caption(result, val_brands: set[str]) -> str:
    """Prediction beside the ground truth: the photo's class folder, the composite's true boxes, and whether a
    named brand is one of the brands the sample's val composites were drawn from."""
    source = Path(result.source)
    if result.task == "classification":
        truth = source.parent.name
        top = result.topk[0]["label"]
        text = ", ".join(f"{t['label']} {t['score']:.2f}" for t in result.topk)
        mark = "ok" if top == truth else "bad"
        return (f"{html.escape(source.name)}<br>truth: <b>{html.escape(truth)}</b><br>"
                f"<span class='{mark}'>predicted: {html.escape(text)}</span>")
    labels = source.parents[2] / "labels" / source.parent.name / f"{source.stem}.txt"
    n_true = sum(1 for line in labels.read_text().splitlines() if line.strip()) if labels.is_file() else None
    truth = f"truth: {n_true} logo{'s' * (n_true != 1)}" if n_true is not None else "truth: not recorded"
    if result.task == "recognition":
        named = [f"<span class='{'ok' if b['brand'] in val_brands or b['brand'] == 'unknown' else 'bad'}'>"
                 f"{html.escape(b['brand'])} {b['score']:.2f}</span>" for b in result.boxes]
        text = "; ".join(named) or "no logo found"
        return (f"{html.escape(source.name)}<br>{truth} (brands drawn from the sample's {len(val_brands)} val "
                f"brands; red: a brand outside them)<br>{text}")
    text = "; ".join(f"logo {b['score']:.2f}" for b in result.boxes) or "no logo found"
    return f"{html.escape(source.name)}<br>{truth}<br>predicted: {html.escape(text)}"


if __name__ == "__main__":
    raise SystemExit(main())
