"""Brand wordmarks (vision.synth.wordmarks): fonts with their licences, text rendering, the checksum-verified font
fetch (offline, against a tarball made here), and wordmarks as a training style in the brand dataset."""

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from vision.synth import wordmarks
from vision.synth.catalog import Brand, list_brands
from vision.synth.styles import IconSetError
from vision.synth.wordmarks import (
    FONTSOURCE_FONTS,
    FontError,
    PinnedFont,
    canonical_wordmark,
    fetch_fonts,
    gallery_wordmarks,
    load_fonts,
    render_wordmark,
    wordmark_references,
    wordmark_variants,
)

from .conftest import SAMPLE, load_script


@pytest.fixture(scope="module")
def fonts():
    return load_fonts()


@pytest.fixture(scope="module")
def brand():
    return Brand(slug="acme", title="Acme Foods", hex="D01010", svg="")


def test_builtin_fonts_carry_their_licence(fonts):
    assert {f.family for f in fonts} == {"DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono", "STIX General"}
    for face in fonts:
        assert face.license and "LICENSE_" in face.source and Path(face.path).is_file()
        assert face.covers("Acme Foods") and face.record()["license"] == face.license
    assert not fonts[0].covers("\u6f22\u5b57")        # CJK: DejaVu has none


def test_render_is_tight_sized_and_coloured(fonts, brand):
    mark = gallery_wordmarks(brand, fonts, 1)[0]
    assert (mark.text, mark.font_key, mark.color, mark.plate) == ("Acme Foods", "dejavu-sans-bold", (208, 16, 16),
                                                                  None)
    rgba = render_wordmark(mark, 80)
    h, w = rgba.shape[:2]
    assert w == 80 and 5 < h < 30                        # a wide word, longer side as asked
    ink = rgba[..., 3] > 0
    assert ink[:, 0].any() and ink[:, -1].any() and ink[0].any() and ink[-1].any()    # tight to the ink
    assert (rgba[..., 3] > 200).sum() > 100 and (rgba[..., :3][ink] == (208, 16, 16)).all()
    image = canonical_wordmark(mark, 96).astype(int)
    assert image.shape == (96, 96, 3) and (image[0, 0] == 255).all()
    assert (image[..., 0] - image[..., 1] > 120).sum() > 50                           # brand-red text on white
    plated = render_wordmark(mark.__class__(**{**mark.__dict__, "plate": (32, 32, 32)}), 80)
    assert (plated[..., 3] == 255).all() and (plated[0, 0, :3] == 32).all()           # opaque plate, margin


def test_variants_differ_and_repeat_by_seed(fonts, brand):
    first = wordmark_variants(brand, fonts, 4, np.random.default_rng(3))
    assert first == wordmark_variants(brand, fonts, 4, np.random.default_rng(3))
    assert len(first) == 4 and len({m.font_key for m in first}) == 4
    assert all(m.text in ("Acme Foods", "ACME FOODS", "acme foods") for m in first)
    assert len({m.name for m in first}) == 4
    unwritable = Brand(slug="kanji", title="\u6f22\u5b57", hex="000000", svg="")
    assert wordmark_variants(unwritable, fonts, 4, np.random.default_rng(0)) == []
    refs = wordmark_references(32, ["nodedotjs"], fonts=fonts, count=2)
    assert [k for k, _ in refs["nodedotjs"]] == ["wordmark:dejavu-sans-bold", "wordmark:dejavu-serif"]


def _font_tarball(font_file: Path, licence: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("package/LICENSE", licence.encode()), ("package/package.json", b"{}"),
                           ("package/files/demo-latin-400-normal.woff", font_file.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_fetch_verifies_checksum_and_licence(tmp_path, monkeypatch, fonts, fake_npm_registry):
    tgz = _font_tarball(Path(fonts[0].path), "This Font Software is licensed under the SIL Open Font License, 1.1")
    good = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()

    urls = fake_npm_registry(tgz)
    monkeypatch.setattr(wordmarks, "FONTSOURCE_FONTS", {"demo": PinnedFont("demo", "Demo", "1.0.0", good, "OFL-1.1",
                                                                            ((400, False),))})
    sources = fetch_fonts(tmp_path, ["demo"])
    assert urls == ["https://registry.npmjs.org/@fontsource/demo/-/demo-1.0.0.tgz"]
    assert sources["demo"]["license"] == "OFL-1.1" and (tmp_path / "demo" / "LICENSE").is_file()
    faces = load_fonts(tmp_path, builtin=False)
    assert [(f.key, f.license, f.source) for f in faces] == [("demo-400", "OFL-1.1", "@fontsource/demo@1.0.0")]
    fetch_fonts(tmp_path, ["demo"])                        # there at the pinned version: no download
    assert len(urls) == 1
    with pytest.raises(FontError, match="not pinned"):
        fetch_fonts(tmp_path, ["comic-sans"])
    bad = "sha512-" + "A" * 86 + "=="
    monkeypatch.setattr(wordmarks, "FONTSOURCE_FONTS", {"demo": PinnedFont("demo", "Demo", "1.0.0", bad, "OFL-1.1",
                                                                            ((400, False),))})
    with pytest.raises(IconSetError, match="checksum mismatch"):
        fetch_fonts(tmp_path / "again", ["demo"])
    assert not (tmp_path / "again").exists()
    with pytest.raises(FontError, match="not the pinned release"):
        load_fonts(tmp_path, builtin=False)
    assert set(FONTSOURCE_FONTS) >= {"montserrat", "lobster"}       # the real pins are untouched


def test_brand_dataset_adds_wordmarks_as_the_brands_class(tmp_path, fonts):
    from vision.data.brands import BrandDataModule
    from vision.synth.brand_dataset import parse_image_name, write_brand_dataset

    # by the seed-0 hash split: train vite, tensorflow; test npm, nodedotjs
    chosen = [b for b in list_brands() if b.slug in {"vite", "tensorflow", "npm", "nodedotjs"}]
    kwargs = dict(val_backgrounds=[SAMPLE / "val"], brands=chosen, size=32, train_clean=1, train_wild=1, queries=1,
                  background_size=96, splits=("train", "test"), style_wild=1)
    plain = write_brand_dataset(tmp_path / "plain", [SAMPLE / "train"], **kwargs)
    summary = write_brand_dataset(tmp_path / "marks", [SAMPLE / "train"], wordmarks=2, fonts=fonts[:4], **kwargs)
    assert summary["brands"] == plain["brands"] == {"train": 2, "test": 2}
    assert summary["wordmark_brands"] == {"train": 2, "test": 2}
    out = tmp_path / "marks"
    train = sorted(p.name for p in (out / "train" / "vite").glob("wordmark__*.jpg"))
    assert len(train) == 4 and sum(n.endswith("__clean_00.jpg") for n in train) == 2
    assert {parse_image_name(n)["style"] for n in train} == {"wordmark"}
    assert sorted(p.name for p in (out / "test" / "gallery" / "npm").glob("wordmark__*")) == [
        "wordmark__dejavu-sans-as-written-brand__canonical_00.jpg",
        "wordmark__dejavu-sans-bold-as-written-brand__canonical_00.jpg"]
    # every other image is the one written without wordmarks
    for path in (tmp_path / "plain").rglob("*.jpg"):
        assert path.read_bytes() == (out / path.relative_to(tmp_path / "plain")).read_bytes()
    record = json.loads((out / "brands.json").read_text())["wordmarks"]
    assert record["style"] == "wordmark" and record["fonts"]["dejavu-sans"]["license"].startswith("Bitstream-Vera")
    data = BrandDataModule(str(out / "train"), test=str(out / "test"), m_per_class=2, batch_size=4, input_size=32,
                           num_workers=0)
    names = [data.classes.names[s.label] for s in data.train_samples if "wordmark__" in s.path.name]
    assert sorted(set(names)) == ["tensorflow", "vite"] and len(names) == 8


def test_make_brand_dataset_command_takes_wordmarks(tmp_path, capsys):
    from vision.commands import main

    base = ["make-brand-dataset", "--backgrounds", str(SAMPLE / "train"), "--out", str(tmp_path / "o")]
    assert main(base + ["--wordmarks", "-1"]) == 1
    assert "wordmarks and gallery_wordmark_count must be >= 0" in capsys.readouterr().err
    assert main(base + ["--wordmarks", "1", "--fonts", str(tmp_path / "none")]) == 1
    assert "tools/fetch_fonts.py" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_brand_eval_can_leave_a_style_out_of_the_gallery(tmp_path):
    from PIL import Image

    brand_eval = load_script("benchmarks/brand_eval.py")
    for name in ("simple-icons__acme__canonical_00.jpg", "wordmark__dejavu-sans-as-written-brand__canonical_00.jpg"):
        (tmp_path / "acme").mkdir(exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "acme" / name)

    def embed(paths, batch_size):
        return np.array([[len(p.name)] for p in paths], np.float32)

    vectors, names = brand_eval.embed_folder(embed, tmp_path, exclude_styles=("wordmark",))
    assert names == ["acme"] and vectors.tolist() == [[len("simple-icons__acme__canonical_00.jpg")]]
    assert len(brand_eval.embed_folder(embed, tmp_path)[1]) == 2
