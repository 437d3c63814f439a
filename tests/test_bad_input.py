"""Bad input to the data readers and the predict/recognize tools: each fails loudly, naming the file, or is reported.

The tools run in-process with the model loaders replaced by stand-ins, so no network is trained or loaded.
"""

from __future__ import annotations

import os
import random
import re
import warnings

import numpy as np
import pytest
from PIL import Image

from vision.data.datamodule import ClassificationDataModule
from vision.data.datasets import ClassTable, ManifestError, read_manifest
from vision.data.io import list_images

from .conftest import SAMPLE


def _write_images(folder, names, size=(24, 16)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((size[1], size[0], 3), 10 + 20 * i, np.uint8)).save(folder / name)


# --- item 10: encodings of manifests and class tables
def test_bom_manifest_and_class_table_read_clean(tmp_path):
    _write_images(tmp_path, ["a.jpg", "b.jpg"])
    (tmp_path / "m.txt").write_bytes("a.jpg, apple\nb.jpg, pear\n".encode("utf-8-sig"))
    (tmp_path / "names.txt").write_bytes("apple\npear\n".encode("utf-8-sig"))
    (tmp_path / "classes.csv").write_bytes("name,id\napple,0\npear,1\n".encode("utf-8-sig"))
    for table_file in ("names.txt", "classes.csv"):
        table = ClassTable.read(tmp_path / table_file)
        assert table.names == ["apple", "pear"]
        samples = read_manifest(tmp_path / "m.txt", classes=table)
        assert [(s.path.name, s.label) for s in samples] == [("a.jpg", 0), ("b.jpg", 1)]


def test_latin1_manifest_and_class_table_name_file_and_line(tmp_path):
    _write_images(tmp_path, ["a.jpg", "cafe.jpg"])
    (tmp_path / "m.txt").write_bytes("a.jpg, 0\n# ok\ncafé.jpg, 1\n".encode("latin-1"))
    with pytest.raises(ManifestError, match=r"m\.txt:3: byte 0xe9 at column 4 .*save the file as UTF-8"):
        read_manifest(tmp_path / "m.txt")
    (tmp_path / "classes.csv").write_bytes("name,id\ncafé,0\n".encode("cp1252"))
    with pytest.raises(ManifestError, match=r"classes\.csv:2: .*save the file as UTF-8"):
        ClassTable.read(tmp_path / "classes.csv")
    (tmp_path / "names.txt").write_text("apple\npear\n", encoding="utf-16")
    with pytest.raises(ManifestError, match=r"names\.txt:1: the file is UTF-16; save the file as UTF-8"):
        ClassTable.read(tmp_path / "names.txt")


# --- item 13: one drawing per input, even when stems collide
def test_predict_draws_one_png_per_input(tmp_path):
    from vision.commands import predict

    _write_images(tmp_path / "a", ["shelf.1.jpg", "shelf.2.png", "shelf.1.png"])
    _write_images(tmp_path / "b", ["shelf.1.jpg"])  # same name in another folder
    rc = predict.main(["--model", "logo_yolo11n", "--device", "cpu", "--images", str(tmp_path / "a"),
                       str(tmp_path / "b"), "--out", str(tmp_path / "p.jsonl"), "--draw", str(tmp_path / "drawn")])
    assert rc == 0
    drawn = sorted(p.name for p in (tmp_path / "drawn").iterdir())
    assert drawn == ["shelf.1.jpg.png", "shelf.1.png.png", "shelf.1_1.jpg.png", "shelf.2.png.png"]


def test_recognize_draws_one_png_per_input(tmp_path, monkeypatch):
    from vision.commands import recognize

    class Recognizer:
        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            return cls()

        def predict(self, images, batch_size=16):
            return [[{"box": [1.0, 1.0, 8.0, 8.0], "brand": "acme", "score": 0.8, "best": "acme",
                      "detection_score": 0.9}] for _ in images]

    monkeypatch.setattr(recognize, "recognizer_class", lambda: Recognizer)
    _write_images(tmp_path / "in", ["shelf.1.jpg", "shelf.2.png"])
    rc = recognize.main(["--images", str(tmp_path / "in"), "--embedder", "e", "--gallery", "g.npz",
                         "--out", str(tmp_path / "out"), "--draw", str(tmp_path / "out" / "annotated")])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "out" / "annotated").iterdir()) == [
        "000001_shelf.1.jpg.png", "000002_shelf.2.png.png"]


# --- item 14: silent surprises
def test_empty_folder_is_an_error_for_predict_and_recognize(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    _write_images(tmp_path / "full", ["a.jpg"])
    import vision.predictors
    from vision.commands import main as vision_main

    monkeypatch.setattr(vision.predictors, "predictor", lambda *a, **k: pytest.fail("model loaded before inputs"))
    assert vision_main(["predict", "--model", "fake", "--images", str(tmp_path / "full"),
                        str(tmp_path / "empty")]) == 1
    assert re.search(r"^error: no image files .* in folder\(s\): .*empty", capsys.readouterr().err)
    from vision.commands import recognize

    assert recognize.main(["--images", str(tmp_path / "empty"), "--embedder", "e", "--gallery", "g.npz",
                           "--out", str(tmp_path / "out")]) == 1
    assert f"{tmp_path / 'empty'}" in capsys.readouterr().err


def test_benchmark_refuses_a_folder_without_images_before_any_export(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    import vision.benchmarking
    from vision.commands import main as vision_main

    monkeypatch.setattr(vision.benchmarking, "benchmark_model", lambda *a, **k: pytest.fail("timed no images"))
    for images, cause in ((str(tmp_path / "empty"), r"no image files .* in folder\(s\): .*empty"),
                          ("", "--images: an empty path"), (str(tmp_path / "missing"), "missing")):
        assert vision_main(["benchmark", "--model", "grocery_resnet10t", "--backends", "torch", "--images", images,
                            "--out", str(tmp_path / "b.json")]) != 0
        assert re.search(rf"^error: .*{cause}", capsys.readouterr().err), images
    assert not (tmp_path / "b.json").exists()


def test_an_empty_images_path_is_an_error_not_the_current_folder(tmp_path, monkeypatch, capsys):
    import vision.predictors
    from vision.commands import main as vision_main
    from vision.predictors import iter_images

    _write_images(tmp_path, ["a.jpg"])
    monkeypatch.chdir(tmp_path)  # a folder with an image: reading it would "work"
    monkeypatch.setattr(vision.predictors, "predictor", lambda *a, **k: pytest.fail("model loaded before inputs"))
    for images in ([""], [str(tmp_path / "a.jpg"), " "]):
        assert vision_main(["predict", "--model", "fake", "--images", *images]) != 0
        assert "error: --images: an empty path" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="empty path"):
        next(iter_images(""))


def test_predict_fails_when_no_image_could_be_read(tmp_path, capsys):
    from vision.commands import predict

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (tmp_path / "bad" / "b.png").write_bytes(b"")
    rc = predict.main(["--model", "logo_yolo11n", "--device", "cpu", "--images", str(tmp_path / "bad"),
                       "--out", str(tmp_path / "p.jsonl")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "skipped 2 of 2" in err and "none of the 2 image(s) could be read" in err


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_list_images_walks_each_real_folder_once(tmp_path):
    # (two loops in one tree would make the old walk exponential, so each case gets its own tree)
    _write_images(tmp_path / "loop" / "sub", ["x.jpg", "y.png"])
    _write_images(tmp_path / "loop", ["top.jpg"])
    os.symlink(tmp_path / "loop", tmp_path / "loop" / "sub" / "back")  # a loop back to the top
    _write_images(tmp_path / "twice" / "sub", ["x.jpg"])
    os.symlink(tmp_path / "twice" / "sub", tmp_path / "twice" / "again")  # a second way into sub
    os.symlink(tmp_path / "twice" / "sub" / "x.jpg", tmp_path / "twice" / "alias.jpg")  # a second name for x.jpg
    for folder, real in [("loop", ["top.jpg", "sub/x.jpg", "sub/y.png"]), ("twice", ["sub/x.jpg"])]:
        found = list_images(tmp_path / folder)
        assert len(found) == len(real)
        expected = sorted(os.path.realpath(tmp_path / folder / n) for n in real)
        assert sorted(os.path.realpath(p) for p in found) == expected


def test_label_out_of_range_without_class_table_is_refused(tmp_path):
    _write_images(tmp_path, [f"{i}.jpg" for i in range(4)])
    (tmp_path / "train.txt").write_text("0.jpg, 0\n1.jpg, 1\n2.jpg, 999\n")
    (tmp_path / "val.txt").write_text("3.jpg, 1\n")
    with pytest.raises(ManifestError, match=r"train\.txt:3: label 999 is out of range 0\.\.1.*class table"):
        ClassificationDataModule(train=str(tmp_path / "train.txt"), val=str(tmp_path / "val.txt"), num_workers=0)
    (tmp_path / "train.txt").write_text("0.jpg, 2\n1.jpg, 1\n2.jpg, 3\n")  # 1-based ids
    with pytest.raises(ManifestError, match=r"train\.txt:1: no sample has label 0: labels are 0-based"):
        ClassificationDataModule(train=str(tmp_path / "train.txt"), val=str(tmp_path / "val.txt"), num_workers=0)
    (tmp_path / "train.txt").write_text("0.jpg, 0\n1.jpg, 1\n2.jpg, 2\n")  # ids 0..2, all used: fine
    assert ClassificationDataModule(train=str(tmp_path / "train.txt"), val=str(tmp_path / "val.txt")).num_classes == 3


def test_duplicate_and_conflicting_manifest_lines(tmp_path):
    _write_images(tmp_path, ["a.jpg", "b.jpg"])
    (tmp_path / "m.txt").write_text("a.jpg, 0\nb.jpg, 1\n./a.jpg, 0\na.jpg, 0\n")
    with pytest.warns(UserWarning, match=r"m\.txt: 2 duplicate line\(s\) .*ignored.*line 3 repeats line 1"):
        samples = read_manifest(tmp_path / "m.txt")
    assert [s.path.name for s in samples] == ["a.jpg", "b.jpg"]  # kept once, at its first line
    (tmp_path / "m.txt").write_text("a.jpg, 0\nb.jpg, 1\na.jpg, 1\n")
    with pytest.raises(ManifestError, match=r"m\.txt:3: .*a\.jpg is labelled 1 here but 0 at .*m\.txt:1"):
        read_manifest(tmp_path / "m.txt")


def test_train_val_overlap_is_reported_in_setup(tmp_path):
    _write_images(tmp_path, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    (tmp_path / "copy_of_b.jpg").write_bytes((tmp_path / "b.jpg").read_bytes())
    (tmp_path / "train.txt").write_text("a.jpg, 0\nb.jpg, 1\nc.jpg, 0\n")
    (tmp_path / "val.txt").write_text("a.jpg, 0\ncopy_of_b.jpg, 1\nd.jpg, 1\n")
    dm = ClassificationDataModule(train=str(tmp_path / "train.txt"), val=str(tmp_path / "val.txt"),
                                  input_size=16, num_workers=0)
    with pytest.warns(UserWarning, match=r"train and val splits share 2 image\(s\).*a\.jpg = .*a\.jpg.*copy_of_b"):
        dm.setup("fit")


def test_committed_sample_has_no_overlap_or_duplicates(tiny_data_kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ClassificationDataModule(**tiny_data_kwargs).setup("fit")


# --- fuzz: our readers give a result or our own error, never a raw one
def _mutations(seed_bytes: bytes, rng: random.Random, n: int):
    for _ in range(n):
        kind = rng.randrange(4)
        if kind == 0:
            yield seed_bytes[:rng.randrange(len(seed_bytes) + 1)]
        elif kind == 1:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        else:
            data = bytearray(seed_bytes)
            for _ in range(rng.randrange(1, 8)):
                pos = rng.randrange(len(data) + 1)
                if kind == 2:
                    data[pos:pos + 1] = bytes([rng.randrange(256)])
                else:
                    data[pos:pos] = rng.choice([b",", b"\n", b"\r", b"\x00", b"\xef\xbb\xbf", b"\"", b"-1", b"9" * 30,
                                                b"\xff", "é".encode(), b"#", b" ", b"/" * 300])
            yield bytes(data)


def test_fuzz_manifest_and_class_table_readers(tmp_path):
    rng = random.Random(1234)
    lines = (SAMPLE / "val.txt").read_bytes().splitlines(keepends=True)[:6]
    seeds = {"m.txt": b"".join(lines) + lines[0] + b"# comment\n" + lines[1].split(b",")[0] + b", Granny-Smith\n",
             "classes.csv": (SAMPLE / "classes.csv").read_bytes(),
             "names.txt": b"\xef\xbb\xbfapple\npear\nplum\n"}
    table = ClassTable.read(SAMPLE / "classes.csv")
    outcomes = {"ok": 0, "error": 0}
    for name, seed in seeds.items():
        for data in _mutations(seed, rng, 80):
            target = tmp_path / name
            target.write_bytes(data)
            try:
                if name == "m.txt":
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", UserWarning)  # duplicate-line reports are fine here
                        read_manifest(target, root=SAMPLE, classes=rng.choice([None, table]))
                else:
                    ClassTable.read(target)
                outcomes["ok"] += 1
            except ManifestError:
                outcomes["error"] += 1
    assert sum(outcomes.values()) == 240 and min(outcomes.values()) > 0, outcomes
