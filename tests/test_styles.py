"""The style catalogue (vision.synth.styles): Iconify sets loaded with their licences, refused sets, brand name
matching, SVG rendering, and the checksum-verified fetch (offline, against a tarball made here)."""

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from vision.synth import styles
from vision.synth.catalog import Brand, list_brands
from vision.synth.record import LogoDatasetWarning
from vision.synth.render import render_logo
from vision.synth.styles import (
    EVAL_STYLES,
    ICON_SETS,
    IconSetError,
    PinnedSet,
    fetch_icon_sets,
    icon_svg,
    load_icon_set,
    load_icon_sets,
    match_brands,
    style_catalogue,
    title_to_slug,
    training_styles,
)

DATA = Path(__file__).parent / "data" / "iconify"


@pytest.fixture(scope="module")
def sets():
    return load_icon_sets(DATA)


@pytest.fixture(scope="module")
def brands():
    return list_brands()


def _write_set(folder: Path, prefix: str, licence: dict | None) -> Path:
    folder.mkdir(parents=True)
    data = {"prefix": prefix, "icons": {"x": {"body": '<path d="M0 0h16v16H0z"/>'}}}
    if licence is not None:
        data["info"] = {"name": prefix, "license": licence}
    (folder / "icons.json").write_text(json.dumps(data))
    return folder


def test_sets_load_with_licence_and_version(sets):
    assert set(sets) == {"cib", "devicon", "skill-icons"}
    assert {p: s.license for p, s in sets.items()} == {"cib": "CC0-1.0", "devicon": "MIT", "skill-icons": "MIT"}
    assert sets["devicon"].version == "1.2.68"
    record = sets["cib"].record()
    assert record["license"] == "CC0-1.0" and record["package"] == "@iconify-json/cib" and record["icons"] == 3
    # the plain alias adds a name; the flipped one is a different drawing and is left out
    assert sets["devicon"].aliases == {"tensorflow-alias": "tensorflow"}


def test_logos_set_is_refused_everywhere(tmp_path):
    folder = _write_set(tmp_path / "logos", "logos", {"title": "CC0", "spdx": "CC0-1.0"})
    with pytest.raises(IconSetError, match="reserved for independent evaluation"):
        load_icon_set(folder)
    with pytest.raises(IconSetError, match="reserved for independent evaluation"):
        load_icon_sets(tmp_path)
    with pytest.raises(IconSetError, match="reserved for independent evaluation"):
        fetch_icon_sets(tmp_path / "cache", ["logos"])
    # a file of another name that holds the logos set is refused by its prefix too
    renamed = _write_set(tmp_path / "other" / "mine", "logos", {"title": "CC0", "spdx": "CC0-1.0"})
    with pytest.raises(IconSetError, match="reserved"):
        load_icon_set(renamed)


def test_the_held_out_styles_own_plain_set_is_refused(tmp_path):
    folder = _write_set(tmp_path / "devicon-plain", "devicon-plain", {"title": "MIT", "spdx": "MIT"})
    with pytest.raises(IconSetError, match="held-out evaluation style"):
        load_icon_set(folder)
    with pytest.raises(IconSetError, match="held-out evaluation style"):
        load_icon_sets(tmp_path)
    with pytest.raises(IconSetError, match="held-out evaluation style"):
        fetch_icon_sets(tmp_path / "cache", ["devicon-plain"])


def test_non_commercial_and_unlicensed_sets_are_refused(tmp_path):
    nc = _write_set(tmp_path / "cbi", "cbi", {"title": "CC BY-NC-SA 4.0", "spdx": "CC-BY-NC-SA-4.0"})
    with pytest.raises(IconSetError, match="non-commercial"):
        load_icon_set(nc)
    assert load_icon_set(nc, allow_non_commercial=True).license == "CC-BY-NC-SA-4.0"
    bare = _write_set(tmp_path / "bare", "bare", None)
    with pytest.raises(IconSetError, match="info.license"):
        load_icon_set(bare)
    (tmp_path / "broken.json").write_text('{"prefix": "broken",\n "icons": ')
    with pytest.raises(IconSetError, match="broken.json: not JSON \\(line 2"):
        load_icon_set(tmp_path / "broken.json")


def test_name_matching_strips_set_decoration(sets, brands):
    devicon, report = match_brands(sets["devicon"], brands)
    assert {i.name: i.kind for i in devicon["vite"]} == {"vite": "icon", "vite-wordmark": "wordmark"}
    assert [i.name for i in devicon["npm"]] == ["npm-wordmark"]
    assert [i.name for i in devicon["c"]] == ["c"]          # C's slug wins over C++'s bare title "c"
    assert report.ambiguous == [] and report.brands == len(devicon) == 5
    skill, _ = match_brands(sets["skill-icons"], brands)
    assert sorted(i.name for i in skill["vercel"]) == ["vercel-dark", "vercel-light"]
    cib, _ = match_brands(sets["cib"], brands)
    assert set(cib) == {"c", "github", "nodedotjs"}           # "node-js" matches the title "Node.js"
    assert title_to_slug("Node.js") == "nodedotjs" and title_to_slug("C++") == "cplusplus"


def test_ambiguous_names_are_skipped_and_counted(sets):
    twins = [Brand("vite", "Vite", "646CFF", "<svg/>"), Brand("vitejs", "Vite", "646CFF", "<svg/>"),
             Brand("vitex", "Vite!", "646CFF", "<svg/>")]
    # "vite" is one brand's slug (most exact) but "tensorflow" is nobody's; make the title level ambiguous
    matched, report = match_brands(sets["devicon"], twins)
    assert set(matched) == {"vite"}
    twins = [Brand("a1", "Vite", "646CFF", "<svg/>"), Brand("a2", "Vite", "646CFF", "<svg/>")]
    matched, report = match_brands(sets["devicon"], twins)
    assert matched == {} and ("vite", ["a1", "a2"]) in report.ambiguous


def test_catalogue_and_held_out_style(sets, brands):
    catalogue, reports = style_catalogue(sets, brands)
    assert set(catalogue["c"]) == {"cib", "devicon"} and reports["cib"].brands == 3
    assert EVAL_STYLES == ("devicon",) and "cib" not in EVAL_STYLES
    assert set(training_styles(sets)) == {"cib", "skill-icons"}
    assert set(load_icon_sets(DATA, exclude=EVAL_STYLES)) == {"cib", "skill-icons"}
    with pytest.raises(FileNotFoundError, match="not under"):
        load_icon_sets(DATA, ["fa6-brands"])


def test_icons_render_in_their_own_colours_or_a_given_one(sets):
    vite = render_logo(icon_svg(sets["devicon"].icons["vite"]), 64)
    assert max(vite.shape[:2]) == 64 and (vite[..., 3] > 0).mean() > 0.2
    assert tuple(vite[..., :3][vite[..., 3] == 255].mean(0).round()) == (0, 107, 255)   # the set's own fill
    tile = render_logo(icon_svg(sets["skill-icons"].icons["tensorflow-dark"]), 64)
    opaque = tile[..., :3][tile[..., 3] == 255]
    assert len(np.unique(opaque // 32, axis=0)) > 2           # full colour, not a flat silhouette
    github = sets["cib"].icons["github"]
    red = render_logo(icon_svg(github, "#ff0000"), 48)
    assert tuple(red[..., :3][red[..., 3] == 255].mean(0).round()) == (255, 0, 0)
    black = render_logo(icon_svg(github), 48)                   # currentColor defaults to black
    assert black[..., :3][black[..., 3] == 255].max() == 0


def test_fetch_verifies_the_checksum(tmp_path, monkeypatch, fake_npm_registry):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("icons.json", "info.json", "package.json"):
            data = (DATA / "cib" / name).read_bytes()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tgz = buffer.getvalue()
    good = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()

    urls = fake_npm_registry(tgz)
    monkeypatch.setitem(ICON_SETS, "cib", PinnedSet("cib", "1.2.3", good, "CC0-1.0"))
    sources = fetch_icon_sets(tmp_path, ["cib"])
    assert urls == ["https://registry.npmjs.org/@iconify-json/cib/-/cib-1.2.3.tgz"]
    assert sources["cib"]["integrity"] == good
    assert load_icon_sets(tmp_path)["cib"].license == "CC0-1.0"
    fetch_icon_sets(tmp_path, ["cib"])                        # already there at the pinned version: no download
    assert len(urls) == 1
    monkeypatch.setitem(ICON_SETS, "cib", PinnedSet("cib", "1.2.3", "sha512-" + "A" * 86 + "==", "CC0-1.0"))
    with pytest.raises(IconSetError, match="checksum mismatch"):
        fetch_icon_sets(tmp_path / "again", ["cib"])
    assert not (tmp_path / "again" / "cib").exists()


def test_cross_style_brand_dataset(tmp_path, brands):
    from vision.data.brands import BrandDataModule
    from vision.synth.brand_dataset import parse_image_name, write_brand_dataset

    sample = Path(__file__).resolve().parents[1] / "data" / "grocery_sample"
    # by the seed-0 hash split: train vite, tensorflow, fastapi; val c; test npm, vercel, github, nodedotjs
    chosen = [b for b in brands if b.slug in {"vite", "tensorflow", "fastapi", "c", "npm", "vercel", "github",
                                               "nodedotjs"}]
    out = tmp_path / "set"
    sets = load_icon_sets(DATA)
    # an icon that draws nothing is left out and reported; its brand keeps its other styles
    sets["skill-icons"].icons["tensorflow-light"] = styles.StyleIcon("skill-icons", "tensorflow-light", "<g/>",
                                                                     0, 0, 256, 256)
    with pytest.warns(LogoDatasetWarning, match="leaving out icon skill-icons:tensorflow-light"):
        summary = write_brand_dataset(out, [sample / "train"], val_backgrounds=[sample / "val"], brands=chosen,
                                      size=32, train_clean=1, train_wild=1, queries=2, background_size=96,
                                      icon_sets=sets, style_clean=1, style_wild=1)
    assert summary["brands"] == {"train": 3, "val": 1, "test": 4} and summary["queries_brands"] == {"val": 1,
                                                                                                     "test": 2}
    assert summary["skipped_icons"] == [("tensorflow", "skill-icons:tensorflow-light", "renders no visible pixels")]
    names = {p.relative_to(out).as_posix() for p in out.rglob("*.jpg")}
    train = {n for n in names if n.startswith("train/")}
    assert not any("devicon" in n for n in train)                 # the held-out style never reaches training
    assert {"train/tensorflow/skill-icons__tensorflow-dark__clean_00.jpg",
            "train/tensorflow/skill-icons__tensorflow-dark__wild_00.jpg",
            "train/tensorflow/simple-icons__tensorflow__clean_00.jpg"} <= train
    assert {n.split("/")[2] for n in names if "/query/" in n} == {"c", "npm", "vercel"}
    assert all(parse_image_name(n)["style"] == "devicon" for n in names if "/query/" in n)
    assert "test/query/npm/devicon__npm-wordmark__wild_01.jpg" in names
    assert {"val/gallery/c/cib__c__canonical_00.jpg", "val/gallery/c/simple-icons__c__canonical_00.jpg",
            "test/gallery/github/cib__github__canonical_00.jpg"} <= names
    assert parse_image_name("simple-icons__spring_creators__wild_03.jpg") == {
        "style": "simple-icons", "icon": "spring_creators", "variant": "wild", "index": 3}
    assert parse_image_name("wild_03.jpg") is None
    record = json.loads((out / "brands.json").read_text())["styles"]
    assert record["eval_styles"] == ["devicon"] and record["sets"]["devicon"]["held_out"]
    assert {p: s["license"] for p, s in record["sets"].items()} == {"cib": "CC0-1.0", "devicon": "MIT",
                                                                    "skill-icons": "MIT"}
    assert record["query_icons"]["test"]["npm"] == ["devicon:npm-wordmark (wordmark)"]
    data = BrandDataModule(str(out / "train"), val=str(out / "val"), test=str(out / "test"), m_per_class=2,
                           batch_size=4, input_size=32, num_workers=0)
    data.setup("test")
    # gallery: 4 simple-icons renders + vercel-dark/-light + cib github, nodedotjs; queries: 2 each of npm, vercel
    assert data.num_classes == 3 and len(data._datasets["test"]) == 4 + 2 + 1 + 1 + 2 * 2


def test_bad_icon_sets_leave_an_existing_dataset_alone(tmp_path):
    from vision.synth.brand_dataset import write_brand_dataset

    out = tmp_path / "set"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier dataset")
    _write_set(tmp_path / "sets" / "logos", "logos", {"title": "CC0", "spdx": "CC0-1.0"})
    with pytest.raises(IconSetError, match="reserved"):
        write_brand_dataset(out, [tmp_path], icon_sets=tmp_path / "sets", overwrite=True)
    with pytest.raises(ValueError, match="held-out style"):
        write_brand_dataset(out, [tmp_path], icon_sets=DATA, eval_styles=("fa6-brands",), overwrite=True)
    assert (out / "keep.txt").read_text() == "an earlier dataset"


def test_generic_icon_sets_match_only_their_brand_icons(tmp_path, brands):
    """tabler draws a fruit called ``apple`` beside ``brand-apple``: only ``brand-*`` names a brand there; the
    file-icon themes' ``folder-*`` icons are folders, not the technology."""
    def icon_set(prefix: str, names: list[str]):
        folder = tmp_path / prefix
        folder.mkdir()
        icons = {n: {"body": '<path d="M0 0h16v16H0z"/>'} for n in names}
        (folder / "icons.json").write_text(json.dumps({"prefix": prefix, "icons": icons,
                                                       "info": {"name": prefix, "license": {"spdx": "MIT"}}}))
        return load_icon_set(folder)

    tabler, report = match_brands(icon_set("tabler", ["apple", "brand-apple", "brand-github-filled", "home"]), brands)
    assert {slug: [i.name for i in icons] for slug, icons in tabler.items()} == {
        "apple": ["brand-apple"], "github": ["brand-github-filled"]}
    assert report.unmatched == 2
    themed, _ = match_brands(icon_set("material-icon-theme", ["nodejs", "folder-docker", "docker"]), brands)
    assert {slug: [i.name for i in icons] for slug, icons in themed.items()} == {
        "nodedotjs": ["nodejs"], "docker": ["docker"]}
    assert ICON_SETS["tabler"].license == ICON_SETS["material-icon-theme"].license == "MIT"
