"""Tests for vision.data.io: every fixture image is generated in tmp_path, nothing binary is committed."""

from __future__ import annotations

import io
import os
import pickle
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vision.data.io import (
    DEFAULT_MAX_PIXELS,
    IMG_EXTENSIONS,
    ImageLoadError,
    ImageTooLargeError,
    find_unreadable,
    load_image,
    verify_image,
)

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def _assert_rgb_u8(arr: np.ndarray, shape: tuple[int, int]) -> None:
    assert arr.shape == (*shape, 3)
    assert arr.dtype == np.uint8
    assert arr.flags["C_CONTIGUOUS"]


def _close(pixel, colour, tol=40) -> bool:
    return all(abs(int(p) - c) <= tol for p, c in zip(pixel, colour))


def _png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares width x height but whose pixel data is nowhere near complete.

    If it were decoded rather than refused from the header, it would fail as truncated, not as too large.
    """
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def _noise_jpeg(path: Path, size=(64, 64), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=90)
    return path


# ---------------------------------------------------------------------------------------------------------------
# fixtures shared by several tests
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_bomb(tmp_path_factory) -> Path:
    """A real, fully valid 12000x12000 (144 Mpx) PNG: mode '1' keeps it to ~18 KB and a fraction of a second."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("1", (12000, 12000)).save(path)
    return path


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture\n")
    data = _noise_jpeg(tmp_path / "full.jpg").read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    return {
        "empty": empty,
        "text": text,
        "truncated": truncated,
        "missing": tmp_path / "missing.jpg",
        "bomb": _png_claiming_size(tmp_path / "bomb.png", 20000, 20000),
    }


@pytest.fixture
def good_files(tmp_path) -> list[Path]:
    paths = []
    for mode, ext, colour in [("RGB", ".jpg", RED), ("L", ".png", 128), ("RGBA", ".png", (0, 0, 0, 0)),
                              ("RGB", ".bmp", BLUE), ("RGB", ".webp", RED), ("RGB", ".gif", RED),
                              ("CMYK", ".tiff", (0, 255, 255, 0))]:
        path = tmp_path / f"good_{mode}{ext}"
        Image.new(mode, (32, 24), colour).save(path)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------------------------
# modes
# ---------------------------------------------------------------------------------------------------------------

def test_public_constants():
    assert DEFAULT_MAX_PIXELS == 89_478_485
    assert all(e == e.lower() and e.startswith(".") for e in IMG_EXTENSIONS)
    assert {".jpg", ".jpeg", ".png", ".webp"} <= set(IMG_EXTENSIONS)


def test_grayscale_replicated_to_rgb(tmp_path):
    gray = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    arr = load_image(tmp_path / "g.png")
    _assert_rgb_u8(arr, (2, 2))
    assert (arr == gray[..., None]).all()


def test_one_bit_image(tmp_path):
    img = Image.new("1", (3, 1), 0)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "b.png")
    assert load_image(str(tmp_path / "b.png"))[0].tolist() == [[0, 0, 0], [255, 255, 255], [0, 0, 0]]


def test_rgba_composited_over_white(tmp_path):
    img = Image.new("RGBA", (3, 1))
    img.putdata([(10, 20, 30, 0), (10, 20, 30, 255), (0, 0, 0, 128)])
    img.save(tmp_path / "a.png")
    arr = load_image(tmp_path / "a.png")
    _assert_rgb_u8(arr, (1, 3))
    assert tuple(arr[0, 0]) == WHITE
    assert tuple(arr[0, 1]) == (10, 20, 30)
    assert tuple(arr[0, 2]) == (127, 127, 127)  # half-transparent black over white


def test_la_composited_over_white(tmp_path):
    img = Image.new("LA", (2, 1))
    img.putdata([(50, 0), (50, 255)])
    img.save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png")[0].tolist() == [[255, 255, 255], [50, 50, 50]]


@pytest.mark.parametrize("ext", [".png", ".gif"])
def test_palette_with_transparency(tmp_path, ext):
    img = Image.new("P", (2, 2), 0)
    img.putpalette([0, 255, 0] + [255, 0, 0] + [0, 0, 0] * 254)  # index 0 green (transparent), 1 red
    img.putpixel((1, 1), 1)
    img.save(tmp_path / f"p{ext}", transparency=0)
    with Image.open(tmp_path / f"p{ext}") as check:
        assert check.mode == "P" and "transparency" in check.info
    arr = load_image(tmp_path / f"p{ext}")
    assert tuple(arr[0, 0]) == WHITE  # the green it would be without transparency must not leak
    assert tuple(arr[1, 1]) == RED


def test_palette_without_transparency(tmp_path):
    img = Image.new("P", (2, 1), 1)
    img.putpalette([0, 0, 0] + [0, 0, 255] + [0, 0, 0] * 254)
    img.save(tmp_path / "p.png")
    assert tuple(load_image(tmp_path / "p.png")[0, 0]) == BLUE


def test_cmyk_jpeg_decodes_to_rgb(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)
    with Image.open(tmp_path / "cmyk.jpg") as check:
        assert check.mode == "CMYK"
    arr = load_image(tmp_path / "cmyk.jpg")
    _assert_rgb_u8(arr, (16, 16))
    assert _close(arr[8, 8], RED), arr[8, 8]


def test_sixteen_bit_png(tmp_path):
    values = np.array([[65535, 32896, 0, 257]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "16.png")
    with Image.open(tmp_path / "16.png") as check:
        assert check.mode in ("I;16", "I")
    arr = load_image(tmp_path / "16.png")
    _assert_rgb_u8(arr, (1, 4))
    assert arr[0, :, 0].tolist() == [255, 128, 0, 1]
    assert (arr == arr[..., :1]).all()


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_sixteen_bit_pil_modes(mode):
    img = Image.new(mode, (3, 1))
    img.putdata([65535, 32896, 0])
    assert load_image(img)[0, :, 0].tolist() == [255, 128, 0]


def test_float_tiff_unit_range(tmp_path):
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F").save(tmp_path / "f.tif")
    with Image.open(tmp_path / "f.tif") as check:
        assert check.mode == "F"
    arr = load_image(tmp_path / "f.tif")
    _assert_rgb_u8(arr, (1, 3))
    assert arr[0, :, 1].tolist() == [0, 128, 255]


def test_float_tiff_outside_unit_range_is_clipped(tmp_path):
    Image.fromarray(np.array([[-5.0, 100.4, 300.0]], dtype=np.float32), mode="F").save(tmp_path / "f.tiff")
    assert load_image(tmp_path / "f.tiff")[0, :, 2].tolist() == [0, 100, 255]


@pytest.mark.parametrize("mode", ["YCbCr", "LAB", "HSV"])
def test_other_colour_spaces(mode):
    img = Image.new("RGB", (4, 4), RED).convert(mode) if mode != "HSV" else Image.new("HSV", (4, 4), (0, 255, 255))
    assert _close(load_image(img)[0, 0], RED, tol=12)


def test_exif_rotation_applied(tmp_path):
    # stored 40 wide x 20 high with a red 8x8 marker top-left; orientation 6 means "rotate 90 degrees clockwise"
    img = Image.new("RGB", (40, 20), BLUE)
    img.paste(RED, (0, 0, 8, 8))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    arr = load_image(tmp_path / "rot.jpg")
    _assert_rgb_u8(arr, (40, 20))
    assert _close(arr[3, 16], RED)  # top-left marker is now top-right
    assert _close(arr[3, 3], BLUE)
    assert _close(arr[36, 16], BLUE)


def test_exif_rotation_applied_to_pil_input(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 20), BLUE).save(tmp_path / "rot.jpg", exif=exif)
    with Image.open(tmp_path / "rot.jpg") as img:
        assert load_image(img).shape == (40, 20, 3)


# ---------------------------------------------------------------------------------------------------------------
# bad files
# ---------------------------------------------------------------------------------------------------------------

def test_zero_byte_file(bad_files):
    with pytest.raises(ImageLoadError) as info:
        load_image(bad_files["empty"])
    assert info.value.reason == "empty file"
    assert info.value.path == str(bad_files["empty"])
    assert str(bad_files["empty"]) in str(info.value) and "empty file" in str(info.value)


def test_text_file_with_image_extension(bad_files):
    with pytest.raises(ImageLoadError, match="not an image") as info:
        load_image(bad_files["text"])
    assert info.value.reason.startswith("not an image (")


def test_git_lfs_pointer_is_named(tmp_path):
    (tmp_path / "lfs.jpg").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    assert "git lfs pull" in verify_image(tmp_path / "lfs.jpg")


def test_truncated_jpeg(bad_files):
    with pytest.raises(ImageLoadError) as info:
        load_image(bad_files["truncated"])
    assert info.value.reason.startswith("truncated or corrupt: ")


def test_missing_file(bad_files):
    with pytest.raises(ImageLoadError) as info:
        load_image(bad_files["missing"])
    assert info.value.reason == "file not found"


def test_directory(tmp_path):
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def test_errors_are_value_errors_and_pickle():
    err = ImageTooLargeError("a/b.png", "refused: too big")
    assert isinstance(err, ImageLoadError) and isinstance(err, ValueError)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is ImageTooLargeError
    assert (copy.path, copy.reason, str(copy)) == ("a/b.png", "refused: too big", "a/b.png: refused: too big")


# ---------------------------------------------------------------------------------------------------------------
# decompression bombs
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture
def global_state_unchanged():
    """Fail the test if PIL's bomb limit or the process-wide warning filters were changed."""
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    yield
    assert Image.MAX_IMAGE_PIXELS == limit
    assert warnings.filters == filters


def test_real_bomb_refused_before_decoding(real_bomb, recwarn, global_state_unchanged):
    with pytest.raises(ImageTooLargeError) as info:
        load_image(real_bomb, max_pixels=1_000_000)
    assert "144000000 pixels" in info.value.reason and "1000000-pixel limit" in info.value.reason
    # 144 Mpx is over PIL's warning threshold but under its hard limit: our default refuses it, quietly
    with pytest.raises(ImageTooLargeError, match=f"the {DEFAULT_MAX_PIXELS}-pixel limit"):
        load_image(str(real_bomb))
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS


def test_bomb_checked_from_header_only(bad_files, recwarn, global_state_unchanged):
    # the file's pixel data is a stub: reaching the decoder would give "truncated", not ImageTooLargeError
    with pytest.raises(ImageTooLargeError) as info:
        load_image(bad_files["bomb"], max_pixels=1_000_000)
    assert "400000000 pixels" in str(info.value)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_pil_hard_limit_still_mapped(bad_files, global_state_unchanged):
    # 400 Mpx is over PIL's own 2x hard limit, which raises DecompressionBombError inside Image.open
    with pytest.raises(ImageTooLargeError, match="400000000 pixels") as info:
        load_image(bad_files["bomb"], max_pixels=10**12)
    assert "PIL's" in info.value.reason


def test_max_pixels_applies_to_pil_input():
    with pytest.raises(ImageTooLargeError, match="1200 pixels"):
        load_image(Image.new("RGB", (40, 30)), max_pixels=1000)


# ---------------------------------------------------------------------------------------------------------------
# verify_image / find_unreadable
# ---------------------------------------------------------------------------------------------------------------

def test_verify_good_files(good_files):
    for path in good_files:
        assert verify_image(path) is None, path
        assert load_image(path).shape == (24, 32, 3)


def test_verify_bad_files(bad_files):
    reasons = {kind: verify_image(path) for kind, path in bad_files.items()}
    assert reasons["empty"] == "empty file"
    assert reasons["text"].startswith("not an image")
    assert reasons["truncated"].startswith("truncated or corrupt")
    assert reasons["missing"] == "file not found"
    assert reasons["bomb"].startswith("refused: 400000000 pixels")
    assert verify_image(bad_files["text"], max_pixels=10).startswith("not an image")


def test_verify_refuses_real_bomb(real_bomb, global_state_unchanged):
    assert verify_image(real_bomb, max_pixels=1_000_000) == (
        "refused: 144000000 pixels exceeds the 1000000-pixel limit (possible decompression bomb)")


def test_find_unreadable_in_input_order(good_files, bad_files, global_state_unchanged):
    bad = [bad_files[k] for k in ("truncated", "empty", "missing", "text", "bomb")]
    paths = [good_files[0], bad[0], good_files[1], bad[1], bad[2], good_files[2], bad[3], bad[4], *good_files[3:]]
    found = find_unreadable(paths, workers=3)
    assert [p for p, _ in found] == [str(p) for p in bad]
    assert all(isinstance(r, str) and r for _, r in found)
    assert find_unreadable(paths, workers=1) == found
    assert find_unreadable([]) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count open files")
def test_files_are_closed(good_files, bad_files):
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        for path in good_files:
            load_image(path)
        find_unreadable(list(bad_files.values()) + good_files, workers=2)
    assert len(os.listdir("/proc/self/fd")) <= before


# ---------------------------------------------------------------------------------------------------------------
# numpy and PIL inputs
# ---------------------------------------------------------------------------------------------------------------

def test_numpy_uint8_gray_and_single_channel():
    gray = np.array([[0, 7], [200, 255]], dtype=np.uint8)
    for arr in (gray, gray[..., None]):
        out = load_image(arr)
        _assert_rgb_u8(out, (2, 2))
        assert (out == gray[..., None]).all()


def test_numpy_uint8_rgb_passes_through():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert load_image(rgb) is rgb
    view = np.ascontiguousarray(rgb.transpose(1, 0, 2)).transpose(1, 0, 2)  # non-contiguous view
    out = load_image(view)
    assert out.flags["C_CONTIGUOUS"] and (out == rgb).all()


def test_numpy_uint16_scaled():
    out = load_image(np.array([[65535, 32896], [0, 514]], dtype=np.uint16))
    assert out[..., 0].tolist() == [[255, 128], [0, 2]]


def test_numpy_float():
    assert load_image(np.array([[0.0, 0.5, 1.0]], dtype=np.float64))[0, :, 0].tolist() == [0, 128, 255]
    assert load_image(np.array([[-3.0, 12.6, 999.0]], dtype=np.float32))[0, :, 0].tolist() == [0, 13, 255]
    chw_like = np.full((2, 2, 3), 0.25, dtype=np.float32)
    assert (load_image(chw_like) == 64).all()


def test_numpy_rgba_over_white():
    rgba = np.array([[[10, 20, 30, 0], [10, 20, 30, 255]]], dtype=np.uint8)
    assert load_image(rgba).tolist() == [[[255, 255, 255], [10, 20, 30]]]


@pytest.mark.parametrize("arr, needle", [
    (np.zeros((4, 4), dtype=np.int64), "int64"),
    (np.zeros((4, 4, 3), dtype=bool), "bool"),
    (np.zeros((4, 4, 2), dtype=np.uint8), "(4, 4, 2)"),
    (np.zeros((3, 4, 4, 3), dtype=np.uint8), "(3, 4, 4, 3)"),
    (np.zeros((0, 4, 3), dtype=np.uint8), "(0, 4, 3)"),
])
def test_numpy_bad_input_raises_type_error(arr, needle):
    with pytest.raises(TypeError) as info:
        load_image(arr)
    assert needle in str(info.value)


def test_unsupported_source_type():
    with pytest.raises(TypeError, match="bytes"):
        load_image(b"\xff\xd8")


def test_pil_inputs():
    rgba = Image.new("RGBA", (2, 1), (0, 0, 255, 0))
    rgba.putpixel((1, 0), (0, 0, 255, 255))
    assert load_image(rgba)[0].tolist() == [[255, 255, 255], [0, 0, 255]]
    assert load_image(Image.new("L", (2, 2), 9)).tolist() == [[[9] * 3] * 2] * 2


def test_truncated_pil_input_names_the_file(bad_files):
    with Image.open(bad_files["truncated"]) as img:
        with pytest.raises(ImageLoadError, match="truncated or corrupt") as info:
            load_image(img)
    assert info.value.path == str(bad_files["truncated"])


# ---------------------------------------------------------------------------------------------------------------
# draft decoding
# ---------------------------------------------------------------------------------------------------------------

def test_draft_size_reduces_large_jpeg(tmp_path):
    ramp = np.linspace(0, 255, 2000, dtype=np.float32).astype(np.uint8)
    Image.fromarray(np.broadcast_to(ramp[None, :, None], (1500, 2000, 3)).copy()).save(tmp_path / "big.jpg")
    out = load_image(tmp_path / "big.jpg", draft_size=256)
    height, width = out.shape[:2]
    assert min(height, width) >= 256
    assert (height, width) < (1500, 2000) and height < 1500 and width < 2000
    assert abs(width / height - 2000 / 1500) < 0.01
    assert load_image(tmp_path / "big.jpg").shape == (1500, 2000, 3)


def test_draft_size_ignored_for_non_jpeg(tmp_path):
    Image.new("RGB", (600, 400), RED).save(tmp_path / "big.png")
    assert load_image(tmp_path / "big.png", draft_size=64).shape == (400, 600, 3)


def test_bytes_io_not_accepted_as_path():
    with pytest.raises(TypeError):
        load_image(io.BytesIO(b""))


def test_plain_jpegs_decode_by_opencv_to_pils_pixels(tmp_path, monkeypatch):
    """A plain complete JPEG (RGB or grey, upright) is decoded by OpenCV's libjpeg-turbo: the same pixels as PIL's
    decode, at full size and at each draft scale; anything else (EXIF-rotated, CMYK, data after the image) takes
    PIL's path, so a truncated file still fails as truncated."""
    import vision.data.io as vio

    from .conftest import SAMPLE

    photos = sorted(SAMPLE.rglob("*.jpg"))[:6]
    grey = tmp_path / "grey.jpg"
    Image.open(photos[0]).convert("L").save(grey, quality=90)
    trailing = tmp_path / "trailing.jpg"
    trailing.write_bytes(photos[1].read_bytes() + b"junk")
    used = []
    real = vio._jpeg_by_opencv
    monkeypatch.setattr(vio, "_jpeg_by_opencv", lambda img: used.append(real(img) is not None) or real(img))
    cases = [(p, d) for p in [*photos, grey, trailing] for d in (None, 64, 128)]
    fast = [load_image(p, draft_size=d) for p, d in cases]
    assert used == [True] * (len(cases) - 3) + [False] * 3   # the file with data after its end: PIL's
    monkeypatch.setattr(vio, "_jpeg_by_opencv", lambda img: None)
    for (p, d), got in zip(cases, fast):
        np.testing.assert_array_equal(got, load_image(p, draft_size=d), err_msg=f"{p} draft {d}")
    for name in ("rot.jpg", "cmyk.jpg"):
        image = Image.new("RGB", (40, 20), BLUE)
        if name == "rot.jpg":
            exif = Image.Exif()
            exif[0x0112] = 6
            image.save(tmp_path / name, exif=exif)
        else:
            image.convert("CMYK").save(tmp_path / name)
        with Image.open(tmp_path / name) as img:
            assert real(img) is None
