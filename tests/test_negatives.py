"""Real non-logo negatives (vision.synth.negatives), print conditions in the compositor, and the detector data's
hard negatives, artwork styles and cross-style val split (vision.synth.yolo)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vision.crops import CROP_MARGIN, square_crop
from vision.synth.catalog import list_brands
from vision.synth.composite import PrintConditions, composite_logos, cylindrical_warp, wild_logo_crop
from vision.synth.negatives import brand_free_photos, recorded_margin, textured_boxes, write_impostors
from vision.synth.styles import EVAL_STYLES, load_icon_sets, training_styles
from vision.synth.yolo import write_yolo_dataset

ICONIFY = Path(__file__).parent / "data" / "iconify"
CONDITIONS = ("curved", "glare", "low_contrast", "small", "blur", "sticker")
GREY = 128
GREEN = (20, 200, 40)


@pytest.fixture
def grocery(tmp_path) -> Path:
    """A tiny Grocery-Store-shaped tree: busy Fruit/Vegetables photos (a 'label' with 'print' on each), Packages."""
    rng = np.random.default_rng(0)
    root = tmp_path / "grocery"
    for split in ("train", "val"):
        for category in ("Fruit/Apple", "Vegetables/Leek", "Packages/Juice"):
            folder = root / split / category
            folder.mkdir(parents=True)
            for i in range(2):
                image = np.full((120, 160, 3), (90, 160, 60), np.uint8)
                image[30:60, 40:100] = 250
                image[36:54:4, 44:96] = rng.integers(0, 60, size=(5, 52, 3))
                Image.fromarray(image).save(folder / f"{split}_{i}.jpg")
    return root


def _logo() -> np.ndarray:
    yy, xx = np.mgrid[:40, :60]
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., :3] = GREEN
    rgba[..., 3] = np.where(((xx - 30) / 29) ** 2 + ((yy - 20) / 19) ** 2 <= 1, 255, 0)
    return rgba


def test_brand_free_photos_are_fruit_and_vegetables_and_never_test(grocery):
    photos = brand_free_photos(grocery, "train")
    assert len(photos) == 4 and all("Packages" not in p.parts for p in photos)
    assert brand_free_photos(grocery / "val", "val") == brand_free_photos(grocery, "val")
    with pytest.raises(ValueError, match="held out"):
        brand_free_photos(grocery, "test")


def test_textured_boxes_prefer_the_printed_label():
    image = np.full((120, 160, 3), (90, 160, 60), np.uint8)
    image[30:60, 40:100] = 250
    image[34:56:3, 44:96] = 0          # print lines: the only edges in the photo
    boxes = textured_boxes(image, 5, np.random.default_rng(0), candidates=16)
    centres = [((x1 + x2) / 2, (y1 + y2) / 2) for x1, y1, x2, y2 in boxes]
    assert sum(30 <= x <= 110 and 20 <= y <= 70 for x, y in centres) >= 4


def test_write_impostors_crops_detections_and_textured_regions(tmp_path, grocery):
    calls = []

    def detect(arrays):
        calls.append(len(arrays))
        # one confident box on the label, one below conf that must be dropped
        return [[{"box": [40.0, 30.0, 100.0, 60.0], "score": 0.8}, {"box": [0, 0, 10, 10], "score": 0.05}]
                for _ in arrays]

    summary = write_impostors(tmp_path / "imp", grocery, detect, conf=0.1, textured_per_photo=2, size=48,
                              batch_size=3)
    assert summary.photos == {"train": 4, "val": 4} and summary.photos_with_detection == {"train": 4, "val": 4}
    assert summary.crops["train"] == {"detection": 4, "textured": 8} and sum(calls) == 8
    rows = list(csv.DictReader((tmp_path / "imp" / "manifest.csv").open()))
    assert len(rows) == 24 and {r["split"] for r in rows} == {"train", "val"}
    assert all("Packages" not in r["source"] for r in rows)
    detection = next(r for r in rows if r["kind"] == "detection")
    assert float(detection["score"]) == 0.8
    assert [float(detection[k]) for k in ("x1", "y1", "x2", "y2")] == [40, 30, 100, 60]
    crop = np.asarray(Image.open(tmp_path / "imp" / detection["file"]))
    photo = np.asarray(Image.open(grocery / detection["source"]))
    expected = square_crop(photo, [40, 30, 100, 60], margin=CROP_MARGIN, size=48)   # the recogniser's framing
    assert crop.shape == (48, 48, 3) and np.abs(crop.astype(int) - expected).mean() < 8   # JPEG round trip
    record = json.loads((tmp_path / "imp" / "impostors.json").read_text())
    assert record["crops"]["val"] == {"detection": 4, "textured": 8} and record["parameters"]["conf"] == 0.1
    # build-gallery checks the crops' framing against the gallery's: found from a split folder or the root
    assert recorded_margin(tmp_path / "imp" / "val") == (tmp_path / "imp" / "impostors.json", CROP_MARGIN)
    assert recorded_margin(tmp_path / "imp") == recorded_margin(tmp_path / "imp" / "train")
    assert recorded_margin(grocery) is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "impostors.json").write_text('{"parameters": {"margin": "wide"}}')
    with pytest.raises(ValueError, match=r"bad.impostors.json: parameters.margin must be a number"):
        recorded_margin(tmp_path / "bad")

    again = write_impostors(tmp_path / "imp2", grocery, detect, conf=0.1, textured_per_photo=2, size=48)
    assert again.crops == summary.crops
    assert (tmp_path / "imp2" / "manifest.csv").read_text() == (tmp_path / "imp" / "manifest.csv").read_text()
    with pytest.raises(FileExistsError):
        write_impostors(tmp_path / "imp", grocery, detect)
    with pytest.raises(ValueError, match="held out"):
        write_impostors(tmp_path / "imp3", grocery, None, splits=("test",))


@pytest.mark.parametrize("condition", CONDITIONS)
def test_print_conditions_keep_boxes_on_the_visible_logo(condition):
    conditions = PrintConditions(**{name: float(name == condition) for name in CONDITIONS})
    background = np.full((160, 200, 3), GREY, np.uint8)
    for seed in range(6):
        image, boxes = composite_logos(background, [(_logo(), 3)], np.random.default_rng(seed), photometric_aug=False,
                                       image_aug=False, occlusion_prob=0.0, print_conditions=conditions)
        assert boxes.shape == (1, 5) and boxes[0, 0] == 3
        if condition == "glare":   # light over the logo and around it: no pixel test for the extent
            continue
        # logo pixels: greener than the grey background, and darker in red than any sticker's light paper
        red, green = image[..., 0].astype(int), image[..., 1].astype(int)
        logo = (green - red > 8) & (red < 140)
        ys, xs = np.nonzero(logo)
        expected = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        assert np.abs(boxes[0, 1:] - expected).max() <= 2, (condition, seed, boxes, expected)
        if condition == "small":
            assert max(boxes[0, 3] - boxes[0, 1], boxes[0, 4] - boxes[0, 2]) <= 0.06 * 160 + 2
    with pytest.raises(ValueError, match="probability"):
        PrintConditions(glare=1.5)


def test_cylindrical_warp_narrows_shades_and_keeps_the_outside_empty():
    layer = np.zeros((20, 40, 4), np.float32)
    layer[:] = 1.0
    warped = cylindrical_warp(layer, arc=1.5, tilt=0.2)
    assert warped.shape[1] < 40 and warped.shape[0] > 20
    centre = warped.shape[1] // 2
    assert warped[10, centre, 0] > warped[10, 1, 0]            # edges darker than the middle
    assert warped[0, 1, 3] == 0 and warped[-1, centre, 3] == 0   # bowed: corners of the box stay empty
    with pytest.raises(ValueError):
        cylindrical_warp(layer, arc=4.0)


def test_wild_logo_crop_takes_a_rendered_mark():
    background = np.full((96, 96, 3), GREY, np.uint8)
    crop = wild_logo_crop(_logo(), background, np.random.default_rng(0), size=32)
    assert crop is not None and crop.shape == (32, 32, 3)


def _labels(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.glob("*.txt"))}


def test_detector_data_has_hard_negatives_and_styles(tmp_path, grocery):
    brands = [b for b in list_brands() if b.slug in {"c", "vite", "npm", "tensorflow", "vercel", "nodedotjs",
                                                     "github", "fastapi"}]
    sets = training_styles(load_icon_sets(ICONIFY))
    photos = [grocery / "train" / "Fruit", grocery / "train" / "Vegetables"]
    summary = write_yolo_dataset(tmp_path / "d", photos, train_images=12, val_images=0, imgsz=96, brands=brands,
                                 icon_sets=sets, style_fraction=0.8, negatives=photos, negative_fraction=0.4,
                                 print_conditions=PrintConditions(), seed=1)
    labels = _labels(tmp_path / "d" / "labels" / "train")
    empty = sum(text == "" for text in labels.values())
    assert 0 < summary.hard_negatives["train"] <= summary.background_only["train"] == empty < 12
    assert set(summary.styles_used["train"]) - {"simple-icons"} <= set(sets) and len(summary.styles_used["train"]) > 1
    record = json.loads((tmp_path / "d" / "brands.json").read_text())
    assert record["counts"]["hard_negatives"]["train"] == summary.hard_negatives["train"]
    assert set(record["icon_sets"]) == set(sets) and all(r["license"] for r in record["icon_sets"].values())
    with pytest.raises(ValueError, match="held-out"):
        write_yolo_dataset(tmp_path / "e", photos, imgsz=96, brands=brands, icon_sets=load_icon_sets(ICONIFY))


def test_cross_style_val_shows_test_brands_in_the_held_out_style_only(tmp_path, grocery):
    brands = [b for b in list_brands() if b.slug in {"c", "vite", "npm", "tensorflow", "vercel"}]
    photos = [grocery / "val" / "Fruit", grocery / "val" / "Vegetables"]
    summary = write_yolo_dataset(tmp_path / "x", photos, train_images=0, val_images=6, imgsz=96, brands=brands,
                                 val_brand_split="test", val_icon_sets=load_icon_sets(ICONIFY, EVAL_STYLES),
                                 negatives=photos, negative_fraction=0.3, logos_per_image=(1, 2))
    assert set(summary.styles_used["val"]) == set(EVAL_STYLES)
    record = json.loads((tmp_path / "x" / "brands.json").read_text())
    assert set(record["used"]["val"]) <= {"npm", "vercel"} and record["used"]["val"]   # the test-split brands
