"""Several kinds of artwork per brand in a gallery (issue 27): symbols, wordmarks (the name as text) and lockups
(symbol and name together), which kinds each brand holds stored in the gallery file, and a query of either kind
matched by the reference of its kind."""

import json

import numpy as np
import pytest

from vision.brands.gallery import DIGEST_FIELD, BrandGallery, GalleryError, content_sha256, reference_kind
from vision.synth import catalog, render, wordmarks
from vision.synth.render import canonical_logo
from vision.synth.wordmarks import (
    canonical_wordmark,
    gallery_wordmarks,
    load_fonts,
    lockup_references,
    render_lockup,
    wordmark_references,
)

# brands whose names are words of different lengths and whose symbols differ
BRANDS = ("github", "python", "docker", "spotify", "mastodon", "firefox", "ubuntu", "reddit", "netflix", "nvidia",
          "wordpress", "gitlab")


@pytest.fixture(scope="module")
def fonts():
    return load_fonts()


@pytest.fixture(scope="module")
def fx():
    from vision.features import FeatureExtractor

    return FeatureExtractor.from_pretrained("brand_resnet10t", backend="torch", device="cpu")


@pytest.fixture(scope="module")
def brands():
    by_slug = {b.slug: b for b in catalog.list_brands()}
    return [by_slug[s] for s in BRANDS]


def test_reference_names_say_their_kind():
    assert reference_kind("simple-icons") == "symbol"
    assert reference_kind("cib:github") == "symbol"
    assert reference_kind("wordmark:dejavu-serif") == "wordmark"
    assert reference_kind("lockup:dejavu-sans-bold-stacked") == "lockup"
    assert reference_kind("reference:acme/shelf.jpg") == "photo"
    assert reference_kind("my_logos") == reference_kind("") == "other"


def test_lockup_is_symbol_beside_or_above_the_name(fonts, brands):
    mark = gallery_wordmarks(brands[0], fonts, 1)[0]
    wide, tall = render_lockup(brands[0], mark, 96, "horizontal"), render_lockup(brands[0], mark, 96, "stacked")
    assert max(wide.shape[:2]) == max(tall.shape[:2]) == 96
    assert wide.shape[1] > 2 * wide.shape[0] and tall.shape[1] < 2 * tall.shape[0]
    refs = lockup_references(64, ["github"], fonts, count=3, colors=("brand", "black"))["github"]
    assert [n for n, _ in refs] == (["lockup:dejavu-sans-bold-horizontal"] * 2 + ["lockup:dejavu-sans-bold-stacked"] * 2
                                    + ["lockup:dejavu-serif-horizontal"] * 2)
    assert all(image.shape == (64, 64, 3) for _, image in refs)
    with pytest.raises(ValueError, match="layout"):
        render_lockup(brands[0], mark, 96, "diagonal")


def test_kinds_are_stored_and_reloaded(tmp_path):
    rng = np.random.default_rng(0)
    gallery = BrandGallery(8, "m", "0" * 64)
    gallery.add("acme", rng.normal(size=(2, 8)), reference="simple-icons")
    gallery.add("acme", rng.normal(size=8), reference="wordmark:dejavu-serif", extend=True)
    gallery.add("acme", rng.normal(size=8), reference="lockup:dejavu-serif-stacked", extend=True)
    gallery.add("initech", rng.normal(size=8), reference="shelf photo", kind="photo")
    with pytest.raises(GalleryError, match="unknown reference kind"):
        gallery.add("initech", rng.normal(size=8), kind="poster", extend=True)
    expected = {"acme": ["symbol", "wordmark", "lockup"], "initech": ["photo"]}
    assert gallery.reference_kinds() == expected
    loaded = BrandGallery.load(gallery.save(tmp_path / "g.npz"))
    assert loaded.reference_kinds() == expected
    assert loaded.kinds == ["symbol", "symbol", "wordmark", "lockup", "photo"]
    with np.load(tmp_path / "g.npz") as data:
        arrays = dict(data)
    assert json.loads(str(arrays["meta"]))["reference_kinds"] == expected
    loaded.remove("acme")
    assert loaded.reference_kinds() == {"initech": ["photo"]}

    # a file whose rows' kinds were edited (digest recomputed) no longer matches its metadata
    arrays["kind"] = np.array(["symbol"] * 5)
    arrays[DIGEST_FIELD] = np.array(content_sha256(arrays))
    np.savez(tmp_path / "edited.npz", **arrays)
    with pytest.raises(GalleryError, match="reference_kinds"):
        BrandGallery.load(tmp_path / "edited.npz")
    # files written before kinds were recorded: each row's kind read from its reference name
    del arrays["kind"]
    meta = json.loads(str(arrays["meta"]))
    del meta["reference_kinds"]
    arrays["meta"] = np.array(json.dumps(meta))
    arrays[DIGEST_FIELD] = np.array(content_sha256(arrays))
    np.savez(tmp_path / "old.npz", **arrays)
    assert BrandGallery.load(tmp_path / "old.npz").reference_kinds() == {"acme": ["symbol", "wordmark", "lockup"],
                                                                        "initech": ["other"]}


def _best_rows(gallery: BrandGallery, queries: np.ndarray) -> list[int]:
    return list(np.argmax(queries @ gallery.vectors.T, axis=1))


def test_brand_with_symbol_and_wordmark_references_matches_either_kind_of_query(fx, fonts, brands):
    symbols = {b.slug: [canonical_logo(b, 64)] for b in brands}
    names = wordmark_references(64, BRANDS, fonts, count=1)
    both = BrandGallery.from_images(fx, {s: symbols[s] + [image for _, image in names[s]] for s in BRANDS},
                                    references={s: ["simple-icons", names[s][0][0]] for s in BRANDS})
    symbol_only = BrandGallery.from_images(fx, symbols, references={s: ["simple-icons"] for s in BRANDS})
    assert set(map(tuple, both.reference_kinds().values())) == {("symbol", "wordmark")}
    # queries unlike the references: black, framed wider, and the name in another font (DejaVu Sans, not Bold)
    symbol_queries = fx([canonical_logo(b, 64, color=(0, 0, 0), margin=0.2) for b in brands])
    word_marks = [gallery_wordmarks(b, [f for f in fonts if f.key == "dejavu-sans"], 1)[0] for b in brands]
    wordmark_queries = fx([canonical_wordmark(m, 64, margin=0.15) for m in word_marks])
    for queries, kind in ((symbol_queries, "symbol"), (wordmark_queries, "wordmark")):
        found = [r[0][0] for r in both.search(queries, k=1)]
        assert found == list(BRANDS), kind
        # ... through the reference of the query's own kind
        assert [both.kinds[i] for i in _best_rows(both, queries)] == [kind] * len(BRANDS)
    # without the wordmark references most names find the wrong brand
    found = [r[0][0] for r in symbol_only.search(wordmark_queries, k=1)]
    assert sum(f == s for f, s in zip(found, BRANDS)) <= len(BRANDS) // 2


def test_build_gallery_adds_wordmarks_and_lockups_and_reports_the_kinds(tmp_path, monkeypatch, brands):
    import vision

    few = brands[:4]
    monkeypatch.setattr(render, "list_brands", lambda: few)
    monkeypatch.setattr(wordmarks, "list_brands", lambda: few)
    gallery, report = vision.build_gallery(embedder="brand_resnet10t", simple_icons=True, renders="brand,black",
                                           merge="mean", wordmarks=2, lockups=2, out=tmp_path / "g.npz",
                                           report=tmp_path / "g.json", progress=False)
    # per brand one symbol (mean of its 2 colours), 2 wordmarks, 2 lockups
    assert len(gallery.vectors) == 4 * 5
    assert report["reference_kinds"]["combinations"] == {"symbol+wordmark+lockup": 4}
    assert report["reference_kinds"]["vectors"] == {"symbol": 4, "wordmark": 8, "lockup": 8}
    assert "symbol+wordmark+lockup 4" in (tmp_path / "g.txt").read_text()
    assert BrandGallery.load(tmp_path / "g.npz").reference_kinds() == {b.slug: ["symbol", "wordmark", "lockup"]
                                                                      for b in few}
    with pytest.raises(vision.brands.building.GallerySpecError, match="--lockups adds references to simple-icons"):
        vision.build_gallery(embedder="brand_resnet10t", folders=[tmp_path], lockups=1)
