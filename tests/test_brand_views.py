"""The foreground view of a logo crop fused with the plain crop (vision.brands.views): off by default, the fused
vector is what the design says, bad options are clear errors, and the view's cost stays bounded."""

import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from vision.brands.views import (
    FOREGROUND_METHODS,
    FRAMINGS,
    ForegroundFusedExtractor,
    ForegroundOptionError,
    foreground_option,
    foreground_view,
    fuse_mean,
    inner_rect,
    with_foreground,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "logo_sample"


def _sample_crops(n: int = 4) -> list[np.ndarray]:
    """Square crops (margin 0.15) of the committed logo sample's val composites, at their true boxes."""
    from vision.crops import square_crop
    from vision.data.io import load_image

    crops = []
    for image_path in sorted((SAMPLE / "images" / "val").glob("*.jpg")):
        image = load_image(image_path)
        h, w = image.shape[:2]
        for line in (SAMPLE / "labels" / "val" / f"{image_path.stem}.txt").read_text().split("\n"):
            if line.strip():
                _, cx, cy, bw, bh = (float(v) for v in line.split())
                box = [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
                crops.append(square_crop(image, box, 0.15))
            if len(crops) == n:
                return crops
    return crops


def _mark_on_texture(seed: int = 0) -> np.ndarray:
    """A red square mark in the middle of a noisy photo-like ground (96 px, framed as a 0.15-margin crop)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(90, 170, (96, 96, 3)).astype(np.uint8)
    image[30:66, 30:66] = (220, 20, 30)
    return image


@pytest.fixture(scope="module")
def fx():
    from vision.features import FeatureExtractor

    return FeatureExtractor.from_pretrained("brand_ensemble", backend="torch", device="cpu")


def test_options_off_by_name_or_record_and_bad_values_are_clear_errors():
    assert foreground_option(None) is None and foreground_option("off") is None
    option = foreground_option("grabcut")
    assert option == {"method": "grabcut", "fusion": "mean", "fill": "border", "size": 64, "iterations": 1}
    assert foreground_option(option) == option   # a stored record reads back as itself
    assert foreground_option("border:name") == {**foreground_option("border"), "fusion": "name"}
    for bad, match in (("bogus", "unknown foreground method 'bogus'; choose one of"),
                       ({"method": "border", "fill": "pink"}, "unknown foreground fill"),
                       ({"method": "border", "fusion": "max"}, "unknown foreground fusion"),
                       ("border:max", "unknown foreground fusion 'max'"),
                       ({"method": "border", "size": 4}, "size must be an integer >= 8"),
                       ({"method": "border", "colour": 1}, "unknown foreground option field"),
                       (3, "must be None, 'off', one of")):
        with pytest.raises(ForegroundOptionError, match=match):
            foreground_option(bad)


def test_each_method_flattens_the_ground_around_the_mark():
    crop = _mark_on_texture()
    x, y, w, h = inner_rect(64, 0.15)
    assert (x, y, w, h) == (7, 7, 50, 50)
    for method in (m for m in FOREGROUND_METHODS if m not in FRAMINGS):
        view = foreground_view(crop, method, size=64, fill="white")
        assert view.shape == (64, 64, 3) and view.dtype == np.uint8
        corner = view[:5, :5].reshape(-1, 3)
        assert (corner == 255).all(), method            # the photo's ground is gone
        assert (view[32, 32] != 255).any(), method       # the mark is kept
    flat = np.full((80, 80, 3), 128, np.uint8)           # nothing stands out: the crop itself (resized)
    for method in FOREGROUND_METHODS:
        assert (foreground_view(flat, method) == 128).all()


def test_the_framing_views_cut_the_crop_down_to_the_box_with_part_of_its_margin():
    import cv2

    crop = _mark_on_texture()   # 96 px framed at 0.15: the box is the middle 74 px, an 11 px band around it
    assert FRAMINGS == {"tight": 0.5, "box": 0.0}
    for method, band in (("box", 11), ("tight", 6)):   # no margin; half of it (a 5.5 px band kept)
        view = foreground_view(crop, method, margin=0.15, size=64)
        expected = cv2.resize(crop[band:96 - band, band:96 - band], (64, 64), interpolation=cv2.INTER_AREA)
        assert view.shape == (64, 64, 3) and (view == expected).all(), method
    assert foreground_option("tight:name") == {**foreground_option("tight"), "fusion": "name"}


def test_the_fused_vector_is_the_normalised_mean_of_the_two_views(fx):
    crops = _sample_crops()
    assert len(crops) == 4
    fused_fx = ForegroundFusedExtractor(fx, "border")
    assert fused_fx.card is fx.card and fused_fx.dim == fx.dim and fused_fx.view["method"] == "border"
    fused = fused_fx(crops)
    plain, fore = fx(crops), fx(fused_fx.foreground(crops))
    expected = (plain + fore) / np.linalg.norm(plain + fore, axis=1, keepdims=True)
    np.testing.assert_allclose(fused, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(fused, plain, atol=1e-3)      # the option changes the vectors
    np.testing.assert_allclose(fuse_mean(plain, plain), plain, atol=1e-6)
    assert with_foreground(fx, None) is fx and with_foreground(fx, "off") is fx


def test_the_recogniser_scores_logos_with_the_fused_vectors(fx):
    from vision.brands.gallery import BrandGallery
    from vision.brands.recognition import BrandRecognizer

    gallery = BrandGallery.load("simple_icons_gallery")
    # the shipped gallery is calibrated on plain crops; it names each logo by the crop fused with its box view
    assert gallery.foreground == {**foreground_option("box"), "fusion": "name"}
    crops = _sample_crops(3)
    plain = BrandRecognizer(fx, gallery, foreground="off")
    assert plain.foreground is None and plain.extractor is fx
    with pytest.warns(UserWarning, match="calibrated on logo crops embedded plain"):
        fused = BrandRecognizer(fx, gallery, foreground="border")
    got = [r[0] for r in fused.predict(crops)]
    best, scores, open_set = gallery.open_set_scores(ForegroundFusedExtractor(fx, "border")(crops))
    assert [g["best"] for g in got] == list(best)
    np.testing.assert_allclose([g["open_set_score"] for g in got], open_set, atol=1e-5)
    before = [r[0]["open_set_score"] for r in plain.predict(crops)]
    assert not np.allclose(before, open_set, atol=1e-4)
    with pytest.raises(ForegroundOptionError, match="unknown foreground method 'grabcutt'"):
        BrandRecognizer(fx, gallery, foreground="grabcutt")


def test_a_gallery_records_its_foreground_option_and_the_recogniser_follows_it(fx, tmp_path):
    from vision.brands.gallery import BrandGallery, GalleryError
    from vision.brands.recognition import BrandRecognizer

    gallery = BrandGallery.for_model(fx)
    gallery.add_many(["a", "b"], fx([_mark_on_texture(0), _mark_on_texture(1)[::-1]]))
    gallery.foreground = foreground_option("grabcut")
    path = gallery.save(tmp_path / "g.npz")
    loaded = BrandGallery.load(path)
    assert loaded.foreground == gallery.foreground
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the calibrated option: no warning
        rec = BrandRecognizer(fx, loaded)
    assert isinstance(rec.extractor, ForegroundFusedExtractor) and rec.extractor.view["method"] == "grabcut"
    # a file whose foreground record is not an option is refused, naming the field
    import json

    with np.load(path, allow_pickle=False) as data:
        arrays = dict(data)
    meta = json.loads(str(arrays["meta"]))
    meta["foreground"] = {"method": "magic"}
    arrays["meta"] = np.array(json.dumps(meta))
    from vision.brands.gallery import DIGEST_FIELD, content_sha256

    arrays[DIGEST_FIELD] = np.array(content_sha256(arrays))
    bad = tmp_path / "bad.npz"
    with open(bad, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(GalleryError, match="metadata field 'foreground'"):
        BrandGallery.load(bad)


def test_build_gallery_refuses_a_bad_foreground_option():
    from vision.brands.building import GallerySpec, GallerySpecError

    with pytest.raises(GallerySpecError, match="--foreground: unknown foreground method"):
        GallerySpec(embedder="brand_resnet10t", simple_icons=True, impostors=[Path("x")], queries=[Path("y")],
                    foreground="nope").checked()
    # a naming view is calibrated on plain crops: it needs no impostors of its own
    spec = GallerySpec(embedder="brand_resnet10t", simple_icons=True, foreground="box:name").checked()
    assert spec.foreground == foreground_option("box:name")
    with pytest.raises(GallerySpecError, match="fusion 'name' decides on plain crops, and --text-rule"):
        GallerySpec(embedder="brand_resnet10t", simple_icons=True, detector="logo_yolo11n", text_rule=True,
                    known_scenes=[Path("k")], impostor_photos=[Path("p")], foreground="box:name").checked()
    with pytest.raises(GallerySpecError, match="give --impostors"):
        GallerySpec(embedder="brand_resnet10t", simple_icons=True, foreground="border").checked()


def test_the_foreground_view_costs_a_few_ms_per_crop():
    """CPU time per 64 px view (one process, generous bounds for shared cores: measured 0.3-4.3 ms per crop)."""
    import cv2

    crops = [_mark_on_texture(seed) for seed in range(20)]
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for method, bound_ms in (("border", 15.0), ("colour", 15.0), ("grabcut", 40.0)):
            foreground_view(crops[0], method)   # warm
            start = time.process_time()
            for crop in crops:
                foreground_view(crop, method)
            per_crop = (time.process_time() - start) / len(crops) * 1000
            assert per_crop < bound_ms, (method, per_crop)
    finally:
        cv2.setNumThreads(threads)


def test_grabcut_gives_one_crop_the_same_view_whatever_ran_before():
    crop, other = _mark_on_texture(3), _mark_on_texture(4)[:, ::-1]
    first = foreground_view(crop, "grabcut", iterations=2)
    foreground_view(other, "grabcut", iterations=2)   # advances OpenCV's RNG, which GrabCut's k-means draws from
    np.testing.assert_array_equal(foreground_view(crop, "grabcut", iterations=2), first)


def test_fusion_name_names_by_the_fused_vector_and_decides_on_the_plain_score(fx):
    """``fusion="name"``: best brand and cosine from the fused vector, the open-set score (what the gallery's threshold
    and rule apply to) from the plain crop, so a plain-calibrated gallery needs no warning."""
    from vision.brands.gallery import BrandGallery
    from vision.brands.recognition import BrandRecognizer

    gallery = BrandGallery.load("simple_icons_gallery")
    crops = _sample_crops(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = BrandRecognizer(fx, gallery, foreground={"method": "border", "fusion": "name"})
    assert rec.extractor is fx
    got = [r[0] for r in rec.predict(crops)]
    fused_fx = ForegroundFusedExtractor(fx, "border")
    plain, fused = fused_fx.embed_views(crops)
    best, scores, _ = gallery.open_set_scores(fused)
    _, _, open_set = gallery.open_set_scores(plain)
    assert [g["best"] for g in got] == list(best)
    np.testing.assert_allclose([g["score"] for g in got], scores, atol=1e-5)
    np.testing.assert_allclose([g["open_set_score"] for g in got], open_set, atol=1e-5)
    for g, o in zip(got, open_set):   # the threshold decides on the plain score
        assert (g["brand"] != "unknown") == (o >= gallery.threshold)
    plain_rec = BrandRecognizer(fx, gallery)
    np.testing.assert_allclose([r[0]["open_set_score"] for r in plain_rec.predict(crops)], open_set, atol=1e-5)


def test_a_gallery_may_store_a_naming_view_that_the_recogniser_follows_without_warning(fx, tmp_path):
    """A gallery calibrated on plain crops records ``box:name``: the recogniser's ``foreground="auto"`` names each
    logo by the crop fused with its box view and decides on the plain crop's score, as the gallery was calibrated;
    the calibration's crops (``deciding_view``) stay plain."""
    from vision.brands.gallery import BrandGallery
    from vision.brands.recognition import BrandRecognizer
    from vision.brands.views import deciding_view

    assert deciding_view("box:name") is None and deciding_view(None) is None
    assert deciding_view("box") == foreground_option("box")
    gallery = BrandGallery.load("simple_icons_gallery")
    gallery.foreground = foreground_option("box:name")
    path = gallery.save(tmp_path / "named.npz")
    loaded = BrandGallery.load(path)
    assert loaded.foreground == {**foreground_option("box"), "fusion": "name"}
    crops = _sample_crops(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # calibrated on plain crops, decided on plain crops: no warning
        auto = BrandRecognizer(fx, loaded)
    explicit = BrandRecognizer(fx, BrandGallery.load("simple_icons_gallery"), foreground="box:name")
    assert auto.foreground == explicit.foreground and auto._views is not None
    got, want = [r[0] for r in auto.predict(crops)], [r[0] for r in explicit.predict(crops)]
    assert [g["best"] for g in got] == [w["best"] for w in want]
    np.testing.assert_allclose([g["open_set_score"] for g in got], [w["open_set_score"] for w in want], atol=1e-6)
    plain = BrandRecognizer(fx, BrandGallery.load("simple_icons_gallery"), foreground="off")
    np.testing.assert_allclose([g["open_set_score"] for g in got],
                               [r[0]["open_set_score"] for r in plain.predict(crops)], atol=1e-5)
    with pytest.warns(UserWarning, match="calibrated on logo crops embedded plain, not with their box"):
        BrandRecognizer(fx, loaded, foreground="box")   # fused scores against a plain calibration
