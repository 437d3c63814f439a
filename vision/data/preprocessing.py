"""The preprocessing record stored with every trained model: what inference must do to reproduce eval.

Plain data, no image library: a zoo card (and so ``vision.load_model``'s bookkeeping) reads it without loading
albumentations or OpenCV; :func:`vision.data.transforms.build_eval_transform` turns it into a transform.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")


@dataclass(frozen=True)
class Preprocessing:
    """Everything inference needs to reproduce eval preprocessing exactly.

    Eval = resize the shorter side to ``round(input_size / crop_pct)``, centre-crop
    ``input_size``, scale to [0, 1], normalise with ``mean``/``std``.
    """

    input_size: int = 224
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.input_size < 8:
            raise ValueError(f"preprocessing.input_size must be >= 8, got {self.input_size}")
        if not 0.1 <= self.crop_pct <= 1.0:
            raise ValueError(f"preprocessing.crop_pct must be in [0.1, 1], got {self.crop_pct}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"preprocessing.mean/std need 3 values each and std > 0, got {self.mean} / {self.std}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"preprocessing.interpolation must be one of {sorted(INTERPOLATIONS)}, "
                             f"got {self.interpolation!r}")
        # tuples, so records read back from JSON compare equal to the originals
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def resize_size(self) -> int:
        return int(round(self.input_size / self.crop_pct))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown preprocessing field(s) {sorted(unknown)}")
        return cls(**d)


def yolo_preprocessing(imgsz: int) -> dict:
    """The :class:`Preprocessing` record of a YOLO input: letterbox to ``imgsz``, pixels / 255, no normalisation."""
    return Preprocessing(input_size=imgsz, crop_pct=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)).to_dict()
