from vision.zoo.card import ModelCard, ZooError
from vision.zoo.registry import (
    build_model,
    default_zoo_dir,
    find_card,
    list_galleries,
    list_models,
    load_model,
    read_card,
    read_manifest,
    save_model,
    shipped_zoo_dir,
    user_zoo_dir,
    vision_home,
    zoo_search_path,
)

__all__ = ["ModelCard", "ZooError", "build_model", "default_zoo_dir", "find_card", "list_galleries", "list_models",
           "load_model", "read_card", "read_manifest", "save_model", "shipped_zoo_dir", "user_zoo_dir",
           "vision_home", "zoo_search_path"]
