"""The simple-icons brand catalogue and its seeded, disjoint train/val/test brand split.

Brand marks come from ``simple-icons-pack`` (single-path monochrome SVGs with a brand colour)::

    brands = list_brands()
    splits = split_brands(brands, seed=0)                     # {"train": [slug, ...], "val": [...], "test": [...]}

Licences: simple-icons itself is CC0, but a few hundred brands carry their own ``license`` (CC-BY, CC-BY-SA,
GPL, even CC-BY-NC) or point to trademark ``guidelines``; both are kept on :class:`Brand` and the licences of the
brands a dataset used are written into its ``brands.json``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from vision.data.simple_icons import icons

__all__ = ["SPLITS", "Brand", "Color", "list_brands", "split_brands", "unit_hash"]

Color = tuple[int, int, int]

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class Brand:
    """One brand mark: ``svg`` is the SVG text, ``hex`` the brand colour as ``RRGGBB``.

    ``license`` is ``None`` for the CC0 majority; ``guidelines`` is the URL of the brand's trademark rules, if any.
    """

    slug: str
    title: str
    hex: str
    svg: str
    license: str | None = None
    guidelines: str | None = None
    source: str | None = None

    @property
    def rgb(self) -> Color:
        return _hex_to_rgb(self.hex)


def list_brands() -> list[Brand]:
    """Every brand in the installed ``simple-icons-pack``, sorted by slug."""
    return [Brand(slug=icon.slug, title=icon.title, hex=icon.hex, svg=icon.svg, license=icon.license,
                  guidelines=icon.guidelines, source=icon.source) for icon in icons()]


def split_brands(brands: Iterable[Brand | str], fractions: Sequence[float] = (0.7, 0.15, 0.15),
                 seed: int = 0) -> dict[str, list[str]]:
    """Disjoint ``train``/``val``/``test`` lists of slugs (each sorted) covering every brand.

    Each slug goes to a split by a hash of ``(seed, slug)`` alone, so adding brands to the catalogue never moves
    an existing brand to another split; the price is that the sizes only approach ``fractions`` for many brands.
    """
    fractions = _check_fractions(fractions)
    bounds = np.cumsum(fractions)
    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    for slug in sorted({b.slug if isinstance(b, Brand) else str(b) for b in brands}):
        index = int(np.searchsorted(bounds, unit_hash(seed, "split", slug), side="right"))
        splits[SPLITS[min(index, len(SPLITS) - 1)]].append(slug)
    return splits


def unit_hash(seed: int, purpose: str, slug: str) -> float:
    """A number in [0, 1) fixed by ``(seed, purpose, slug)``; unlike ``hash()`` it is the same in every process.

    The dataset writers order and seed brands by it, so one brand's output never depends on the others'.
    """
    digest = hashlib.sha256(f"{seed}/{purpose}/{slug}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    values = np.asarray(fractions, np.float64)
    if values.shape != (len(SPLITS),) or (values < 0).any() or not math.isclose(values.sum(), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be {len(SPLITS)} non-negative numbers summing to 1 "
                         f"(train, val, test), got {tuple(fractions)}")
    return values


def _hex_to_rgb(value: str) -> Color:
    text = value.lstrip("#")
    if len(text) != 6:
        raise ValueError(f"brand colour must be RRGGBB hex, got {value!r}")
    try:
        return tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        raise ValueError(f"brand colour must be RRGGBB hex, got {value!r}") from None
