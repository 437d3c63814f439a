"""The image inputs every API accepts (paths, PIL images, HxWxC arrays, CHW tensors) turned into model batches."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from vision.data.io import image_size, load_image

ImageInput = str | Path | Image.Image | np.ndarray | torch.Tensor


def to_rgb_array(image: ImageInput) -> np.ndarray:
    """Any supported image input -> HxWx3 uint8 RGB. Tensors are CHW (uint8, or float in [0, 1])."""
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
            raise TypeError(f"image tensor must be CHW with 1, 3 or 4 channels, got shape {tuple(t.shape)}")
        image = t.permute(1, 2, 0).numpy()
    return load_image(image)


def image_pixels(image: ImageInput) -> int:
    """Width * height of any supported image input, from a file's header (nothing decoded) or an array's shape.

    Raises :class:`~vision.data.io.ImageLoadError` for a file :func:`to_rgb_array` would refuse at its header."""
    if isinstance(image, torch.Tensor):
        if image.ndim != 3:
            raise TypeError(f"image tensor must be CHW with 1, 3 or 4 channels, got shape {tuple(image.shape)}")
        return int(image.shape[1]) * int(image.shape[2])
    width, height = image_size(image)
    return width * height


def to_batch(images: Sequence[ImageInput], transform: Callable) -> torch.Tensor:
    """Images of any size and mode -> one NCHW float batch through an eval ``transform``."""
    return torch.stack([transform(image=to_rgb_array(im))["image"] for im in images])
