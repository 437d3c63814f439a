"""Open-set galleries: impostor calibration, background-cohort scores, several references per brand, old files,
and ``vision build-gallery`` with reference photos and impostors."""

import json

import numpy as np
import pytest
from PIL import Image

from vision.brands.gallery import UNKNOWN, BrandGallery, GalleryError, equal_error_rate, open_set_threshold
from vision.crops import CROP_MARGIN, LEGACY_CROP_MARGIN

from .conftest import REPO, SAMPLE


def _unit(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _near(vectors: np.ndarray, noise: float, seed: int) -> np.ndarray:
    x = vectors + noise * np.random.default_rng(seed).normal(size=vectors.shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _gallery(brands: int = 10, dim: int = 16) -> tuple[BrandGallery, np.ndarray]:
    gallery = BrandGallery(dim, model_name="m", model_sha256="abc")
    vectors = _unit(brands, dim)
    gallery.add_many([f"b{i}" for i in range(brands)], vectors, references=["simple-icons"] * brands)
    return gallery, vectors


# --- calibration against impostors
def test_calibration_puts_the_threshold_between_known_and_impostor_scores(tmp_path):
    gallery, vectors = _gallery()
    known = _near(np.repeat(vectors, 4, axis=0), 0.1, seed=1)           # 40 queries close to their brand
    impostors = _unit(200, 16, seed=2)                                   # random directions: far from every brand
    _, _, known_scores = gallery.open_set_scores(known)
    _, _, impostor_scores = gallery.open_set_scores(impostors)
    assert impostor_scores.max() < known_scores.min()                    # separable: both rates can be 0
    record = gallery.calibrate(known, impostors, max_false_reject=0.10, known_brands=[f"b{i // 4}" for i in range(40)],
                               known_set="near copies", impostor_set="random")
    assert impostor_scores.max() < gallery.threshold < known_scores.min()
    assert record["frr"] == 0 and record["far"] == 0 and record["eer"] == 0
    assert (record["known"], record["impostors"], record["known_recall@1"]) == (40, 200, 1.0)
    assert [r["brand"] for r in gallery.identify(impostors[:5])] == [UNKNOWN] * 5
    loaded = BrandGallery.load(gallery.save(tmp_path / "g.npz"))
    assert loaded.calibration == gallery.calibration and loaded.threshold == gallery.threshold
    assert loaded.calibration["known_set"] == "near copies" and loaded.calibration["impostor_set"] == "random"
    assert gallery.crop_margin == loaded.crop_margin == CROP_MARGIN


def test_the_crop_margin_is_stored_and_checked():
    gallery = BrandGallery(4, crop_margin=0.2)
    gallery.add("a", np.eye(4, dtype=np.float32)[:1])
    assert gallery.crop_margin == 0.2
    for bad in (-0.1, 2, float("nan"), True, "0.1"):
        with pytest.raises(GalleryError, match="crop_margin must be a number from 0 to 1"):
            BrandGallery(4, crop_margin=bad)


def test_overlapping_scores_give_the_lowest_far_within_the_frr_budget():
    rng = np.random.default_rng(0)
    known, impostors = rng.normal(0.7, 0.1, 300), rng.normal(0.5, 0.1, 500)
    for budget in (0.0, 0.05, 0.10, 0.30):
        t = open_set_threshold(known, impostors, budget)
        frr, far = (known < t).mean(), (impostors >= t).mean()
        assert frr <= budget + 1e-9
        # brute force over every candidate threshold: none within budget has a lower FAR
        candidates = np.concatenate([known, impostors, [np.inf]])
        best = min((impostors >= c).mean() for c in candidates if (known < c).mean() <= budget + 1e-9)
        assert far == best
    eer, at = equal_error_rate(known, impostors)
    assert 0.1 < eer < 0.25 and 0.5 < at < 0.7
    assert open_set_threshold([0.9, 0.8, 0.7, 0.6], [0.1, 0.65], 0.25) == pytest.approx(0.675)


def test_calibration_refuses_empty_sets_and_bad_budgets():
    gallery, vectors = _gallery()
    with pytest.raises(GalleryError, match="known and impostor queries"):
        gallery.calibrate(vectors, np.empty((0, 16), np.float32))
    with pytest.raises(GalleryError, match=r"max_false_reject must be in \[0, 1\)"):
        gallery.calibrate(vectors, vectors, max_false_reject=1.5)
    with pytest.raises(GalleryError, match="3 brand labels for 10 known queries"):
        gallery.calibrate(vectors, vectors, known_brands=["a", "b", "c"])


def test_background_cohort_rejects_queries_that_look_like_impostors(tmp_path):
    """Impostors cluster (price labels look alike); a query nearer that cluster than any brand is rejected even when
    its raw brand score is as high as a true match's."""
    gallery, vectors = _gallery(brands=6)
    label_direction = _unit(1, 16, seed=7)
    # impostors: a tight cluster that sits fairly close to brand b0
    centre = (label_direction + 0.8 * vectors[0]) / np.linalg.norm(label_direction + 0.8 * vectors[0])
    impostors = _near(np.repeat(centre, 60, axis=0), 0.08, seed=3)
    known = _near(np.repeat(vectors, 5, axis=0), 0.25, seed=4)
    plain = gallery.calibrate(known, impostors, 0.10)
    gallery.normalization = "background"
    with pytest.raises(GalleryError, match="needs a background cohort"):
        gallery.identify(known)
    gallery.set_background(impostors[:30])
    normalised = gallery.calibrate(known, impostors, 0.10)              # rows 0-29 are the cohort: leave-one-out
    assert normalised["far"] < plain["far"] and normalised["frr"] <= 0.10
    held_out = _near(np.repeat(centre, 20, axis=0), 0.08, seed=5)
    assert sum(r["brand"] == UNKNOWN for r in gallery.identify(held_out)) >= 18
    result = gallery.identify(known[:1])[0]
    assert set(result) == {"brand", "score", "best", "open_set_score"} and result["open_set_score"] < result["score"]
    loaded = BrandGallery.load(gallery.save(tmp_path / "g.npz"))
    assert loaded.normalization == "background" and loaded.background.shape == (30, 16)
    assert [r["brand"] for r in loaded.identify(held_out)] == [r["brand"] for r in gallery.identify(held_out)]


def test_topk_normalisation_scores_the_margin_over_the_next_brands():
    gallery, vectors = _gallery(brands=4)
    gallery.normalization, gallery.topk = "topk", 2
    best, scores, margin = gallery.open_set_scores(vectors[:1])
    top = gallery.search(vectors[:1], k=3)[0]
    assert best == ["b0"] and margin[0] == pytest.approx(scores[0] - (top[1][1] + top[2][1]) / 2)


# --- several references per brand
def test_a_brand_scores_its_best_reference_and_references_survive_a_round_trip(tmp_path):
    gallery = BrandGallery(16, model_name="m", model_sha256="abc")
    styles = _unit(3, 16, seed=9)
    gallery.add("acme", styles[0], reference="simple-icons")
    gallery.add("acme", styles[1], reference="devicon", extend=True)          # one more reference, same brand
    gallery.add("other", styles[2], reference="simple-icons")
    with pytest.raises(GalleryError, match="extend=True to add references"):
        gallery.add("acme", styles[1])
    assert len(gallery) == 2 and gallery.owners == ["acme", "acme", "other"]
    assert gallery.search(styles[1:2], k=1)[0] == [("acme", pytest.approx(1.0, abs=1e-5))]   # the devicon one
    assert gallery.search(styles[1:2], k=2)[0][1][0] == "other"              # one entry per brand
    loaded = BrandGallery.load(gallery.save(tmp_path / "g.npz"))
    assert loaded.references == ["simple-icons", "devicon", "simple-icons"] and loaded.owners == gallery.owners
    loaded.remove("acme")
    assert loaded.references == ["simple-icons"]


def test_mean_merge_keeps_one_prototype_per_reference():
    class Embed:
        dim = 4
        card = type("Card", (), {"name": "m", "sha256": "abc"})()

        def __call__(self, images, batch_size=64):
            return np.asarray(images, np.float32)

    e = np.eye(4, dtype=np.float32)
    images = {"acme": [e[0], e[1], e[2]], "zeta": [e[3]]}
    gallery = BrandGallery.from_images(Embed(), images, merge="mean",
                                       references={"acme": ["simple-icons", "simple-icons", "devicon"]})
    assert gallery.owners == ["acme", "acme", "zeta"] and gallery.references == ["simple-icons", "devicon", ""]
    np.testing.assert_allclose(gallery.vectors[0], [2 ** -0.5, 2 ** -0.5, 0, 0], atol=1e-6)
    with pytest.raises(GalleryError, match="2 reference names for 3 images"):
        BrandGallery.from_images(Embed(), images, references={"acme": ["a", "b"]})


# --- files: old galleries, bad fields
def _write(path, meta: dict, **arrays):
    with open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
    return path


FORMAT_1 = {"format": 1, "dim": 4, "model_name": "m", "model_sha256": "abc", "threshold": 0.5, "index": "flat",
            "hnsw_m": 32, "ef_search": 64, "nlist": None, "nprobe": 16}


def test_format_1_galleries_still_load(tmp_path):
    path = _write(tmp_path / "old.npz", FORMAT_1, vectors=np.eye(4, dtype=np.float32)[:2],
                  owner=np.array(["a", "b"]))
    old = BrandGallery.load(path)
    assert (old.normalization, old.calibration, old.references, old.background.shape) == ("none", None, ["", ""],
                                                                                           (0, 4))
    assert old.crop_margin == LEGACY_CROP_MARGIN   # calibrated before galleries recorded their framing
    assert old.identify(np.eye(4, dtype=np.float32)[:1])[0]["brand"] == "a"
    shipped = BrandGallery.load(REPO / "weights" / "simple_icons_gallery.npz")
    assert len(shipped) > 3000 and shipped.threshold is not None


def test_shipped_gallery_is_calibrated_against_impostors():
    shipped = BrandGallery.load(REPO / "weights" / "simple_icons_gallery.npz")
    calibration = shipped.calibration
    assert shipped.normalization == "background" and shipped.background.shape[0] > 1000
    assert calibration["frr"] <= calibration["max_false_reject"] and 0 < calibration["far"] < 1
    assert calibration["threshold"] == pytest.approx(shipped.threshold, abs=1e-6)
    from vision.zoo import find_card

    # calibrated for the shipped detector rescored by the shipped logo verifier (vision.brands.verification)
    rule, detector, verifier = shipped.detection_rule, find_card("logo_yolo11n")[0], find_card("logo_verifier_lite0")[0]
    assert rule is not None and rule.verifier["detector"] == {"name": detector.name, "sha256": detector.sha256}
    assert (rule.verifier["name"], rule.verifier["sha256"]) == (verifier.name, verifier.sha256)
    assert rule.detector_name == "logo_yolo11n+logo_verifier_lite0" and not rule.matches(detector.name, detector.sha256)
    assert rule.calibration["frr_found"] <= rule.calibration["max_false_reject"] and rule.calibration["far_photos"] < 1


@pytest.mark.parametrize("change, arrays, message", [
    ({"normalization": "zscore"}, {}, "field 'normalization' must be one of"),
    ({"topk": 0}, {}, "field 'topk' must be an integer >= 1"),
    ({"calibration": [1, 2]}, {}, "field 'calibration' must be null or a JSON object"),
    ({"format": 3}, {}, "unsupported gallery format 3"),
    ({}, {"reference": np.array(["x"])}, "field 'reference' must be a 1-D array of 2 names"),
    ({}, {"background": np.ones((2, 3), np.float32)}, r"field 'background' must be a float \(M, 4\) array"),
    ({}, {"background": np.full((1, 4), 0.9, np.float32)}, "field 'background' row 0 is not unit-norm"),
    ({"normalization": "background"}, {}, "'normalization' is 'background' but field 'background'"),
    ({"crop_margin": 1.5}, {}, "field 'crop_margin' must be a number from 0 to 1"),
    ({"crop_margin": "0.1"}, {}, "field 'crop_margin' must be a number from 0 to 1"),
])
def test_bad_open_set_fields_name_file_and_field(tmp_path, change, arrays, message):
    path = _write(tmp_path / "bad.npz", {**FORMAT_1, "format": 2, **change}, vectors=np.eye(4, dtype=np.float32)[:2],
                  owner=np.array(["a", "b"]), **arrays)
    with pytest.raises(GalleryError, match=message) as error:
        BrandGallery.load(path)
    assert str(path) in str(error.value)


# --- vision build-gallery: a folder per brand, reference photos, impostors, report
@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    """An untrained 16-d embedder saved to a zoo (the CLI needs a model with a sha256)."""
    from vision.tasks.embedding import BrandEmbeddingModule
    from vision.zoo import save_model

    module = BrandEmbeddingModule("resnet10t", embedding_size=16, num_classes=4,
                                  preprocessing={"input_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3,
                                                 "interpolation": "bilinear", "crop_pct": 1.0})
    zoo = tmp_path_factory.mktemp("zoo")
    save_model(module.eval_model, module.model_card("tiny_open_set"), zoo)
    return zoo


def _brand_images(root, brands: dict[str, tuple[int, int, int]], count: int, seed: int) -> None:
    """Flat-coloured squares with a darker disc: a 'logo' per brand colour (the embedder is untrained: the images
    only need to be valid and differ by brand)."""
    rng = np.random.default_rng(seed)
    for brand, colour in brands.items():
        (root / brand).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = np.full((40, 40, 3), colour, np.uint8)
            y, x = np.ogrid[:40, :40]
            image[(y - 20 - rng.integers(-3, 4)) ** 2 + (x - 20) ** 2 < 100] //= 3
            Image.fromarray(image).save(root / brand / f"{i}.jpg")


def test_build_gallery_with_references_and_impostors_reports_before_and_after(tiny_zoo, tmp_path, capsys):
    from vision.commands import build_gallery

    colours = {"acme": (220, 30, 30), "bolt": (30, 200, 40), "cargo": (40, 40, 220)}
    _brand_images(tmp_path / "logos", colours, 1, seed=0)
    _brand_images(tmp_path / "photos", {"acme": colours["acme"], "dune": (230, 200, 20)}, 2, seed=1)
    _brand_images(tmp_path / "queries", {**colours, "dune": (230, 200, 20)}, 2, seed=2)
    model, out, report = str(tiny_zoo / "tiny_open_set.safetensors"), tmp_path / "g.npz", tmp_path / "report.json"
    args = ["--embedder", model, "--folder", str(tmp_path / "logos"), "--references", str(tmp_path / "photos"),
            "--queries", str(tmp_path / "queries"), "--impostors", str(SAMPLE / "val"), "--out", str(out)]
    assert build_gallery.main([*args, "--report", str(report)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads(report.read_text()) == printed
    before, after = printed["before_references"], printed["calibration"]
    assert (before["gallery_brands"], after["gallery_brands"]) == (3, 4)          # 'dune' exists only in photos
    assert (before["gallery_vectors"], after["gallery_vectors"]) == (3, 7)
    assert before["query_brands_not_in_gallery"] == 1 and after["query_brands_not_in_gallery"] == 0
    assert after["impostors"] == len(list((SAMPLE / "val").rglob("*.jpg")))
    assert after["normalization"] == "background" and after["frr"] <= 0.10 and 0 <= after["far"] <= 1
    mine = after["per_query_folder"][str(tmp_path / "queries")]
    assert mine["queries"] == 8 and 0 <= mine["recall@1"] <= 1 and 0 <= mine["frr"] <= 1
    # before the photos were added, 'dune' was an unknown brand: its queries are left out of the FRR budget
    assert before["known"] == 6 and after["known"] == 8
    assert before["per_query_folder"][str(tmp_path / "queries")]["brand_not_in_gallery"] == 2
    text = report.with_suffix(".txt").read_text()
    assert "before references" in text and "after references" in text and "FAR (impostors)" in text
    gallery = BrandGallery.load(out)
    assert gallery.calibration == {k: v for k, v in after.items() if k in gallery.calibration}
    assert gallery.threshold == pytest.approx(after["threshold"], abs=1e-6) == printed["threshold"]
    assert len(gallery.background) == after["impostors"]
    assert gallery.references.count("reference:acme/0.jpg") == 1 and gallery.references[0] == "logos"
    # references alone make a gallery too; bad combinations are refused with the cause
    assert build_gallery.main(["--embedder", model, "--references", str(tmp_path / "photos"), "--out", str(out)]) == 0
    assert BrandGallery.load(out).brands == ["acme", "dune"]
    capsys.readouterr()
    assert build_gallery.main(["--embedder", model, "--folder", str(tmp_path / "logos"), "--queries",
                               str(tmp_path / "queries"), "--out", str(out)]) == 2
    assert "give --impostors" in capsys.readouterr().err
    assert build_gallery.main([*args, "--threshold", "0.5"]) == 2
    assert build_gallery.main([*args[:-4], "--impostors", str(tmp_path / "nope"), "--out", str(out)]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_build_gallery_refuses_impostors_framed_with_another_margin(tiny_zoo, tmp_path, capsys):
    import shutil

    from vision.commands import build_gallery

    _brand_images(tmp_path / "logos", {"acme": (220, 30, 30), "bolt": (30, 200, 40)}, 2, seed=0)
    shutil.copytree(SAMPLE / "val", tmp_path / "imp" / "val")
    (tmp_path / "imp" / "impostors.json").write_text(json.dumps({"parameters": {"margin": 0.3}}))
    args = ["--embedder", str(tiny_zoo / "tiny_open_set.safetensors"), "--folder", str(tmp_path / "logos"),
            "--queries", str(tmp_path / "logos"), "--impostors", str(tmp_path / "imp" / "val"),
            "--out", str(tmp_path / "g.npz")]
    assert build_gallery.main(args) == 1
    err = capsys.readouterr().err
    assert "impostors.json: parameters.margin is 0.3" in err and "--margin 0.15" in err
    assert not (tmp_path / "g.npz").exists()
    assert build_gallery.main([*args, "--margin", "0.3"]) == 0
    assert BrandGallery.load(tmp_path / "g.npz").crop_margin == 0.3


def test_style_renders_give_one_reference_per_training_style_icon():
    from vision.brands.building import style_renders

    renders = style_renders(REPO / "tests" / "data" / "iconify", 32)
    keys = {key for found in renders.values() for key, _ in found}
    assert renders and all(not key.startswith("devicon:") for key in keys)      # the held-out style never
    assert {"cib:github", "skill-icons:fastapi"} <= keys
    assert all(image.shape == (32, 32, 3) for found in renders.values() for _, image in found)


def test_crops_of_one_photo_are_left_out_of_each_others_cohort():
    """Impostor crops come in near-identical pairs (two crops of one photo): scored against a cohort holding the
    partner, every impostor looks like background and FAR is flattered; grouping by photo gives the honest rate."""
    gallery, vectors = _gallery(brands=6)
    pairs = _unit(40, 16, seed=11)
    impostors = np.concatenate([pairs, _near(pairs, 0.02, seed=12)])
    groups = [f"photo{i}" for i in range(40)] * 2
    known = _near(np.repeat(vectors, 5, axis=0), 0.3, seed=13)
    gallery.normalization = "background"
    gallery.set_background(impostors)
    flattered = gallery.calibrate(known, impostors, 0.10)
    honest = gallery.calibrate(known, impostors, 0.10, impostor_groups=groups)
    assert honest["far"] > flattered["far"] and honest["impostor_groups"] == 40
    with pytest.raises(GalleryError, match="3 impostor groups for 80 impostors"):
        gallery.calibrate(known, impostors, impostor_groups=groups[:3])


def test_recognizer_uses_the_gallerys_normalisation_and_names_the_best_candidate(tiny_zoo, tmp_path):
    from vision.brands.recognition import BrandRecognizer
    from vision.features import FeatureExtractor

    _brand_images(tmp_path / "logos", {"acme": (220, 30, 30), "bolt": (30, 200, 40)}, 1, seed=0)
    fx = FeatureExtractor.from_pretrained(tiny_zoo / "tiny_open_set.safetensors", backend="torch")
    gallery = BrandGallery.from_folder(fx, tmp_path / "logos", normalization="background", threshold=0.0)
    photos = [str(p) for p in sorted((SAMPLE / "val").rglob("*.jpg"))[:6]]
    gallery.set_background(fx(photos[:3]))
    logo = str(tmp_path / "logos" / "acme" / "0.jpg")
    # boxes are framed as the gallery was calibrated unless the caller says otherwise
    assert BrandRecognizer(fx, gallery).margin == gallery.crop_margin == CROP_MARGIN
    gallery.crop_margin = 0.25
    assert BrandRecognizer(fx, gallery).margin == 0.25 and BrandRecognizer(fx, gallery, margin=0.0).margin == 0.0
    with pytest.raises(ValueError, match="margin must be a number from 0 to 1"):
        BrandRecognizer(fx, gallery, margin=-0.1)
    found = [logos[0] for logos in BrandRecognizer(fx, gallery).predict(photos[3:] + [logo])]
    assert all(f["best"] in {"acme", "bolt"} and (f["brand"] == UNKNOWN) == (f["open_set_score"] < 0)
               for f in found)
    assert found[-1]["brand"] == "acme"     # the reference image itself: brand score 1, above any cohort match
    assert found[-1]["open_set_score"] == pytest.approx(gallery.open_set_scores(fx([logo]))[2][0], abs=1e-5)


def test_build_gallery_wordmarks_need_simple_icons_brands(tiny_zoo, tmp_path, capsys):
    from vision.commands import build_gallery

    _brand_images(tmp_path / "logos", {"acme": (220, 30, 30)}, 1, seed=0)
    code = build_gallery.main(["--embedder", str(tiny_zoo / "tiny_open_set.safetensors"), "--folder",
                               str(tmp_path / "logos"), "--wordmarks", "2", "--out", str(tmp_path / "g.npz")])
    assert code != 0 and "--wordmarks adds references to simple-icons brands" in capsys.readouterr().err
    assert not (tmp_path / "g.npz").exists()
