"""Logo rendering, brand splits, compositing and the YOLO dataset builder (vision.synth)."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from vision.synth.catalog import Brand, list_brands, split_brands
from vision.synth.composite import composite_logos
from vision.synth.record import LogoDatasetWarning
from vision.synth.render import LogoRenderError, random_logo_style, render_logo
from vision.synth.yolo import write_yolo_dataset

GREY = 128
BROKEN = Brand(slug="broken-brand", title="Broken", hex="FF0000", svg="<svg><path d=")


@pytest.fixture(scope="module")
def brands() -> list[Brand]:
    return list_brands()


@pytest.fixture(scope="module")
def few_brands(brands) -> list[Brand]:
    # enough that the hash split puts some in every split, few enough to stay fast
    return brands[:40]


@pytest.fixture
def backgrounds(tmp_path) -> Path:
    folder = tmp_path / "backgrounds" / "nested"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, size in enumerate([(150, 200), (240, 180), (96, 96)]):
        Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(folder / f"bg{i}.jpg")
    return folder.parent


def test_list_brands_reads_the_catalogue(brands):
    assert len(brands) > 3000
    assert len({b.slug for b in brands}) == len(brands)
    youtube = next(b for b in brands if b.slug == "youtube")
    assert youtube.rgb == (255, 0, 0) and youtube.svg.startswith("<svg")


def test_render_real_brand_in_its_colour_tightly_cropped(brands):
    youtube = next(b for b in brands if b.slug == "youtube")
    rgba = render_logo(youtube, 64)
    assert rgba.dtype == np.uint8 and rgba.shape[2] == 4 and max(rgba.shape[:2]) == 64
    opaque = rgba[rgba[..., 3] == 255]
    assert len(opaque) > 100 and (opaque[:, :3] == (255, 0, 0)).all()
    alpha = rgba[..., 3]
    assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()

    white = render_logo(youtube, 48, color=(255, 255, 255))
    assert max(white.shape[:2]) == 48 and (white[white[..., 3] > 0][:, :3] == 255).all()


def test_render_plate_cuts_the_mark_out(brands):
    brand = next(b for b in brands if b.slug == "github")
    plate = render_logo(brand, 80, background=(0, 0, 200))
    h, w = plate.shape[:2]
    assert max(h, w) == 80
    assert plate[h // 2, 0, 3] == 255 and plate[0, w // 2, 3] == 255      # plate edges are opaque
    assert (plate[h // 4:3 * h // 4, w // 4:3 * w // 4, 3] == 0).any()    # the mark is a hole in the plate
    assert (plate[plate[..., 3] > 0][:, :3] == (0, 0, 200)).all()


def test_random_logo_style_covers_the_variants(brands):
    rng = np.random.default_rng(0)
    variants = {random_logo_style(brands[0], rng).variant for _ in range(200)}
    assert variants == {"brand", "black", "white", "random", "plate"}


EMPTY_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"/>'


@pytest.mark.parametrize("svg", ["<svg", "<html><body/></html>", EMPTY_SVG])
def test_broken_svg_raises_named_error(svg):
    with pytest.raises(LogoRenderError, match="<svg text>"):
        render_logo(svg, 32)


def test_broken_brand_error_names_the_brand(tmp_path):
    with pytest.raises(LogoRenderError, match="broken-brand"):
        render_logo(BROKEN, 32)
    path = tmp_path / "bad.svg"
    path.write_text("<svg><g>")
    with pytest.raises(LogoRenderError, match="bad.svg"):
        render_logo(path, 32)


def test_split_is_disjoint_complete_deterministic_and_stable(brands):
    slugs = [b.slug for b in brands]
    split = split_brands(brands, seed=0)
    parts = [set(split[name]) for name in ("train", "val", "test")]
    assert sum(map(len, parts)) == len(slugs) and set().union(*parts) == set(slugs)
    assert 0.65 < len(parts[0]) / len(slugs) < 0.75
    assert split_brands(slugs, seed=0) == split
    assert split_brands(slugs, seed=1) != split
    grown = split_brands(slugs + ["some-new-brand"], seed=0)
    for name in ("train", "val", "test"):
        assert set(split[name]) <= set(grown[name])
    with pytest.raises(ValueError):
        split_brands(slugs, fractions=(0.5, 0.2, 0.2))


def _solid_logo(color) -> np.ndarray:
    yy, xx = np.mgrid[:40, :60]
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., :3] = color
    rgba[..., 3] = np.where(((xx - 30) / 29) ** 2 + ((yy - 20) / 19) ** 2 <= 1, 255, 0)   # an ellipse
    return rgba


@pytest.mark.parametrize("geometric, occlusion", [(False, 0.0), (True, 0.0), (True, 1.0)])
def test_composite_box_matches_pasted_pixels(geometric, occlusion):
    background = np.full((160, 200, 3), GREY, np.uint8)
    for seed in range(8):
        rng = np.random.default_rng(seed)
        image, boxes = composite_logos(background, [(_solid_logo((20, 200, 40)), 7)], rng, geometric_aug=geometric,
                                       photometric_aug=False, image_aug=False, occlusion_prob=occlusion)
        assert image.shape == background.shape and image.dtype == np.uint8
        assert boxes.shape == (1, 5) and boxes[0, 0] == 7
        ys, xs = np.nonzero((image != GREY).any(axis=2))
        expected = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        assert np.abs(boxes[0, 1:] - expected).max() <= 2, (seed, boxes, expected)


def test_composite_keeps_logos_apart_and_inside():
    background = np.full((256, 256, 3), GREY, np.uint8)
    logos = [(_solid_logo((255, 0, 0)), i) for i in range(4)]
    for seed in range(5):
        image, boxes = composite_logos(background, logos, np.random.default_rng(seed), occlusion_prob=0.0)
        assert 1 <= len(boxes) <= 4
        assert (boxes[:, 1:3] >= 0).all() and (boxes[:, 3] <= 256).all() and (boxes[:, 4] <= 256).all()
        assert (boxes[:, 3] > boxes[:, 1]).all() and (boxes[:, 4] > boxes[:, 2]).all()


def _read_labels(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.rglob("*.txt"))}


def test_write_yolo_dataset_agnostic(tmp_path, backgrounds, few_brands):
    kwargs = dict(train_images=6, val_images=3, imgsz=128, brands=few_brands + [BROKEN], seed=3)
    with pytest.warns(LogoDatasetWarning, match="broken-brand"):
        summary = write_yolo_dataset(tmp_path / "a", backgrounds, **kwargs)
    assert summary.skipped_svgs == [("broken-brand", summary.skipped_svgs[0][1])]
    assert summary.images == {"train": 6, "val": 3}

    out = tmp_path / "a"
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "logo"} and data["train"] == "images/train" and data["val"] == "images/val"
    assert Path(data["path"]) == out.resolve()
    for split, count in (("train", 6), ("val", 3)):
        images = sorted(p.stem for p in (out / "images" / split).glob("*.jpg"))
        assert len(images) == count
        assert images == sorted(p.stem for p in (out / "labels" / split).glob("*.txt"))
        assert Image.open(out / "images" / split / f"{images[0]}.jpg").size == (128, 128)
    lines = [line for text in _read_labels(out / "labels").values() for line in text.splitlines()]
    assert len(lines) == summary.logos_pasted["train"] + summary.logos_pasted["val"] > 0
    for line in lines:
        fields = line.split()
        assert len(fields) == 5 and int(fields[0]) < len(data["names"])
        assert all(0.0 <= float(v) <= 1.0 for v in fields[1:]) and all(len(v.split(".")[1]) == 6 for v in fields[1:])

    record = json.loads((out / "brands.json").read_text())
    split = record["split"]
    for name in ("train", "val"):
        assert set(record["used"][name]) <= set(record["available"][name]) <= set(split[name])
        assert len(record["used"][name]) == summary.brands_used[name] > 0
    assert "broken-brand" not in record["available"]["train"] + record["available"]["val"]
    assert record["parameters"]["seed"] == 3 and record["parameters"]["mode"] == "agnostic"
    assert record["skipped_svgs"][0][0] == "broken-brand"

    with pytest.warns(LogoDatasetWarning):
        write_yolo_dataset(tmp_path / "b", backgrounds, **kwargs)
    assert _read_labels(tmp_path / "b" / "labels") == _read_labels(out / "labels")
    with pytest.raises(FileExistsError):
        write_yolo_dataset(out, backgrounds, **kwargs)


def test_write_yolo_dataset_per_brand(tmp_path, backgrounds, few_brands):
    summary = write_yolo_dataset(tmp_path / "pb", backgrounds, train_images=4, val_images=2, imgsz=96,
                                 mode="per_brand", brands=few_brands, max_brands=3, background_only_fraction=0.0)
    data = yaml.safe_load((tmp_path / "pb" / "data.yaml").read_text())
    assert len(data["names"]) == 3 and data["names"] == summary.names
    train_split = set(split_brands(few_brands)["train"])
    assert set(data["names"].values()) <= train_split
    class_ids = [int(line.split()[0]) for text in _read_labels(tmp_path / "pb" / "labels").values()
                 for line in text.splitlines()]
    assert class_ids and max(class_ids) < 3


def test_unreadable_backgrounds_are_skipped_with_a_warning(tmp_path, few_brands):
    folder = tmp_path / "bad_backgrounds"
    folder.mkdir()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    with pytest.warns(LogoDatasetWarning, match="skipping background") as caught, \
            pytest.raises(ValueError, match="no readable"):
        write_yolo_dataset(tmp_path / "out", folder, train_images=2, val_images=0, imgsz=64, brands=few_brands)
    assert {Path(str(w.message).split()[2].rstrip(":")).name for w in caught} == {"empty.jpg", "text.png"}
