"""Reading brand names on logos: OCR matched against a gallery's brand names.

A wordmark is text, and the brand embedder sees text without reading it (a devicon wordmark's right brand ranks
about 210th). This module reads it: RapidOCR runs PaddleOCR's text detector and recogniser (ONNX models shipped
inside its wheel, Apache-2.0; nothing is downloaded) on a logo crop, and :class:`BrandNames` matches the lines
against the brands' names::

    reader = TextReader()                                    # pip install 'vision-zoo[ocr]'
    names = BrandNames.from_gallery(gallery)                 # simple-icons titles where a brand is a simple-icons slug
    names.match(reader.read([crop])[0])
    # TextMatch(brand='nodedotjs', name='Node.js', text='node.js', score=0.98, how='exact')

Matching compares normalised strings (simple-icons' own title -> slug rule: lower case, ``+`` -> ``plus``, ``.``
-> ``dot``, ``&`` -> ``and``, accents dropped, everything but letters and digits removed; a name with such a symbol
also without it, since OCR often drops a wordmark's small dot: ``Vuejs`` is Vue.js) of every run of up to
:data:`MAX_WORDS` consecutive words the OCR read (across lines, in reading order) with each brand's names:

- ``exact``: a run equals a brand's name (at least :data:`MIN_EXACT` characters);
- ``fuzzy``: a run of at least :data:`MIN_FUZZY` characters is within one edit of a name (two from 10 characters):
  OCR slips such as ``rn`` for ``m``; scored by the similarity;
- ``word``: a single read word of at least :data:`MIN_WORD` characters is a word of exactly one brand's names and
  of no other brand's (``Hadoop`` -> Apache Hadoop): a partial name is weaker evidence and scores
  :data:`WORD_WEIGHT` of the line.

Read text with a letter the name lacks is no match (``ÄPPLE`` is not Apple; OCR dropping an accent is tolerated).
A match whose read text or matched name is an **everyday word** (:func:`everyday_word`: wordfreq's Zipf frequency
at least :data:`EVERYDAY_ZIPF` in one of :data:`EVERYDAY_LANGUAGES`: ``orange`` on a juice carton, ``apple``, ``red``,
``conference``) is marked ``everyday`` and names nothing unless asked (``match(..., everyday=True)``): on real
packaging such words are product descriptions far more often than brands.

A match's ``score`` is the OCR confidence of the lines it was read from times that factor; the strongest kind wins
(exact, then fuzzy, then word), then the higher score, then the longer name, then a brand named exactly so over one
only titled so (simple-icons' ``spring`` over ``spring_creators``, titled "Spring"); two brands still tied are no
match.
:class:`vision.brands.recognition.BrandRecognizer` (``reader=``) names a logo by its text when a match scores at least
its
``text_threshold``, and by the embedder otherwise.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

__all__ = ["TextLine", "TextMatch", "TextReader", "BrandNames", "normalize", "everyday_word", "load_aliases",
           "OCRUnavailable", "missing_packages"]

MAX_WORDS = 4          # the longest run of read words compared with a name
MIN_EXACT = 3          # shorter names ("x", "go") are never matched: too many strings contain them by chance
MIN_FUZZY = 6
MIN_WORD = 5
WORD_WEIGHT = 0.9
KINDS = ("exact", "fuzzy", "word")
EVERYDAY_ZIPF = 4.0    # wordfreq Zipf frequency (log10 of uses per billion words): 4 = ten per million words
EVERYDAY_LANGUAGES = ("en", "sv", "de", "fr", "es", "it", "nl", "pt")
# TextReader: the longer side the text detector sees; on logo crops 128 read as many names as 320 or more, in a
# fifth of the time (benchmarks/brand_text.py --readers)
TEXT_SIDE = 128
LINE_ASPECT = 3.0      # TextReader: a crop this many times wider than high is one line, read without the detector
# TextReader: the recogniser's narrowest input (48 px high), a shorter line padded to it; RapidOCR's 320 doubled the
# recogniser's time on logo crops and read the same names (benchmarks/brand_text.py --gates)
LINE_WIDTH = 96

# simple-icons' titleToSlug (its scripts/utils): the gallery's simple-icons brand names are these slugs
_SUBSTITUTIONS = {"+": "plus", ".": "dot", "&": "and", "đ": "d", "ħ": "h", "ı": "i", "ĸ": "k", "ŀ": "l",
                  "ł": "l", "ß": "ss", "ŧ": "t",
                  # letters NFD does not take apart, which OCR reads on wordmarks ("træfik")
                  "æ": "ae", "œ": "oe", "ø": "o", "þ": "th", "ð": "d"}
_SUBSTITUTE = re.compile("|".join(re.escape(k) for k in _SUBSTITUTIONS))
_SYMBOLS = re.compile(r"[+.&]")   # the substitutions that spell a symbol out
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_WORD_SPLIT = re.compile(r"[\s|/\\,:;()\[\]{}<>\"'`_\-–—*#@!?=~^]+")


OCR_PACKAGES = ("rapidocr", "rapidfuzz", "wordfreq")   # the [ocr] extra: reader, fuzzy names, everyday words


class OCRUnavailable(ImportError):
    """RapidOCR is not installed."""


def missing_packages() -> list[str]:
    """The packages of the ``[ocr]`` extra that are not installed (none: text can be read), found without importing
    them."""
    from importlib.util import find_spec

    return [name for name in OCR_PACKAGES if find_spec(name) is None]


@lru_cache(maxsize=65536)
def everyday_word(text: str, min_zipf: float = EVERYDAY_ZIPF,
                  languages: tuple[str, ...] = EVERYDAY_LANGUAGES) -> bool:
    """Whether ``text``, one word, is in everyday use in one of ``languages``: its Zipf frequency in wordfreq's
    lists (bundled in its wheel, Apache-2.0 code, CC-BY-SA-4.0 data) is at least ``min_zipf``. Several words
    ("Organic Maps", "Red Bull") are not: a name of everyday words is still a name."""
    if len(text.split()) != 1:
        return False
    try:
        from wordfreq import zipf_frequency
    except ImportError:
        raise OCRUnavailable("telling everyday words from brand names needs wordfreq: "
                             "pip install 'vision-zoo[ocr]'") from None
    return max(zipf_frequency(text, lang) for lang in languages) >= min_zipf


def _marked_letters(text: str) -> set[str]:
    """The letters of ``text`` outside ASCII once simple-icons' substitutions are made (``ä``, ``ö``, ``é``)."""
    lowered = _SUBSTITUTE.sub(lambda m: _SUBSTITUTIONS[m.group(0)], text.lower())
    return {c for c in unicodedata.normalize("NFC", lowered) if c.isalpha() and not c.isascii()}


def normalize(text: str, symbols: bool = True) -> str:
    """``text`` as simple-icons turns a title into a slug (``"Node.js"`` -> ``"nodedotjs"``); ``symbols=False``
    drops ``+``, ``.`` and ``&`` instead of spelling them (``"nodejs"``: how a wordmark's small dot is often read)."""
    lowered = text.lower() if symbols else _SYMBOLS.sub("", text.lower())
    lowered = _SUBSTITUTE.sub(lambda m: _SUBSTITUTIONS[m.group(0)], lowered)
    plain = unicodedata.normalize("NFD", lowered).encode("ascii", "ignore").decode()
    return _NOT_ALNUM.sub("", plain)


@dataclass(frozen=True)
class TextLine:
    """One line of read text: its ``score`` is the recogniser's confidence, ``box`` its corners (x, y) in the
    read image's pixels."""

    text: str
    score: float
    box: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class TextMatch:
    """``brand`` (a gallery brand), the ``name`` of it that matched, the ``text`` read, ``score`` and ``how``
    (``exact``, ``fuzzy`` or ``word``)."""

    brand: str
    name: str
    text: str
    score: float
    how: str
    box: tuple[float, float, float, float] | None = None   # x1, y1, x2, y2 around the lines it was read from
    everyday: bool = False   # the read text or the name matched is an everyday word (see everyday_word)
    rank: tuple = field(default=(), repr=False, compare=False)   # the ordering of BrandNames.candidates

    def to_dict(self) -> dict:
        out = {"brand": self.brand, "name": self.name, "text": self.text, "score": round(self.score, 6),
               "how": self.how, "everyday": self.everyday}
        if self.box is not None:
            out["box"] = [round(v, 2) for v in self.box]
        return out


@lru_cache(maxsize=4)
def _engine(params: tuple):
    """One RapidOCR engine per settings and process: loading its ONNX sessions takes about a second, and every
    :class:`TextReader` with the same settings can share them (an engine is not thread-safe)."""
    try:
        from rapidocr import RapidOCR
    except ImportError:
        raise OCRUnavailable("reading text on logos needs RapidOCR: pip install 'vision-zoo[ocr]'") from None
    return RapidOCR(params=dict(params))


class TextReader:
    """OCR of image crops with RapidOCR's bundled PP-OCR ONNX models on ONNX Runtime (CPU).

    Each image is scaled so its longer side is ``side`` pixels (small logo crops are enlarged: the text detector
    misses text a few pixels high), then text regions are found and read; lines read with a confidence under
    ``min_score`` are dropped. An image at least ``line_aspect`` times as wide as it is high (a wordmark's box) is
    read as one line by the recogniser alone: the text detector, most of the cost, is skipped (``None``: never).
    ``threads``: ONNX Runtime's intra-op threads per session (``None``: ONNX Runtime's choice, one per core, which
    measured slower than 1 beside the recogniser's own networks). ``line_width``: the text recogniser's narrowest
    input, 48 pixels high; a shorter line is padded to it (RapidOCR's 320 doubled its time on logos' short words).
    The models are loaded on the first :meth:`read`, once per process for the same settings.
    """

    def __init__(self, side: int = TEXT_SIDE, min_score: float = 0.5, threads: int | None = 1,
                 line_aspect: float | None = LINE_ASPECT, line_width: int = LINE_WIDTH):
        if side < 32:
            raise ValueError(f"side must be at least 32 pixels, got {side}")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be at least 1 (or None: ONNX Runtime's choice), got {threads}")
        if line_aspect is not None and not line_aspect >= 1.0:
            raise ValueError(f"line_aspect must be at least 1 (or None: always detect text first), got {line_aspect}")
        self.side, self.min_score, self.threads = int(side), float(min_score), threads
        self.line_aspect = None if line_aspect is None else float(line_aspect)
        if int(line_width) < 16:
            raise ValueError(f"line_width must be at least 16 pixels, got {line_width}")
        self.line_width = int(line_width)

    @property
    def engine(self):
        params = {"Global.log_level": "error", "Global.use_cls": False, "Global.text_score": self.min_score,
                  "Det.limit_side_len": self.side, "Det.limit_type": "max",
                  "Rec.rec_img_shape": (3, 48, self.line_width)}
        if self.threads is not None:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = int(self.threads)
        return _engine(tuple(sorted(params.items())))

    def read(self, images: Sequence[np.ndarray]) -> list[list[TextLine]]:
        """Per RGB ``uint8`` image (H, W, 3) its lines of text in reading order (top to bottom, left to right),
        boxes in that image's pixels."""
        out = []
        for image in images:
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"TextReader.read takes RGB uint8 (H, W, 3) images, got {image.dtype} "
                                 f"{image.shape}")
            h, w = image.shape[:2]
            if min(h, w) < 2:
                out.append([])
            elif self.line_aspect is not None and w >= self.line_aspect * h:
                out.append(self._read_line(image))
            else:
                out.append(self._read_regions(image))
        return out

    def _read_line(self, image: np.ndarray) -> list[TextLine]:
        """``image`` read as one line of text (the recogniser scales it to its own 48-pixel height)."""
        # use_det is passed on every call: RapidOCR keeps a call's use_det for the calls after it
        result = self.engine(np.ascontiguousarray(image[:, :, ::-1]), use_det=False, use_cls=False)
        h, w = image.shape[:2]
        corners = ((0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h)))
        return [TextLine(str(text), float(score), corners) for text, score in
                zip(getattr(result, "txts", None) or (), getattr(result, "scores", None) or ())
                if text and text.strip() and float(score) >= self.min_score]

    def _read_regions(self, image: np.ndarray) -> list[TextLine]:
        """The text detector's regions of ``image`` (scaled to ``side``), each read."""
        import cv2

        h, w = image.shape[:2]
        scale = self.side / max(h, w)
        resized = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                             interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
        result = self.engine(np.ascontiguousarray(resized[:, :, ::-1]), use_det=True,
                             use_cls=False)   # RapidOCR takes BGR like OpenCV
        boxes = getattr(result, "boxes", None)
        lines = []
        for text, score, box in zip(getattr(result, "txts", None) or (), getattr(result, "scores", None) or (),
                                    boxes if boxes is not None else ()):
            if text and float(score) >= self.min_score:
                corners = tuple((float(x) / scale, float(y) / scale) for x, y in np.asarray(box))
                lines.append(TextLine(str(text), float(score), corners))
        lines.sort(key=lambda line: (min(y for _, y in line.box), min(x for x, _ in line.box))
                   if line.box else (0.0, 0.0))
        return lines


def _box_of(lines: Sequence[TextLine]) -> tuple[float, float, float, float] | None:
    """The axis-aligned box around the corners of ``lines`` (``None`` when they carry none)."""
    corners = [corner for line in lines for corner in line.box]
    if not corners:
        return None
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    return (min(xs), min(ys), max(xs), max(ys))


def load_aliases(path) -> dict[str, list[str]]:
    """More names per brand from a YAML file, ``brand: name`` or ``brand: [name, ...]`` (``god_morgon: God Morgon``);
    read with a safe loader that refuses aliases (no "billion laughs"). A malformed file is a ``ValueError`` naming
    the file and the brand (values shown cut to 80 characters)."""
    import os

    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """Anchors and aliases refused: nested aliases expand exponentially (a "billion laughs" file)."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed in a names "
                                                  "file; write each name out", self.peek_event().start_mark)
            return super().compose_node(parent, index)

    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = yaml.load(f, Loader=NoAliasLoader)   # noqa: S506 - a SafeLoader subclass
    except OSError as e:
        raise ValueError(f"{path}: cannot read brand names: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {' '.join(str(e).split())[:300]}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a mapping of brand -> name or list of names")
    out = {}
    for brand, names in data.items():
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and normalize(n) for n in names):
            raise ValueError(f"{path}: brand {repr(brand)[:80]}: expected a name or a list of names (each with a "
                             f"letter or digit), got {repr(names)[:80]}")
        out[str(brand)] = list(names)
    return out


class BrandNames:
    """The names of a gallery's brands, matched against read text (see the module docstring).

    ``names``: per brand its names (a title, aliases); the brand itself is always one of them.
    """

    def __init__(self, names: Mapping[str, Sequence[str]]):
        self.names = {str(brand): sorted({str(brand), *map(str, titles)}) for brand, titles in names.items()}
        self._exact: dict[str, set[str]] = {}
        self._display: dict[tuple[str, str], str] = {}
        words: dict[str, set[str]] = {}
        for brand, titles in self.names.items():
            for title in titles:
                # a title with a symbol also matches when it is read without it ("Vuejs" for "Vue.js")
                for key in dict.fromkeys((normalize(title), normalize(title, symbols=False))):
                    if len(key) >= MIN_EXACT:
                        self._exact.setdefault(key, set()).add(brand)
                        self._display.setdefault((brand, key), title)
                for word in _WORD_SPLIT.split(title):
                    token = normalize(word)
                    if len(token) >= MIN_WORD:
                        words.setdefault(token, set()).add(brand)
        # a word names a brand only when no other brand has it, as a word or as a whole name
        self._words = {token: next(iter(brands)) for token, brands in words.items()
                       if len(brands) == 1 and not (self._exact.get(token, set()) - brands)}
        self._fuzzy_keys = [key for key in self._exact if len(key) >= MIN_FUZZY]

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_gallery(cls, gallery, aliases: Mapping[str, Sequence[str]] | None = None,
                     source: str | None = None) -> "BrandNames":
        """The names of ``gallery``'s brands: a brand that is a simple-icons slug also gets its simple-icons title
        (``nodedotjs`` -> ``Node.js``); ``aliases`` adds names per brand (a brand not in the gallery is a
        ``ValueError``, naming ``source``, the file the aliases came from, when given)."""
        from vision.data.simple_icons import titles as simple_icons_titles

        titles = simple_icons_titles()
        names = {brand: [titles[brand]] if brand in titles else [] for brand in gallery.brands}
        for brand, extra in (aliases or {}).items():
            if brand not in names:
                raise ValueError(f"{source + ': ' if source else ''}names for {brand!r}, which is not a brand of "
                                 f"the gallery")
            names[brand] = [*names[brand], *extra]
        return cls(names)

    def match(self, lines: Sequence[TextLine], kinds: Sequence[str] = KINDS,
              everyday: bool = False) -> TextMatch | None:
        """The brand the read ``lines`` name, or ``None`` (nothing read, nothing matched, or a tie between
        brands); ``kinds``: the kinds of match allowed; ``everyday``: also let read everyday words name a brand."""
        found = [m for m in self.candidates(lines) if m.how in kinds and (everyday or not m.everyday)]
        if not found:
            return None
        top = found[0]
        if len(found) > 1 and found[1].rank == top.rank:
            return None   # two brands equally named by the text
        return top

    def candidates(self, lines: Sequence[TextLine]) -> list[TextMatch]:
        """Every brand the read ``lines`` name, strongest first (exact, fuzzy, word; then by score; then the
        longer name), one match per brand; everyday words included (marked)."""
        words: list[tuple[str, str, float, int]] = []   # (word as read, normalised, its line's score, its line)
        for index, line in enumerate(lines):
            for word in _WORD_SPLIT.split(line.text):
                if key := normalize(word):
                    words.append((word, key, line.score, index))
        # (kind rank, -score, -len, 1 when the brand is only titled so, brand, name, text, (first, last line))
        found: list[tuple[int, float, int, int, str, str, str, tuple[int, int]]] = []
        for start in range(len(words)):
            for end in range(start + 1, min(start + MAX_WORDS, len(words)) + 1):
                run = words[start:end]
                key = "".join(w[1] for w in run)
                text = " ".join(w[0] for w in run)
                score = min(w[2] for w in run)
                span = (run[0][3], run[-1][3])
                for brand in self._exact.get(key, ()):   # a brand named exactly so before one titled so
                    found.append((0, -score, -len(key), int(normalize(brand) != key), brand,
                                  self._display[brand, key], text, span))
                if len(key) >= MIN_FUZZY and key not in self._exact:
                    found += [(*hit, span) for hit in self._fuzzy(key, text, score)]
                if end - start == 1 and key in self._words:
                    brand = self._words[key]
                    found.append((2, -score * WORD_WEIGHT, -len(key), 0, brand, self._title_of(brand, key), text,
                                  span))
        found.sort()
        seen, out = set(), []
        for rank, score, length, titled, brand, name, text, span in found:
            if brand in seen or _marked_letters(text) - _marked_letters(name):
                continue   # one match per brand; a letter read that the name lacks: not that name
            seen.add(brand)
            out.append(TextMatch(brand=brand, name=name, text=text, score=-score, how=KINDS[rank],
                                 box=_box_of(lines[span[0]:span[1] + 1]),
                                 everyday=everyday_word(text) or everyday_word(name),
                                 rank=(rank, score, length, titled)))
        return out

    def _fuzzy(self, key: str, text: str, score: float) -> list[tuple]:
        from rapidfuzz.distance import Levenshtein
        from rapidfuzz.process import extract

        limit = 1 if len(key) < 10 else 2
        hits = extract(key, self._fuzzy_keys, scorer=Levenshtein.distance, score_cutoff=limit, limit=8)
        out = []
        for name_key, distance, _ in hits:
            if abs(len(name_key) - len(key)) > limit:
                continue
            similarity = 1.0 - distance / max(len(name_key), len(key))
            for brand in self._exact[name_key]:
                out.append((1, -score * similarity, -len(name_key), int(normalize(brand) != name_key), brand,
                            self._display[brand, name_key], text))
        return out

    def _title_of(self, brand: str, token: str) -> str:
        return next((t for t in self.names[brand] if token in normalize(t)), brand)
