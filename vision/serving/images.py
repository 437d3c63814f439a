"""Encoded image bytes (what a served model receives) to RGB arrays, with the library's guards: the same
decoding as :func:`vision.data.io.load_image` on a file, the decompression-bomb limit, and a pixel budget per
request checked on the headers before anything is decoded."""

from __future__ import annotations

import io
import warnings
from typing import Sequence

import numpy as np

from vision.data.io import DEFAULT_MAX_PIXELS, ImageLoadError, ImageTooLargeError, load_image

FORMATS_HINT = "send the bytes of a JPEG, PNG or WebP file"


def open_image_bytes(data: bytes, source: str, max_pixels: int = DEFAULT_MAX_PIXELS):
    """The PIL image of ``data``, header parsed and its size checked, pixels not yet decoded."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageLoadError(source, f"no bytes; {FORMATS_HINT}")
    try:
        with warnings.catch_warnings():  # PIL warns past its own limit; ours below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageTooLargeError(source, f"refused: more than {max_pixels} pixels (decompression-bomb guard)") from None
    except UnidentifiedImageError:
        raise ImageLoadError(source, f"not an image; {FORMATS_HINT}") from None
    except Exception as e:  # noqa: BLE001 - PIL plugins raise all sorts on malformed headers
        raise ImageLoadError(source, f"truncated or corrupt ({type(e).__name__}: {e})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(source, f"refused: {width}x{height} is more than {max_pixels} pixels "
                                         "(decompression-bomb guard)")
    return image


def decode_images(items: Sequence[bytes], budget: int | None, max_pixels: int = DEFAULT_MAX_PIXELS,
                  name: str = "IMAGE") -> list[np.ndarray]:
    """HxWx3 uint8 arrays of one request's images (``{name}[i]`` in messages); every header is read and the
    request's total pixels checked against ``budget`` before the first image is decoded."""
    images = [open_image_bytes(data, f"{name}[{i}]", max_pixels) for i, data in enumerate(items)]
    pixels = sum(im.size[0] * im.size[1] for im in images)
    if budget is not None and pixels > budget:
        raise ImageTooLargeError(f"{name}", f"refused: {pixels} pixels in one request is more than the "
                                            f"{budget}-pixel budget; send fewer or smaller images per request")
    arrays = []
    for i, image in enumerate(images):
        try:
            arrays.append(load_image(image, max_pixels=max_pixels))
        except ImageLoadError as e:
            raise ImageLoadError(f"{name}[{i}]", e.reason) from None
    return arrays
