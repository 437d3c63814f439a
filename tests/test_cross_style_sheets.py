"""benchmarks/cross_style_sheets.py: a reader's readings of the missed queries, scored against the truth."""

import pytest

from benchmarks.cross_style_sheets import iou, score


def _rows():
    kinds = ["icon"] * 4 + ["wordmark"] * 2
    brands = ["react", "spring", "npm", "rust", "harbor", "ktor"]
    right = [True, False, False, False, True, False]
    return [{"query": i, "kind": k, "brand": b, "right": r} for i, (k, b, r) in enumerate(zip(kinds, brands, right))]


def test_the_ceiling_counts_the_recogniser_and_the_missed_marks_the_reader_names_right():
    rows = _rows()
    index = {"icon": [1, 2, 3], "wordmark": [5]}   # the sheets' tiles: the missed queries in order
    readings = {"icon": {0: "spring", 1: "?", 2: "rustdesk"}, "wordmark": {0: "ktor"}}
    figures = score(rows, index, readings)
    assert figures["icon"] == {"queries": 4, "recogniser_right": 1, "missed": 3, "missed_named_by_reader": 1,
                               "missed_unread_by_reader": 1, "missed_named_wrong_by_reader": 1,
                               "recogniser_recall": 0.25, "ceiling_recogniser_or_reader": 0.5}
    assert figures["wordmark"]["ceiling_recogniser_or_reader"] == 1.0
    # a tile left out of the readings is one the reader could not name
    assert score(rows, index, {})["icon"]["missed_unread_by_reader"] == 3


def test_a_reading_for_a_tile_that_is_not_on_the_sheets_is_an_error():
    with pytest.raises(ValueError, match=r"readings for icon: no sheet tile numbered \[7\]"):
        score(_rows(), {"icon": [1, 2, 3]}, {"icon": {7: "react"}})


def test_iou_of_boxes():
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)
    assert iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
