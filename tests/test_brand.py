"""Brand recognition: metric-learning module, data, gallery, recogniser, tools."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from vision.brands.gallery import UNKNOWN, BrandGallery, GalleryError, mean_prototypes
from vision.brands.recognition import BrandRecognizer
from vision.crops import square_crop
from vision.data.brands import BrandDataModule
from vision.data.datasets import ManifestError
from vision.features import FeatureExtractor
from vision.retrieval import build_index, ivf_lists, retrieval_metrics
from vision.synth.brand_dataset import write_brand_dataset
from vision.synth.catalog import list_brands, split_brands
from vision.synth.composite import composite_logos
from vision.synth.render import canonical_logo, render_logo
from vision.tasks.embedding import BrandEmbeddingModule, build_loss, build_miner
from vision.zoo import save_model

from .conftest import REPO, SAMPLE, load_script

SIZE = 32
BRANDS_PER_SPLIT = 6


def _unit(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def brand_data(tmp_path_factory) -> Path:
    """A tiny simple-icons metric-learning set: 6 brands per split, 32 px crops on the committed sample photos."""
    out = tmp_path_factory.mktemp("brands") / "set"
    write_brand_dataset(out, [SAMPLE / "train"], val_backgrounds=[SAMPLE / "val"], size=SIZE, train_clean=2,
                        train_wild=2, queries=2, max_brands=BRANDS_PER_SPLIT, background_size=96)
    return out


@pytest.fixture(scope="module")
def trained(brand_data, tmp_path_factory):
    """A few steps of training, then the network saved to a temporary zoo."""
    data = BrandDataModule(str(brand_data / "train"), val=str(brand_data / "val"), m_per_class=2, batch_size=8,
                           input_size=SIZE, num_workers=0)
    module = BrandEmbeddingModule("resnet10t", embedding_size=16, num_classes=data.num_classes,
                                  preprocessing=data.preprocessing_dict, loss="ArcFaceLoss",
                                  loss_kwargs={"margin": 20.0, "scale": 16.0})
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=3, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=data)
    zoo = tmp_path_factory.mktemp("zoo")
    save_model(module.eval_model, module.model_card("tiny_brand"), zoo)
    return module, trainer, zoo


# --- module: losses, miners, metrics
@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("loss, kwargs, miner", [
    ("ArcFaceLoss", {}, None),
    ("SubCenterArcFaceLoss", {"sub_centers": 2}, None),
    ("ProxyAnchorLoss", {}, None),
    ("MultiSimilarityLoss", {}, "MultiSimilarityMiner"),
])
def test_losses_and_miners_are_wired(loss, kwargs, miner):
    module = BrandEmbeddingModule("resnet10t", embedding_size=8, num_classes=4, loss=loss, loss_kwargs=kwargs,
                                  miner=miner)
    x, labels = torch.rand(8, 3, SIZE, SIZE), torch.arange(4).repeat(2)
    value = module.training_step((x, labels, labels), 0)
    assert torch.isfinite(value) and value.requires_grad
    value.backward()
    assert module.model.neck[0].weight.grad is not None
    own = list(module.loss_fn.parameters())
    if loss != "MultiSimilarityLoss":
        # the loss's class centres / proxies are a submodule: checkpointed and trained
        assert own and all(p.grad is not None for p in own)
        assert any(k.startswith("loss_fn.") for k in module.state_dict())
    assert (miner is None) == (module.miner is None)


def test_unknown_loss_or_miner_names_the_cause():
    with pytest.raises(ValueError, match="unknown pytorch-metric-learning loss 'NoSuchLoss'"):
        build_loss("NoSuchLoss", 3, 8)
    with pytest.raises(ValueError, match="miner 'Nope'"):
        build_miner("Nope")


def test_loss_weights_get_their_own_learning_rate(trained):
    module, trainer, _ = trained
    groups = trainer.optimizers[0].param_groups
    loss_group = [g for g in groups if any(p is q for p in g["params"] for q in module.loss_fn.parameters())]
    assert len(loss_group) == 1 and loss_group[0]["weight_decay"] == 0.0
    assert loss_group[0]["initial_lr"] == pytest.approx(groups[0]["initial_lr"] * module.hparams.loss_lr_multiplier)


def test_init_from_a_trained_embedder_and_mismatches(trained):
    module, _, zoo = trained
    weights = str(zoo / "tiny_brand.safetensors")
    # fine-tuning starts from the zoo model's weights exactly (loaded through the sha256-checked zoo path)
    tuned = BrandEmbeddingModule("resnet10t", embedding_size=16, loss="MultiSimilarityLoss", init_from=weights)
    x = torch.rand(2, 3, SIZE, SIZE)
    torch.testing.assert_close(tuned.eval()(x), module.eval_model.eval()(x))
    with pytest.raises(ValueError, match="embedding_size 16 != 32"):
        BrandEmbeddingModule("resnet10t", embedding_size=32, loss="MultiSimilarityLoss", init_from=weights)
    with pytest.raises(ValueError, match="backbone 'resnet10t' != 'resnet14t'"):
        BrandEmbeddingModule("resnet14t", embedding_size=16, loss="MultiSimilarityLoss", init_from=weights)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_distillation_holds_the_student_near_a_frozen_teacher(trained):
    module, _, zoo = trained
    weights = str(zoo / "tiny_brand.safetensors")
    tuned = BrandEmbeddingModule("resnet10t", embedding_size=16, num_classes=4, loss="MultiSimilarityLoss",
                                 init_from=weights, distill_from=weights, distill_weight=3.0)
    plain = BrandEmbeddingModule("resnet10t", embedding_size=16, num_classes=4, loss="MultiSimilarityLoss",
                                 init_from=weights)
    x, labels = torch.rand(8, 3, SIZE, SIZE), torch.arange(4).repeat(2)
    # the teacher is neither checkpointed nor trained, and the module's train mode does not reach it
    assert not any("teacher" in k for k in tuned.state_dict())
    assert all(id(p) not in {id(q) for q in tuned.parameters()} for p in tuned._teacher[0].parameters())
    tuned.train()
    assert not tuned._teacher[0].training
    # starting from the teacher's own weights (eval-mode teacher, eval-mode student) the term is 0
    tuned.eval()
    assert tuned._distillation(x, tuned.model(x)).item() == pytest.approx(0.0, abs=1e-5)
    # in training it is weight x (1 - cos) on top of the metric loss, and its gradient reaches the student
    tuned.train(), plain.train()
    torch.manual_seed(0)
    with_term = tuned.training_step((x, labels, labels), 0)
    torch.manual_seed(0)
    without = plain.training_step((x, labels, labels), 0)
    distill = tuned._distillation(x, tuned.model(x))
    assert distill.item() > 0
    assert with_term.item() == pytest.approx(without.item() + 3.0 * distill.item(), rel=1e-4)
    with_term.backward()
    assert all(p.grad is None for p in tuned._teacher[0].parameters())
    with pytest.raises(ValueError, match="distill_from .* embedding_size 16 != 32"):
        BrandEmbeddingModule("resnet10t", embedding_size=32, loss="MultiSimilarityLoss", distill_from=weights)
    with pytest.raises(ValueError, match=r"distill_from .* expects other inputs .*: mean"):
        BrandEmbeddingModule("resnet10t", embedding_size=16, distill_from=weights,
                             preprocessing={"input_size": SIZE, "mean": [0.5] * 3, "std": [0.5] * 3})
    with pytest.raises(ValueError, match="distill_weight must be >= 0"):
        BrandEmbeddingModule("resnet10t", embedding_size=16, distill_from=weights, distill_weight=-1)


def test_validation_reports_retrieval_metrics_on_unseen_brands(trained):
    _, trainer, _ = trained
    metrics = trainer.callback_metrics
    for name in ("val/recall_at_1", "val/recall_at_5", "val/precision_at_1", "val/map_at_r"):
        assert 0.0 <= float(metrics[name]) <= 1.0, name


def test_retrieval_metrics_on_known_geometry():
    gallery = _unit(10, 8)
    noisy = gallery + 0.01 * _unit(10, 8, seed=1)
    perfect = retrieval_metrics(noisy, np.arange(10), gallery, np.arange(10))
    assert perfect["recall@1"] == perfect["precision@1"] == perfect["map@r"] == 1.0
    shuffled = retrieval_metrics(noisy, np.roll(np.arange(10), 1), gallery, np.arange(10))
    assert shuffled["recall@1"] == 0.0


# --- data
def test_brand_split_is_disjoint_and_dataset_follows_it(brand_data):
    split = split_brands(list_brands(), seed=0)
    train, val, test = (set(split[k]) for k in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    folders = {name: {p.name for p in (brand_data / name / part).iterdir()}
               for name, part in (("train", "."), ("val", "query"), ("test", "gallery"))}
    assert folders["train"] <= train and folders["val"] <= val and folders["test"] <= test
    record = json.loads((brand_data / "brands.json").read_text())
    assert record["brands"]["val"] == sorted(folders["val"])
    assert {p.name for p in (brand_data / "val" / "gallery").iterdir()} == folders["val"]


def test_leaking_brand_is_refused(brand_data, tmp_path):
    leak = tmp_path / "val"
    for part in ("gallery", "query"):
        (leak / part).mkdir(parents=True)
    first = sorted(p.name for p in (brand_data / "train").iterdir())[0]
    (leak / "gallery" / first).symlink_to(brand_data / "train" / first)
    with pytest.raises(ManifestError, match="also appear in the training folder"):
        BrandDataModule(str(brand_data / "train"), val=str(leak), m_per_class=2, batch_size=4)


def test_sampler_gives_m_images_of_each_brand_per_batch(brand_data):
    data = BrandDataModule(str(brand_data / "train"), m_per_class=2, batch_size=6, input_size=SIZE,
                           num_workers=0, epoch_length=24)
    data.setup("fit")
    batches = list(data.train_dataloader())
    assert len(batches) == 4
    for batch in batches:
        counts = torch.bincount(batch[1])
        assert sorted(counts[counts > 0].tolist()) == [2, 2, 2]


def test_bad_batch_shape_and_lonely_brand(brand_data, tmp_path):
    with pytest.raises(ValueError, match="multiple of m_per_class"):
        BrandDataModule(str(brand_data / "train"), m_per_class=3, batch_size=8)
    lonely = tmp_path / "train"
    (lonely / "solo").mkdir(parents=True)
    (lonely / "pair").mkdir()
    for i, target in enumerate(sorted((brand_data / "train").rglob("*.jpg"))[:3]):
        (lonely / ("solo" if i == 0 else "pair") / f"{i}.jpg").symlink_to(target)
    with pytest.raises(ManifestError, match="fewer than 2 images.*solo"):
        BrandDataModule(str(lonely), m_per_class=2, batch_size=2)


def test_training_and_inference_path_loads_no_synthesis():
    """Dataset synthesis (vision.synth, simple-icons, resvg) is a leaf: only tools, benchmarks and tests import it."""
    code = ("import sys, json, vision.data.brands, vision.brands.recognition, vision.tasks.embedding; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('resvg_py', 'simple_icons_pack') or m.startswith('vision.synth'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_square_crop_keeps_wide_logos_and_pads_at_edges():
    image = np.zeros((100, 200, 3), np.uint8)
    crop = square_crop(image, (150, 10, 200, 30), margin=0.1)
    assert crop.shape == (60, 60, 3)
    assert square_crop(image, (0, 0, 200, 100), margin=0.0, size=32).shape == (32, 32, 3)
    with pytest.raises(ValueError, match="x2 > x1"):
        square_crop(image, (5, 5, 5, 10))


def test_canonical_render_shows_light_marks():
    white = next(b for b in list_brands() if b.hex.upper() == "FFFFFF")
    render = canonical_logo(white, 48)
    assert render.shape == (48, 48, 3) and render.min() < 64 and render.max() > 192


# --- gallery
def test_gallery_add_remove_save_load_round_trip(tmp_path):
    gallery = BrandGallery(8, model_name="m", model_sha256="abc", threshold=0.5)
    vectors = _unit(4, 8)
    gallery.add("a", vectors[:2])
    gallery.add("b", vectors[2])
    gallery.add("c", vectors[3])
    assert gallery.brands == ["a", "b", "c"] and len(gallery) == 3
    assert gallery.search(vectors[2:3], k=2)[0][0] == ("b", pytest.approx(1.0, abs=1e-5))
    gallery.remove("b")
    assert "b" not in gallery and gallery.identify(vectors[3])[0]["brand"] == "c"
    path = gallery.save(tmp_path / "g.npz")
    loaded = BrandGallery.load(path)
    assert loaded.brands == ["a", "c"] and loaded.threshold == 0.5 and loaded.model_name == "m"
    np.testing.assert_allclose(loaded.vectors, gallery.vectors)
    loaded.add("b", vectors[2])   # add back without retraining
    assert loaded.identify(vectors[2:3])[0]["brand"] == "b"


def test_mean_merge_stores_one_unit_prototype_per_brand(trained, brand_data):
    names, protos = mean_prototypes(["a", "b", "a"], np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32))
    assert names == ["a", "b"]
    np.testing.assert_allclose(protos, [[2 ** -0.5, 0, 2 ** -0.5], [0, 1, 0]], atol=1e-6)
    _, _, zoo = trained
    fx = FeatureExtractor.from_pretrained(zoo / "tiny_brand.safetensors", backend="torch")
    images = {b.name: sorted(b.iterdir()) for b in sorted((brand_data / "train").iterdir())[:3]}
    merged = BrandGallery.from_images(fx, images, merge="mean")
    every = BrandGallery.from_images(fx, images)
    assert len(merged.vectors) == 3 and len(every.vectors) == sum(map(len, images.values()))
    assert merged.brands == every.brands
    with pytest.raises(GalleryError, match="unknown merge 'median'"):
        BrandGallery.from_images(fx, images, merge="median")


@pytest.mark.parametrize("kind, options", [("hnsw", {}), ("ivf", {"nlist": 4, "nprobe": 4})])
def test_approximate_gallery_agrees_with_exact_search(kind, options, tmp_path):
    vectors = _unit(300, 16)
    exact, approximate = BrandGallery(16), BrandGallery(16, index=kind, **options)
    names = [f"brand{i}" for i in range(len(vectors))]
    exact.add_many(names, vectors)
    approximate.add_many(names, vectors)
    queries = vectors[:50] + 0.05 * _unit(50, 16, seed=2)
    assert [r[0][0] for r in approximate.search(queries, 1)] == [r[0][0] for r in exact.search(queries, 1)]
    loaded = BrandGallery.load(approximate.save(tmp_path / "g.npz"))
    assert (loaded.index_kind, loaded.nlist, loaded.nprobe) == (kind, approximate.nlist, approximate.nprobe)
    assert build_index(vectors, kind).ntotal == 300


def test_ivf_index_sizes_its_lists_to_the_gallery():
    assert ivf_lists(10) == 1 and ivf_lists(10_000) == 256 and ivf_lists(1_000_000) == 4000
    assert build_index(_unit(3, 8), "ivf").nlist == 1     # a tiny gallery: one list, an exact scan
    with pytest.raises(ValueError, match=r"nlist must be in \[1, 3\]"):
        build_index(_unit(3, 8), "ivf", nlist=5)
    with pytest.raises(ValueError, match="at least one"):
        build_index(_unit(0, 8), "ivf")


def test_threshold_makes_unseen_brands_unknown():
    gallery = BrandGallery(8)
    known = _unit(3, 8)
    for i, v in enumerate(known):
        gallery.add(f"k{i}", v)
    queries = np.concatenate([known + 0.05 * _unit(3, 8, seed=3), _unit(20, 8, seed=4)])
    assert all(r["brand"] != UNKNOWN for r in gallery.identify(queries))   # no threshold: always a brand
    threshold = gallery.calibrate_threshold(queries[:3], false_reject_rate=0.0)
    assert gallery.threshold == threshold > 0.9
    results = gallery.identify(queries)
    assert [r["brand"] for r in results[:3]] == ["k0", "k1", "k2"]
    assert all(r["brand"] == UNKNOWN and r["best"].startswith("k") for r in results[3:])


def test_gallery_bad_inputs_name_the_cause(tmp_path, trained):
    gallery = BrandGallery(8, model_name="m", model_sha256="abc")
    with pytest.raises(GalleryError, match="empty"):
        gallery.search(_unit(1, 8))
    gallery.add("a", _unit(1, 8))
    with pytest.raises(GalleryError, match="'a' is already in the gallery"):
        gallery.add("a", _unit(1, 8))
    gallery.add("a", _unit(1, 8, seed=5), replace=True)
    with pytest.raises(ValueError, match="dimension 4, expected 8"):
        gallery.add("b", _unit(1, 4))
    with pytest.raises(ValueError, match="dimension 4, expected 8"):
        gallery.search(_unit(1, 4))
    with pytest.raises(GalleryError, match="not in the gallery"):
        gallery.remove("zzz")
    with pytest.raises(GalleryError, match="reserved"):
        gallery.add(UNKNOWN, _unit(1, 8))
    with pytest.raises(GalleryError, match="not found"):
        BrandGallery.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(GalleryError, match="not a readable gallery"):
        BrandGallery.load(tmp_path / "junk.npz")
    _, _, zoo = trained
    fx = FeatureExtractor.from_pretrained(zoo / "tiny_brand.safetensors", backend="torch")
    with pytest.raises(GalleryError, match="size mismatch"):
        BrandRecognizer(fx, gallery)
    other = BrandGallery(fx.dim, model_name="another_model")
    other.add("a", _unit(1, fx.dim))
    with pytest.raises(GalleryError, match="built with model 'another_model'"):
        BrandRecognizer(fx, other)
    stale = BrandGallery(fx.dim, model_name=fx.card.name, model_sha256="0" * 64)
    stale.add("a", _unit(1, fx.dim))
    stale.save(tmp_path / "stale.npz")
    with pytest.raises(GalleryError, match="another version"):
        BrandGallery.load(tmp_path / "stale.npz", model=fx.card)
    with pytest.raises(GalleryError, match="empty"):
        BrandRecognizer(fx, BrandGallery.for_model(fx))


# --- end to end
class BoxDetector:
    """Stands in for LogoDetector: returns the boxes it was given per image."""

    def __init__(self, boxes):
        self.boxes = boxes

    def predict(self, images):
        return [[{"box": list(map(float, b)), "score": 0.9} for b in boxes] for boxes in self.boxes[:len(images)]]


def test_recognizer_end_to_end(brand_data, trained, tmp_path):
    _, _, zoo = trained
    fx = FeatureExtractor.from_pretrained(zoo / "tiny_brand.safetensors", backend="torch")
    assert fx.dim == 16 and fx.card.task == "embedding"
    gallery = BrandGallery.from_folder(fx, brand_data / "test" / "gallery")
    assert len(gallery) == BRANDS_PER_SPLIT and gallery.model_name == "tiny_brand"
    by_slug = {b.slug: b for b in list_brands()}
    slug = gallery.brands[0]
    photo = np.full((128, 128, 3), 200, np.uint8)
    image, boxes = composite_logos(photo, [(render_logo(by_slug[slug], 48), 0)], np.random.default_rng(0),
                                   scale_range=(0.3, 0.4), occlusion_prob=0.0, geometric_aug=False)
    recognizer = BrandRecognizer(fx, gallery, BoxDetector([[boxes[0, 1:]], []]))
    found, empty = recognizer.predict([image, photo])
    assert empty == []   # no logo detected: an empty list, not an error
    assert len(found) == 1 and found[0]["brand"] in gallery.brands
    assert set(found[0]) == {"box", "brand", "score", "best", "open_set_score", "detection_score"}
    strict = BrandRecognizer(fx, gallery, BoxDetector([[boxes[0, 1:]]]), threshold=1.01)
    assert strict.predict(image)[0][0]["brand"] == UNKNOWN
    # the gallery round trip keeps the model check working
    gallery.save(tmp_path / "g.npz")
    BrandGallery.load(tmp_path / "g.npz", model=fx.card, dim=fx.dim)


def test_recognize_tool_writes_jsonl_and_pngs(brand_data, trained, tmp_path, capsys):
    _, _, zoo = trained
    fx = FeatureExtractor.from_pretrained(zoo / "tiny_brand.safetensors", backend="torch")
    BrandGallery.from_folder(fx, brand_data / "test" / "gallery").save(tmp_path / "g.npz")
    queries = brand_data / "test" / "query"
    from vision.commands import recognize

    args = ["--images", str(queries), "--crops", "--embedder", str(zoo / "tiny_brand.safetensors")]
    assert recognize.main([*args, "--gallery", str(tmp_path / "g.npz"), "--out", str(tmp_path / "out"),
                           "--draw", str(tmp_path / "out" / "annotated")]) == 0
    lines = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(lines) == len(list(queries.rglob("*.jpg"))) and all(len(line["logos"]) == 1 for line in lines)
    assert len(list((tmp_path / "out" / "annotated").glob("*.png"))) == len(lines)
    capsys.readouterr()
    assert recognize.main([*args, "--gallery", str(tmp_path / "no.npz"), "--out", str(tmp_path / "out2")]) == 1
    assert "no.npz' not found" in capsys.readouterr().err

def _tool(name: str, folder: str = "tools"):
    return load_script(f"{folder}/{name}.py")


def test_build_gallery_tool_calibrates_and_refuses_bad_input(brand_data, trained, tmp_path, capsys):
    _, _, zoo = trained
    build = _tool("build_gallery")
    model = str(zoo / "tiny_brand.safetensors")
    out = tmp_path / "g.npz"
    assert build.main(["--embedder", model, "--folder", str(brand_data / "test" / "gallery"),
                       "--calibrate", str(brand_data / "val"), "--frr", "0.25", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["brands"] == BRANDS_PER_SPLIT and report["calibration"]["queries"] == 2 * BRANDS_PER_SPLIT
    gallery = BrandGallery.load(out)
    assert gallery.threshold == pytest.approx(report["calibration"]["threshold"])
    # a simple-icons gallery is calibrated on val galleries rebuilt from renders the same way
    from vision.brands.building import calibrate

    calibration = calibrate(FeatureExtractor.from_pretrained(model, backend="torch"), brand_data / "val", 0.25,
                            renders=("brand", "black"), merge="mean")
    assert calibration["brands"] == BRANDS_PER_SPLIT and calibration["merge"] == "mean"
    assert calibration["gallery"] == "simple-icons renders ['brand', 'black']"
    assert build.main(["--embedder", model, "--simple-icons", "--renders", "brand,mauve", "--out", str(out)]) == 2
    assert "render colour 'mauve'" in capsys.readouterr().err
    assert build.main(["--embedder", model, "--out", str(out)]) == 2
    assert build.main(["--embedder", model, "--folder", str(tmp_path / "nope"), "--out", str(out)]) == 1


def test_brand_eval_benchmark_runs_on_a_tiny_set(brand_data, trained, tmp_path):
    _, _, zoo = trained
    model, out = str(zoo / "tiny_brand.safetensors"), tmp_path / "eval.json"
    evaluate = _tool("brand_eval", "benchmarks")
    assert evaluate.main(["--embedder", model, "--data", str(brand_data), "--out", str(out)]) == 0
    single = json.loads(out.read_text())
    assert single["closed_set"]["brands"] == BRANDS_PER_SPLIT and single["closed_set"]["gallery"] == "test/gallery"
    assert 0 <= single["closed_set"]["recall@1"] <= 1
    assert single["open_set"]["known_brands"] + single["open_set"]["unseen_brands"] == BRANDS_PER_SPLIT
    assert evaluate.main(["--embedder", model, "--data", str(brand_data), "--split", "val", "--out", str(out)]) == 0
    val = json.loads(out.read_text())["closed_set"]
    assert val["split"] == "val" and val["gallery"] == "val/gallery" and val["brands"] == BRANDS_PER_SPLIT
    assert evaluate.main(["--embedder", model, "--data", str(brand_data), "--renders", "brand,black,white",
                          "--merge", "mean", "--out", str(out)]) == 0
    merged = json.loads(out.read_text())["closed_set"]
    assert merged["gallery"] == "renders ['brand', 'black', 'white']" and merged["merge"] == "mean"
    assert merged["queries"] == single["closed_set"]["queries"]


def test_grocery_check_scores_whole_images_and_detected_logos(brand_data, trained, tmp_path):
    """The real-photo check's bookkeeping on a Grocery-Store-shaped folder built from the tiny brand set."""
    _, _, zoo = trained
    fx = FeatureExtractor.from_pretrained(zoo / "tiny_brand.safetensors", backend="torch")
    root = tmp_path / "grocery"
    brands = sorted((brand_data / "test" / "gallery").iterdir())[:3]
    rows, val = ["Class Name,Class ID,Coarse Class Name,Coarse Class ID,Iconic Image Path,Description"], []
    for class_id, folder in enumerate(brands):
        name = f"{folder.name.capitalize()}-Product-{class_id}"
        iconic = root / "iconic" / "Packages" / f"{name}.jpg"
        iconic.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(next(folder.iterdir()), iconic)
        rows.append(f"{name},{class_id},{name},{class_id},/{iconic.relative_to(root)},/none.txt")
        for i, query in enumerate(sorted((brand_data / "test" / "query" / folder.name).iterdir())):
            target = root / "val" / f"{name}_{i}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(query, target)
            val.append(f"{target.relative_to(root)}, {class_id}, {class_id}")
    (root / "classes.csv").write_text("\n".join(rows) + "\n")
    (root / "val.txt").write_text("\n".join(val) + "\n")
    evaluate = _tool("brand_eval", "benchmarks")
    detector = BoxDetector([[[0, 0, SIZE // 2, SIZE // 2], [4, 4, SIZE - 4, SIZE - 4]]] * 16)
    detector.card = type("Card", (), {"name": "boxes"})()
    report = evaluate.grocery(fx, root, detector)
    assert report["gallery_products"] == 3 and report["queries"] == 3 * 2
    assert report["product_chance@1"] == pytest.approx(1 / 3, abs=1e-4) and report["brand_chance@1"] > 0
    for mode in ("whole_image", "detected_logos"):
        assert 0 <= report[mode]["product_recall@1"] <= report[mode]["product_recall@5"] == 1.0
    assert report["detected_logos"]["logos_per_query"] == 2 and report["detected_logos"]["detector"] == "boxes"
    pytest.importorskip("rapidocr")
    from vision.brands.ocr import TextLine, everyday_word

    first = brands[0].name.capitalize()

    class Reader:   # reads the first brand's name on every crop
        def read(self, crops):
            return [[TextLine(first, 0.95)] for _ in crops]

    read = evaluate.grocery(fx, root, detector, reader=Reader())["detected_logos_and_text"]
    assert read["crops_read"] == 3 * 2 * 2
    if not everyday_word(first):   # every photo named the first brand: right on its own 2 photos of 6
        assert (read["named_by_text"], read["named_by_text_wrong"]) == (1.0, round(4 / 6, 4))
        assert read["brand_recall@1"] == round(2 / 6, 4)
