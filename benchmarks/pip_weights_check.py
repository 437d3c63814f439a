#!/usr/bin/env python
"""Are the ``pip:`` ImageNet weights real? Top-5 ImageNet accuracy on Grocery Store val photos of ten produce
classes that ImageNet-1k has, with TF (0.5) and ImageNet normalisation side by side.

    python -m benchmarks.pip_weights_check --grocery ../shared/datasets/grocery_store
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Grocery Store val folder -> ImageNet-1k class index
IMAGENET = {"Fruit/Banana": 954, "Fruit/Lemon": 951, "Fruit/Orange": 950, "Fruit/Pineapple": 953,
            "Fruit/Pomegranate": 957, "Vegetables/Pepper": 945, "Vegetables/Cucumber": 943,
            "Vegetables/Brown-Cap-Mushroom": 947, "Vegetables/Zucchini": 939, "Vegetables/Cabbage": 936}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grocery", type=Path, required=True)
    ap.add_argument("--name", default="efficientnet_lite0", help="a vision.models.pip_weights name")
    ap.add_argument("--per-class", type=int, default=8)
    args = ap.parse_args(argv)
    import numpy as np
    import timm
    import torch
    from PIL import Image

    from vision.data.io import list_images, load_image
    from vision.models.pip_weights import PIP_WEIGHTS, resolve

    model = timm.create_model(PIP_WEIGHTS[args.name].arch, pretrained=True,
                              pretrained_cfg_overlay={"file": str(resolve(args.name))}).eval()
    photos = [(p, index) for folder, index in IMAGENET.items()
              for p in list_images(args.grocery / "val" / folder)[:args.per_class]]
    report = {"photos": len(photos)}
    for label, mean, std in (("tf_0.5", 0.5, 0.5), ("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        hits = 0
        for path, index in photos:
            x = (np.asarray(Image.fromarray(load_image(path)).resize((224, 224)), np.float32) / 255 - mean) / std
            with torch.no_grad():
                top5 = model(torch.from_numpy(np.asarray(x, np.float32)).permute(2, 0, 1)[None]).topk(5).indices[0]
            hits += int(index in top5.tolist())
        report[f"top5_{label}"] = hits
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
