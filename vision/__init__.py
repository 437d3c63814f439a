"""vision: a model zoo for product image understanding.

Example::

    import vision
    vision.list_models()
    clf = vision.ImageClassifier.from_pretrained("grocery_resnet10t")
    clf.predict("photo.jpg", topk=3)
"""

__version__ = "0.1.0"

from vision.features import FeatureExtractor  # noqa: E402
from vision.inference import ImageClassifier  # noqa: E402
from vision.zoo import ModelCard, ZooError, list_models, load_model, save_model  # noqa: E402

__all__ = ["FeatureExtractor", "ImageClassifier", "ModelCard", "ZooError", "__version__", "list_models", "load_model", "save_model"]
