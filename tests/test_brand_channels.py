"""benchmarks/brand_channels.py (brand_robustness --channels): each channel's decision and the fused rule's on the same
detections, the figures they give, and the count of "different artwork" queries."""

import numpy as np
import pytest

from vision.brands.detection_rule import TEXT_RULE_KIND, DetectionRule
from vision.brands.gallery import BrandGallery

from .conftest import load_script

DETECTOR = ("det", "d" * 64)


@pytest.fixture(scope="module")
def channels():
    return load_script("benchmarks/brand_channels.py")


def _row(box, det, best, open_set, named=None, text=(0.0, 0.0), candidate=None, cand_open_set=None):
    return {"box": box, "det": det, "best": best, "open_set": open_set, "named": named,
            "candidate": candidate or named or best, "cand_open_set": open_set if cand_open_set is None
            else cand_open_set, "text": text, "read": True}


def test_each_channel_and_the_fused_rule_decide_the_same_detections(channels):
    gallery = BrandGallery(2, model_name="emb", model_sha256="e" * 64, threshold=0.2)
    image = DetectionRule("logistic", *DETECTOR, 0.1, 1.0, (1.0, 1.0))
    fused = DetectionRule(TEXT_RULE_KIND, *DETECTOR, 0.1, 1.0, (1.0, 1.0, 1.0, -2.0),
                          embedder={"name": "emb", "sha256": "e" * 64})
    box = [0, 0, 10, 10]
    queries = [{"brand": "acme", "kind": "icon", "box": box}, {"brand": "kube", "kind": "wordmark", "box": box}]
    cross = [[_row(box, 0.9, "acme", 0.3)],                                     # a symbol the embedder knows
             [_row(box, 0.9, "acme", 0.0, named="kube", text=(0.95, 0.0), cand_open_set=-0.2)]]   # a wordmark read
    scenes = [{"brand": "acme", "box": box}]
    known = [[_row(box, 0.9, "acme", 0.3)]]
    train = [[_row(box, 0.5, "acme", 0.6, text=(0.0, 0.9))], []]                # a price label scoring like a brand
    val = [[_row(box, 0.5, "acme", 0.6, text=(0.0, 0.9))], [_row(box, 0.05, "acme", 0.9)]]
    figures = {kind: channels.row_figures(channels.decisions(kind, gallery, image, fused, 0.25), cross, queries,
                                          known, scenes, train, val, 0.1)
               for kind in ("embedder alone", "text alone", "image rule", "image rule + text renames", "fused")}
    assert figures["image rule"]["recall@1_icon"] == 1.0 and figures["image rule"]["recall@1_wordmark"] == 0.0
    assert figures["image rule + text renames"]["recall@1_all"] == 1.0
    assert figures["text alone"]["recall@1_icon"] == 0.0 and figures["text alone"]["accepted_correct"] == 0.5
    # the label is accepted by the image rule (0.5 + 0.6 >= 1), not by the fused one (its text names nothing)
    assert figures["image rule + text renames"]["val_photos_with_a_false_brand"] == 0.5
    fused = figures["fused"]
    assert fused["val_photos_with_a_false_brand"] == 0.0 and fused["train_photos_with_a_false_brand"] == 0.0
    assert fused["accepted_correct"] == 1.0 and fused["known_frr_found"] == 0.0
    assert figures["embedder alone"]["val_detections_accepted"] == 1.0   # under the floor: not counted


def test_different_artwork_counts_queries_without_a_reference_of_their_kind(channels):
    gallery = BrandGallery(2, model_name="emb", model_sha256="e" * 64)
    gallery.add_many(["acme", "kube", "kube"], np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32),
                     references=["simple-icons", "simple-icons", "wordmark:DejaVu Sans"])
    queries = [{"brand": "acme", "kind": "icon"}, {"brand": "acme", "kind": "wordmark"},
               {"brand": "kube", "kind": "wordmark"}]
    counted = channels.different_artwork(gallery, queries)
    assert counted["all"] == 1 and counted["wordmark"] == {"different_artwork": 1, "queries": 2}
