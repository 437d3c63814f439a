"""benchmarks/device_pack.py: a generated dataset packed as WebP for the transfer to a lent GPU machine must come
back out as the same dataset to both training loaders (labels untouched, images close to the JPEGs)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from .conftest import REPO, load_script

LOGO_SAMPLE = REPO / "data" / "logo_sample"


def _pack():
    return load_script("benchmarks/device_pack.py")


def test_yolo_set_packs_as_webp_and_loads_with_the_same_labels(tmp_path):
    out = tmp_path / "logo_sample.tar.gz"
    assert _pack().main([str(LOGO_SAMPLE), str(out), "--quality", "75", "--workers", "1"]) == 0
    with tarfile.open(out) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "x", filter="data")
    jpegs = sorted(p.relative_to(LOGO_SAMPLE) for p in LOGO_SAMPLE.rglob("*.jpg"))
    others = sorted(p.relative_to(LOGO_SAMPLE) for p in LOGO_SAMPLE.rglob("*") if p.is_file() and p.suffix != ".jpg")
    assert sorted(names) == sorted([str(Path("logo_sample") / p.with_suffix(".webp")) for p in jpegs]
                                   + [str(Path("logo_sample") / p) for p in others])
    packed = tmp_path / "x" / "logo_sample"
    for rel in others:   # labels, data.yaml, brands.json: byte for byte
        assert (packed / rel).read_bytes() == (LOGO_SAMPLE / rel).read_bytes()
    for rel in jpegs[:3]:   # lossy, but the same picture
        a = np.asarray(Image.open(LOGO_SAMPLE / rel).convert("RGB"), np.float32)
        b = np.asarray(Image.open(packed / rel.with_suffix(".webp")).convert("RGB"), np.float32)
        assert a.shape == b.shape and np.abs(a - b).mean() < 8

    from vision.data.detection import YoloDataModule

    data = YoloDataModule(str(packed / "data.yaml"), imgsz=64, batch_size=4, num_workers=0)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    want = sum(len((LOGO_SAMPLE / "labels" / "val" / p.name).with_suffix(".txt").read_text().split("\n")) - 1
               for p in sorted((LOGO_SAMPLE / "images" / "val").glob("*.jpg"))[:4])
    assert len(batch["img"]) == 4 and len(batch["cls"]) == want


def test_brand_folders_pack_and_scan_as_webp(tmp_path):
    src = tmp_path / "brands" / "train"
    rng = np.random.default_rng(0)
    for brand in ("acme", "globex"):
        (src / brand).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(src / brand / f"x_{i}.jpg", quality=92)
    out = tmp_path / "brands.tar.gz"
    assert _pack().main([str(tmp_path / "brands"), str(out), "--workers", "1"]) == 0
    with tarfile.open(out) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    from vision.data.datasets import scan_image_folder

    samples, classes = scan_image_folder(tmp_path / "x" / "brands" / "train")
    assert classes.names == ["acme", "globex"] and len(samples) == 4
    assert all(Path(s.path).suffix == ".webp" for s in samples)
