
import numpy as np
import pytest
from PIL import Image

from vision.data.datamodule import ClassificationDataModule
from vision.data.datasets import ClassTable, LabeledImages, ManifestError, read_manifest, scan_image_folder
from vision.data.io import ImageLoadError

from .conftest import SHARED_GROCERY


def _write_images(folder, names, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((size[1], size[0], 3), 20 * i, np.uint8)).save(folder / name)


def test_grocery_class_table_reads_as_is(sample_dir):
    table = ClassTable.read(sample_dir / "classes.csv")
    assert table.num_classes == 8 and table.num_coarse_classes == 5
    assert table.names[5] == "Oatly-Oat-Milk" and table.coarse_names[table.fine_to_coarse[5]] == "Oat-Milk"


@pytest.mark.skipif(not SHARED_GROCERY.exists(), reason="shared Grocery Store data not present")
def test_full_grocery_store_manifest_reads_as_is():
    table = ClassTable.read(SHARED_GROCERY / "classes.csv")
    # ids 0..42: the dataset text says "42 coarse", its files have 43
    assert (table.num_classes, table.num_coarse_classes) == (81, 43)
    samples = read_manifest(SHARED_GROCERY / "val.txt", classes=table)
    assert len(samples) == 296 and all(table.fine_to_coarse[s.label] == s.coarse_label for s in samples)


def test_plain_name_list_class_table(tmp_path):
    (tmp_path / "names.txt").write_text("cat\ndog\n\n")
    assert ClassTable.read(tmp_path / "names.txt").names == ["cat", "dog"]


def test_manifest_missing_file_names_the_line(tmp_path):
    _write_images(tmp_path, ["a.jpg"])
    (tmp_path / "m.txt").write_text("a.jpg, 0\n# comment\n\nmissing.jpg, 1\n")
    with pytest.raises(ManifestError, match=r"m\.txt:4: image file .*missing\.jpg does not exist"):
        read_manifest(tmp_path / "m.txt")


def test_manifest_label_out_of_range_names_the_line(tmp_path):
    _write_images(tmp_path, ["a.jpg", "b.jpg"])
    (tmp_path / "m.txt").write_text("a.jpg, 0\nb.jpg, 7\n")
    with pytest.raises(ManifestError, match=r"m\.txt:2: label 7 out of range 0\.\.1"):
        read_manifest(tmp_path / "m.txt", classes=ClassTable(["x", "y"]))


@pytest.mark.parametrize("line,match", [("a.jpg", "expected 'path, label"), ("a.jpg, cat", "neither an integer"),
                                        ("a.jpg, -1", "negative label"), ("a.jpg, 0, 1, 2", "4 fields")])
def test_manifest_malformed_lines(tmp_path, line, match):
    _write_images(tmp_path, ["a.jpg"])
    (tmp_path / "m.txt").write_text(line + "\n")
    with pytest.raises(ManifestError, match=match):
        read_manifest(tmp_path / "m.txt")


def test_manifest_labels_by_class_name(tmp_path):
    _write_images(tmp_path, ["a.jpg"])
    (tmp_path / "m.txt").write_text("a.jpg, dog\n")
    assert read_manifest(tmp_path / "m.txt", classes=ClassTable(["cat", "dog"]))[0].label == 1


def test_manifest_coarse_label_must_agree_with_table(tmp_path):
    _write_images(tmp_path, ["a.jpg"])
    (tmp_path / "m.txt").write_text("a.jpg, 0, 1\n")
    table = ClassTable(["a", "b"], ["A", "B"], [0, 1])
    with pytest.raises(ManifestError, match="contradicts the class table"):
        read_manifest(tmp_path / "m.txt", classes=table)


def test_unreadable_images_are_skipped_with_a_counted_warning(tmp_path):
    _write_images(tmp_path / "imgs", ["good0.jpg", "good1.png"])
    (tmp_path / "imgs" / "empty.jpg").write_bytes(b"")
    (tmp_path / "imgs" / "text.jpg").write_text("not an image")
    data = (tmp_path / "imgs" / "good0.jpg").read_bytes()
    (tmp_path / "imgs" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    lines = [f"{n}, 0" for n in ("good0.jpg", "good1.png", "empty.jpg", "text.jpg", "truncated.jpg")]
    (tmp_path / "imgs" / "m.txt").write_text("\n".join(lines))
    samples = read_manifest(tmp_path / "imgs" / "m.txt")
    with pytest.warns(UserWarning, match=r"3 of 5 images are unreadable.*empty\.jpg.*text\.jpg.*truncated\.jpg"):
        ds = LabeledImages(samples, ClassTable(["x"]))
    assert len(ds) == 2 and len(ds.skipped) == 3
    with pytest.raises(ImageLoadError, match="3 of 5 images are unreadable"):
        LabeledImages(samples, ClassTable(["x"]), strict=True)


def test_image_folder_classes_are_sorted_folder_names(tmp_path):
    _write_images(tmp_path / "zebra", ["1.jpg"])
    _write_images(tmp_path / "ant", ["1.png", "2.JPG"])
    (tmp_path / "ant" / "notes.txt").write_text("ignored")
    samples, table = scan_image_folder(tmp_path)
    assert table.names == ["ant", "zebra"]
    assert sorted(s.label for s in samples) == [0, 0, 1]


def test_datamodule_on_committed_sample(tiny_data_kwargs):
    dm = ClassificationDataModule(**tiny_data_kwargs)
    assert dm.num_classes == 8 and dm.num_coarse_classes == 5 and dm.class_names[0] == "Granny-Smith"
    assert dm.preprocessing_dict["input_size"] == 32
    dm.setup("fit")
    x, y, yc = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and y.max() < 8 and yc.max() < 5
    assert len(dm.val_dataloader().dataset) == 32


def test_datamodule_holds_out_a_stratified_val_split(tmp_path):
    for cls in ("a", "b"):
        _write_images(tmp_path / cls, [f"{i}.png" for i in range(10)])
    dm = ClassificationDataModule(train=str(tmp_path), val_fraction=0.2, input_size=16, num_workers=0)
    assert sorted(s.label for s in dm._samples["val"]) == [0, 0, 1, 1]
    assert len(dm._samples["train"]) == 16
    assert not {s.path for s in dm._samples["val"]} & {s.path for s in dm._samples["train"]}


def test_datamodule_rejects_bad_preset_at_construction(tiny_data_kwargs):
    with pytest.raises(ValueError, match="unknown train preset"):
        ClassificationDataModule(**{**tiny_data_kwargs, "train_preset": "nope"})
