from vision.zoo.card import ModelCard, ZooError
from vision.zoo.registry import (build_model, default_zoo_dir, list_models, load_model, read_card,
                                 read_manifest, save_model)

__all__ = ["ModelCard", "ZooError", "build_model", "default_zoo_dir", "list_models", "load_model",
           "read_card", "read_manifest", "save_model"]
