"""Brand marks in other artwork styles: openly licensed Iconify icon sets, matched to simple-icons brands by name.

simple-icons draws every brand as one flat single-colour path; packaging prints full-colour marks, wordmarks and
other redrawings. The npm ``@iconify-json/<prefix>`` packages carry many brand icon sets as one ``icons.json``
each; this module pins the sets we use, fetches them (checksum-verified), reads a folder of them, matches their
icon names to simple-icons slugs and titles, and renders an icon as SVG text for :mod:`vision.synth.render`::

    fetch_icon_sets("runs/iconify")                           # once: downloads the pinned sets (npm registry)
    sets = load_icon_sets("runs/iconify")                     # {prefix: IconSet}, licence recorded
    matched, report = match_brands(sets["devicon"], list_brands())
    matched["nodedotjs"]                                      # [StyleIcon(prefix="devicon", name="nodejs",
                                                              #   kind="icon", ...), ... "nodejs-wordmark" ...]
    rgba = render_logo(icon_svg(matched["nodedotjs"][0]), 96) # the set's own colours

``@iconify-json/logos`` is reserved for independent evaluation and refused everywhere; non-commercial sets are
refused unless asked for. :data:`EVAL_STYLES` are never used to train (embedder or detector): they are the
held-out style of the cross-style evaluation.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import tarfile
import unicodedata
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from vision.fileio import atomic_write_text
from vision.synth.catalog import Brand

__all__ = ["EVAL_STYLES", "ICON_SETS", "REFUSED_SETS", "IconSet", "IconSetError", "MatchReport", "PinnedSet",
           "StyleIcon", "default_icon_sets_dir", "fetch_icon_sets", "icon_kind", "icon_svg", "load_icon_set",
           "load_icon_sets",
           "match_brands", "match_key", "style_catalogue", "title_to_slug", "training_styles"]


@dataclass(frozen=True)
class PinnedSet:
    """One ``@iconify-json/<prefix>`` release: its version and npm ``dist.integrity`` (sha512, base64)."""

    prefix: str
    version: str
    integrity: str
    license: str            # SPDX id as the package states it; checked again against icons.json when loaded


# The brand sets we use. Licences checked against each package's ``info.license``. Not pinned: ``token-branded``
# (names are crypto tickers: ``nim``, ``flux``, ``ray`` would match unrelated simple-icons brands), ``cbi``
# (CC-BY-NC-SA: non-commercial), ``logos`` and ``devicon-plain`` (see REFUSED_SETS).
ICON_SETS: dict[str, PinnedSet] = {p.prefix: p for p in (
    PinnedSet("devicon", "1.2.68", "sha512-4RNlCSNCSgDEOVMHkBOxgik9agJcVRcfXwAZcwMdIolWx/lvXHzo2kqcqTqQGviZuBbnv3L1l"
              "yd+CowyZE+I3g==", "MIT"),
    PinnedSet("skill-icons", "1.2.4", "sha512-S6iRKHGlGCb/zfx3Isv1TBe5PunbDE5FEwJcaXji60+yRZMrcFFtYEI1xivKqaGKXyVZ508"
              "yjGDItsehQdJmSg==", "MIT"),
    PinnedSet("cib", "1.2.3", "sha512-MMvRXVTHt82z3bYN19JDAjv/X8OBNC/1B3I334SV/1nyhdPeeyvJZVoI1cGuNqYznBjMnWxKPtIhhiVg"
              "GQ1CzQ==", "CC0-1.0"),
    PinnedSet("fa6-brands", "1.2.6", "sha512-twL3X4KWcxAhbc1vz/mIDsVr+CAItk1/EIfxKUVQtpv6O4eydk5KNYqTZWdvJNHGInUgd6vKg"
              "21aWfVgb5DXEg==", "CC-BY-4.0"),
    PinnedSet("bxl", "1.2.4", "sha512-R6gVQSxB1+XeVClK7KdACnk1SfP8xiAu6LHuKZmp6Ro5zwMQbpe9vFBv30F6eHMDL8lZ7eXuac5SRJ9C"
              "8DKehQ==", "MIT"),
    PinnedSet("arcticons", "1.2.58", "sha512-oBrvhxt0InVXZojQIyTFpqog4WBVtarEcNYYh7l4Id8GguTTliyUtaSa90fb7L+v1JgwoLJbx"
              "uJVsmsab417Uw==", "CC-BY-SA-4.0"),
    PinnedSet("streamline-logos", "1.2.0", "sha512-eEMC8BvJTCUiR/xdAjKuJwRGnKV5v9Prp2wgONFLKILq1om/5Pz+EUsFXVqYSVeIAUf"
              "guaB2tjy1wM7wJbs0IQ==", "CC-BY-4.0"),
    PinnedSet("vscode-icons", "1.2.97", "sha512-nkqeEluYLK3JGXQqmQKHJHdrHYL/r09yz1RZLRl0qDoBdIlW2JQmTRDxc86lzwcmfIyTXi"
              "b8CBDWEsBj5xVfWQ==", "MIT"),
    PinnedSet("tabler", "1.2.41", "sha512-GHg+H/cnr0anaCoV383JONiOMxZQOdojWYNLgL3x0fRE07YW7c+AHiYmIhXet//oq26T830qitdP"
              "7l43ojiCXw==", "MIT"),
    PinnedSet("material-icon-theme", "1.2.70", "sha512-pctYpp6/3f0TfNoX+yqiC1HRBDxL7+ybOe70MrdyvUa4KcGdtpbsyc4E1qHQTkPI"
              "kpU7+0kfP2MYU2C7BfmNrw==", "MIT"),
)}

# Never used by anything here: ``logos`` is kept for an independent evaluation, ``devicon-plain`` draws the held-out
# style's own marks (a training set or gallery holding it would leak the evaluation); ``cbi`` is non-commercial.
REFUSED_SETS: dict[str, str] = {
    "logos": "@iconify-json/logos is reserved for independent evaluation and must not be used to build any data",
    "devicon-plain": "@iconify-json/devicon-plain is devicon's plain drawings, and devicon is the held-out evaluation "
                     "style (EVAL_STYLES): it must not be used to build any data",
}
_NON_COMMERCIAL = re.compile(r"(^|[-\s])NC([-\s]|$)|non-?commercial", re.IGNORECASE)

# The held-out artwork style: never in any training set (embedder or detector). devicon's full-colour marks and
# wordmarks differ most from simple-icons' flat paths and cover the most test-split brands of the sets that do
# (cib copies simple-icons' paths, so it would not test a new style).
EVAL_STYLES: tuple[str, ...] = ("devicon",)

_REGISTRY = "https://registry.npmjs.org"
_PACKAGE_FILES = ("icons.json", "info.json", "package.json")   # info.json: the set's title and licence
_DEFAULT_SIZE = 16       # Iconify's default icon width/height when neither the icon nor the set gives one


class IconSetError(ValueError):
    """An icon set that cannot be used: refused, unreadable, or failing its checksum. Names the file and why."""


@dataclass(frozen=True)
class StyleIcon:
    """One icon of a set, ready to render: ``body`` is the SVG inner markup in the ``left top width height`` box.

    ``kind`` is ``"wordmark"`` when the set says the icon spells the name, else ``"icon"``.
    """

    prefix: str
    name: str
    body: str
    left: float
    top: float
    width: float
    height: float
    kind: str = "icon"

    @property
    def style(self) -> str:
        return self.prefix

    @property
    def key(self) -> str:
        """``prefix:name``, the Iconify way to name one icon; also used in file names of generated images."""
        return f"{self.prefix}:{self.name}"


@dataclass
class IconSet:
    """One loaded ``icons.json``: its icons by name (aliases resolved), licence and provenance."""

    prefix: str
    title: str
    license: str                    # SPDX id (or the licence title when the set gives no id)
    license_title: str
    license_url: str | None
    version: str | None             # from the package.json fetched beside it, when there
    icons: dict[str, StyleIcon]
    aliases: dict[str, str] = field(default_factory=dict)   # alias name -> icon name (untransformed aliases only)
    path: str | None = None

    def record(self) -> dict:
        """What a dataset records about the set it used."""
        return {"title": self.title, "license": self.license, "license_title": self.license_title,
                "license_url": self.license_url, "version": self.version, "icons": len(self.icons),
                "package": f"@iconify-json/{self.prefix}"}


# ---------------------------------------------------------------------------------------------------------------
# fetching
# ---------------------------------------------------------------------------------------------------------------

def default_icon_sets_dir() -> Path:
    """``$VISION_HOME/iconify`` when ``VISION_HOME`` is set, else ``runs/iconify`` (relative to the working folder)."""
    home = os.environ.get("VISION_HOME")
    return Path(home).expanduser() / "iconify" if home else Path("runs") / "iconify"


def fetch_icon_sets(out_dir: str | os.PathLike | None = None, prefixes: Sequence[str] | None = None, *,
                    overwrite: bool = False, timeout: float = 60.0) -> dict[str, dict]:
    """Download the pinned ``@iconify-json`` releases (default: all of :data:`ICON_SETS`) into ``out_dir``.

    Each set lands as ``out_dir/<prefix>/icons.json`` with ``info.json``, ``package.json`` and ``source.json``
    (version, tarball, the integrity it was verified against). The tarball is checked against the pinned sha512
    before anything is written, and only those JSON files are read out of it (nothing is extracted to disk). A
    set already there at the pinned version is kept unless ``overwrite``. Returns ``{prefix: source record}``.
    """
    out = Path(out_dir) if out_dir is not None else default_icon_sets_dir()
    chosen = list(prefixes) if prefixes is not None else list(ICON_SETS)
    for prefix in chosen:
        _refuse(prefix)
        if prefix not in ICON_SETS:
            raise IconSetError(f"icon set {prefix!r} is not pinned; choose from {', '.join(ICON_SETS)}")
    sources = {}
    for prefix in chosen:
        pinned = ICON_SETS[prefix]
        folder = out / prefix
        source_file = folder / "source.json"
        if not overwrite and source_file.is_file() and (folder / "icons.json").is_file():
            existing = json.loads(source_file.read_text())
            if existing.get("version") == pinned.version and existing.get("integrity") == pinned.integrity:
                sources[prefix] = existing
                continue
        tarball, data = fetch_npm_tarball(f"@iconify-json/{prefix}", pinned.version, pinned.integrity, timeout)
        files = _read_tarball_json(data, [f"package/{n}" for n in _PACKAGE_FILES], tarball)
        source = {"package": f"@iconify-json/{prefix}", "version": pinned.version, "tarball": tarball,
                  "integrity": pinned.integrity, "sha1": hashlib.sha1(data).hexdigest(),  # noqa: S324 - npm shasum
                  "license": pinned.license}
        folder.mkdir(parents=True, exist_ok=True)
        for member in _PACKAGE_FILES:
            atomic_write_text(folder / member, files[f"package/{member}"])
        atomic_write_text(source_file, json.dumps(source, indent=1) + "\n")
        sources[prefix] = source
    return sources


def fetch_npm_tarball(package: str, version: str, integrity: str, timeout: float = 60.0) -> tuple[str, bytes]:
    """``(url, bytes)`` of ``package@version``'s tarball from the npm registry, checked against its pinned
    ``integrity`` (npm's ``sha512-<base64>``) before anything is read out of it (:class:`IconSetError` if not)."""
    url = f"{_REGISTRY}/{package}/-/{package.rsplit('/', 1)[-1]}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed https registry URL
        data = response.read()
    _verify_integrity(data, integrity, url)
    return url, data


def _verify_integrity(data: bytes, integrity: str, name: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    if algorithm not in ("sha512", "sha384", "sha256"):
        raise IconSetError(f"{name}: unsupported integrity algorithm {algorithm!r}")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise IconSetError(f"{name}: checksum mismatch (expected {integrity}, got {algorithm}-{actual}); "
                           "the download is corrupt or the pinned release changed")


def _read_tarball_json(data: bytes, members: Sequence[str], name: str) -> dict[str, str]:
    texts = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in members:
            try:
                info = tar.getmember(member)
            except KeyError:
                raise IconSetError(f"{name}: no {member} in the package") from None
            handle = tar.extractfile(info) if info.isfile() else None
            if handle is None:
                raise IconSetError(f"{name}: {member} is not a regular file")
            text = handle.read().decode("utf-8")
            json.loads(text)   # must parse; raises with the position if not
            texts[member] = text
    return texts


# ---------------------------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------------------------

def _refuse(prefix: str) -> None:
    if prefix in REFUSED_SETS:
        raise IconSetError(f"icon set {prefix!r} refused: {REFUSED_SETS[prefix]}")


def load_icon_set(path: str | os.PathLike, *, allow_non_commercial: bool = False) -> IconSet:
    """Read one Iconify ``icons.json`` (or a folder holding one); refuses ``logos`` and, unless
    ``allow_non_commercial``, sets whose licence is non-commercial (e.g. ``cbi``, CC-BY-NC-SA).
    """
    path = Path(path)
    file = path / "icons.json" if path.is_dir() else path
    data = _read_json(file, missing_ok=False)
    if not isinstance(data.get("prefix"), str) or not isinstance(data.get("icons"), dict):
        raise IconSetError(f"{file}: not an Iconify icon set (needs a 'prefix' string and an 'icons' object)")
    prefix = data["prefix"]
    _refuse(prefix)
    # newer packages keep the set's info (title, licence) in info.json beside icons.json
    info = data.get("info") if isinstance(data.get("info"), dict) else _read_json(file.parent / "info.json")
    licence = info.get("license") if isinstance(info.get("license"), dict) else {}
    spdx, licence_title = licence.get("spdx"), licence.get("title")
    if not spdx and not licence_title:
        raise IconSetError(f"{file}: field info.license is missing (in the file or an info.json beside it); "
                           "a set without a stated licence cannot be used")
    if not allow_non_commercial and _NON_COMMERCIAL.search(f"{spdx or ''} {licence_title or ''}"):
        raise IconSetError(f"{file}: icon set {prefix!r} is licensed {spdx or licence_title} (non-commercial); "
                           "pass allow_non_commercial=True only for private, non-commercial use")

    defaults = {k: data.get(k, 0 if k in ("left", "top") else _DEFAULT_SIZE)
                for k in ("left", "top", "width", "height")}
    icons: dict[str, StyleIcon] = {}
    for name, entry in data["icons"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("body"), str):
            raise IconSetError(f"{file}: field icons.{name}.body is missing or not a string")
        box = {k: entry.get(k, defaults[k]) for k in defaults}
        if not all(isinstance(v, (int, float)) for v in box.values()) or box["width"] <= 0 or box["height"] <= 0:
            raise IconSetError(f"{file}: icons.{name} has a bad view box {box}")
        icons[name] = StyleIcon(prefix, name, entry["body"], float(box["left"]), float(box["top"]),
                                float(box["width"]), float(box["height"]), kind=icon_kind(prefix, name))
    aliases = {}
    for name, entry in (data.get("aliases") or {}).items():
        # aliases that flip or rotate are different drawings; the plain ones only add a name
        if isinstance(entry, dict) and entry.get("parent") in icons and set(entry) <= {"parent", "width", "height"}:
            aliases[name] = entry["parent"]
    version = _read_json(file.parent / "package.json").get("version") if file.name == "icons.json" else None
    return IconSet(prefix=prefix, title=str(info.get("name", prefix)), license=str(spdx or licence_title),
                   license_title=str(licence_title or spdx), license_url=licence.get("url"), version=version,
                   icons=icons, aliases=aliases, path=str(file))


def _read_json(path: Path, missing_ok: bool = True) -> dict:
    """``path`` as a JSON object; ``{}`` when there is no such file and ``missing_ok``."""
    if missing_ok and not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise IconSetError(f"{path}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise IconSetError(f"{path}: not JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(data, dict):
        raise IconSetError(f"{path}: expected a JSON object")
    return data


def load_icon_sets(folder: str | os.PathLike, prefixes: Iterable[str] | None = None, *,
                   exclude: Iterable[str] = (), allow_non_commercial: bool = False) -> dict[str, IconSet]:
    """Every icon set under ``folder`` (``<prefix>/icons.json`` or ``<prefix>.json``), by prefix, sorted.

    ``prefixes`` picks some (missing ones are an error naming what is there); ``exclude`` drops some, e.g.
    :data:`EVAL_STYLES` when building training data (see :func:`training_styles`).
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"icon set folder {root} does not exist; fetch the sets, from a checkout: "
                                f"`python tools/fetch_icon_sets.py --out {root}`")
    candidates = sorted([p for p in root.iterdir() if (p / "icons.json").is_file()]
                        + [p for p in root.glob("*.json") if p.is_file()])
    found: dict[str, Path] = {}
    for path in candidates:
        name = path.stem if path.suffix == ".json" else path.name
        _refuse(name)
        found[name] = path
    wanted = set(prefixes) if prefixes is not None else set(found)
    for prefix in wanted:
        _refuse(prefix)
    missing = wanted - set(found)
    if missing:
        raise FileNotFoundError(f"icon set(s) {sorted(missing)} not under {root} (found: {sorted(found) or 'none'})")
    sets = {}
    for prefix in sorted(wanted - set(exclude)):
        icon_set = load_icon_set(found[prefix], allow_non_commercial=allow_non_commercial)
        if icon_set.prefix != prefix:
            raise IconSetError(f"{icon_set.path}: file is named {prefix!r} but holds the set {icon_set.prefix!r}")
        sets[prefix] = icon_set
    return sets


def training_styles(sets: Mapping[str, IconSet]) -> dict[str, IconSet]:
    """``sets`` without the held-out :data:`EVAL_STYLES`: what any training data may use."""
    return {p: s for p, s in sets.items() if p not in EVAL_STYLES}


def icon_svg(icon: StyleIcon, color: str | None = None) -> str:
    """The icon as standalone SVG text. ``color`` (``#rrggbb``) sets ``currentColor`` (default: black).

    Example::

        render_logo(icon_svg(icon, "#e34f26"), 96)
    """
    def number(v: float) -> str:
        return f"{v:g}"
    box = " ".join(number(v) for v in (icon.left, icon.top, icon.width, icon.height))
    color_attr = f' color="{color}"' if color else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{number(icon.width)}" height="{number(icon.height)}" viewBox="{box}"{color_attr}>'
            f'{icon.body}</svg>')


# ---------------------------------------------------------------------------------------------------------------
# name matching
# ---------------------------------------------------------------------------------------------------------------

# name parts that say which drawing of a brand an icon is, not which brand; stripped from the end of a name
_GENERIC_SUFFIXES = ("icon", "logo", "logos", "alt", "alt2", "square", "circle", "round", "rounded", "filled",
                     "fill", "solid", "outline", "outlined", "color", "colored", "colour", "mono", "monochrome",
                     "symbol", "brand", "official", "light", "dark", "inverse", "inverted", "flat", "badge", "duo",
                     "duotone", "block", "2", "3", "1")
_SET_RULES: dict[str, dict] = {
    "devicon": {"suffixes": ("original", "plain", "line", "wordmark"), "wordmark": "wordmark"},
    "skill-icons": {"suffixes": ("dark", "light", "auto"), "wordmark": None},
    "vscode-icons": {"prefixes": ("file-type-light-", "file-type-"), "skip_prefixes": ("folder-", "default-"),
                     "wordmark": None},
    "fa6-brands": {"strip_prefixes": ("square-",), "wordmark": None},
    "bxl": {"wordmark": None},
    "cib": {"wordmark": None},
    "arcticons": {"wordmark": None},
    "streamline-logos": {"wordmark": "text"},
    "tabler": {"prefixes": ("brand-",), "wordmark": None},     # outline drawings; only brand-* icons name a brand
    "material-icon-theme": {"skip_prefixes": ("folder-",), "wordmark": None},
}


def icon_kind(prefix: str, name: str) -> str:
    """``"wordmark"`` when set ``prefix`` marks icon ``name`` as spelling the brand's name, else ``"icon"``."""
    marker = _SET_RULES.get(prefix, {}).get("wordmark")
    return "wordmark" if marker and marker in name.split("-") else "icon"


def title_to_slug(title: str) -> str:
    """simple-icons' rule from a brand title to its slug: ``"Node.js"`` -> ``"nodedotjs"``, ``"C++"`` ->
    ``"cplusplus"``."""
    text = title.lower().replace("+", "plus").replace(".", "dot").replace("&", "and")
    text = "".join(c for c in unicodedata.normalize("NFD", text.translate(_SPECIAL)) if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]", "", text)


_SPECIAL = str.maketrans({"đ": "d", "ħ": "h", "ı": "i", "ĸ": "k", "ŀ": "l", "ł": "l", "ß": "ss", "ŧ": "t"})


def match_key(text: str) -> str:
    """Lower case, accents dropped, only ``a-z0-9``: ``"Node.js"`` -> ``"nodejs"``."""
    text = "".join(c for c in unicodedata.normalize("NFD", text.lower().translate(_SPECIAL))
                   if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]", "", text)


def _name_candidates(prefix: str, name: str) -> list[str]:
    """Keys to look ``name`` up by, most specific first: the name itself, then with decoration parts dropped."""
    rules = _SET_RULES.get(prefix, {})
    if any(name.startswith(p) for p in rules.get("skip_prefixes", ())):
        return []
    base = name
    for p in rules.get("prefixes", ()):
        if base.startswith(p):
            base = base[len(p):]
            break
    else:
        if rules.get("prefixes"):
            return []          # e.g. vscode-icons: only file-type icons name a technology
    for p in rules.get("strip_prefixes", ()):
        if base.startswith(p):
            base = base[len(p):]
    parts = base.split("-")
    decoration = set(rules.get("suffixes", ())) | set(_GENERIC_SUFFIXES)
    keys = [match_key("".join(parts))]
    while len(parts) > 1 and parts[-1] in decoration:
        parts = parts[:-1]
        keys.append(match_key("".join(parts)))
    return list(dict.fromkeys(k for k in keys if k))


@dataclass
class MatchReport:
    """How one set's icons matched brands: counts plus the names skipped as ambiguous."""

    prefix: str
    icons: int = 0
    matched_icons: int = 0
    brands: int = 0
    ambiguous: list[tuple[str, list[str]]] = field(default_factory=list)   # (icon name, candidate slugs)
    unmatched: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        return {"icons": self.icons, "matched_icons": self.matched_icons, "brands": self.brands,
                "ambiguous": len(self.ambiguous), "unmatched": self.unmatched, "kinds": dict(self.kinds)}


def _brand_index(brands: Iterable[Brand]) -> dict[str, dict[str, int]]:
    """``{key: {slug: tier}}``: tier 0 the slug itself, 1 the title's slug, 2 the bare normalised title."""
    index: dict[str, dict[str, int]] = defaultdict(dict)
    for brand in brands:
        for tier, key in enumerate((brand.slug, title_to_slug(brand.title), match_key(brand.title))):
            if key and tier < index[key].get(brand.slug, 3):
                index[key][brand.slug] = tier
    return index


def _best(candidates: Mapping[str, int]) -> list[str]:
    """The slugs a key names at its most exact tier: ``"c"`` is C's slug before it is C++'s bare title."""
    best = min(candidates.values())
    return sorted(s for s, tier in candidates.items() if tier == best)


def match_brands(icon_set: IconSet, brands: Iterable[Brand],
                 index: Mapping[str, Mapping[str, int]] | None = None
                 ) -> tuple[dict[str, list[StyleIcon]], MatchReport]:
    """``({slug: [icons of that brand in this set]}, report)``.

    An icon name matches a brand when, normalised by :func:`match_key` (and with set-specific decoration such as
    devicon's ``-original``/``-wordmark`` or skill-icons' ``-dark`` dropped, most specific first), it equals the
    brand's slug, its title's slug (:func:`title_to_slug`), or its normalised title, in that order of preference
    (``c`` is C, not C++ whose bare title is also ``c``). A name whose key points to two or more brands at the same
    level is skipped and counted as ambiguous. Plain aliases add names; an icon is listed once per brand.
    """
    index = index if index is not None else _brand_index(brands)
    report = MatchReport(icon_set.prefix, icons=len(icon_set.icons))
    matched: dict[str, dict[str, StyleIcon]] = defaultdict(dict)
    names = [(name, name) for name in icon_set.icons] + list(icon_set.aliases.items())
    kinds: Counter = Counter()
    matched_names: set[str] = set()
    for name, target in names:
        for key in _name_candidates(icon_set.prefix, name):
            if key not in index:
                continue
            slugs = _best(index[key])
            if len(slugs) > 1:
                report.ambiguous.append((name, slugs))
                break
            slug = slugs[0]
            icon = icon_set.icons[target]
            if icon.name not in matched[slug]:
                matched[slug][icon.name] = icon
                kinds[icon.kind] += 1
            matched_names.add(target)
            break
    report.matched_icons = len(matched_names)
    report.unmatched = len(icon_set.icons) - len(matched_names)
    report.brands = len(matched)
    report.kinds = dict(kinds)
    return {slug: list(icons.values()) for slug, icons in sorted(matched.items())}, report


def style_catalogue(sets: Mapping[str, IconSet], brands: Sequence[Brand]
                    ) -> tuple[dict[str, dict[str, list[StyleIcon]]], dict[str, MatchReport]]:
    """``({slug: {prefix: [icons]}}, {prefix: report})`` over several sets: every style each brand has."""
    index = _brand_index(brands)
    catalogue: dict[str, dict[str, list[StyleIcon]]] = defaultdict(dict)
    reports = {}
    for prefix, icon_set in sets.items():
        matched, reports[prefix] = match_brands(icon_set, brands, index)
        for slug, icons in matched.items():
            catalogue[slug][prefix] = icons
    return dict(sorted(catalogue.items())), reports
