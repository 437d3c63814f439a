"""The copy-detection descriptor: two-view data, training through the CLI, its calibrated dedup thresholds stored in
the card and used by ``vision dedup``."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from vision.cli import main
from vision.data.copy_detection import CopyDetectionDataModule, read_image_list
from vision.data.datasets import ManifestError
from vision.dedup import DedupError, Thresholds, scan_images, store_thresholds
from vision.zoo import load_model

from .conftest import REPO, SAMPLE


def test_two_views_share_labels_and_exclusions_hold(tmp_path):
    holdout = tmp_path / "holdout.txt"
    holdout.write_text("# photos a benchmark uses\ntrain/Fruit/Apple/Granny-Smith/Granny-Smith_001.jpg\n")
    dm = CopyDetectionDataModule(str(SAMPLE / "train.txt"), exclude=[str(holdout)], val_fraction=0.2, batch_size=4,
                                 input_size=32, num_workers=0)
    assert dm.excluded == 1 and not any(p.name == "Granny-Smith_001.jpg" for p in dm.train_paths + dm.val_paths)
    assert len(dm.train_paths) + len(dm.val_paths) == 95 and dm.val_paths
    assert not set(dm.train_paths) & set(dm.val_paths)
    dm.setup("fit")
    x, labels = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and torch.equal(labels[:4], labels[4:]) and len(set(labels[:4].tolist())) == 4
    assert not torch.equal(x[:4], x[4:])      # two independent edits, not one image twice
    images, ids, is_query = next(iter(dm.val_dataloader()))
    assert images.shape[1:] == (3, 32, 32) and set(is_query.tolist()) <= {0, 1}
    # the validation queries are the same every epoch
    queries = dm._datasets["val"]
    n = len(dm.val_paths)
    assert torch.equal(queries[n][0], queries[n][0]) and queries[n][1:] == (0, 1)
    # m_per_class: shots of the same product share a batch, as each other's negatives
    dm = CopyDetectionDataModule(str(SAMPLE / "train.txt"), m_per_class=2, batch_size=4, input_size=32, num_workers=0)
    dm.setup("fit")
    _, labels = next(iter(dm.train_dataloader()))
    folders = [dm.train_paths[i].parent for i in labels[:4]]
    assert folders[0] == folders[1] and folders[2] == folders[3] and folders[0] != folders[2]


def test_bad_lines_and_unreadable_photos(tmp_path):
    bad = tmp_path / "list.txt"
    bad.write_text("a.jpg\nnotes.txt, 1\n")
    with pytest.raises(ManifestError, match=r"list.txt:2: 'notes.txt'"):
        read_image_list(bad)
    folder = tmp_path / "photos"
    shutil.copytree(SAMPLE / "train" / "Fruit" / "Banana", folder)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    dm = CopyDetectionDataModule(str(folder), val_fraction=0.0, batch_size=2, input_size=32, num_workers=0)
    assert [p for p, _ in dm.unreadable] == [str(folder / "broken.jpg")]
    assert len(dm.train_paths) == len(list(folder.glob("*.jpg"))) - 1


@pytest.fixture(scope="module")
def descriptor(tmp_path_factory):
    """A descriptor trained one step through tools/train.py's CLI, from the shipped classifier's backbone."""
    tmp = tmp_path_factory.mktemp("copydetect")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        main(["--config", "configs/embedding/copydetect_resnet10t.yaml", "--data.images", str(SAMPLE / "train.txt"),
              "--data.exclude", "[]", "--data.input_size", "32", "--data.batch_size", "8", "--data.num_workers", "0",
              "--data.val_fraction", "0.2", "--model.init_args.embedding_size", "16", "--trainer.max_steps", "1",
              "--trainer.max_epochs", "1", "--data.eval_batch_size", "64", "--trainer.enable_progress_bar",
              "false", "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp / "run"),
              "--zoo-name", "copydetect_tiny", "--zoo-dir", str(tmp / "zoo"), "--zoo-half", "true"])
    return tmp / "zoo" / "copydetect_tiny.safetensors"


def test_one_training_step_through_the_cli(descriptor):
    card = json.loads((descriptor.parent / "manifest.json").read_text())["models"]["copydetect_tiny"]
    assert card["task"] == "embedding" and card["config"]["loss"] == "NTXentLoss"
    assert card["config"]["embedding_size"] == 16 and card["preprocessing"]["input_size"] == 32
    assert "val_recall_at_1" in card["metrics"]


def test_init_from_a_classifier_copies_its_backbone():
    from vision.models.embedder import EmbeddingNet
    from vision.tasks.embedding import init_embedder

    net = EmbeddingNet("resnet10t", 16)
    init_embedder(net, "grocery_resnet10t", "resnet10t", 16)
    classifier = load_model("grocery_resnet10t")
    assert all(torch.equal(a, b) for a, b in zip(net.backbone.state_dict().values(),
                                                  classifier.backbone.state_dict().values()))
    with pytest.raises(ValueError, match="backbone 'resnet10t' != 'resnet14t'"):
        init_embedder(EmbeddingNet("resnet14t", 16), "grocery_resnet10t", "resnet14t", 16)


def test_thresholds_stored_in_the_card_are_the_dedup_defaults(descriptor, tmp_path, capsys):
    from PIL import Image

    from vision.commands.dedup import main as dedup

    photos = tmp_path / "photos"
    photos.mkdir()
    original = SAMPLE / "val" / "Fruit" / "Banana" / "Banana_001.jpg"
    shutil.copyfile(original, photos / "a.jpg")
    shutil.copyfile(original, photos / "a_copy.jpg")                         # byte copy: exact stage
    Image.open(original).save(photos / "a_reencoded.jpg", quality=70)       # pHash stage
    shutil.copyfile(SAMPLE / "val" / "Fruit" / "Apple" / "Granny-Smith" / "Granny-Smith_001.jpg", photos / "b.jpg")

    def groups(out, model=descriptor):
        dedup(["--images", str(photos), "--model", str(model), "--out", str(out)])
        capsys.readouterr()
        return json.loads((out / "summary.json").read_text())["merges_by_stage"]

    assert groups(tmp_path / "default") == {"exact": 1, "phash": 2}   # the re-encode joins both copies
    only_exact = Thresholds(phash_distance=None, similarity=None, verify=None)
    card = store_thresholds(descriptor, only_exact, {"dedup_val_f1": 0.5})
    assert card.config["dedup_thresholds"]["phash_distance"] is None and card.metrics["dedup_val_f1"] == 0.5
    calibrated = descriptor.parent / card.file      # a re-save is a new file; the manifest names it
    assert load_model(calibrated).card.config["dedup_thresholds"] == card.config["dedup_thresholds"]  # verified
    catalog = scan_images(photos, model=str(calibrated), backend="torch")
    assert Thresholds.for_catalog(catalog) == only_exact
    assert groups(tmp_path / "calibrated", calibrated) == {"exact": 1}
    # by zoo name too
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VISION_ZOO_DIR", str(descriptor.parent))
        assert groups(tmp_path / "by_name", "copydetect_tiny") == {"exact": 1}
    with pytest.raises(DedupError, match=r"unknown threshold\(s\) \['simliarity'\]"):
        Thresholds.from_dict({"simliarity": 0.9}, "card")
    with pytest.raises(DedupError, match="'verify' must be a number or null"):
        Thresholds.from_dict({"verify": "high"}, "card")
