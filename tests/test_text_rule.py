"""One calibrated decision over the channels (issue 27): the ``logistic_text`` rule (vision.brands.detection_rule)
fitted on detection confidence, open-set score and the text read on each logo, stored in a gallery with the detector
and embedder it was calibrated for, refused for another pair, and applied by the recogniser when it reads text; the
shipped recogniser loads without network."""

import json
import warnings

import numpy as np
import pytest

from vision.brands.detection_rule import (
    TEXT_RULE_KIND,
    DetectionRule,
    DetectionRuleError,
    RuleSet,
    calibrate_detection_rule,
    rule_figures,
)
from vision.brands.gallery import UNKNOWN, BrandGallery, GalleryError
from vision.brands.ocr import BrandNames, TextLine

from .test_decision_rule import rule_photos
from .test_gallery_open_set import tiny_zoo  # noqa: F401  (an untrained embedder in a zoo, for the CLI)

DETECTOR = ("logo_det", "d" * 64)
EMBEDDER = {"name": "emb", "sha256": "e" * 64}


def _sets(seed: int = 0) -> tuple[RuleSet, RuleSet]:
    """Known marks: symbols (confident, high open-set score, no text) and wordmarks (the embedder cannot see them:
    low open-set score, but their name read). Brand-free photos: weak detections, some scoring like a brand, and
    price labels whose text names nothing."""
    rng = np.random.default_rng(seed)
    n, words = 100, 30
    det = np.concatenate([rng.uniform(0.4, 0.95, n), rng.uniform(0.4, 0.95, words)])
    score = np.concatenate([rng.normal(0.3, 0.1, n), rng.normal(-0.1, 0.05, words)])
    text = np.zeros((n + words, 2))
    text[n:, 0] = rng.uniform(0.85, 1.0, words)
    known = RuleSet(np.arange(n + words), det, score, n + words, text=text)
    photos, m = 200, 340
    det = np.concatenate([rng.uniform(0.05, 0.35, 300), rng.uniform(0.4, 0.9, 40)])
    score = np.concatenate([np.where(rng.random(300) < 0.5, rng.normal(0.3, 0.1, 300), rng.normal(-0.1, 0.1, 300)),
                            rng.normal(0.05, 0.05, 40)])
    text = np.zeros((m, 2))
    text[300:, 1] = rng.uniform(0.8, 1.0, 40)   # the confident ones are price labels: text naming no brand
    impostors = RuleSet(rng.integers(0, photos, m), det, score, photos, text=text)
    return known, impostors


def test_the_text_rule_is_calibrated_with_both_rates_and_its_pair_stored(tmp_path):
    known, impostors = _sets()
    rule = calibrate_detection_rule(known, impostors, *DETECTOR, kind=TEXT_RULE_KIND, max_false_reject=0.10,
                                    min_detection_score=0.05, embedder=EMBEDDER, max_impostor_photos=0.05)
    c = rule.calibration
    assert rule.kind == TEXT_RULE_KIND and len(rule.weights) == 4 and rule.embedder == EMBEDDER
    assert c["frr_found"] <= 0.10 and c["far_photos"] <= 0.05 and c["max_impostor_photos"] == 0.05
    assert c == {**c, **rule_figures(rule, known, impostors, 0.05)}   # the stored rates are the rule's own
    assert c["features"] == ["detection", "open_set", "text_match", "text_other"]
    assert rule.weights[2] > 0 > rule.weights[3]   # a name read is for the brand, other text against
    # the budget counted on the symbols alone (the wordmarks still fit the text weights): a stricter rule
    symbols = np.arange(known.photos) < 100
    strict = calibrate_detection_rule(known, impostors, *DETECTOR, kind=TEXT_RULE_KIND, min_detection_score=0.05,
                                      embedder=EMBEDDER, budget_photos=symbols)
    assert strict.calibration["budget_photos"] == 100 and strict.threshold >= rule.threshold
    # the image-only rule on the same detections cannot accept the wordmarks without the price labels
    image = calibrate_detection_rule(known, impostors, *DETECTOR, kind="logistic", min_detection_score=0.05)
    assert c["far_photos"] < image.calibration["far_photos"]
    # stored beside the image rule, read back whole; a text rule in the image rule's field is refused
    gallery = BrandGallery(2, model_name="emb", model_sha256="e" * 64, threshold=0.5)
    gallery.add_many(["acme", "kubernetes"], np.eye(2, dtype=np.float32))
    gallery.detection_rule, gallery.text_rule = image, rule
    loaded = BrandGallery.load(gallery.save(tmp_path / "g.npz"))
    assert loaded.text_rule.to_json() == rule.to_json() and loaded.text_rule.calibration == c
    assert loaded.detection_rule.to_json() == image.to_json()
    gallery.detection_rule = rule
    with pytest.raises(GalleryError, match="detection_rule"):
        BrandGallery.load(gallery.save(tmp_path / "bad.npz"))


def test_the_impostor_constraint_is_part_of_the_fit_and_the_embedder_is_required():
    known, impostors = _sets()
    # without the text channels these sets cannot keep the price labels out at this FRR: refused, not stored
    with pytest.raises(DetectionRuleError, match="impostor constraint is not met.*at most 0.05"):
        calibrate_detection_rule(known, impostors, *DETECTOR, kind="logistic", min_detection_score=0.05,
                                 max_impostor_photos=0.05)
    with pytest.raises(DetectionRuleError, match="embedder"):
        calibrate_detection_rule(known, impostors, *DETECTOR, kind=TEXT_RULE_KIND, min_detection_score=0.05)
    with pytest.raises(DetectionRuleError, match="embedder"):
        DetectionRule(TEXT_RULE_KIND, *DETECTOR, 0.1, 1.0, (1.0, 1.0, 1.0, -1.0))
    with pytest.raises(DetectionRuleError, match="4 weights"):
        DetectionRule(TEXT_RULE_KIND, *DETECTOR, 0.1, 1.0, (1.0, 1.0), embedder=EMBEDDER)


class _Card:
    def __init__(self, name, sha256, task="embedding"):
        self.name, self.sha256, self.task = name, sha256, task


class _Extractor:
    """Every crop embeds as 'acme' (1, 0)."""
    dim, card = 2, _Card(EMBEDDER["name"], EMBEDDER["sha256"])

    def __call__(self, crops, batch_size=64):
        return np.tile(np.array([[1.0, 0.0]], np.float32), (len(crops), 1))


class _Detector:
    def __init__(self, name=DETECTOR[0], sha256=DETECTOR[1]):
        self.card, self.conf = _Card(name, sha256, "detection"), 0.1

    def predict(self, images):
        return [[{"box": [0, 0, 30, 20], "score": 0.9}, {"box": [30, 0, 60, 20], "score": 0.9},
                 {"box": [0, 30, 30, 50], "score": 0.9}] for _ in images]


class _Reader:
    """Reads the same three texts on the three logos: a brand's name, a price label, nothing."""

    def read(self, images):
        return [[TextLine("Kubernetes", 0.95)], [TextLine("4011 PRODUCT", 0.9)], []][:len(images)]


def _text_gallery(rule: DetectionRule | None) -> BrandGallery:
    gallery = BrandGallery(2, model_name=EMBEDDER["name"], model_sha256=EMBEDDER["sha256"], threshold=0.5)
    gallery.add_many(["acme", "kubernetes"], np.array([[1.0, 0.0], [0.6, 0.8]], np.float32))
    gallery.detection_rule = DetectionRule("pair", *DETECTOR, 0.1, 0.5)
    gallery.text_rule = rule
    return gallery


def test_the_recognizer_decides_by_the_text_rule_when_it_reads_and_refuses_another_pair():
    from vision.brands.recognition import BrandRecognizer

    # accepts at 0.9 det + score + text_match - 2 text_other >= 1.5: acme (score 1) with no text, kubernetes
    # (score 0.6) named by its text, not acme under a price label
    rule = DetectionRule(TEXT_RULE_KIND, *DETECTOR, 0.1, 1.5, (1.0, 1.0, 1.0, -2.0), embedder=EMBEDDER)
    names = BrandNames({"acme": [], "kubernetes": ["Kubernetes"]})
    photo = np.full((60, 60, 3), 200, np.uint8)
    fused = BrandRecognizer(_Extractor(), _text_gallery(rule), _Detector(), reader=_Reader(), names=names,
                            text_max_lead=None)
    assert fused.text_rule is rule
    named, label, plain = fused.predict(photo)[0]
    assert (named["brand"], named["source"], named["best"]) == ("kubernetes", "text", "acme")
    assert named["text_score"] == pytest.approx(0.95)
    assert (label["brand"], label["source"], label["text"]) == (UNKNOWN, "image", ["4011 PRODUCT"])
    assert (plain["brand"], plain["source"]) == ("acme", "image")
    # without a reader the image rule decides (and every logo is acme); without a text rule text only renames
    image = BrandRecognizer(_Extractor(), _text_gallery(rule), _Detector())
    assert image.text_rule is None and [f["brand"] for f in image.predict(photo)[0]] == ["acme"] * 3
    renamed = BrandRecognizer(_Extractor(), _text_gallery(None), _Detector(), reader=_Reader(), names=names,
                              text_max_lead=None)
    assert [f["brand"] for f in renamed.predict(photo)[0]] == ["kubernetes", "acme", "acme"]
    # another detector: warned, the text rule is not used; another embedder: refused
    with pytest.warns(UserWarning, match="text rule was calibrated for detector 'logo_det'"):
        other = BrandRecognizer(_Extractor(), _text_gallery(rule), _Detector("logo_det", "f" * 64),
                                reader=_Reader(), names=names)
    assert other.text_rule is None
    foreign = DetectionRule(TEXT_RULE_KIND, *DETECTOR, 0.1, 1.5, (1.0, 1.0, 1.0, -2.0),
                            embedder={"name": "emb", "sha256": "f" * 64})
    with pytest.raises(DetectionRuleError, match="calibrated with embedder 'emb'"):
        BrandRecognizer(_Extractor(), _text_gallery(foreign), _Detector(), reader=_Reader(), names=names)
    with pytest.raises(DetectionRuleError, match="calibrated for detector"):
        rule.check_pair(_Card("logo_det", "f" * 64), _Extractor.card)


def test_the_shipped_recognizer_loads_without_network(monkeypatch):
    """The default configuration: shipped embedder, gallery, detector (and the verifier its rule brings), text read
    when the [ocr] extra is installed; every model read from the package's files."""
    import socket

    from vision.brands.recognition import BrandRecognizer

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a missing [ocr] extra is warned about, not an error
        recognizer = BrandRecognizer.from_pretrained("brand_ensemble", "simple_icons_gallery", "logo_yolo11n",
                                                     device="cpu")
    assert recognizer.rule is not None
    (found,) = recognizer.predict(np.full((96, 96, 3), 255, np.uint8))   # runs offline (a blank holds no logo)
    assert all(f["brand"] == UNKNOWN for f in found)


@pytest.mark.slow   # the shipped detector and the OCR engines on 7 photos: about 20 s on 2 cores
def test_build_gallery_text_rule_needs_the_detection_rule_and_is_stored_with_its_pair(tmp_path, capsys, request):
    """``vision build-gallery --text-rule`` on the known scenes and brand-free photos of the detection rule's own
    test: the fused rule lands in the gallery and the report beside the image rule, with the embedder and detector."""
    from vision.brands.building import GallerySpec, GallerySpecError
    from vision.commands import build_gallery

    with pytest.raises(GallerySpecError, match="--text-rule is calibrated with the detection rule"):
        GallerySpec("brand_resnet10t", simple_icons=True, text_rule=True).checked()
    embedder = request.getfixturevalue("tiny_zoo") / "tiny_open_set.safetensors"
    out = tmp_path / "fused.npz"
    report = tmp_path / "report.json"
    code = build_gallery.main(["--embedder", str(embedder), *rule_photos(tmp_path), "--out", str(out), "--text-rule",
                               "--report", str(report)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = json.loads(captured.out.strip().splitlines()[-1])
    fused = printed["text_rule"]
    assert fused["kind"] == TEXT_RULE_KIND and fused["detector"] == printed["detection_rule"]["detector"]
    assert fused["embedder"]["name"] == "tiny_open_set" and len(fused["embedder"]["sha256"]) == 64
    assert {"frr_found", "far_photos", "max_impostor_photos"} <= set(fused["calibration"])
    stored = BrandGallery.load(out)
    assert stored.text_rule.to_json() == fused and stored.detection_rule.kind == "logistic"
    assert "text rule (logistic_text) for detector logo_yolo11n and embedder tiny_open_set" in \
        report.with_suffix(".txt").read_text()
