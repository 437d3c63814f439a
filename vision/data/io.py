"""Robust image decoding shared by every dataset and inference path.

Everything becomes an ``HxWx3`` ``uint8`` RGB C-contiguous array, or an :class:`ImageLoadError` whose
``reason`` says what is wrong with the file. Nothing here changes process-wide PIL or warnings settings.

Example::

    image = load_image("photo.jpg")                   # EXIF-upright, transparency over white
    bad = find_unreadable(paths)                      # [(path, reason), ...] for the broken ones
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMG_EXTENSIONS",
    "ImageLoadError",
    "ImageTooLargeError",
    "collect_images",
    "find_unreadable",
    "image_size",
    "list_images",
    "load_image",
    "load_image_and_size",
    "verify_image",
]

DEFAULT_MAX_PIXELS: int = 89_478_485  # PIL's default Image.MAX_IMAGE_PIXELS
IMG_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

_JPEG_FORMATS = ("JPEG", "MPO")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_VERIFY_DRAFT = 64
_EXIF_ORIENTATION = 0x0112


class NoImagesError(ValueError):
    """An input that names no image at all (an empty folder): the message names every such folder."""


class ImageLoadError(ValueError):
    """Raised when an image cannot be decoded; ``.path`` and ``.reason`` say which file and why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        # the default reduce would call cls(message) and lose the two-argument signature
        return (self.__class__, (self.path, self.reason))


class ImageTooLargeError(ImageLoadError):
    """Refused as a possible decompression bomb (pixel count over ``max_pixels``)."""


# ---------------------------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------------------------

def load_image(source, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None) -> np.ndarray:
    """Decode ``source`` to an ``HxWx3`` ``uint8`` RGB C-contiguous array.

    ``source`` is a file path (str / PathLike), a ``PIL.Image.Image`` or a numpy array (``HxW`` or ``HxWxC`` with
    C in 1, 3, 4; uint8, uint16 or float). EXIF orientation is applied, transparency is composited over white and
    16-bit / float data is scaled to 0..255. A uint8 ``HxWx3`` array is returned as is (no copy).

    ``max_pixels`` bounds width*height read from the header before any decoding (``None`` disables this check;
    PIL's own hard limit of ``2 * Image.MAX_IMAGE_PIXELS`` still applies). It is not applied to numpy input.
    ``draft_size`` lets JPEG files decode at a reduced DCT scale with both sides still >= ``draft_size``.

    Raises :class:`ImageLoadError` (or :class:`ImageTooLargeError`) for unreadable files and ``TypeError`` for
    unsupported inputs.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    if isinstance(source, Image.Image):
        return _pil_source_to_rgb(source, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        return _decode_path(os.fspath(source), max_pixels, draft_size, convert=True)
    raise TypeError(f"unsupported image source of type {type(source).__name__}; "
                    "expected a path, a PIL.Image.Image or a numpy array")


def load_image_and_size(path, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                        draft_size: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`load_image` of a file ``path`` and the ``(width, height)`` its header states (before ``draft_size``
    reduced the decode and before EXIF orientation), from one open of the file: for scanners that record each
    image's stored size beside what they compute on a smaller decode."""
    return _decode_path(os.fspath(path), max_pixels, draft_size, convert=True, sized=True)


def image_size(source, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """``(width, height)`` of ``source`` (a path, a PIL image or an ``HxW[xC]`` array) without decoding pixels.

    A file's header is read (PIL opens lazily) with the same checks as :func:`load_image`, so a bomb, a FIFO or a
    non-image raises the same :class:`ImageLoadError` here, before anything is allocated for its pixels.
    """
    if isinstance(source, np.ndarray):
        if source.ndim < 2:
            raise TypeError(f"image array must be HxW or HxWxC, got shape {source.shape}")
        return int(source.shape[1]), int(source.shape[0])
    if isinstance(source, Image.Image):
        return source.size
    if isinstance(source, (str, os.PathLike)):
        with _open_path(os.fspath(source), max_pixels) as img:
            return img.size
    raise TypeError(f"unsupported image source of type {type(source).__name__}; "
                    "expected a path, a PIL.Image.Image or a numpy array")


def list_images(folder, *, skipped: list | None = None) -> list:
    """Image files under ``folder`` (recursive, by extension, following symlinked folders), sorted.

    Each real folder is walked once, so a symlink loop ends, and each real file is listed once, under the first
    path found for it (sorted walk order). The walk keeps its own stack, so any depth is fine (no RecursionError).
    What cannot be read (a symlink chain too long or looping, a dangling link, a folder without permission, a path
    too long) is not listed: ``(path, reason)`` goes to ``skipped`` when given, else one warning counts them all.
    """
    from pathlib import Path

    found, seen_dirs, seen_files, problems = [], set(), set(), []
    stack = [os.fspath(folder)]
    while stack:
        root = stack.pop()
        try:
            st = os.stat(root)
            # a folder's identity is its inode, not realpath(), which costs one lstat per level (minutes when deep)
            if (st.st_dev, st.st_ino) in seen_dirs:
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            with os.scandir(root) as it:
                entries = sorted(it, key=lambda e: e.name)  # a fixed order: "first path found" is the same anywhere
        except OSError as e:
            problems.append((root, _os_reason(e)))
            continue
        subdirs = []
        for entry in entries:
            try:
                if entry.is_symlink():  # followed: a link to a folder is walked like one
                    mode = os.stat(entry.path).st_mode
                    is_dir, is_file = stat.S_ISDIR(mode), stat.S_ISREG(mode)
                else:  # no syscall: the type comes with the directory listing
                    is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError as e:
                problems.append((entry.path, _os_reason(e)))
                continue
            if is_dir:
                subdirs.append(entry.path)
            elif is_file and os.path.splitext(entry.name)[1].lower() in IMG_EXTENSIONS:
                real_file = os.path.realpath(entry.path)
                if real_file not in seen_files:
                    seen_files.add(real_file)
                    found.append(Path(entry.path))
        stack.extend(reversed(subdirs))  # depth first, in name order, as os.walk would
    if problems:
        if skipped is not None:
            skipped.extend(problems)
        else:
            warnings.warn(f"{folder}: skipped {len(problems)} unreadable path(s) while listing images, e.g. "
                          f"{problems[0][0]} ({problems[0][1]})", stacklevel=2)
    return sorted(found)


def _os_reason(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "symbolic link loop or chain too long (ELOOP); point the link at its target directly"
    if e.errno == errno.ENAMETOOLONG:
        return "path too long for the file system (ENAMETOOLONG); the folders nest too deep"
    if e.errno == errno.ENOENT:
        return "dangling symbolic link (its target does not exist)"
    return f"cannot read ({e.strerror or e})"


def collect_images(inputs: Iterable, *, skipped: list | None = None) -> list:
    """Image paths from files (kept as given) and folders (expanded with :func:`list_images`), in input order.

    Raises ``FileNotFoundError`` for a path that does not exist and :class:`NoImagesError` naming every folder
    that holds no image files, so an empty or mistyped folder is not a silent "0 images". ``skipped``: as in
    :func:`list_images`.
    """
    from pathlib import Path

    files, empty = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            found = list_images(item, skipped=skipped)
            files += found
            if not found:
                empty.append(str(item))
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item} is neither an image file nor a folder")
    if empty:
        raise NoImagesError(f"no image files ({', '.join(IMG_EXTENSIONS)}) in folder(s): {', '.join(empty)}")
    return files


def verify_image(path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Return ``None`` if ``path`` decodes, else a short reason string such as ``'empty file'``.

    The whole file is decoded (JPEGs at 1/8 DCT scale, which still reads every byte), so truncation is caught.
    Never raises for bad files.
    """
    try:
        _decode_path(os.fspath(path), max_pixels, _VERIFY_DRAFT, convert=False)
    except ImageLoadError as e:
        return e.reason
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - the contract is a reason string, never an exception, for a bad file
        return f"truncated or corrupt: {_describe(e)}"
    return None


def find_unreadable(paths: Iterable, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                    workers: int = 4) -> list[tuple[str, str]]:
    """Run :func:`verify_image` over ``paths`` on a thread pool; ``(path, reason)`` for each bad one, in input order."""
    paths = [os.fspath(p) if isinstance(p, os.PathLike) else str(p) for p in paths]
    check = partial(verify_image, max_pixels=max_pixels)
    workers = max(1, min(int(workers), len(paths)))
    if workers == 1:
        reasons = [check(p) for p in paths]
    else:
        reasons = []
        # submit in windows so a million-image dataset doesn't hold a million futures at once
        window = workers * 256
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify_image") as pool:
            for start in range(0, len(paths), window):
                reasons.extend(pool.map(check, paths[start:start + window]))
    return [(p, r) for p, r in zip(paths, reasons) if r is not None]


# ---------------------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------------------

def _decode_path(path: str, max_pixels: int | None, draft_size: int | None, *, convert: bool,
                 sized: bool = False):
    """The file's RGB array (``convert``; else ``None``), with the size its header states when ``sized``."""
    with _open_path(path, max_pixels) as img, _as_load_error(path, max_pixels):
        size = img.size
        if draft_size and img.format in _JPEG_FORMATS:
            img.draft("RGB", (int(draft_size), int(draft_size)))
        rgb = _jpeg_by_opencv(img) if convert else None
        if rgb is None:
            _load(img)
            rgb = _pil_to_rgb(img, path) if convert else None
        return (rgb, size) if sized else rgb


def _jpeg_by_opencv(img: Image.Image) -> np.ndarray | None:
    """A plain, complete JPEG (RGB or grey, upright, ending in its end-of-image marker) decoded by OpenCV's
    libjpeg-turbo at the scale PIL's ``draft`` chose: the same pixels as PIL's decode (``tests/test_image_io.py``
    compares them), without PIL's copies out through ``tobytes`` and with the GIL released throughout, so reading
    threads scale. ``None`` for anything else, which PIL then decodes (and reports: a truncated file is PIL's
    error, never a half-grey image)."""
    import cv2

    if img.format != "JPEG" or img.mode not in ("RGB", "L") or img.fp is None:
        return None
    if not hasattr(cv2, "IMREAD_COLOR_RGB"):   # an older OpenCV (the pixels were compared with 5.x): PIL's
        return None
    scale = img.decoderconfig[0] if img.decoderconfig else 1
    try:
        if img.getexif().get(_EXIF_ORIENTATION, 1) not in (None, 1):
            return None
        img.fp.seek(0)
        data = img.fp.read()
    except Exception:  # noqa: BLE001 - anything unusual in the header or the file: PIL's own path decides
        return None
    if data[-2:] != b"\xff\xd9" or scale not in (1, 2, 4, 8):   # truncated, or data after the image: PIL's
        return None
    flags = cv2.IMREAD_IGNORE_ORIENTATION | (cv2.IMREAD_COLOR_RGB if scale == 1 else
                                             {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                                              8: cv2.IMREAD_REDUCED_COLOR_8}[scale])
    try:
        out = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        return None
    if out is None or out.shape != (img.size[1], img.size[0], 3):
        return None
    return out if scale == 1 else cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


@contextlib.contextmanager
def _open_path(path: str, max_pixels: int | None) -> Iterator[Image.Image]:
    """The file's PIL image, header parsed and its size checked against ``max_pixels``, pixels not yet decoded."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageLoadError(path, "file not found") from None
    except OSError as e:
        raise ImageLoadError(path, f"cannot read file ({e.strerror or e})") from None
    # stat first: opening a FIFO or device would block or read forever
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError(path, "is a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file")
    if st.st_size == 0:
        raise ImageLoadError(path, "empty file")
    try:
        fp = open(path, "rb")
    except FileNotFoundError:
        raise ImageLoadError(path, "file not found") from None
    except OSError as e:
        raise ImageLoadError(path, f"cannot read file ({e.strerror or e})") from None

    with fp:
        try:
            # PIL warns (or raises over 2x its limit) while parsing the header; our own check below decides
            with _quiet_bomb_warning():
                img = Image.open(fp)
        except Image.DecompressionBombError as e:
            raise ImageTooLargeError(path, _pil_bomb_reason(e, max_pixels)) from None
        except UnidentifiedImageError:
            raise ImageLoadError(path, f"not an image ({_sniff(fp)})") from None
        except MemoryError:
            raise
        except Exception as e:  # noqa: BLE001 - plugins raise all sorts on malformed headers
            raise ImageLoadError(path, f"truncated or corrupt: {_describe(e)}") from e
        with img:
            _check_pixels(path, img.size, max_pixels)
            yield img


def _sniff(fp) -> str:
    """Best guess at what a non-image file is, from its first bytes."""
    try:
        fp.seek(0)
        head = fp.read(256)
    except (OSError, ValueError):
        return "unrecognised format"
    stripped = head.lstrip().lower()
    if head.startswith(b"version https://git-lfs"):
        return "Git LFS pointer file; fetch the real data with `git lfs pull`"
    if stripped.startswith((b"<!doctype html", b"<html")):
        return "HTML page"
    if stripped.startswith((b"<?xml", b"<svg")):
        return "XML/SVG; vector images are not supported"
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", "replace").strip()
        return f"'{brand}' ISO media container (e.g. HEIC/AVIF) that this PIL cannot decode"
    if b"\0" not in head:
        try:
            head.decode("utf-8")
            return "text file"
        except UnicodeDecodeError:
            pass
    return "unrecognised format"


# ---------------------------------------------------------------------------------------------------------------
# PIL images
# ---------------------------------------------------------------------------------------------------------------

def _pil_source_to_rgb(img: Image.Image, max_pixels: int | None) -> np.ndarray:
    name = getattr(img, "filename", "") or "<PIL.Image>"
    with _as_load_error(name, max_pixels):
        _check_pixels(name, img.size, max_pixels)
        _load(img)
        return _pil_to_rgb(img, name)


def _load(img: Image.Image) -> None:
    # GIF frames and TIFF tiles re-run PIL's bomb check while decoding; that can only warn when we already
    # accepted more pixels than PIL's limit (caller raised max_pixels), so only then pay for the lock
    limit = Image.MAX_IMAGE_PIXELS
    quiet = limit is not None and img.size[0] * img.size[1] > limit
    with _quiet_bomb_warning() if quiet else contextlib.nullcontext():
        img.load()


def _pil_to_rgb(img: Image.Image, name: str) -> np.ndarray:
    img = _exif_upright(img)
    mode = img.mode
    if mode == "RGB":
        arr = _as_array(img)
    elif mode.startswith("I"):  # I, I;16, I;16B, I;16L, I;16N: treated as 16-bit data
        arr = _gray_to_rgb(_u16_to_u8(_as_array(img)))
    elif mode == "F":
        arr = _gray_to_rgb(_float_to_u8(_as_array(img)))
    elif _has_alpha(img):
        if mode == "La":  # premultiplied; PIL has no direct La -> RGBA path
            img = img.convert("LA")
        arr = _over_white(_as_array(img.convert("RGBA")))
    else:  # 1, L, P, CMYK (Adobe-inverted handled by the JPEG plugin), YCbCr, LAB, HSV, RGBX, ...
        try:
            img = img.convert("RGB")
        except ValueError as e:
            raise ImageLoadError(name, f"unsupported image mode {mode!r}") from e
        arr = _as_array(img)
    return np.ascontiguousarray(arr)


_STRIP_BYTES = 1 << 22


def _as_array(img: Image.Image) -> np.ndarray:
    """``np.asarray(img)`` without its transient copy: Pillow exports through one bytes object of the whole image
    (joined from chunks: twice its size at once), so a large image is copied out in strips of a few MB instead.
    A 79 MP RGB PNG peaks 226 MB lower this way."""
    width, height = img.size
    if width * height * 4 <= 4 * _STRIP_BYTES:
        return np.asarray(img)
    first = np.asarray(img.crop((0, 0, width, 1)))
    out = np.empty((height,) + first.shape[1:], first.dtype)
    step = max(1, _STRIP_BYTES // max(1, first.nbytes))
    for y in range(0, height, step):
        out[y:y + step] = np.asarray(img.crop((0, y, width, min(height, y + step))))
    return out


def _has_alpha(img: Image.Image) -> bool:
    if img.mode in _ALPHA_MODES:
        return True
    if img.mode == "P" and img.palette is not None and img.palette.mode == "RGBA":
        return True
    return "transparency" in img.info and img.mode in ("1", "L", "P", "RGB")


def _exif_upright(img: Image.Image) -> Image.Image:
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
        # exif_transpose copies the whole image even when there is nothing to do
        if orientation in (2, 3, 4, 5, 6, 7, 8):
            return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a damaged EXIF block should not cost us an otherwise good image
        pass
    return img


# ---------------------------------------------------------------------------------------------------------------
# numpy
# ---------------------------------------------------------------------------------------------------------------

def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))) or arr.size == 0:
        raise TypeError(f"image array must be HxW or HxWxC with C in (1, 3, 4) and non-empty, "
                        f"got shape {arr.shape} ({arr.dtype})")
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.uint16:
        arr = _u16_to_u8(arr)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = _float_to_u8(arr)
    else:
        raise TypeError(f"image array dtype must be uint8, uint16 or float, got {arr.dtype} (shape {arr.shape})")
    if arr.ndim == 2 or arr.shape[2] == 1:
        arr = _gray_to_rgb(arr)
    elif arr.shape[2] == 4:
        arr = _over_white(arr)
    return np.ascontiguousarray(arr)


def _u16_to_u8(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint16:  # mode 'I' is int32: clip into the 16-bit range it is assumed to hold
        a = np.clip(a, 0, 65535)
    # integer rounding of a / 257: 65535 -> 255, 32896 -> 128
    return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _float_to_u8(a: np.ndarray) -> np.ndarray:
    a = np.nan_to_num(a.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    if a.max() <= 1.0:
        a = a * 255.0
    return np.rint(np.clip(a, 0.0, 255.0)).astype(np.uint8)


def _gray_to_rgb(a: np.ndarray) -> np.ndarray:
    if a.ndim == 3:
        a = a[..., 0]
    return np.repeat(a[..., None], 3, axis=2)


def _over_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:4]
    if alpha.min() == 255:
        return rgba[..., :3]
    a = alpha.astype(np.uint16)
    rgb = rgba[..., :3].astype(np.uint16)
    # rounded (rgb * a + 255 * (255 - a)) / 255; the largest intermediate (65152) fits in uint16
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# decompression bombs and error mapping
# ---------------------------------------------------------------------------------------------------------------

# warnings.catch_warnings swaps the process-wide filter list and is not thread-safe before Python 3.14; the lock
# stops our own threads from restoring each other's lists, and it is only held around header parsing.
_WARNINGS_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_bomb_warning() -> Iterator[None]:
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _refused(pixels: int, limit: int) -> str:
    return f"refused: {pixels} pixels exceeds the {limit}-pixel limit (possible decompression bomb)"


def _check_pixels(name: str, size: tuple[int, int], max_pixels: int | None) -> None:
    pixels = size[0] * size[1]
    if max_pixels is not None and pixels > max_pixels:
        raise ImageTooLargeError(name, _refused(pixels, max_pixels))


def _pil_bomb_reason(e: Exception, max_pixels: int | None) -> str:
    m = re.search(r"\((\d+) pixels\)", str(e))
    if m is None:
        return f"refused: {e}"
    pixels = int(m.group(1))
    if max_pixels is not None and pixels > max_pixels:
        return _refused(pixels, max_pixels)
    # the caller allowed it, but PIL's hard limit (2 * Image.MAX_IMAGE_PIXELS) still refuses at open
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    return (f"refused: {pixels} pixels exceeds PIL's {limit}-pixel limit (2 * PIL.Image.MAX_IMAGE_PIXELS; "
            "possible decompression bomb)")


@contextlib.contextmanager
def _as_load_error(name: str, max_pixels: int | None) -> Iterator[None]:
    try:
        yield
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(name, _pil_bomb_reason(e, max_pixels)) from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - decoders raise OSError, SyntaxError, struct.error, EOFError, ...
        raise ImageLoadError(name, f"truncated or corrupt: {_describe(e)}") from e


def _describe(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    if not isinstance(e, OSError) and msg != type(e).__name__:
        msg = f"{type(e).__name__}: {msg}"
    return msg if len(msg) <= 200 else msg[:197] + "..."
