"""vision: a model zoo for product image understanding.

Example::

    import vision
    vision.list_models()
    clf = vision.ImageClassifier.from_pretrained("grocery_resnet10t")
    clf.predict("photo.jpg", topk=3)
    vision.predictor("logo_yolo11n")("shelf.jpg")[0].to_dict()   # every task, torch / ONNX Runtime / TensorRT

Public names resolve on first use (``import vision`` itself loads no torch, timm or albumentations).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it, imported when the name is first read
_LAZY = {
    "BrandGallery": "vision.brands.gallery",
    "BrandRecognizer": "vision.brands.recognition",
    "FeatureExtractor": "vision.features",
    "ImageClassifier": "vision.inference",
    "ModelCard": "vision.zoo",
    "ZooError": "vision.zoo",
    "build_gallery": "vision.brands.building",
    "cluster": "vision.clustering",
    "evaluate": "vision.evaluation",
    "extract": "vision.scale.engines",
    "list_galleries": "vision.zoo",
    "list_models": "vision.zoo",
    "load_model": "vision.zoo",
    "save_model": "vision.zoo",
    "predictor": "vision.predictors",
}

__all__ = sorted([*_LAZY, "__version__"])

if TYPE_CHECKING:
    from vision.brands.building import build_gallery
    from vision.brands.gallery import BrandGallery
    from vision.brands.recognition import BrandRecognizer
    from vision.clustering import cluster
    from vision.evaluation import evaluate
    from vision.features import FeatureExtractor
    from vision.inference import ImageClassifier
    from vision.predictors import predictor
    from vision.scale.engines import extract
    from vision.zoo import ModelCard, ZooError, list_galleries, list_models, load_model, save_model


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'vision' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later reads skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
