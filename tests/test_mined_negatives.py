"""Hard-negative mining for the detector data (vision.synth.mined, `vision make-logo-dataset --mined-negatives`)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vision.commands import make_logo_dataset
from vision.synth.catalog import list_brands
from vision.synth.mined import mined_negative_photos
from vision.synth.negatives import write_impostors
from vision.synth.record import LogoDatasetWarning
from vision.synth.yolo import write_yolo_dataset


@pytest.fixture
def impostors(tmp_path) -> tuple[Path, Path]:
    """A tiny Grocery-Store tree and the impostors a fake detector leaves on it: it fires at 0.8 on the train
    photos whose name ends in 0, at 0.15 on the others (and on every val photo at 0.9)."""
    root = tmp_path / "grocery"
    for split in ("train", "val"):
        for category in ("Fruit/Apple", "Vegetables/Leek"):
            folder = root / split / category
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((64, 80, 3), (90, 160, 60 + 40 * i), np.uint8)).save(folder / f"p{i}.jpg")

    def detect(arrays):
        # the photos' third channel tells them apart: p0 -> 60, p1 -> 100
        return [[{"box": [10.0, 10.0, 40.0, 30.0], "score": 0.8 if a[0, 0, 2] < 80 else 0.15}] for a in arrays]

    write_impostors(tmp_path / "imp", root, detect, conf=0.1, textured_per_photo=1, size=32, detector_name="fake")
    return tmp_path / "imp", root


def test_mined_photos_are_train_photos_the_detector_fires_on(impostors):
    folder, root = impostors
    photos, report = mined_negative_photos(folder, min_score=0.25)
    assert photos == [root / "train/Fruit/Apple/p0.jpg", root / "train/Vegetables/Leek/p0.jpg"]
    assert (report.photos_in_split, report.photos_kept, report.detector) == (4, 2, "fake")
    assert len(mined_negative_photos(folder, min_score=0.1)[0]) == 4
    with pytest.raises(ValueError, match="held out"):
        mined_negative_photos(folder, split="val")
    with pytest.raises(ValueError, match="below the confidence"):
        mined_negative_photos(folder, min_score=0.05)
    with pytest.raises(ValueError, match="no train photo"):
        mined_negative_photos(folder, min_score=0.9)


def test_mining_names_bad_rows_and_skips_missing_photos(impostors):
    folder, root = impostors
    manifest = folder / "manifest.csv"
    lines = manifest.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("train,") and ",detection," in line)
    (root / lines[row].split(",")[3]).unlink()
    with pytest.warns(LogoDatasetWarning, match="file not found"):
        photos, report = mined_negative_photos(folder)
    assert len(photos) == 1 and len(report.missing) == 1
    fields = lines[row].split(",")
    manifest.write_text("\n".join(lines[:row] + [",".join(fields[:-1] + ["high"])] + lines[row + 1:]) + "\n")
    with pytest.raises(ValueError, match=rf"manifest.csv:{row + 1}: score 'high'"):
        mined_negative_photos(folder)
    fields[3] = "val/Fruit/Apple/p0.jpg"   # a val photo listed as train: refused, never used
    manifest.write_text("\n".join(lines[:row] + [",".join(fields)] + lines[row + 1:]) + "\n")
    with pytest.raises(ValueError, match=rf"manifest.csv:{row + 1}: source 'val/"):
        mined_negative_photos(folder)


def test_make_logo_dataset_trains_on_mined_negatives(tmp_path, impostors, capsys, monkeypatch):
    folder, root = impostors
    brands = [b for b in list_brands() if b.slug in {"c", "vite", "npm", "tensorflow", "vercel", "github"}]
    monkeypatch.setattr("vision.synth.yolo.list_brands", lambda: brands)
    photos = [root / "train" / "Fruit", root / "train" / "Vegetables"]
    val = [str(root / "val" / "Fruit")]
    args = ["--backgrounds", *map(str, photos), "--val-backgrounds", *val, "--out", str(tmp_path / "d"),
            "--mined-negatives", str(folder), "--negative-fraction", "0.5", "--train-images", "12",
            "--val-images", "2", "--imgsz", "64", "--print-conditions", "--print-conditions-scale", "0.5",
            "--no-progress"]
    assert make_logo_dataset.main(args) == 2
    assert "--val-negatives" in capsys.readouterr().err
    assert make_logo_dataset.main(args + ["--negatives", *val, "--val-negatives", *val]) == 2
    assert "pass one" in capsys.readouterr().err
    assert make_logo_dataset.main(args + ["--val-negatives", *val]) == 0
    assert "mined negatives: 2 of 4 train photos" in capsys.readouterr().err
    record = json.loads((tmp_path / "d" / "brands.json").read_text())
    params = record["parameters"]
    assert params["mined_negatives"]["photos_kept"] == 2 and params["print_conditions"]["curved"] == 0.15
    assert sorted(params["negatives"]) == [str(root / "train/Fruit/Apple/p0.jpg"),
                                           str(root / "train/Vegetables/Leek/p0.jpg")]
    assert record["counts"]["hard_negatives"]["train"] > 0


def test_writer_takes_photo_files_as_negatives(tmp_path, impostors):
    _, root = impostors
    brands = [b for b in list_brands() if b.slug in {"c", "vite", "npm", "tensorflow", "vercel"}]
    only = root / "train/Fruit/Apple/p1.jpg"   # the only negative: its colour shows in every negative image
    summary = write_yolo_dataset(tmp_path / "d", root / "train", train_images=8, val_images=0, imgsz=48,
                                 brands=brands, negatives=[only], negative_fraction=1.0)
    assert summary.hard_negatives["train"] == 8
    image = np.asarray(Image.open(tmp_path / "d/images/train/train_000000.jpg"), dtype=float)
    assert np.abs(image.mean(axis=(0, 1)) - (90, 160, 100)).max() < 25   # (the compositor's image noise aside)


def test_writer_draws_wordmarks_with_their_font_licences(tmp_path, impostors):
    from vision.synth.wordmarks import WORDMARK_STYLE, load_fonts

    _, root = impostors
    brands = [b for b in list_brands() if b.slug in {"c", "vite", "npm", "tensorflow", "vercel", "github"}]
    fonts = load_fonts()
    summary = write_yolo_dataset(tmp_path / "w", root / "train", train_images=6, val_images=0, imgsz=96,
                                 brands=brands, wordmark_fraction=1.0, fonts=fonts, logos_per_image=(1, 2))
    assert set(summary.styles_used["train"]) == {WORDMARK_STYLE} and summary.logos_pasted["train"] > 0
    record = json.loads((tmp_path / "w" / "brands.json").read_text())
    assert record["parameters"]["wordmark_fraction"] == 1.0
    assert all(face["license"] for face in record["parameters"]["fonts"].values())
    # without wordmarks the same seed gives the same images as before the option existed
    plain = write_yolo_dataset(tmp_path / "p", root / "train", train_images=3, val_images=0, imgsz=96, brands=brands)
    again = write_yolo_dataset(tmp_path / "q", root / "train", train_images=3, val_images=0, imgsz=96, brands=brands,
                               fonts=fonts)
    assert plain.styles_used == again.styles_used
    assert (tmp_path / "p/labels/train/train_000002.txt").read_text() == \
        (tmp_path / "q/labels/train/train_000002.txt").read_text()
    with pytest.raises(ValueError, match="needs fonts"):
        write_yolo_dataset(tmp_path / "x", root / "train", imgsz=96, brands=brands, wordmark_fraction=0.2)
