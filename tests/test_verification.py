"""The logo verifier: its training manifests, P(logo) of crops, and the detector it rescores."""

import csv
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from vision.brands.verification import LogoVerifier, VerifiedDetector, VerifierError
from vision.results import Classification
from vision.synth.negatives import write_verifier_data

from .conftest import REPO


class FakeClassifier:
    """A classification predictor: P(logo) is the crop's mean red channel / 255."""

    def __init__(self, classes=("background", "logo"), task="classification"):
        self.card = SimpleNamespace(task=task, class_names=list(classes), name="verifier", sha256="c" * 64)
        self.head = SimpleNamespace(topk=1)
        self.calls = []

    def __call__(self, crops, batch_size=32):
        self.calls.append(len(crops))
        out = []
        for crop in crops:
            p = float(np.asarray(crop)[..., 0].mean() / 255)
            topk = sorted([{"label": "logo", "index": 1, "score": p}, {"label": "background", "index": 0,
                                                                          "score": 1 - p}], key=lambda t: -t["score"])
            out.append(Classification("crop", topk=topk[:self.head.topk]))
        return out


class FakeDetector:
    def __init__(self, boxes):
        self.boxes, self.conf = boxes, 0.25
        self.card = SimpleNamespace(name="det", sha256="d" * 64, task="detection")

    def predict(self, images, conf=None):
        floor = self.conf if conf is None else conf
        return [[dict(b) for b in self.boxes if b["score"] >= floor] for _ in images]


def test_verifier_reads_the_logo_probability_of_every_crop():
    fake = FakeClassifier()
    verifier = LogoVerifier(fake)
    assert fake.head.topk == 2   # asks for every class, so P(logo) is there even when it is not the top one
    crops = [np.full((8, 8, 3), v, np.uint8) for v in (0, 51, 255)]
    np.testing.assert_allclose(verifier(crops), [0.0, 0.2, 1.0])
    assert verifier([]).shape == (0,)
    with pytest.raises(VerifierError, match="no class 'logo'"):
        LogoVerifier(FakeClassifier(classes=("a", "b")))
    with pytest.raises(VerifierError, match="is a detection model"):
        LogoVerifier(FakeClassifier(task="detection"))


def test_verified_detector_rescores_and_keeps_both_scores():
    image = np.zeros((100, 100, 3), np.uint8)
    image[:50, :50, 0] = 255          # a red (logo-like to the fake verifier) quarter
    boxes = [{"box": [5, 5, 45, 45], "score": 0.36, "label": "logo"},     # on red: P(logo) ~1
             {"box": [55, 55, 95, 95], "score": 0.9, "label": "logo"},    # on black: P(logo) 0
             {"box": [10, 10, 10.5, 40], "score": 0.5, "label": "logo"}]  # degenerate: nothing to crop
    detector = VerifiedDetector(FakeDetector(boxes), LogoVerifier(FakeClassifier()), margin=0.0, power=0.5)
    (found,) = detector.predict([image], conf=0.05)
    assert len(found) == 1   # the black box scores 0 and the degenerate one has no crop: both below 0.05
    assert found[0]["detector_score"] == 0.36 and found[0]["verifier_score"] == pytest.approx(1.0)
    assert found[0]["score"] == pytest.approx(0.6)   # sqrt(0.36 * 1.0)
    # a weak box the verifier is sure of passes when the detector hands boxes down to detector_conf
    weak = [{"box": [5, 5, 45, 45], "score": 0.04, "label": "logo"}]
    assert VerifiedDetector(FakeDetector(weak), LogoVerifier(FakeClassifier()), margin=0.0).predict([image],
                                                                                                   conf=0.1) == [[]]
    (kept,) = VerifiedDetector(FakeDetector(weak), LogoVerifier(FakeClassifier()), margin=0.0,
                               detector_conf=0.01).predict([image], conf=0.1)
    assert len(kept) == 1 and kept[0]["score"] == pytest.approx(0.04 ** 0.25)
    # power 0 is the detector alone
    alone = VerifiedDetector(FakeDetector(boxes), LogoVerifier(FakeClassifier()), power=0.0)
    assert [round(d["score"], 6) for d in alone.predict([image], conf=0.3)[0]] == [0.36, 0.9, 0.5]


def test_verified_detector_card_binds_rules_to_the_pair():
    det, ver = FakeDetector([]), LogoVerifier(FakeClassifier())
    pair = VerifiedDetector(det, ver)
    assert pair.card.name == "det+verifier" and pair.card.task == "detection" and len(pair.card.sha256) == 64
    assert pair.card.sha256 not in (det.card.sha256, ver.card.sha256)
    assert VerifiedDetector(det, ver, power=0.3).card.sha256 != pair.card.sha256
    assert pair.conf == det.conf == 0.25   # the detector's own until set
    pair.conf = 0.1
    assert pair.conf == 0.1 and det.conf == 0.25
    low = VerifiedDetector(det, ver, detector_conf=0.01)
    assert low.card.sha256 != pair.card.sha256 and low.describe()["detector_conf"] == 0.01
    assert "detector_conf" not in pair.describe()
    with pytest.raises(ValueError, match="power"):
        VerifiedDetector(det, ver, power=1.5)


def _brand_folder(root, brands=3, per=4):
    for b in range(brands):
        (root / f"brand{b}").mkdir(parents=True)
        for i in range(per):
            image = Image.new("RGB", (16, 16), (b * 40, i * 30, 0))
            image.save(root / f"brand{b}" / f"simple-icons__b{b}__wild_{i:02d}.jpg")
        Image.new("RGB", (16, 16)).save(root / f"brand{b}" / f"simple-icons__b{b}__clean_00.jpg")


def _impostors(root, folders=8, per=3):
    (root / "train").mkdir(parents=True)
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "file", "kind", "source", "x1", "y1", "x2", "y2", "score"])
        for k in range(folders):
            for i in range(per):
                name = f"train/{k:02d}_{i}.jpg"
                Image.new("RGB", (16, 16), (0, 0, k * 20)).save(root / name)
                w.writerow(["train", name, "textured", f"train/Fruit/F{k}/x_{i}.jpg", 0, 0, 1, 1, ""])
        w.writerow(["val", "val/never.jpg", "textured", "val/Fruit/F0/x.jpg", 0, 0, 1, 1, ""])


def test_verifier_data_manifests(tmp_path):
    _brand_folder(tmp_path / "logos")
    _brand_folder(tmp_path / "val_queries", brands=2, per=1)
    _impostors(tmp_path / "imp")
    summary = write_verifier_data(tmp_path / "out", tmp_path / "logos", tmp_path / "imp",
                                  val_logos=tmp_path / "val_queries", max_logos=10, val_fraction=0.25)
    assert summary.counts["train"] == {"logo": 10, "background": 18}   # 6 of 8 folders x 3 crops
    assert summary.counts["val"] == {"logo": 4, "background": 6}       # every val query; 2 folders held out
    lines = (tmp_path / "out" / "train.txt").read_text().splitlines()
    assert all("clean" not in line for line in lines)                 # composites only
    assert not any("never" in line for line in lines)                 # the impostors' val split is left alone
    def folders(split):   # impostor k was cut from folder F<k>
        text = (tmp_path / "out" / f"{split}.txt").read_text().splitlines()
        return {int(line.split("/")[-1][:2]) for line in text if line.endswith(", 0")}

    assert len(summary.held_out_folders) == 2
    assert folders("val") == {int(h.split("F")[-1]) for h in summary.held_out_folders}
    assert not folders("train") & folders("val")    # near-copies never straddle train and val
    assert (tmp_path / "out" / "classes.txt").read_text() == "background\nlogo\n"
    # the manifests load as a classification data module
    from vision.data.datamodule import ClassificationDataModule

    dm = ClassificationDataModule(str(tmp_path / "out" / "train.txt"), str(tmp_path / "out" / "val.txt"),
                                  classes=str(tmp_path / "out" / "classes.txt"), input_size=32)
    assert dm.num_classes == 2
    with pytest.raises(FileNotFoundError, match="make-impostors"):
        write_verifier_data(tmp_path / "o2", tmp_path / "logos", tmp_path / "logos")
    with pytest.raises(ValueError, match="no logo crops"):
        write_verifier_data(tmp_path / "o3", tmp_path / "logos", tmp_path / "imp", pattern="*nothing*")


def test_a_verifier_needs_a_detector(tmp_path, capsys):
    from vision.brands.recognition import BrandRecognizer
    from vision.commands.build_gallery import main as build_gallery

    assert build_gallery(["--embedder", "brand_resnet10t", "--simple-icons", "--verifier", "v",
                          "--out", str(tmp_path / "g.npz")]) == 2
    assert "--verifier rescores a detector's boxes" in capsys.readouterr().err
    with pytest.raises(ValueError, match="give a detector too"):
        BrandRecognizer.from_pretrained("brand_ensemble", "simple_icons_gallery", verifier="logo_verifier_lite0")


def _rule_for(pair, **verifier):
    from vision.brands.detection_rule import DetectionRule

    spec = {**pair.describe(), **verifier}
    return DetectionRule("logistic", pair.card.name, pair.card.sha256, 0.1, 1.0, (1.0, 2.0), verifier=spec)


def test_a_rule_calibrated_with_a_verifier_brings_it_along(monkeypatch):
    from vision.brands.detection_rule import DetectionRule, DetectionRuleError
    from vision.brands.verification import verified_for_rule

    det = FakeDetector([])
    pair = VerifiedDetector(det, LogoVerifier(FakeClassifier()), power=0.5)
    rule = _rule_for(pair)
    record = rule.to_json()
    assert record["verifier"]["detector"] == {"name": "det", "sha256": "d" * 64}
    assert DetectionRule.from_json(record).verifier == rule.verifier
    monkeypatch.setattr(LogoVerifier, "from_pretrained", classmethod(lambda cls, name, **kw: cls(FakeClassifier())))
    monkeypatch.setattr("vision.brands.verification.zoo_source", lambda name: name)   # 'verifier' is no zoo model
    wrapped = verified_for_rule(det, rule)
    assert isinstance(wrapped, VerifiedDetector) and rule.matches(wrapped.card.name, wrapped.card.sha256)
    other = FakeDetector([])
    other.card = SimpleNamespace(name="det", sha256="e" * 64, task="detection")
    assert verified_for_rule(other, rule) is other          # another detector: no verifier, the rule won't match
    assert verified_for_rule(det, DetectionRule("pair", "det", "d" * 64, 0.1, 0.0)) is det   # a rule without one
    with pytest.warns(UserWarning, match="sha256"):
        assert verified_for_rule(det, _rule_for(pair, sha256="f" * 64)) is det
    for bad, match in (({"power": 2}, "verifier.power"), ({"detector": {"name": "det"}}, "verifier.detector"),
                       ({"name": ""}, "verifier.name")):
        with pytest.raises(DetectionRuleError, match=match):
            _rule_for(pair, **bad)


def test_the_shipped_recogniser_brings_the_shipped_verifier_along():
    """The shipped gallery's rule was calibrated for logo_yolo11n rescored by logo_verifier_lite0: naming the
    detector is enough, and the rule applies (at its own confidence)."""
    from vision.brands.recognition import BrandRecognizer

    rec = BrandRecognizer.from_pretrained("brand_ensemble", "simple_icons_gallery", detector="logo_yolo11n",
                                          device="cpu", embedder_backend="torch", detector_backend="torch")
    assert isinstance(rec.detector, VerifiedDetector) and rec.rule is not None
    assert rec.detector.conf == rec.rule.min_detection_score
    composites = sorted((REPO / "data" / "logo_sample" / "images" / "val").glob("*.jpg"))[:3]
    logos = [logo for r in rec(composites) for logo in r.boxes]
    assert logos and all(0 <= logo["verifier_score"] <= 1 for logo in logos)
    power = rec.rule.verifier["power"]
    for logo in logos:   # the rule's score is the weighted geometric mean of the two parts
        expected = logo["detector_confidence"] ** (1 - power) * logo["verifier_score"] ** power
        assert logo["detection_score"] == pytest.approx(expected, abs=1e-5)
    plain = BrandRecognizer.from_pretrained("brand_ensemble", "simple_icons_gallery", detector="logo_yolo11n",
                                            device="cpu", detection_rule="off")
    assert not isinstance(plain.detector, VerifiedDetector) and plain.rule is None


@pytest.mark.skipif(not (REPO.parent / "shared" / "datasets" / "grocery_store").is_dir(), reason="needs ../shared")
def test_verifier_speed_benchmark_runs(capsys):
    import json

    from .conftest import SHARED_GROCERY, load_script

    bench = load_script("benchmarks/verifier_speed.py")
    assert bench.main(["--grocery", str(SHARED_GROCERY), "--photos", "2", "--runs", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["photos"] == 2 and report["ratio"] > 0
    assert report["boxes_kept"]["detector + verifier"] <= report["boxes_kept"]["detector"]
