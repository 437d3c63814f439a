"""The installed ``simple-icons-pack``: its icons (slug, title, hex colour, SVG, licence) and their titles.

The dataset writers (:mod:`vision.synth.catalog`) and the text matcher (:mod:`vision.brands.ocr`: a simple-icons brand
in a
gallery is its slug, read on packaging as its title) both list the icons here.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["icons", "titles"]


def icons() -> list:
    """Every icon of the installed pack (objects with ``slug``, ``title``, ``hex``, ``svg``, ``license``,
    ``guidelines``, ``source``), sorted by slug."""
    import simple_icons_pack

    # the package has no listing function: each icon is a module constant named SI_<SLUG>
    found = (getattr(simple_icons_pack, name) for name in simple_icons_pack.__all__ if name.startswith("SI_"))
    return sorted(found, key=lambda icon: icon.slug)


@lru_cache(maxsize=1)
def titles() -> dict[str, str]:
    """Slug -> title of every icon (``"nodedotjs"`` -> ``"Node.js"``)."""
    return {icon.slug: icon.title for icon in icons()}
