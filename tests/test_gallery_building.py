"""``vision.build_gallery``: the library call behind ``vision build-gallery``, with typed options checked up front."""

import json
from pathlib import Path

import pytest

import vision
from vision.brands.building import GallerySpec, GallerySpecError, build_gallery
from vision.brands.gallery import BrandGallery, GalleryError

from .conftest import SAMPLE
from .test_gallery_open_set import _brand_images, tiny_zoo  # noqa: F401 (the fixture)


def test_build_gallery_is_a_library_call_returning_the_gallery_and_its_report(tiny_zoo, tmp_path):  # noqa: F811
    colours = {"acme": (220, 30, 30), "bolt": (30, 200, 40), "cargo": (40, 40, 220)}
    _brand_images(tmp_path / "logos", colours, 1, seed=0)
    _brand_images(tmp_path / "queries", colours, 2, seed=2)
    model = tiny_zoo / "tiny_open_set.safetensors"
    assert vision.build_gallery is build_gallery
    # keywords, str paths, a single folder for a list field: no file is written unless asked
    gallery, report = vision.build_gallery(embedder=str(model), folders=str(tmp_path / "logos"), device="cpu",
                                           progress=False)
    assert isinstance(gallery, BrandGallery) and gallery.brands == ["acme", "bolt", "cargo"]
    assert gallery.threshold is None and report["out"] is None and not list(tmp_path.glob("*.npz"))
    assert (report["brands"], report["vectors"], report["dim"]) == (3, 3, 16)
    # a spec, open-set calibration against impostors, saved with its report
    spec = GallerySpec(embedder=model, folders=[tmp_path / "logos"], queries=[tmp_path / "queries"],
                       impostors=[SAMPLE / "val"], out=tmp_path / "g.npz", report=tmp_path / "r.json",
                       progress=False)
    gallery, report = build_gallery(spec)
    calibration = report["calibration"]
    assert calibration["normalization"] == "background" and calibration["max_false_reject"] == 0.10  # the defaults
    assert calibration["known"] == 6 and calibration["frr"] <= 0.10
    assert report["threshold"] == gallery.threshold and report["out"] == str(tmp_path / "g.npz")
    assert json.loads((tmp_path / "r.json").read_text()) == report and (tmp_path / "r.txt").is_file()
    saved = BrandGallery.load(tmp_path / "g.npz")
    assert saved.threshold == pytest.approx(gallery.threshold) and len(saved.background) == calibration["impostors"]
    # keywords next to a spec override its fields
    _, report = build_gallery(spec, out=None, report=None, threshold=None, frr=0.25)
    assert report["calibration"]["max_false_reject"] == 0.25 and report["out"] is None


@pytest.mark.parametrize("options, message", [
    ({}, "give --folder, --simple-icons and/or --references"),
    ({"folders": ["x"], "queries": ["q"]}, "give --impostors DIR"),
    ({"folders": ["x"], "impostors": ["i"], "threshold": 0.5}, "--threshold sets the threshold"),
    ({"folders": ["x"], "detector": "logo_yolo11n"}, "--detector, --known-scenes and --impostor-photos together"),
    ({"simple_icons": True, "verifier": "v"}, "--verifier rescores a detector's boxes"),
    ({"simple_icons": True, "renders": "brand,mauve"}, "--renders: .*render colour 'mauve'"),
    ({"folders": ["x"], "merge": "median"}, "--merge 'median': choose one of all, mean"),
    ({"folders": ["x"], "decision_rule": "vote"}, "--decision-rule 'vote'"),
    ({"folders": ["x"], "batch_size": 0}, "--batch-size 0"),
    ({"simple_icons": True, "reference_styles": "fill,wobble"}, r"--reference-styles fill,wobble: .* \(not wobble\)"),
    ({"simple_icons": True, "reference_styles": ["mono", "mono"]}, "give distinct styles"),
    ({"folders": ["x"], "reference_styles": "fill"}, "--reference-styles redraws simple-icons"),
])
def test_options_that_do_not_fit_are_refused_before_any_model_loads(options, message):
    # the embedder does not exist: the spec is refused before anything is loaded
    with pytest.raises(GallerySpecError, match=message):
        build_gallery(embedder="no_such_model", **options)
    assert issubclass(GallerySpecError, GalleryError)


def test_spec_defaults_follow_the_other_options_and_unknown_options_name_the_field():
    plain = GallerySpec(embedder="m", folders="logos").checked()
    assert (plain.normalization, plain.frr, plain.renders, plain.folders) == ("none", 0.05, ("brand",), [Path("logos")])
    open_set = GallerySpec(embedder="m", folders=["logos"], impostors=["imp"], renders=("brand", "black")).checked()
    assert (open_set.normalization, open_set.frr, open_set.renders) == ("background", 0.10, ("brand", "black"))
    assert open_set.checked() == open_set   # checking twice changes nothing
    with pytest.raises(GallerySpecError, match="unknown gallery option 'folder'; did you mean 'folders'"):
        build_gallery(embedder="m", folder=["logos"])
    with pytest.raises(GallerySpecError, match="give embedder="):
        build_gallery(folders=["logos"])


def test_reference_styles_redraw_each_symbol_reference_once_per_style():
    import numpy as np

    from vision.brands.building import REFERENCE_STYLES, add_reference_styles
    from vision.synth.render import simple_icons_renders

    renders = simple_icons_renders(64, ["target"], ("brand", "black", "white"))["target"]
    word = np.full((64, 64, 3), 255, np.uint8)
    images = {"target": list(renders) + [word]}
    references = {"target": ["simple-icons"] * 3 + ["wordmark:dejavu"]}
    kinds = {"target": ["symbol"] * 3 + ["wordmark"]}
    assert GallerySpec(embedder="m", simple_icons=True, reference_styles=" fill, mono ").checked().reference_styles \
        == ("fill", "mono")
    add_reference_styles(images, references, kinds, REFERENCE_STYLES, brand_render=0)
    # only the brand-colour render is redrawn (black and white already are renders); the wordmark never is
    assert references["target"][4:] == [f"simple-icons/{s}" for s in REFERENCE_STYLES]
    assert kinds["target"][4:] == ["symbol"] * 4 and len(images["target"]) == 8
    outline, fill, mono, inverted = images["target"][4:]
    ground = renders[0][0, 0]
    assert (fill != ground).any(-1).sum() > (renders[0] != ground).any(-1).sum()   # the ring's hole filled
    assert (outline != ground).any(-1).sum() < (renders[0] != ground).any(-1).sum()  # a band along the contour
    assert len(np.unique(mono.reshape(-1, 3), axis=0)) == 2 == len(np.unique(inverted.reshape(-1, 3), axis=0))
    assert mono[0, 0].mean() > 128 > inverted[0, 0].mean()   # dark on light, light on dark
    # a blank image has no mark: nothing is added for it
    blank = {"x": [word]}, {"x": ["simple-icons"]}, {"x": ["symbol"]}
    add_reference_styles(*blank, ("fill", "mono"))
    assert blank[1]["x"] == ["simple-icons"]
