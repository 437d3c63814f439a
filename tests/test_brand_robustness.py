"""benchmarks/brand_robustness.py end to end on a tiny set: the committed Grocery sample photos, the test Iconify
fixture (its devicon icons are the held-out style) and the shipped detector, embedder and gallery."""

import json

import pytest

from .conftest import REPO, SAMPLE, load_script


def _benchmark():
    return load_script("benchmarks/brand_robustness.py")


def test_iou_and_brand_free_photos_never_read_the_test_split(tmp_path):
    bench = _benchmark()
    assert bench.iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)
    assert bench.iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0
    with pytest.raises(ValueError, match="held out"):
        bench.brand_free_photos(SAMPLE, "test")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bench.brand_free_photos(tmp_path, "val")


def test_robustness_benchmark_runs_end_to_end_on_a_tiny_set(tmp_path):
    bench = _benchmark()
    out, data = tmp_path / "report.json", tmp_path / "data"
    assert bench.main(["--grocery", str(SAMPLE), "--icon-sets", str(REPO / "tests" / "data" / "iconify"),
                       "--data", str(data), "--queries-per-brand", "1", "--known-brands", "3", "--known-per-brand", "1",
                       "--impostor-train-photos", "6", "--val-photos", "4", "--skip-grocery-check",
                       "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    record = report["data_record"]
    assert record["held_out_styles"] == ["devicon"] and "devicon" not in record["training_styles"]
    # the fixture's devicon icons of test-split brands: npm (a wordmark) and vercel
    queries = json.loads((data / "cross_style" / "queries.json").read_text())
    assert sorted(q["brand"] for q in queries) == ["npm", "vercel"] and all(q["icon"].startswith("devicon:")
                                                                            for q in queries)
    assert len(list((data / "cross_style" / "labels" / "val").glob("*.txt"))) == 2
    assert record["known"]["crops"] == 3 and record["impostors"]["train"]["photos"] == 6
    assert record["known_scenes"]["crops"] == 3
    assert len(json.loads((data / "known_scenes" / "queries.json").read_text())) == 3
    row = report["rows"]["shipped"]
    crop_rows = {"as given", "impostors, none", "impostors, topk", "impostors, background"}
    rule_rows = {f"as given{how} detection rule ({kind})" for how in (" +", ",") for kind in ("pair", "logistic")}
    assert crop_rows <= set(row["open_set"]) <= crop_rows | rule_rows  # ", ...": the rule stored in the gallery
    for name, figures in row["open_set"].items():
        keys = ["end_to_end_recall@1", "oracle_recall@1", "known_frr_end_to_end", "impostor_far_val_crops"]
        for key in keys + ["known_frr"]:
            assert 0 <= figures[key] <= 1, (name, key)
        assert figures["end_to_end_accepted_correct"] <= figures["end_to_end_recall@1"]
        assert figures["brand_free_photos"]["photos"] == record["impostors"]["val"]["photos"] == 4
    recalibrated = row["open_set"]["impostors, none"]
    assert recalibrated["calibration"]["known"] == 3 and recalibrated["known_frr"] <= 1 / 3
    assert {"mAP50", "mAP50-95"} <= set(row["detector_cross_style"])
    assert row["models"]["embedder"] == "brand_ensemble" and "| shipped | as given" in report["table"]
    assert out.with_suffix(".md").read_text().startswith("| models |")
    # a gallery framing its queries another way gets the known crops re-cut from the same scenes
    assert bench.known_crops(data, bench.KNOWN_MARGIN) == data / "known"
    recut = bench.known_crops(data, 0.1)
    assert recut == data / "known_margin0.1" and json.loads((recut / "crops.json").read_text())["crops"] == 3
    assert sorted(p.relative_to(recut) for p in recut.rglob("*.jpg")) == \
        sorted(p.relative_to(data / "known") for p in (data / "known").rglob("*.jpg"))
    assert bench.known_crops(data, 0.1) == recut   # built once


def test_operating_curve_moves_the_threshold_along_the_brand_free_photos():
    import numpy as np

    from vision.brands.detection_rule import DetectionRule, RuleSet

    bench = _benchmark()
    rule = DetectionRule("pair", "det", "sha", 0.2, 0.5)
    # three queries: their right detections score 0.9, 0.6 (and a wrong one 0.95) and one below the detector floor
    cross = RuleSet(np.array([0, 1, 1, 2]), np.array([0.8, 0.8, 0.8, 0.1]), np.array([0.9, 0.6, 0.95, 0.99]), 3,
                    np.array([True, True, False, True]))
    # four brand-free photos whose most confident detections score 0.7, 0.3, 0.5; one has none
    val = RuleSet(np.array([0, 0, 1, 2]), np.array([0.9, 0.9, 0.9, 0.9]), np.array([0.7, 0.2, 0.3, 0.5]), 4)
    curve = bench.operating_curve(rule, cross, val, most=4)
    assert curve["photos"] == 4 and curve["queries"] == 3
    # no false photo: accept above 0.7 (query 0 only); one: above 0.5 (queries 0 and 1); the rest: still 2, never
    # the query whose only right detection is under the detector floor
    assert curve["accepted_correct"] == {"0": 1, "1": 2, "2": 2, "3": 2, "4": 2}


def test_data_only_builds_the_missing_parts_and_runs_no_model(tmp_path, capsys, monkeypatch):
    bench = _benchmark()
    monkeypatch.setattr(bench, "load_row", lambda *a, **k: pytest.fail("--data-only loaded a model"))
    data, impostors = tmp_path / "data", tmp_path / "impostors"
    for part in ("train", "val"):   # given impostor crops: nothing is detected to build them
        (impostors / part).mkdir(parents=True)
        (impostors / part / "a.jpg").write_bytes((SAMPLE / "val").rglob("*.jpg").__next__().read_bytes())
    assert bench.main(["--grocery", str(SAMPLE), "--icon-sets", str(REPO / "tests" / "data" / "iconify"),
                       "--data", str(data), "--queries-per-brand", "1", "--known-brands", "2", "--known-per-brand", "2",
                       "--impostors", str(impostors), "--data-only"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["record"]["known_scenes"]["crops"] == 4
    assert len(json.loads((data / "known_scenes" / "queries.json").read_text())) == 4
