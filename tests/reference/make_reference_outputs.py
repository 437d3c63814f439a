"""Record what every shipped zoo model outputs on committed sample images, for the registry sweep.

Run once before a structural change (``python -m tests.reference.make_reference_outputs``); the test
``tests/test_reference_outputs.py`` then checks that the models in ``weights/`` still give these outputs, so a
refactor of loading, preprocessing or post-processing cannot change results unnoticed. Re-run it only when a
shipped model is deliberately replaced (its sha256 is recorded, and the test says when it changed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
# fixed, committed inputs: photos (classifier, embedder) and generated logo composites (detector)
PHOTOS = ["data/grocery_sample/val/Fruit/Apple/Granny-Smith/Granny-Smith_001.jpg",
          "data/grocery_sample/val/Fruit/Banana/Banana_003.jpg",
          "data/grocery_sample/val/Packages/Oat-Milk/Oatly-Oat-Milk/Oatly-Oat-Milk_001.jpg",
          "data/grocery_sample/val/Packages/Soyghurt/Alpro-Vanilla-Soyghurt/Alpro-Vanilla-Soyghurt_003.jpg"]
COMPOSITES = ["data/logo_sample/images/val/val_000000.jpg", "data/logo_sample/images/val/val_000001.jpg",
              "data/logo_sample/images/val/val_000002.jpg"]


def shipped_outputs(zoo: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays (``<model>.<output>``) and a JSON record (sha256 per model, detections) for every shipped model."""
    from vision.features import FeatureExtractor
    from vision.inference import ImageClassifier, LogoDetector
    from vision.zoo import read_manifest

    photos = [str(REPO / p) for p in PHOTOS]
    arrays: dict[str, np.ndarray] = {}
    record: dict = {"photos": PHOTOS, "composites": COMPOSITES, "models": {}}
    torch.manual_seed(0)
    for name, card in sorted(read_manifest(zoo).items()):
        entry = {"task": card.task, "sha256": card.sha256}
        path = zoo / card.file
        if card.task == "classification":
            arrays[f"{name}.logits"] = ImageClassifier.from_pretrained(path, device="cpu").logits(photos).numpy()
            arrays[f"{name}.features"] = FeatureExtractor.from_pretrained(path, backend="torch", device="cpu")(photos)
        elif card.task == "embedding":
            arrays[f"{name}.features"] = FeatureExtractor.from_pretrained(path, backend="torch", device="cpu")(photos)
        elif card.task == "detection":
            det = LogoDetector.from_pretrained(path, device="cpu")
            images = [str(REPO / p) for p in COMPOSITES]
            arrays[f"{name}.raw"] = det.raw_outputs(images).numpy()
            entry["detections"] = det.predict(images)
        else:
            raise SystemExit(f"no reference recipe for task {card.task!r} ({name}); add one")
        record["models"][name] = entry
    return arrays, record


def main() -> None:
    arrays, record = shipped_outputs(REPO / "weights")
    np.savez_compressed(OUT / "shipped_outputs.npz", **arrays)
    (OUT / "shipped_outputs.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"recorded {len(arrays)} arrays for {len(record['models'])} models in {OUT}")


if __name__ == "__main__":
    main()
