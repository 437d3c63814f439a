"""benchmarks/rule_bootstrap.py: the paired bootstrap of a detection rule's train photos."""

import json

import numpy as np
import pytest

from benchmarks.rule_bootstrap import paired_bootstrap


def _pipeline(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    impostors = rng.normal(0, 1, 400)
    impostors[:40] = -np.inf   # brand-free photos without a detection the rule could accept
    return {"known_best": rng.normal(2.5, 1, 120), "impostor_best": impostors,
            "right": rng.normal(2.5, 1, 60), "free": rng.normal(0, 1, 90)}


def test_the_same_pipeline_twice_differs_by_nothing_in_every_resample():
    p = _pipeline()
    out = paired_bootstrap({"a": p, "b": {k: v.copy() for k, v in p.items()}}, resamples=200)
    diff = out["pipelines"]["b"]["minus_a"]
    assert diff["accepted_right_5_50_95"] == [0, 0, 0] and diff["flagged_5_50_95"] == [0, 0, 0]
    assert diff["share_more_flagged"] == diff["share_fewer_flagged"] == diff["share_better_on_both"] == 0
    # the threshold moves with the resampled train photos, so the val figures spread
    lo, _, hi = out["pipelines"]["a"]["flagged_5_50_95"]
    assert lo < hi


def test_lower_brand_free_val_scores_never_flag_more_photos_at_the_same_thresholds():
    p = _pipeline()
    quieter = dict(p, free=p["free"] - 1.0)   # same train photos, so the same threshold in every resample
    out = paired_bootstrap({"a": p, "b": quieter}, resamples=200)
    diff = out["pipelines"]["b"]["minus_a"]
    assert diff["share_more_flagged"] == 0 and diff["share_fewer_flagged"] > 0.5
    assert diff["accepted_right_5_50_95"] == [0, 0, 0]
    assert out["pipelines"]["b"]["flagged_mean"] < out["pipelines"]["a"]["flagged_mean"]


def test_pipelines_calibrated_on_other_photos_are_refused():
    p, q = _pipeline(0), _pipeline(1)
    q["impostor_best"] = q["impostor_best"][:-1]
    with pytest.raises(ValueError, match="different brand-free photos"):
        paired_bootstrap({"a": p, "b": q}, resamples=10)


def test_more_known_scenes_narrow_the_spread_of_the_refitted_threshold():
    rng = np.random.default_rng(3)
    few = _pipeline()
    many = dict(few, known_best=rng.normal(2.5, 1, 1200))   # the same scene distribution, ten times as many
    out = paired_bootstrap({"few": few, "many": many}, resamples=400)
    width = {name: np.subtract(*out["pipelines"][name]["flagged_5_50_95"][::-2])
             for name in ("few", "many")}
    assert out["pipelines"]["few"]["known_scenes"] == 120 and out["pipelines"]["many"]["known_scenes"] == 1200
    assert width["many"] < width["few"]


def test_cached_scores_are_reused_only_for_the_known_scenes_they_were_taken_on(tmp_path, capsys):
    from benchmarks.rule_bootstrap import main, pipeline_key

    cache = tmp_path / "cache"
    cache.mkdir()
    gallery = tmp_path / "gallery.npz"
    gallery.write_bytes(b"one gallery")
    key = pipeline_key("embedder", str(gallery))
    # the cache is keyed by the gallery's content (and the embedder): a rebuilt gallery of the same name is new
    gallery.write_bytes(b"another gallery")
    assert pipeline_key("embedder", str(gallery)) != key != pipeline_key("other", str(gallery))
    gallery.write_bytes(b"one gallery")
    p = _pipeline()
    np.savez(cache / f"a.{key}.train.npz", known_best=p["known_best"], impostor_best=p["impostor_best"],
             train_threshold=np.float64(2.0), known_scenes=np.str_("scenes/mine"))
    np.savez(cache / f"a.{key}.val.npz", right=p["right"], free=p["free"], val_threshold=np.float64(2.0))
    common = ["--pipeline", f"a=embedder,{gallery}", "--grocery", str(tmp_path), "--cache", str(cache),
              "--resamples", "20"]
    assert main(common + ["--known-scenes", "a=scenes/mine", "--out", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["pipelines"]["a"]["known_scenes"] == 120
    with pytest.raises(SystemExit):
        main(common + ["--known-scenes", "a=scenes/other"])
    assert "cached for the known scenes scenes/mine" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(common + ["--known-scenes", "b=scenes/mine"])
    assert "names no --pipeline" in capsys.readouterr().err
