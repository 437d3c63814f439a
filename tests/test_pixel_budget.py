"""Issue 29 item 12 (images) and its weak cases: decoded pixels per batch are bounded (sizes read from headers
before decoding), folders behind looping symlinks or nested too deep are reported skips, and manifests may not
reach outside their own folder unless the caller opts in."""

import os
import shutil
import types
import warnings

import numpy as np
import pytest
from PIL import Image

from vision import predictors
from vision.commands import image_inputs, pixel_count
from vision.data import io as vio
from vision.data.datasets import ManifestError, manifest_images
from vision.data.io import (
    ImageTooLargeError,
    image_size,
    list_images,
    load_image,
)
from vision.predictors import read_batches
from vision.results import Classification


def _png(path, size, color=(10, 20, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture
def decoded(monkeypatch):
    """The sources :func:`read_batches` decodes, in order."""
    calls = []
    real = predictors.to_rgb_array

    def spy(image):
        calls.append(str(image))
        return real(image)

    monkeypatch.setattr(predictors, "to_rgb_array", spy)
    return calls


# --- the batch budget ------------------------------------------------------------------------------------------

def test_a_batch_ends_before_it_would_hold_more_pixels_than_the_budget(tmp_path):
    paths = [_png(tmp_path / f"{i}.png", (10, 10)) for i in range(5)]  # 100 pixels each
    batches = list(read_batches(paths, batch_size=32, max_batch_pixels=250))
    assert [len(arrays) for _, arrays in batches] == [2, 2, 1]
    assert [s for sources, _ in batches for s in sources] == [str(p) for p in paths]  # order kept, none lost
    assert all(sum(a.shape[0] * a.shape[1] for a in arrays) <= 250 for _, arrays in batches)


def test_an_image_over_the_budget_is_a_reported_skip_and_never_decoded(tmp_path, decoded):
    small, big = _png(tmp_path / "small.png", (10, 10)), _png(tmp_path / "big.png", (40, 40))
    skipped = []
    batches = list(read_batches([small, big, small], 8, "skip", skipped, max_batch_pixels=1000))
    assert [len(a) for _, a in batches] == [2]
    assert decoded == [str(small), str(small)]  # the big one was judged by its header alone
    assert len(skipped) == 1 and skipped[0][0] == str(big)
    assert "1600 pixels exceeds the 1000-pixel batch budget" in skipped[0][1] and "--max-batch-pixels" in skipped[0][1]


def test_an_image_over_the_budget_is_an_error_naming_it_when_skipping_was_not_asked(tmp_path, decoded):
    big = _png(tmp_path / "big.png", (40, 40))
    with pytest.raises(ImageTooLargeError, match="big.png: refused: 1600 pixels exceeds the 1000-pixel batch budget"):
        list(read_batches([big], 8, max_batch_pixels=1000))
    assert decoded == []


def test_in_memory_images_count_against_the_budget_too(tmp_path):
    arrays = [np.zeros((10, 10, 3), np.uint8), Image.new("RGB", (10, 10)), np.zeros((10, 10), np.uint8)]
    assert [len(a) for _, a in read_batches(arrays, 8, max_batch_pixels=150)] == [1, 1, 1]


def test_the_decompression_bomb_limit_still_applies_below_the_budget(tmp_path, monkeypatch, decoded):
    big = _png(tmp_path / "big.png", (40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL refuses over 2x this while parsing the header
    skipped = []
    assert list(read_batches([big], 8, "skip", skipped, max_batch_pixels=10**9)) == []
    assert len(skipped) == 1 and "possible decompression bomb" in skipped[0][1] and decoded == []
    with pytest.raises(ImageTooLargeError, match="decompression bomb"):
        image_size(_png(tmp_path / "small.png", (12, 12)), max_pixels=100)


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "64M"])
def test_a_budget_that_is_not_a_positive_integer_is_refused(bad, tmp_path):
    with pytest.raises(ValueError, match="max_batch_pixels must be an integer >= 1"):
        list(read_batches([_png(tmp_path / "a.png", (4, 4))], 8, max_batch_pixels=bad))


def test_the_default_budget_admits_every_image_the_bomb_limit_admits():
    assert predictors.DEFAULT_MAX_BATCH_PIXELS >= vio.DEFAULT_MAX_PIXELS


def test_image_size_reads_only_the_header(tmp_path, monkeypatch):
    path = _png(tmp_path / "a.png", (30, 20))
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("pixels decoded"))
    assert image_size(path) == (30, 20)


def test_large_images_decode_the_same_through_strips(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for name, data in (("rgb", rng.integers(0, 256, (37, 23, 3), np.uint8)),
                       ("rgba", rng.integers(0, 256, (37, 23, 4), np.uint8)),
                       ("gray", rng.integers(0, 256, (37, 23), np.uint8)),
                       ("gray16", rng.integers(0, 65536, (37, 23), np.uint16))):
        path = tmp_path / f"{name}.png"
        Image.fromarray(data).save(path)
        whole = load_image(path)
        monkeypatch.setattr(vio, "_STRIP_BYTES", 64)  # a few rows per strip
        np.testing.assert_array_equal(load_image(path), whole)
        monkeypatch.undo()


def test_predict_cli_splits_batches_and_reports_the_oversized_image(tmp_path, monkeypatch, capsys):
    from vision.commands import predict

    for i in range(3):
        _png(tmp_path / "in" / f"{i}.png", (10, 10))
    _png(tmp_path / "in" / "huge.png", (50, 50))
    made = {}

    class FakePredictor:
        backend, card, head = "fake", types.SimpleNamespace(task="classification"), types.SimpleNamespace()

        def __init__(self, max_batch_pixels):
            self.max_batch_pixels, self.skipped, self.batches = max_batch_pixels, [], []

        def stream(self, images, batch_size, on_error):
            for sources, arrays in read_batches(images, batch_size, on_error, self.skipped,
                                                max_batch_pixels=self.max_batch_pixels):
                self.batches.append(len(arrays))
                yield from (Classification(s, topk=[]) for s in sources)

    def fake_predictor(model, **kwargs):
        made["p"] = FakePredictor(kwargs["max_batch_pixels"])
        return made["p"]

    monkeypatch.setattr(predictors, "predictor", fake_predictor)
    rc = predict.main(["--model", "m", "--images", str(tmp_path / "in"), "--max-batch-pixels", "200",
                       "--out", str(tmp_path / "out.jsonl"), "--no-progress"])
    assert rc == 0 and made["p"].batches == [2, 1]
    err = capsys.readouterr().err
    assert "skipped 1 of 4" in err and "huge.png (refused: 2500 pixels exceeds the 200-pixel batch budget" in err


def test_max_batch_pixels_flag_reads_counts_and_refuses_nonsense(capsys):
    from vision.commands import predict

    assert pixel_count("64M") == 64_000_000 and pixel_count("64e6") == 64_000_000 and pixel_count("1000") == 1000
    for bad in ("0", "nan", "lots"):
        with pytest.raises(SystemExit) as e:
            predict.parser().parse_args(["--model", "m", "--images", "x", "--max-batch-pixels", bad])
        assert e.value.code == 2
    assert "--max-batch-pixels" in capsys.readouterr().err


# --- folders: a looping symlink chain, 1,100 nested folders --------------------------------------------------------

def test_a_folder_behind_a_too_long_symlink_chain_is_a_reported_skip(tmp_path):
    _png(tmp_path / "data" / "real" / "a.png", (4, 4))
    target = tmp_path / "data" / "real"
    for i in range(60):  # Linux follows at most 40
        link = tmp_path / f"link{i}"
        link.symlink_to(target)
        target = link
    (tmp_path / "data" / "far").symlink_to(target)
    skipped = []
    assert list_images(tmp_path / "data", skipped=skipped) == [tmp_path / "data" / "real" / "a.png"]
    assert skipped == [(str(tmp_path / "data" / "far"), pytest.approx(skipped[0][1]))]
    assert "ELOOP" in skipped[0][1]
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable path\(s\) while listing images, e.g. .*far \(symbolic"):
        list_images(tmp_path / "data")
    listed = []
    assert image_inputs([str(tmp_path / "data")], skipped=listed) == [tmp_path / "data" / "real" / "a.png"]
    assert [p for p, _ in listed] == [str(tmp_path / "data" / "far")]


def test_a_dangling_link_is_reported_not_silently_dropped(tmp_path):
    _png(tmp_path / "a.png", (4, 4))
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    skipped = []
    assert list_images(tmp_path, skipped=skipped) == [tmp_path / "a.png"]
    assert skipped == [(str(tmp_path / "gone.jpg"), "dangling symbolic link (its target does not exist)")]


def test_1100_nested_folders_are_listed_without_recursion_error(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    try:  # relative to a descriptor: os.makedirs itself recurses once per level
        for _ in range(1100):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open("deep.png", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "wb") as f:
            Image.new("RGB", (4, 4)).save(f, format="PNG")
        os.close(fd)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            found = list_images(tmp_path)
        assert len(found) == 1 and found[0].name == "deep.png" and len(found[0].relative_to(tmp_path).parts) == 1101
    finally:
        _remove_nested(tmp_path)


def _remove_nested(root):
    """Remove root/d/d/... level by level: shutil.rmtree (and so pytest's tmp cleanup) recurses once per level."""
    top = root / "d"
    while (top / "d").is_dir():
        os.rename(top / "d", root / "next")
        os.rmdir(top)
        os.rename(root / "next", top)
    if top.exists():
        shutil.rmtree(top)


# --- manifests ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", ["/etc/passwd", "../outside.png", "sub/../../outside.png"])
def test_a_manifest_entry_outside_its_folder_is_refused_naming_file_and_line(tmp_path, entry):
    manifest = tmp_path / "m" / "list.txt"
    manifest.parent.mkdir()
    manifest.write_text(f"# images\nin.png, 1\n{entry}, 2\n")
    with pytest.raises(ManifestError, match=rf"list.txt:3: '{entry}' is an? .*allow_outside=True.*--allow-outside"):
        manifest_images(manifest)
    with pytest.raises(ManifestError, match="list.txt:3"):
        image_inputs([str(manifest)])


def test_a_manifest_may_reach_outside_when_the_caller_opts_in(tmp_path):
    outside = _png(tmp_path / "outside.png", (4, 4))
    manifest = tmp_path / "m" / "list.txt"
    manifest.parent.mkdir()
    manifest.write_text(f"in.png\nsub/../in2.png\n../outside.png\n{outside}\n")
    assert manifest_images(manifest, allow_outside=True) == [
        manifest.parent / "in.png", manifest.parent / "sub/../in2.png", manifest.parent / "../outside.png", outside]
    with pytest.raises(ManifestError, match="list.txt:3"):
        manifest_images(manifest)
    assert image_inputs([str(manifest)], allow_outside=True)[-1] == outside


def test_predict_has_the_allow_outside_paths_flag():
    from vision.commands import predict

    args = predict.parser().parse_args(["--model", "m", "--images", "x.txt", "--allow-outside-paths"])
    assert args.allow_outside_paths is True
