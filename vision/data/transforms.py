"""Albumentations pipelines: named train presets and the one eval transform.

The eval transform is built only from a :class:`Preprocessing` record, which is stored with
every trained model, so training-time validation, ``vision eval``, ``vision predict`` and
the inference API all preprocess identically (timm's ``resolve_model_data_config`` idea).
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

# albumentations checks PyPI for a newer version at import time; we run offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
from albumentations.pytorch import ToTensorV2  # noqa: E402

from vision.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, Preprocessing  # noqa: E402,F401
from vision.data.style_augment import style_augment_ops  # noqa: E402

_INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
                   "area": cv2.INTER_AREA}  # one per name in INTERPOLATIONS (tests/test_task_table.py checks)


def _finish(pre: Preprocessing) -> list:
    return [A.Normalize(mean=pre.mean, std=pre.std, max_pixel_value=255.0), ToTensorV2()]


def _eval_ops(pre: Preprocessing) -> list:
    interp = _INTERPOLATIONS[pre.interpolation]
    return [A.SmallestMaxSize(max_size=pre.resize_size, interpolation=interp),
            A.CenterCrop(height=pre.input_size, width=pre.input_size), *_finish(pre)]


def build_eval_transform(pre: Preprocessing) -> A.Compose:
    """The eval/inference transform: HxWx3 uint8 RGB -> normalised CHW float tensor."""
    return A.Compose(_eval_ops(pre))


def _light(pre: Preprocessing) -> list:
    size = (pre.input_size, pre.input_size)
    return [A.RandomResizedCrop(size=size, scale=(0.35, 1.0)), A.HorizontalFlip()]


def _standard(pre: Preprocessing) -> list:
    # the "plain" ImageNet recipe: RRC + flip + colour jitter
    size = (pre.input_size, pre.input_size)
    return [A.RandomResizedCrop(size=size, scale=(0.08, 1.0)), A.HorizontalFlip(),
            A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.0)]


def _fine_grained(pre: Preprocessing) -> list:
    # Products differ by colour (apple varieties, carton brands), so hue is left alone;
    # crops stay large enough to keep the label visible; photo-like degradations model phone shots.
    size = (pre.input_size, pre.input_size)
    return [
        A.RandomResizedCrop(size=size, scale=(0.25, 1.0), ratio=(0.75, 1.333)),
        A.HorizontalFlip(),
        A.Affine(rotate=(-15, 15), p=0.3),
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.2, hue=0.0, p=0.8),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.ImageCompression(quality_range=(40, 90)),
                 A.GaussNoise(std_range=(0.02, 0.08))], p=0.3),
    ]


def _logo(pre: Preprocessing) -> list:
    # Logo crops for metric learning: no flips (mirrored wordmarks are other marks), mild reframing, colour and
    # blur changes; the heavy in-the-wild changes (perspective, occlusion, JPEG) are baked into the crops already.
    size = (pre.input_size, pre.input_size)
    return [
        A.RandomResizedCrop(size=size, scale=(0.6, 1.0), ratio=(0.8, 1.25)),
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, p=0.5),
        A.ToGray(p=0.1),
        A.GaussianBlur(blur_limit=(3, 3), sigma_limit=(0.3, 0.8), p=0.1),
    ]


TRAIN_PRESETS: dict[str, Callable[[Preprocessing], list]] = {
    "none": lambda pre: [],
    "light": _light,
    "standard": _standard,
    "fine_grained": _fine_grained,
    "logo": _logo,
}


def build_train_transform(preset: str, pre: Preprocessing,
                          style_augment: Mapping[str, float] | None = None) -> A.Compose:
    """A named training pipeline; ``"none"`` gives the eval transform (useful for debugging).

    ``style_augment``: style-removing transforms by name and probability, applied first, on the crop as read
    (:func:`vision.data.style_augment.style_augment_ops`; e.g. ``{"fill_to_outline": 0.2}``).
    """
    if preset not in TRAIN_PRESETS:
        raise ValueError(f"unknown train preset {preset!r}; choose one of {sorted(TRAIN_PRESETS)}")
    style = style_augment_ops(style_augment)
    ops = TRAIN_PRESETS[preset](pre)
    if not ops:
        return A.Compose([*style, *_eval_ops(pre)])
    return A.Compose([*style, *ops, *_finish(pre)])
