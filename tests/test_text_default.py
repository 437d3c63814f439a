"""Cheap text reading (vision.brands.ocr, vision.brands.recognition): a wordmark's box read as one line without the
text detector, one engine per process, the reader's box crop, and logos the embedder already names left unread."""

from types import SimpleNamespace

import numpy as np
import pytest

from vision.brands.gallery import BrandGallery
from vision.brands.ocr import BrandNames, TextLine, TextReader
from vision.brands.recognition import BrandRecognizer, text_crop

from .test_gallery_open_set import tiny_zoo  # noqa: F401 (a fixture)
from .test_ocr import _Detector, _Extractor, _text_image


def _two_lines() -> np.ndarray:
    return np.concatenate([_text_image("Kubernetes", size=(220, 60)), _text_image("Gitlab", size=(220, 60)),
                           np.full((100, 220, 3), 250, np.uint8)])


def test_a_wide_crop_is_read_as_one_line_without_the_text_detector():
    reader = TextReader(side=288)   # settings no other test uses: an engine of its own
    (line,), = reader.read([_text_image("Kubernetes")])          # 220 x 64: wider than LINE_ASPECT
    assert (line.text, line.box) == ("Kubernetes", ((0.0, 0.0), (220.0, 0.0), (220.0, 64.0), (0.0, 64.0)))
    assert reader.engine.text_det is None                        # never loaded: the detector is most of the cost
    # a square crop after it is detected as before (RapidOCR would keep the last call's use_det)
    wide, square = reader.read([_text_image("Gitlab", size=(200, 50)), _two_lines()])
    assert [ln.text for ln in wide] == ["Gitlab"]
    assert [ln.text for ln in square] == ["Kubernetes", "Gitlab"]
    assert [ln.text for ln in TextReader(side=288, line_aspect=None).read([_text_image("Kubernetes")])[0]] \
        == ["Kubernetes"]


def test_readers_with_the_same_settings_share_one_engine():
    assert TextReader().engine is TextReader().engine
    assert TextReader(threads=2).engine is not TextReader().engine
    reader = TextReader()
    reader.read([_text_image("Gitlab", size=(200, 50))])
    assert list(reader.engine.text_rec.rec_image_shape) == [3, 48, 96]   # a short word is not padded to 320 px
    assert TextReader(line_width=320).engine is not TextReader().engine
    for bad in (dict(threads=0), dict(line_aspect=0.5), dict(side=8), dict(line_width=8)):
        with pytest.raises(ValueError):
            TextReader(**bad)


def test_text_crop_keeps_a_wordmark_a_line_and_stays_inside_the_image():
    image = np.zeros((100, 300, 3), np.uint8)
    assert text_crop(image, [100, 40, 200, 60], 0.15).shape == (26, 130, 3)   # 15% of its width and height
    assert text_crop(image, [0, 0, 300, 100], 0.15).shape == (100, 300, 3)   # cut at the edges, not padded


def test_logos_detected_with_a_low_confidence_are_not_read():
    gallery = BrandGallery(dim=2, model_name="emb", model_sha256="e" * 64, threshold=0.5)
    gallery.add_many(["acme", "kubernetes"], np.eye(2, dtype=np.float32))
    photo = np.full((200, 400, 3), 245, np.uint8)
    photo[20:84, 10:230] = _text_image("Kubernetes")
    photo[120:184, 10:230] = _text_image("Kubernetes")
    calls = []

    class Counting(TextReader):
        def read(self, images):
            calls.append(len(images))
            return super().read(images)

    class Unsure(_Detector):   # the second box at a confidence under TEXT_MIN_DETECTION
        def predict(self, images):
            return [[{"box": [10, 20, 230, 84], "score": 0.9}, {"box": [10, 120, 230, 184], "score": 0.1}]
                    for _ in images]

    read = dict(text_max_lead=None)   # _Extractor names every logo acme with a clear lead
    sure, unsure = BrandRecognizer(_Extractor(), gallery, Unsure([]), reader=Counting(), **read).predict(photo)[0]
    assert calls == [1]                                   # both logos of the photo in one call, the unsure one left
    assert (sure["brand"], sure["source"], sure["text"]) == ("kubernetes", "text", ["Kubernetes"])
    assert (unsure["brand"], unsure["source"]) == ("acme", "image") and "text" not in unsure
    calls.clear()
    both = BrandRecognizer(_Extractor(), gallery, Unsure([]), reader=Counting(), text_min_detection=0.0,
                           **read).predict(photo)
    assert calls == [2] and [f["brand"] for f in both[0]] == ["kubernetes", "kubernetes"]


def test_brand_text_reader_rows_apply_the_recognisers_text_decision_and_detection_floor():
    """benchmarks/brand_text.py --readers: a wordmark read right counts for Recall@1 only when its detection passes
    the floor; a brand read on a brand-free photo is a false brand; a name read on packaging counts as named."""
    from .conftest import load_script

    bench = load_script("benchmarks/brand_text.py")

    recognizer = SimpleNamespace(names=BrandNames({"nodedotjs": ["Node.js"], "gitlab": ["GitLab"]}),
                                 text_kinds=("exact", "fuzzy"), text_threshold=0.8)

    def logo(box, detection, text):
        return {"box": box, "brand": "unknown", "best": "gitlab", "open_set_score": 0.0, "detection_score": detection,
                "_lines": [TextLine(text, 0.95)]}

    queries = [{"brand": "nodedotjs", "kind": "wordmark", "box": [0, 0, 60, 20]}]
    cross = [[logo([0, 0, 60, 20], 0.15, "node.js")]]
    free, packages = [[logo([0, 0, 9, 9], 0.5, "gitlab")]], [[logo([0, 0, 9, 9], 0.1, "gitlab")]]
    read = {k: bench.text_decided(recognizer, v) for k, v in (("c", cross), ("f", free), ("p", packages))}
    rows = bench.reader_figures(read["c"], queries, read["f"], read["p"])
    assert rows["cross_style_recall@1_wordmark"] == 1.0 and rows["brand_free_with_a_false_brand"] == 1.0
    assert rows["packaged_named_by_text"] == 1.0
    floor = {k: bench.text_decided(recognizer, v, 0.2) for k, v in (("c", cross), ("f", free), ("p", packages))}
    rows = bench.reader_figures(floor["c"], queries, floor["f"], floor["p"])
    assert rows["cross_style_recall@1_wordmark"] == 0.0 and rows["brand_free_with_a_false_brand"] == 1.0
    assert rows["packaged_named_by_text"] == 0.0


def test_the_reader_loads_without_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    reader = TextReader(side=100)   # settings of its own: a fresh engine, its models read from RapidOCR's wheel
    assert [ln.text for ln in reader.read([_text_image("Gitlab", size=(200, 50))])[0]] == ["Gitlab"]
    assert reader.read([np.full((80, 80, 3), 250, np.uint8)]) == [[]]


def test_a_logo_the_embedder_names_with_a_clear_lead_is_not_read_an_ambiguous_one_is():
    gallery = BrandGallery(dim=3, model_name="emb", model_sha256="e" * 64, threshold=0.5)
    gallery.add_many(["acme", "kubernetes", "zeta"], np.eye(3, dtype=np.float32))
    photo = np.full((200, 400, 3), 245, np.uint8)
    photo[20:84, 10:230] = _text_image("Kubernetes")
    photo[120:184, 10:230] = _text_image("Kubernetes")

    class Ordered(_Extractor):   # the first logo is plainly acme, the second nearly as much zeta as acme
        dim = 3

        def __call__(self, crops, batch_size=64):
            return np.array([[1.0, 0.0, 0.0], [0.72, 0.0, 0.69]], np.float32)[:len(crops)]

    class Two(_Detector):
        def predict(self, images):
            return [[{"box": [10, 20, 230, 84], "score": 0.9}, {"box": [10, 120, 230, 184], "score": 0.9}]
                    for _ in images]

    read = []

    class Counting(TextReader):
        def read(self, images):
            read.extend(image.shape for image in images)
            return super().read(images)

    recognizer = BrandRecognizer(Ordered(), gallery, Two([]), reader=Counting(), text_max_lead=0.1)
    assert recognizer.leads(Ordered()([None, None])) == pytest.approx([1.0, 0.03], abs=0.01)
    clear, ambiguous = recognizer.predict(photo)[0]
    assert len(read) == 1                                      # only the ambiguous logo was read
    assert (clear["brand"], clear["source"]) == ("acme", "image") and "text" not in clear
    assert (ambiguous["brand"], ambiguous["source"], ambiguous["text"]) == ("kubernetes", "text", ["Kubernetes"])
    read.clear()   # without the lead rule both are read, and the text names both
    both = BrandRecognizer(Ordered(), gallery, Two([]), reader=Counting(), text_max_lead=None).predict(photo)[0]
    assert len(read) == 2 and [logo["brand"] for logo in both] == ["kubernetes", "kubernetes"]


def test_text_is_read_by_default_and_without_the_ocr_extra_the_recogniser_falls_back_with_a_warning(monkeypatch):
    import warnings

    from vision.brands import ocr, recognition
    from vision.brands.ocr import OCRUnavailable

    assert ocr.missing_packages() == [] and recognition.text_wanted(None) is True   # the extra is installed here
    assert recognition.text_wanted(False) is False
    monkeypatch.setattr(ocr, "missing_packages", lambda: ["rapidocr"])
    with pytest.warns(UserWarning, match=r"not read: rapidocr not installed \(pip install 'vision-zoo\[ocr\]'\)"):
        assert recognition.text_wanted(None) is False                # the default: the image alone, and a warning
    with pytest.raises(OCRUnavailable, match=r"needs rapidocr: pip install 'vision-zoo\[ocr\]'"):
        recognition.text_wanted(True)                                # asked for: an error, before any model loads
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert recognition.text_wanted(False) is False               # turned off: no warning


def test_vision_recognize_without_the_ocr_extra(tiny_zoo, tmp_path, capsys, monkeypatch):  # noqa: F811 (fixture)
    """The default runs by the image alone with a warning naming the extra; --read-text is an error saying what to
    install; --no-read-text runs without a warning."""
    import json

    from vision.brands import ocr
    from vision.commands import recognize

    from .test_ocr import recognize_args

    args = recognize_args(tiny_zoo, tmp_path)
    monkeypatch.setattr(ocr, "missing_packages", lambda: ["rapidocr", "wordfreq"])
    capsys.readouterr()
    with pytest.warns(UserWarning, match=r"rapidocr, wordfreq not installed \(pip install 'vision-zoo\[ocr\]'\)"):
        assert recognize.main([*args, "--out", str(tmp_path / "default")]) == 0
    (logo,) = json.loads((tmp_path / "default" / "results.jsonl").read_text())["logos"]
    assert "text" not in logo and "named_by_text" not in capsys.readouterr().err
    for asked in (["--read-text"], ["--text-threshold", "0.9"]):   # a text option asks for text too
        assert recognize.main([*args, *asked, "--out", str(tmp_path / "asked")]) == 1
        assert "error: reading text on logos needs rapidocr, wordfreq: pip install 'vision-zoo[ocr]'" \
            in capsys.readouterr().err
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert recognize.main([*args, "--no-read-text", "--out", str(tmp_path / "off")]) == 0
