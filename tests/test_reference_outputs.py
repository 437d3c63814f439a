"""Registry sweep against recorded outputs: every shipped model still gives what it gave when it was recorded.

The reference (``tests/reference/shipped_outputs.*``) is written by ``tests/reference/make_reference_outputs.py``.
A structural change (loading, preprocessing, post-processing) must leave these outputs unchanged.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.reference.make_reference_outputs import REPO, shipped_outputs

REFERENCE = Path(__file__).resolve().parent / "reference"


@pytest.fixture(scope="module")
def current():
    return shipped_outputs(REPO / "weights")


@pytest.fixture(scope="module")
def recorded():
    with np.load(REFERENCE / "shipped_outputs.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads((REFERENCE / "shipped_outputs.json").read_text(encoding="utf-8"))


def test_every_shipped_model_has_a_reference(current, recorded):
    assert sorted(current[1]["models"]) == sorted(recorded[1]["models"]), (
        "weights/ and tests/reference disagree on the shipped models; after shipping a model on purpose, run "
        "python -m tests.reference.make_reference_outputs")


def test_outputs_match_the_recorded_ones(current, recorded):
    (now, now_record), (then, then_record) = current, recorded
    assert sorted(now) == sorted(then)
    for key in then:
        np.testing.assert_allclose(now[key], then[key], rtol=1e-4, atol=1e-4, err_msg=key)
    for name, entry in then_record["models"].items():
        if "detections" not in entry:
            continue
        for got, want in zip(now_record["models"][name]["detections"], entry["detections"], strict=True):
            assert [d["label"] for d in got] == [d["label"] for d in want], name
            np.testing.assert_allclose([d["box"] for d in got], [d["box"] for d in want], atol=0.05)
            np.testing.assert_allclose([d["score"] for d in got], [d["score"] for d in want], atol=1e-4)
