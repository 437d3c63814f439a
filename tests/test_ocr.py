"""Reading brand names on logos (vision.brands.ocr): name normalisation as simple-icons makes slugs, matching read text
to
a gallery's brands (exact, fuzzy, a brand's own word; ties and short names refused), real OCR of rendered text, and
the recogniser and `vision recognize --read-text` naming a logo by its text."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from vision.brands.gallery import UNKNOWN, BrandGallery
from vision.brands.ocr import BrandNames, TextLine, TextReader, normalize

from .conftest import load_script
from .test_gallery_open_set import _brand_images, tiny_zoo  # noqa: F401


def _lines(*texts, score=0.99):
    return [TextLine(t, score) for t in texts]


def _text_image(text: str, size=(220, 64), font_size=30) -> np.ndarray:
    image = Image.new("RGB", size, (250, 250, 245))
    ImageDraw.Draw(image).text((8, (size[1] - font_size) // 2), text, fill=(20, 30, 90),
                               font=ImageFont.load_default(font_size))
    return np.asarray(image)


@pytest.fixture(scope="module")
def reader():
    return TextReader()


NAMES = {"nodedotjs": ["Node.js"], "apachehadoop": ["Apache Hadoop"], "apachespark": ["Apache Spark"],
         "kubernetes": ["Kubernetes"], "spring": ["Spring"], "spring_creators": ["Spring"], "x": ["X"],
         "acme": [], "organicmaps": ["Organic Maps"], "organic": ["Organic"]}


def test_normalize_is_simple_icons_title_to_slug():
    from vision.synth.catalog import list_brands

    assert normalize("Node.js") == "nodedotjs" and normalize("C++") == "cplusplus"
    assert normalize("Ça & Là") == "caandla" and normalize("Træfik Mesh") == "traefikmesh"
    brands = list_brands()
    same = sum(normalize(b.title) == b.slug for b in brands)
    assert same >= len(brands) - 20   # the rest are renamed duplicates ("Spring" -> spring_creators)


def test_brand_names_match_exact_fuzzy_and_a_brands_own_word():
    names = BrandNames(NAMES)
    found = names.match(_lines("node.js"))
    assert (found.brand, found.name, found.how, found.score) == ("nodedotjs", "Node.js", "exact", 0.99)
    found = names.match(_lines("Apache", "Hadoop"))          # a name read over two lines
    assert (found.brand, found.how, found.text) == ("apachehadoop", "exact", "Apache Hadoop")
    found = names.match(_lines("Kubernctes"))                 # one OCR slip
    assert (found.brand, found.how) == ("kubernetes", "fuzzy") and found.score == pytest.approx(0.99 * 0.9)
    assert names.match(_lines("Kubrnctes")) is None           # two slips in 9 letters: no
    found = names.match(_lines("Hadoop"))                     # a word only Apache Hadoop has
    assert (found.brand, found.how) == ("apachehadoop", "word") and found.score == pytest.approx(0.99 * 0.9)
    assert names.match(_lines("Apache")) is None              # a word two brands share names neither
    assert names.match(_lines("Hadoop"), kinds=("exact", "fuzzy")) is None
    # everyday words name a brand only when asked: a whole name beats another brand's word, and the brand named so
    # beats the one only titled so
    assert names.match(_lines("Organic")) is None and names.match(_lines("Spring")) is None
    assert names.match(_lines("Organic"), everyday=True).brand == "organic"
    assert names.match(_lines("Spring"), everyday=True).brand == "spring"
    assert names.match(_lines("Organic Maps")).brand == "organicmaps"   # a name of everyday words is a name
    assert names.match(_lines("X")) is None and names.match(_lines("acme")).brand == "acme"
    assert names.match([]) is None and names.match(_lines("4011 bananas")) is None
    # the strongest line decides; every brand named is a candidate, strongest first
    both = names.candidates([TextLine("Kubernetes", 0.7), TextLine("node.js", 0.95)])
    assert [c.brand for c in both] == ["nodedotjs", "kubernetes"]


def test_a_match_carries_the_box_of_the_lines_it_was_read_from():
    names = BrandNames(NAMES)
    lines = [TextLine("fresh", 0.99, ((0, 0), (40, 0), (40, 10), (0, 10))),
             TextLine("Apache", 0.98, ((100, 50), (160, 50), (160, 70), (100, 70))),
             TextLine("Hadoop", 0.97, ((102, 72), (170, 72), (170, 90), (102, 90)))]
    found = names.match(lines)
    assert found.brand == "apachehadoop" and found.box == (100, 50, 170, 90)
    assert found.to_dict()["box"] == [100, 50, 170, 90]
    assert names.match(_lines("node.js")).box is None   # lines without corners: no box


def test_a_name_with_a_symbol_matches_when_read_without_it():
    names = BrandNames({"vuedotjs": ["Vue.js"], "nodedotjs": ["Node.js"], "cplusplus": ["C++"], "devto": ["Dev"],
                        "devdotto": ["Dev.to"]})
    assert normalize("Vue.js", symbols=False) == "vuejs" and normalize("C++", symbols=False) == "c"
    found = names.match(_lines("Vuejs"))       # the small dot of the wordmark not read
    assert (found.brand, found.name, found.how) == ("vuedotjs", "Vue.js", "exact")
    assert names.match(_lines("Vue.js")).brand == "vuedotjs" and names.match(_lines("nodejs")).brand == "nodedotjs"
    assert names.match(_lines("C")) is None    # too short to be a name without its symbols
    assert names.match(_lines("Devto")).brand == "devto"   # the brand named so before the one titled so
    assert names.match(_lines("Dev.to")).brand == "devdotto"


def test_brand_names_refuse_a_tie_between_brands():
    names = BrandNames({"alpha": ["Twinx"], "beta": ["Twinx"]})   # neither is named "twinx" itself
    assert names.match(_lines("Twinx")) is None


def test_everyday_words_and_letters_the_name_lacks():
    """"orange" on a juice carton, "ÄPPLE" (Swedish) on an apple juice: real packaging text that is no brand."""
    from vision.brands.ocr import everyday_word

    names = BrandNames({"orange": ["Orange"], "apple": ["Apple"], "citroen": ["Citroën"], "docker": ["Docker"]})
    assert everyday_word("orange") and everyday_word("conference") and not everyday_word("Docker")
    assert not everyday_word("Red Bull")   # several words: a name
    found = names.candidates(_lines("orange", "100%"))
    assert [(m.brand, m.everyday) for m in found] == [("orange", True)]
    assert names.match(_lines("orange")) is None and names.match(_lines("orange"), everyday=True).brand == "orange"
    assert names.match(_lines("prange")) is None                  # a misread everyday name is everyday too
    assert names.match(_lines("prange"), everyday=True).how == "fuzzy"
    assert names.candidates(_lines("ÄPPLE", "JUICE")) == []       # Ä is not a letter of "Apple"
    assert names.match(_lines("CITROËN")).brand == "citroen"      # the name's own accent
    assert names.match(_lines("Citroen")).brand == "citroen"      # OCR dropping an accent is tolerated
    assert names.match(_lines("DOCKER")).brand == "docker"


def test_brand_names_from_a_gallery_take_simple_icons_titles_and_aliases():
    gallery = BrandGallery(dim=2)
    gallery.add_many(["nodedotjs", "acme"], np.eye(2, dtype=np.float32))
    names = BrandNames.from_gallery(gallery, aliases={"acme": ["Acme Corporation"]})
    assert names.names["nodedotjs"] == ["Node.js", "nodedotjs"]
    assert names.match(_lines("ACME CORPORATION")).brand == "acme"
    with pytest.raises(ValueError, match="names for 'zeta', which is not a brand of the gallery"):
        BrandNames.from_gallery(gallery, aliases={"zeta": ["Zeta"]})


def test_brand_names_from_a_yaml_file_with_errors_naming_file_and_brand(tmp_path):
    from vision.brands.ocr import load_aliases

    good = tmp_path / "names.yaml"
    good.write_text("god_morgon: God Morgon\nacme: [Acme Corporation, ACME Co]\n")
    assert load_aliases(good) == {"god_morgon": ["God Morgon"], "acme": ["Acme Corporation", "ACME Co"]}
    for text, why in (("- a\n- b\n", "expected a mapping"), ("acme: 3\n", "brand 'acme': expected a name"),
                      ("acme: ['!!']\n", "brand 'acme'"), ("acme: [unclosed\n", "not valid YAML"),
                      ("acme: !!python/object:os.system echo\n", "not valid YAML")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ValueError, match=f"bad.yaml: .*{why}"):
            load_aliases(bad)
    with pytest.raises(ValueError, match="missing.yaml: cannot read"):
        load_aliases(tmp_path / "missing.yaml")


def test_text_reader_reads_rendered_text(reader):
    (lines,), = [reader.read([_text_image("Kubernetes")])]
    assert [ln.text for ln in lines] == ["Kubernetes"] and lines[0].score > 0.9
    xs = [x for x, _ in lines[0].box]
    assert 0 <= min(xs) < max(xs) <= 220   # boxes in the input's pixels, not the enlarged copy's
    small = reader.read([_text_image("Kubernetes", size=(110, 32), font_size=15), np.zeros((40, 40, 3), np.uint8)])
    assert [ln.text for ln in small[0]] == ["Kubernetes"] and small[1] == []   # enlarged to be read; blank: none
    with pytest.raises(ValueError, match="RGB uint8"):
        reader.read([np.zeros((8, 8), np.float32)])


class _Card:
    def __init__(self, name, sha256, task="embedding"):
        self.name, self.sha256, self.task = name, sha256, task


class _Extractor:
    """Every crop embeds as 'acme' (1, 0): the embedder alone names every logo acme."""
    dim, card = 2, _Card("emb", "e" * 64)

    def __call__(self, crops, batch_size=64):
        return np.tile(np.array([[1.0, 0.0]], np.float32), (len(crops), 1))


class _Detector:
    def __init__(self, boxes):
        self.boxes, self.card, self.conf = boxes, _Card("det", "d" * 64, "detection"), 0.25

    def predict(self, images):
        return [[{"box": b, "score": 0.9} for b in self.boxes] for _ in images]


def test_recognizer_names_a_logo_by_its_text(reader):
    from vision.brands.recognition import BrandRecognizer

    gallery = BrandGallery(dim=2, model_name="emb", model_sha256="e" * 64, threshold=0.5)
    gallery.add_many(["acme", "kubernetes"], np.eye(2, dtype=np.float32))
    photo = np.full((200, 400, 3), 245, np.uint8)
    photo[20:84, 10:230] = _text_image("Kubernetes")
    photo[120:180, 300:360] = (200, 30, 30)                       # a mark without text
    detector = _Detector([[10, 20, 230, 84], [300, 120, 360, 180]])
    plain = BrandRecognizer(_Extractor(), gallery, detector).predict(photo)[0]
    assert [f["brand"] for f in plain] == ["acme", "acme"] and "text" not in plain[0]
    found = BrandRecognizer(_Extractor(), gallery, detector, reader=reader, text_max_lead=None).predict(photo)[0]
    assert [f["brand"] for f in found] == ["kubernetes", "acme"]
    assert [f["source"] for f in found] == ["text", "image"] and found[0]["text"] == ["Kubernetes"]
    assert found[0]["best"] == "acme" and found[0]["text_score"] > 0.8   # best and score stay the embedder's
    strict = BrandRecognizer(_Extractor(), gallery, detector, reader=reader, text_threshold=1.01,
                            text_max_lead=None).predict(photo)[0]
    assert [f["brand"] for f in strict] == ["acme", "acme"] and strict[0]["source"] == "image"
    # a brand the gallery lacks is never named, whatever the text says
    only_acme = BrandGallery(dim=2, model_name="emb", model_sha256="e" * 64, threshold=2.0)
    only_acme.add_many(["acme"], np.eye(2, dtype=np.float32)[:1])
    assert [f["brand"] for f in BrandRecognizer(_Extractor(), only_acme, detector, reader=reader, text_max_lead=None)
            .predict(photo)[0]] == [UNKNOWN, UNKNOWN]


def test_recognizer_leaves_everyday_words_to_the_embedder_unless_asked(reader):
    from vision.brands.recognition import BrandRecognizer

    gallery = BrandGallery(dim=2, model_name="emb", model_sha256="e" * 64, threshold=0.5)
    gallery.add_many(["acme", "orange"], np.eye(2, dtype=np.float32))
    carton = _text_image("orange")
    read = dict(reader=reader, text_max_lead=None)   # _Extractor's clear lead would leave the carton unread
    assert BrandRecognizer(_Extractor(), gallery, **read).predict(carton)[0][0]["brand"] == "acme"
    found = BrandRecognizer(_Extractor(), gallery, **read, text_everyday=True).predict(carton)[0][0]
    assert (found["brand"], found["source"]) == ("orange", "text")


def recognize_args(zoo, tmp_path) -> list[str]:
    """``vision recognize`` arguments for one crop reading "kubernetes" against a gallery of acme and kubernetes
    built with the untrained embedder of ``zoo``."""
    from vision.commands import build_gallery

    _brand_images(tmp_path / "logos", {"acme": (220, 30, 30), "kubernetes": (30, 60, 220)}, 1, seed=0)
    model = str(zoo / "tiny_open_set.safetensors")
    assert build_gallery.main(["--embedder", model, "--folder", str(tmp_path / "logos"),
                               "--out", str(tmp_path / "g.npz")]) == 0
    (tmp_path / "crops").mkdir()
    Image.fromarray(_text_image("kubernetes")).save(tmp_path / "crops" / "k8s.png")
    return ["--images", str(tmp_path / "crops"), "--crops", "--embedder", model, "--gallery", str(tmp_path / "g.npz"),
            "--no-progress", "--device", "cpu"]


def test_vision_recognize_read_text(tiny_zoo, tmp_path, capsys, monkeypatch):  # noqa: F811 (the fixture)
    from vision.brands.recognition import BrandRecognizer
    from vision.commands import recognize

    # the untrained embedder's lead over the second brand is random: every logo counts as ambiguous, so it is read
    monkeypatch.setattr(BrandRecognizer, "leads", lambda self, vectors: [0.0] * len(vectors))

    args = recognize_args(tiny_zoo, tmp_path)
    capsys.readouterr()
    assert recognize.main([*args, "--no-read-text", "--out", str(tmp_path / "plain")]) == 0
    assert "named_by_text" not in json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    for flags, out in (([], "default"), (["--read-text"], "text")):   # text is read by default
        assert recognize.main([*args, *flags, "--out", str(tmp_path / out)]) == 0
        summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert summary["named_by_text"] == 1
        (logo,) = json.loads((tmp_path / out / "results.jsonl").read_text())["logos"]
        assert (logo["brand"], logo["source"], logo["text"]) == ("kubernetes", "text", ["kubernetes"])
    (plain,) = json.loads((tmp_path / "plain" / "results.jsonl").read_text())["logos"]
    assert "source" not in plain and "text" not in plain
    for flag in (["--text-threshold", "0.5"], ["--text-everyday"], ["--brand-names", "n.yaml"]):
        with pytest.raises(SystemExit):
            recognize.main([*args, *flag, "--no-read-text", "--out", str(tmp_path / "x")])
        assert f"{flag[0]} reads text: not with --no-read-text" in capsys.readouterr().err
    # more names per brand from a file; one for a brand the gallery lacks is an error naming the file
    (tmp_path / "crops" / "k8s.png").unlink()
    Image.fromarray(_text_image("K8s Cluster")).save(tmp_path / "crops" / "k8s.png")
    names = tmp_path / "names.yaml"
    names.write_text("kubernetes: [K8s Cluster]\n")
    assert recognize.main([*args, "--read-text", "--brand-names", str(names), "--out", str(tmp_path / "a")]) == 0
    (logo,) = json.loads((tmp_path / "a" / "results.jsonl").read_text())["logos"]
    assert (logo["brand"], logo["source"]) == ("kubernetes", "text")
    names.write_text("zeta: Zeta\n")
    assert recognize.main([*args, "--read-text", "--brand-names", str(names), "--out", str(tmp_path / "b")]) == 1
    assert "names.yaml: names for 'zeta', which is not a brand of the gallery" in capsys.readouterr().err


def test_brand_text_benchmark_rows_from_records(tmp_path, capsys):
    """benchmarks/brand_text.py recomputes its rows from a --records file: a wordmark the embedder got wrong is named
    by the text on its crop, a name read elsewhere on the photo is one more logo, a sticker's text names nothing, an
    everyday word on a carton only in the row that lets everyday words name brands."""
    bench = load_script("benchmarks/brand_text.py")
    data, grocery = tmp_path / "data", tmp_path / "grocery"
    for part, queries in (("cross_style", [{"image": "a.jpg", "brand": "nodedotjs", "kind": "wordmark",
                                            "box": [10, 10, 60, 30]},
                                           {"image": "b.jpg", "brand": "kubernetes", "kind": "icon",
                                            "box": [100, 100, 140, 140]}]),
                          ("known_scenes", [{"image": "c.jpg", "brand": "docker", "box": [0, 0, 50, 50]}])):
        (data / part).mkdir(parents=True)
        (data / part / "queries.json").write_text(json.dumps(queries))
    for category in ("Fruit", "Vegetables", "Packages"):
        (grocery / "val" / category).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(grocery / "val" / category / "x.jpg")
    box = [[10, 10], [60, 10], [60, 30], [10, 30]]
    logo = lambda b, brand, best, lines: {"box": b, "brand": brand, "best": best, "_lines": lines}   # noqa: E731
    records = {
        "cross": [[logo([10, 10, 60, 30], "unknown", "gitter", [{"text": "node.js", "score": 0.97, "box": box}])],
                  []],                                                      # the icon was not detected
        "known": [[logo([0, 0, 50, 50], "docker", "docker", [])]],
        "free": [[logo([0, 0, 20, 20], "unknown", "gitter", [{"text": "4011", "score": 0.99, "box": box}])], []],
        "packages": [[logo([0, 0, 20, 20], "unknown", "gitter", [{"text": "orange", "score": 0.99, "box": box}])]],
        "photo_lines": [[[], [{"text": "Kubernetes", "score": 0.95,
                               "box": [[98, 102], [142, 102], [142, 138], [98, 138]]}]],
                        [[]], [[], [{"text": "Docker", "score": 0.9, "box": box}]]],
        "decision": "detection rule"}
    (tmp_path / "records.json").write_text(json.dumps(records))
    out = tmp_path / "report.json"
    assert bench.main(["--data", str(data), "--grocery", str(grocery), "--from-records",
                       str(tmp_path / "records.json"), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    alone, text = rows["embedder only (today)"], rows["+ text: exact or fuzzy, score >= 0.8 (the recogniser's default)"]
    both = rows["+ text on logos and on the whole photo"]
    assert alone["cross_style_all"]["end_to_end_recall@1"] == 0.0
    assert text["cross_style_wordmark"]["end_to_end_recall@1"] == 1.0
    assert text["cross_style_all"]["end_to_end_recall@1"] == 0.5            # the undetected icon stays missed
    assert both["cross_style_all"]["end_to_end_recall@1"] == 1.0            # read on the photo, boxed by its text
    assert text["known_scenes"]["frr_end_to_end"] == 0.0
    assert text["brand_free_val_photos"]["with_any_false_brand"] == 0.0     # "4011" names nothing
    assert both["brand_free_val_photos"]["with_any_false_brand"] == 0.5     # "Docker" read on a brand-free photo
    assert text["packaged_val_photos"]["with_a_brand_named_by_text"] == 0.0   # "orange" on a juice carton:
    assert rows['+ text, everyday words too ("orange")']["packaged_val_photos"]["with_a_brand_named_by_text"] == 1.0
    assert alone["packaged_val_photos"]["with_a_brand_named_by_text"] == 0.0
    assert "| embedder only (today) | 0.000" in capsys.readouterr().out
