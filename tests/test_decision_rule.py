"""The detection-aware decision rule (vision.brands.detection_rule): calibration on whole photos, storage in the gallery
with the detector it was calibrated for, the recogniser applying it (or falling back with another detector), and
galleries without one keeping the threshold alone."""

import json
import warnings

import numpy as np
import pytest

from vision.brands.detection_rule import (
    DetectionRule,
    DetectionRuleError,
    RuleSet,
    calibrate_detection_rule,
    known_scene_set,
    photo_set,
    rule_figures,
    source_rows,
)
from vision.brands.gallery import UNKNOWN, BrandGallery, GalleryError, content_sha256

from .test_gallery_open_set import tiny_zoo  # noqa: F401  (an untrained embedder in a zoo, for the CLI)

DETECTOR = ("logo_det", "d" * 64)


def _sets(seed: int = 0) -> tuple[RuleSet, RuleSet]:
    """Known marks: confident detections with high open-set scores. Brand-free photos: many weak detections, some
    of them (price stickers) scoring as high as a brand; confident ones score low."""
    rng = np.random.default_rng(seed)
    n = 100
    known = RuleSet(np.arange(n), rng.uniform(0.4, 0.95, n), rng.normal(0.3, 0.1, n), n + 5)   # 5 marks missed
    photos = 200
    weak = rng.uniform(0.05, 0.35, 300)
    photo = rng.integers(0, photos, 300)
    score = np.where(rng.random(300) < 0.5, rng.normal(0.3, 0.1, 300), rng.normal(-0.1, 0.1, 300))
    strong = rng.uniform(0.4, 0.9, 40)
    impostors = RuleSet(np.concatenate([photo, rng.integers(0, photos, 40)]), np.concatenate([weak, strong]),
                        np.concatenate([score, rng.normal(-0.2, 0.05, 40)]), photos)
    return known, impostors


@pytest.mark.parametrize("kind", ["pair", "logistic"])
def test_calibration_keeps_the_frr_budget_and_records_both_rates_and_the_detector(kind):
    known, impostors = _sets()
    rule = calibrate_detection_rule(known, impostors, *DETECTOR, kind=kind, max_false_reject=0.10,
                                    min_detection_score=0.05, known_set="k", impostor_set="i")
    c = rule.calibration
    assert (rule.detector_name, rule.detector_sha256) == DETECTOR and rule.kind == kind
    assert c["frr_found"] <= 0.10 and c["known_missed"] == 5 and c["known_scenes"] == 105
    assert c["frr"] == pytest.approx((105 - 100 * (1 - c["frr_found"])) / 105, abs=1e-3)   # + the 5 never found
    assert c["impostor_photos"] == 200 and 0 <= c["far_photos"] <= 1 and 0 <= c["far_detections"] <= 1
    assert c == {**c, **rule_figures(rule, known, impostors, 0.05)}   # the stored rates are the rule's own
    # the detection confidence carries what the open-set score cannot: the rule beats the threshold alone
    alone = calibrate_detection_rule(RuleSet(known.photo, np.ones(len(known.photo)), known.open_set, known.photos),
                                     RuleSet(impostors.photo, np.ones(len(impostors.photo)), impostors.open_set,
                                             impostors.photos), *DETECTOR, kind="pair")
    assert c["far_photos"] < alone.calibration["far_photos"]
    if kind == "pair":
        assert rule.min_detection_score > 0.35 and not rule.weights   # above the weak stickers
    else:
        assert rule.weights[0] > 0 and rule.weights[1] > 0 and rule.min_detection_score == 0.05


def test_calibration_refuses_a_budget_the_detector_cannot_meet():
    known, impostors = _sets()
    missed = RuleSet(known.photo, known.detection, known.open_set, known.photos * 3)   # two thirds never detected
    with pytest.raises(DetectionRuleError, match="misses 215 of 315 marks"):
        calibrate_detection_rule(missed, impostors, *DETECTOR, budget="all")
    found = calibrate_detection_rule(missed, impostors, *DETECTOR).calibration    # the rule's own rejections
    assert found["frr_found"] <= 0.10 and found["frr"] > 2 / 3 and found["budget"] == "frr_found"
    with pytest.raises(DetectionRuleError, match="detector's name and sha256"):
        DetectionRule("pair", "logo_det", "", 0.3, 0.1)


def test_known_scenes_keep_only_detections_of_the_mark_and_cohort_rows_match_their_photo():
    dets = [[{"box": [0, 0, 10, 10], "score": 0.9}, {"box": [50, 50, 60, 60], "score": 0.8}], []]
    known = known_scene_set(dets, [np.array([0.4, 0.9]), np.array([])], [[1, 1, 10, 10], [0, 0, 5, 5]],
                            [["acme", "bolt"], []], ["acme", "acme"])
    assert known.photo.tolist() == [0] and known.open_set.tolist() == [0.4] and known.correct.tolist() == [True]
    assert photo_set(dets, [np.array([0.4, 0.9]), np.array([])]).photo.tolist() == [0, 0]
    groups = ["train/Fruit/Apple/a.jpg", "train/Fruit/Apple/a.jpg", "train/Vegetables/b.jpg", "crop/x.jpg"]
    photos = ["/data/grocery/train/Fruit/Apple/a.jpg", "../g/train/Vegetables/b.jpg", "c.jpg",
              "/data/grocery/train/Fruit/Apple/z.jpg"]
    assert [r.tolist() for r in source_rows(photos, groups, by="photo")] == [[0, 1], [2], [], []]
    assert [r.tolist() for r in source_rows(photos, groups)] == [[0, 1], [2], [], [0, 1]]   # the folder's crops


def _gallery(rule: DetectionRule | None = None) -> BrandGallery:
    gallery = BrandGallery(3, model_name="emb", model_sha256="e" * 64, threshold=0.5)
    gallery.add_many(["acme", "bolt"], np.eye(3, dtype=np.float32)[:2])
    gallery.detection_rule = rule
    return gallery


def test_the_rule_survives_a_round_trip_and_old_galleries_load_without_one(tmp_path):
    rule = DetectionRule("logistic", *DETECTOR, 0.05, 1.5, (2.0, 4.0), {"frr": 0.1, "far_photos": 0.2})
    path = _gallery(rule).save(tmp_path / "g.npz")
    loaded = BrandGallery.load(path)
    assert loaded.detection_rule == rule and loaded.detection_rule.calibration == rule.calibration
    assert _gallery().save(tmp_path / "old.npz") and BrandGallery.load(tmp_path / "old.npz").detection_rule is None
    with np.load(path) as data:       # a damaged rule names the file and the field
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta["detection_rule"]["detector"]["sha256"] = 7
    arrays["meta"] = np.array(json.dumps(meta))
    arrays["content_sha256"] = np.array(content_sha256(arrays))   # re-stamped: the field check itself is tested
    with open(tmp_path / "bad.npz", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(GalleryError, match=r"bad.npz: metadata field 'detection_rule'.detector"):
        BrandGallery.load(tmp_path / "bad.npz")


class _Card:
    def __init__(self, name, sha256, task="embedding"):
        self.name, self.sha256, self.task = name, sha256, task


class _Extractor:
    """Embeds a crop by its mean colour: a red crop is 'acme' (1, 0, 0), a grey one lies between the brands."""
    dim, card = 3, _Card("emb", "e" * 64)

    def __call__(self, crops, batch_size=64):
        means = np.array([np.asarray(c, np.float32).reshape(-1, 3).mean(0) for c in crops])
        return means / np.linalg.norm(means, axis=1, keepdims=True)


class _Detector:
    """Two red boxes per image: a confident one and a weak one."""
    def __init__(self, name, sha256):
        self.card, self.conf = _Card(name, sha256, "detection"), 0.05

    def predict(self, images):
        return [[{"box": [0, 0, 20, 20], "score": 0.9}, {"box": [40, 40, 60, 60], "score": 0.2}] for _ in images]


def _red_photo():
    image = np.full((64, 64, 3), 128, np.uint8)
    image[:24, :24] = image[36:, 36:] = (250, 5, 5)
    return image


def test_recognizer_applies_the_rule_of_its_detector_and_falls_back_for_another():
    from vision.brands.recognition import BrandRecognizer

    rule = DetectionRule("pair", *DETECTOR, 0.5, 0.5)
    found = BrandRecognizer(_Extractor(), _gallery(rule), _Detector(*DETECTOR)).predict(_red_photo())[0]
    assert [f["brand"] for f in found] == ["acme", UNKNOWN] and [f["best"] for f in found] == ["acme", "acme"]
    assert [f["detection_score"] for f in found] == [0.9, 0.2]
    # another version of the detector: its confidences mean something else, the threshold alone decides
    with pytest.warns(UserWarning, match="calibrated for detector 'logo_det'.*falling back"):
        other = BrandRecognizer(_Extractor(), _gallery(rule), _Detector("logo_det", "f" * 64))
    assert other.rule is None and [f["brand"] for f in other.predict(_red_photo())[0]] == ["acme", "acme"]
    # no rule in the gallery (older files), or the rule switched off: today's behaviour, without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for recognizer in (BrandRecognizer(_Extractor(), _gallery(), _Detector(*DETECTOR)),
                           BrandRecognizer(_Extractor(), _gallery(rule), _Detector(*DETECTOR), detection_rule="off"),
                           BrandRecognizer(_Extractor(), _gallery(rule), _Detector(*DETECTOR), threshold=0.5)):
            assert recognizer.rule is None
            assert [f["brand"] for f in recognizer.predict(_red_photo())[0]] == ["acme", "acme"]


def rule_photos(tmp_path) -> list[str]:
    """Simple-icons marks pasted on sample fruit photos (``tmp_path/scenes``: known scenes) with their logos
    (``tmp_path/logos``) and brand-free sample photos (``tmp_path/free``): build-gallery's options for them."""
    from PIL import Image

    from vision.synth.render import list_brands, render_logo

    from .conftest import SAMPLE

    brands = {b.slug: b for b in list_brands() if b.slug in ("github", "python", "spotify")}
    photos = sorted((SAMPLE / "train" / "Fruit").rglob("*.jpg"))
    rng = np.random.default_rng(0)
    scenes = []
    (tmp_path / "scenes").mkdir()
    for i, (slug, brand) in enumerate(sorted(brands.items())):
        mark = Image.fromarray(render_logo(brand, 110))
        (tmp_path / "logos" / slug).mkdir(parents=True, exist_ok=True)
        Image.alpha_composite(Image.new("RGBA", mark.size, "white"), mark).convert("RGB").save(
            tmp_path / "logos" / slug / "0.png")
        photo = Image.open(photos[i * 5]).convert("RGBA").resize((348, 348))
        x, y = (int(v) for v in rng.integers(20, 348 - 130, 2))
        photo.alpha_composite(mark, (x, y))
        photo.convert("RGB").save(tmp_path / "scenes" / f"{i}.jpg")
        scenes.append({"image": f"{i}.jpg", "brand": slug, "box": [x, y, x + mark.width, y + mark.height]})
    (tmp_path / "scenes" / "queries.json").write_text(json.dumps(scenes))
    (tmp_path / "free").mkdir()
    for photo in sorted((SAMPLE / "val" / "Fruit").rglob("*.jpg"))[:4]:
        (tmp_path / "free" / photo.name).write_bytes(photo.read_bytes())
    return ["--folder", str(tmp_path / "logos"), "--threshold", "0.0", "--detector", "logo_yolo11n",
            "--known-scenes", str(tmp_path / "scenes"), "--impostor-photos", str(tmp_path / "free"), "--frr", "0.5"]


def test_build_gallery_calibrates_a_rule_for_the_shipped_detector_and_reports_it(tmp_path, capsys, request):
    """Simple-icons marks pasted on sample fruit photos (known scenes) and brand-free sample photos, through the
    shipped logo detector: the rule, its detector and both rates land in the gallery and the report."""
    from vision.commands import build_gallery
    from vision.zoo import find_card

    options = rule_photos(tmp_path)
    out, report = tmp_path / "g.npz", tmp_path / "report.json"
    embedder = request.getfixturevalue("tiny_zoo") / "tiny_open_set.safetensors"
    args = ["--embedder", str(embedder), *options[:4], "--out", str(out)]
    assert build_gallery.main(["--embedder", str(embedder), *options, "--out", str(out),
                               "--report", str(report)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rule = printed["detection_rule"]
    card = find_card("logo_yolo11n")[0]
    assert rule["detector"] == {"name": "logo_yolo11n", "sha256": card.sha256} and rule["kind"] == "logistic"
    c = rule["calibration"]
    assert c["known_scenes"] == 3 and c["frr_found"] <= 0.5 and 0 <= c["far_photos"] <= 1 and c["impostor_photos"] == 4
    assert set(rule["threshold_only_at_default_conf"]) >= {"frr", "far_photos", "far_detections"}
    stored = BrandGallery.load(out).detection_rule
    assert stored.matches("logo_yolo11n", card.sha256) and stored.calibration == c and stored.kind == "logistic"
    assert "detection rule (logistic) for detector logo_yolo11n" in report.with_suffix(".txt").read_text()
    assert build_gallery.main([*args, "--detector", "logo_yolo11n"]) == 2
    assert "--detector, --known-scenes and --impostor-photos together" in capsys.readouterr().err
