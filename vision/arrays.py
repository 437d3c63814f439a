"""Reading ``.npy``/``.npz`` files whose headers may lie: every shape is checked against the bytes actually
present before numpy allocates anything, and pickled (object) arrays are refused.

numpy allocates an array of the header's shape before reading its data, so a 25 KB file claiming a billion
rows costs gigabytes before it fails. These readers refuse such files in constant memory.

Example::

    arrays = load_npz("gallery.npz", error=GalleryError)     # {'vectors': ..., 'owner': ...}
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npformat

# deflate cannot expand a member by more than about 1032x; a claim past this is a zip that lies
_MAX_DEFLATE_RATIO = 1100


def _header(f, where: str, error: type[Exception]) -> tuple[tuple[int, ...], np.dtype]:
    try:
        version = npformat.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(f, max_header_size=1 << 16)
        else:
            shape, fortran, dtype = npformat.read_array_header_2_0(f, max_header_size=1 << 16)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise error(f"{where}: not a readable .npy array header ({type(e).__name__}: {e})") from None
    if dtype.hasobject:
        raise error(f"{where}: holds Python objects (a pickle); vision reads plain numeric and string arrays only")
    return shape, dtype


def _need(shape, dtype: np.dtype) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n * dtype.itemsize


def check_npy(path: str | os.PathLike, error: type[Exception] = ValueError) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of an ``.npy`` file, refused (``error``) unless the file holds that many bytes."""
    path = Path(path)
    with open(path, "rb") as f:
        shape, dtype = _header(f, str(path), error)
        have = path.stat().st_size - f.tell()
    need = _need(shape, dtype)
    if need > have:
        raise error(f"{path}: its header claims an array of shape {shape} ({dtype}, {need} bytes) but the file "
                    f"holds {have} bytes of data: truncated or not written by numpy")
    return shape, dtype


def load_npy(path: str | os.PathLike, error: type[Exception] = ValueError, mmap: bool = False) -> np.ndarray:
    """``np.load`` of one ``.npy`` file after :func:`check_npy` (no pickles)."""
    check_npy(path, error)
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (ValueError, OSError, EOFError) as e:
        raise error(f"{path}: not a readable .npy file ({type(e).__name__}: {e})") from None


def load_npz(path: str | os.PathLike, error: type[Exception] = ValueError, max_bytes: int | None = None
             ) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, each header checked against its zip member before reading; ``max_bytes``
    bounds the total decoded size. Anything else than an ``.npz`` of plain arrays is ``error`` naming the file."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise error(f"{path}: not an .npz file ({type(e).__name__}: {e})") from None
    out, total = {}, 0
    with zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name, where = info.filename[:-4], f"{path} array {info.filename[:-4]!r}"
            inflated_max = max(info.compress_size, 1) * _MAX_DEFLATE_RATIO
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > inflated_max:
                raise error(f"{where}: the zip claims {info.file_size} bytes from {info.compress_size} compressed; "
                            "not a file numpy wrote")
            try:
                with zf.open(info) as f:
                    shape, dtype = _header(f, where, error)
                    have = info.file_size - f.tell()
                    need = _need(shape, dtype)
                    if need > have:
                        raise error(f"{where}: its header claims shape {shape} ({dtype}, {need} bytes) but the "
                                    f"member holds {have} bytes: truncated or not written by numpy")
                    total += need
                    if max_bytes is not None and total > max_bytes:
                        raise error(f"{path}: its arrays need more than {max_bytes} bytes, the limit for this file")
                with zf.open(info) as f:  # read_array parses the header itself
                    out[name] = npformat.read_array(f, allow_pickle=False)
            # NotImplementedError, RuntimeError: zipfile on an unknown compression method or flag, an encrypted member
            except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, KeyError, NotImplementedError,
                    RuntimeError) as e:
                if isinstance(e, error):
                    raise
                raise error(f"{where}: not readable ({type(e).__name__}: {e})") from None
    return out
