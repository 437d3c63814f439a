"""One calibrated decision over several candidate brands per logo (issue 27 route 4): the ``logistic_candidates`` rule
(vision.brands.fusion.calibrate_candidate_rule) fitted on every candidate of each detection, picking the right one
where the embedder's best is wrong, calibrated with both rates and the impostor constraint, bound to its embedder."""

import numpy as np
import pytest

from vision.brands.detection_rule import CANDIDATES_RULE_KIND, DetectionRule, DetectionRuleError
from vision.brands.fusion import calibrate_candidate_rule, picked_table
from vision.brands.gallery import BrandGallery
from vision.brands.ocr import BrandNames, TextLine
from vision.brands.recognition import Candidate, logo_candidates

from .test_gallery_open_set import tiny_zoo  # noqa: F401  (an untrained embedder in a zoo, for the CLI)
from .test_text_rule import DETECTOR, EMBEDDER, _Card, _Detector, _Extractor

BOX = [10.0, 10.0, 40.0, 30.0]


def _tables(seed: int = 0):
    """Known scenes: symbols the embedder ranks first (no text), and wordmarks it ranks second or third behind a
    wrong brand, their name read weakly (below the 0.8 that renames a logo today). Brand-free photos: weak
    detections, some scoring like a brand, and confident ones under price labels (text naming nothing)."""
    rng = np.random.default_rng(seed)
    known, scenes = [], []
    for i in range(120):
        brand = f"b{i}"
        if i < 80:   # a symbol: right at rank 0
            cands = [Candidate(brand, rng.normal(0.3, 0.05), (0.0, 0.0), 0),
                     Candidate("wrong", rng.normal(0.0, 0.05), (0.0, 0.0), 1)]
        else:        # a wordmark: a wrong brand first, the right one further down with its name half read
            top = rng.normal(0.05, 0.03)
            cands = [Candidate("wrong", top, (0.0, 0.0), 0),
                     Candidate(brand, top - rng.uniform(0.01, 0.05), (rng.uniform(0.5, 0.75), 0.0), 1 + i % 2)]
        known.append([{"box": BOX, "det": rng.uniform(0.5, 0.95), "candidates": cands}])
        scenes.append({"box": BOX, "brand": brand})
    free = []
    for i in range(300):
        rows = []
        if i < 200:
            score = rng.normal(0.3, 0.1) if rng.random() < 0.3 else rng.normal(-0.1, 0.1)
            rows.append({"box": BOX, "det": rng.uniform(0.1, 0.3), "candidates": [
                Candidate("x", score, (0.0, 0.0), 0), Candidate("y", score - 0.05, (0.0, 0.0), 1)]})
        elif i < 240:
            rows.append({"box": BOX, "det": rng.uniform(0.5, 0.9), "candidates": [
                Candidate("x", rng.normal(0.0, 0.05), (0.0, rng.uniform(0.8, 1.0)), 0)]})
        free.append(rows)
    return known, scenes, free


def test_the_candidate_rule_picks_the_right_brand_where_the_embedder_ranks_it_lower():
    known, scenes, free = _tables()
    rule = calibrate_candidate_rule(known, scenes, free, _Card(*DETECTOR), _Card(EMBEDDER["name"], EMBEDDER["sha256"]),
                                    top_k=3, floor=0.1)
    assert rule.kind == CANDIDATES_RULE_KIND and rule.top_k == 3 and rule.embedder == EMBEDDER
    assert rule.weights[2] > 0   # a name read, even weakly, is for the brand it names
    picked = picked_table(rule, known)
    right = [row["candidate"] == s["brand"] for (row,), s in zip(picked, scenes)]
    assert all(right[:80]) and np.mean(right[80:]) >= 0.9   # the wordmarks' second-ranked brand, by its text
    c = rule.calibration
    assert c["known_right_candidate"] == 1.0 and c["known_right_picked"] >= 0.95
    # both rates stored, the budget and the constraint held, and they are the picked candidates' own
    assert c["frr_found"] <= 0.10 and c["far_photos"] <= 0.05 and c["max_impostor_photos"] == 0.05
    accepted = [any(r["accepted"] for r in rows) for rows in picked_table(rule, free)]
    assert c["far_photos"] == pytest.approx(np.mean(accepted), abs=1e-4)
    # a candidate rule is set only from candidates: the generic calibration refuses to fit one
    with pytest.raises(DetectionRuleError, match="calibrate_candidate_rule"):
        from vision.brands.detection_rule import RuleSet, calibrate_detection_rule

        one = RuleSet(np.zeros(1), np.ones(1), np.ones(1), 1)
        calibrate_detection_rule(one, one, *DETECTOR, kind=CANDIDATES_RULE_KIND, embedder=EMBEDDER)


def test_the_candidate_rule_is_stored_with_its_pair_and_top_k(tmp_path):
    rule = DetectionRule(CANDIDATES_RULE_KIND, *DETECTOR, 0.1, 1.5, (1.0, 1.0, 2.0, -2.0), embedder=EMBEDDER, top_k=3)
    assert rule.pick(0.9, [0.5, 0.2], [[0.0, 0.0], [0.6, 0.0]]) == (1, True)    # 2.3 against 2.6
    assert rule.pick(0.9, [0.5, 0.2], [[0.0, 0.7], [0.0, 0.7]]) == (0, False)   # a price label under both
    gallery = BrandGallery(2, model_name=EMBEDDER["name"], model_sha256=EMBEDDER["sha256"], threshold=0.5)
    gallery.add_many(["acme", "kubernetes"], np.eye(2, dtype=np.float32))
    gallery.text_rule = rule
    loaded = BrandGallery.load(gallery.save(tmp_path / "g.npz"))
    assert loaded.text_rule == rule and loaded.text_rule.to_json()["top_k"] == 3
    with pytest.raises(DetectionRuleError, match="top_k"):
        DetectionRule(CANDIDATES_RULE_KIND, *DETECTOR, 0.1, 1.5, (1.0, 1.0, 2.0, -2.0), embedder=EMBEDDER)
    with pytest.raises(DetectionRuleError, match="top_k is for"):
        DetectionRule("logistic", *DETECTOR, 0.1, 1.5, (1.0, 1.0), top_k=3)
    with pytest.raises(DetectionRuleError, match="embedder"):
        DetectionRule(CANDIDATES_RULE_KIND, *DETECTOR, 0.1, 1.5, (1.0, 1.0, 2.0, -2.0), top_k=3)
    # vision build-gallery --text-rule-candidates K: a kind of --text-rule, refused without it
    from vision.brands.building import GallerySpec, GallerySpecError

    with pytest.raises(GallerySpecError, match="--text-rule-candidates 3: .*with --text-rule"):
        GallerySpec("brand_resnet10t", simple_icons=True, text_rule_candidates=3).checked()


def _gallery(rule) -> BrandGallery:
    gallery = BrandGallery(2, model_name=EMBEDDER["name"], model_sha256=EMBEDDER["sha256"], threshold=0.5)
    gallery.add_many(["acme", "kubernetes", "grafana"],
                     np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], np.float32))
    gallery.detection_rule = DetectionRule("pair", *DETECTOR, 0.1, 0.5)
    gallery.text_rule = rule
    return gallery


class _WeakReader:
    """Reads the second brand's name with one slip at low confidence (a fuzzy match under 0.8), then nothing."""

    def read(self, images):
        return [[TextLine("Kubernetis", 0.7)], [], []][:len(images)]


def test_the_recognizer_picks_a_weakly_read_candidate_and_refuses_another_embedder():
    from vision.brands.recognition import BrandRecognizer

    names = BrandNames({"acme": [], "kubernetes": ["Kubernetes"], "grafana": ["Grafana"]})
    found = logo_candidates(_gallery(None), names, np.array([1.0, 0.0]), [("acme", 1.0), ("kubernetes", 0.6)], 1.0,
                            [TextLine("Kubernetis", 0.7)])
    assert [c.brand for c in found] == ["acme", "kubernetes"] and found[1].text[0] == pytest.approx(0.63)
    assert found[0].text == (0.0, 0.7) and found[1].open_set == pytest.approx(0.6)
    # det + score + 2 text_match - 2 text_other >= 1.8: acme (0.5 under the misread name) loses to kubernetes (2.76)
    rule = DetectionRule(CANDIDATES_RULE_KIND, *DETECTOR, 0.1, 1.8, (1.0, 1.0, 2.0, -2.0), embedder=EMBEDDER, top_k=2)
    rec = BrandRecognizer(_Extractor(), _gallery(rule), _Detector(), reader=_WeakReader(), names=names,
                          text_max_lead=None)
    named, plain, _ = rec.predict(np.full((60, 60, 3), 200, np.uint8))[0]
    assert (named["brand"], named["best"], named["source"]) == ("kubernetes", "acme", "text")
    assert (plain["brand"], plain["source"]) == ("acme", "image")
    # today's renaming needs a match of 0.8: the same read names nothing
    renamed = BrandRecognizer(_Extractor(), _gallery(None), _Detector(), reader=_WeakReader(), names=names,
                              text_max_lead=None)
    assert renamed.predict(np.full((60, 60, 3), 200, np.uint8))[0][0]["brand"] == "acme"
    foreign = DetectionRule(CANDIDATES_RULE_KIND, *DETECTOR, 0.1, 1.8, (1.0, 1.0, 2.0, -2.0),
                            embedder={"name": "emb", "sha256": "f" * 64}, top_k=2)
    with pytest.raises(DetectionRuleError, match="calibrated with embedder 'emb'"):
        BrandRecognizer(_Extractor(), _gallery(foreign), _Detector(), reader=_WeakReader(), names=names)


@pytest.mark.slow   # the shipped detector and the OCR engines on 7 photos: about 20 s on 2 cores
def test_build_gallery_text_rule_candidates_stores_a_candidate_rule(tmp_path, capsys, request):
    """``vision build-gallery --text-rule --text-rule-candidates 2`` on the detection rule test's photos."""
    import json

    from vision.commands import build_gallery

    from .test_decision_rule import rule_photos

    embedder = request.getfixturevalue("tiny_zoo") / "tiny_open_set.safetensors"
    out = tmp_path / "fused.npz"
    code = build_gallery.main(["--embedder", str(embedder), *rule_photos(tmp_path), "--out", str(out), "--text-rule",
                               "--text-rule-candidates", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    fused = json.loads(captured.out.strip().splitlines()[-1])["text_rule"]
    assert fused["kind"] == CANDIDATES_RULE_KIND and fused["top_k"] == 2
    assert {"frr_found", "far_photos", "known_right_candidate"} <= set(fused["calibration"])
    assert BrandGallery.load(out).text_rule.to_json() == fused
