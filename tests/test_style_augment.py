"""Style-removing augmentations (vision.data.style_augment) on tiny synthetic crops."""

import albumentations as A
import numpy as np
import pytest

from vision.data.preprocessing import Preprocessing
from vision.data.style_augment import (
    EdgeMap,
    FillToOutline,
    MarkStyles,
    MonoMark,
    OutlineToFill,
    RemoveBackground,
    fill_holes,
    mark_mask,
    style_augment_ops,
)
from vision.data.transforms import build_train_transform

RED = (200, 30, 30)


def _filled_square(size=48, lo=12, hi=36):
    img = np.full((size, size, 3), 255, np.uint8)
    img[lo:hi, lo:hi] = RED
    return img


def _outlined_square(size=48, lo=12, hi=36, width=2):
    img = _filled_square(size, lo, hi)
    img[lo + width:hi - width, lo + width:hi - width] = 255
    return img


def test_fill_to_outline_keeps_only_the_contour():
    out = FillToOutline(width=(0.05, 0.05), p=1.0)(image=_filled_square())["image"]   # 2 px band at 48 px
    assert (out[24, 24] == 255).all()                 # inside is background now
    assert tuple(out[12, 24]) == RED and tuple(out[13, 24]) == RED     # the band stays
    assert (out[0, 0] == 255).all()
    band = (out != 255).any(axis=2)
    assert 0 < band.sum() < (24 * 24) / 2


def test_outline_to_fill_fills_the_inside():
    out = OutlineToFill(p=1.0)(image=_outlined_square())["image"]
    assert (out[12:36, 12:36] == RED).all()           # filled with the outline's colour
    assert (out[:12] == 255).all() and (out[36:] == 255).all()


def test_fill_holes_and_mask():
    mask, background = mark_mask(_outlined_square())
    assert tuple(background) == (255, 255, 255)
    assert mask.sum() == 24 * 24 - 20 * 20
    assert fill_holes(mask).sum() == 24 * 24


def test_mono_and_inverted_mono():
    img = _filled_square()
    dark = MonoMark(invert=0.0, p=1.0)(image=img)["image"]
    light = MonoMark(invert=1.0, p=1.0)(image=img)["image"]
    assert (dark[24, 24] == 0).all() and (dark[0, 0] == 255).all()
    assert (light[24, 24] == 255).all() and (light[0, 0] == 0).all()


def test_edge_map_is_dark_edges_on_light():
    out = EdgeMap(p=1.0)(image=_filled_square())["image"]
    assert out.shape == (48, 48, 3) and (out[..., 0] == out[..., 1]).all()
    assert out[24, 24, 0] == 255 and out[0, 0, 0] == 255     # flat areas light
    assert out[12, 24, 0] < 128                             # the square's edge dark


def test_remove_background_flattens_outside_the_silhouette():
    img = _filled_square()
    img[2, 2] = (0, 0, 255)                                  # a speck of background clutter far from the mark
    img[:4, 40:] = (120, 240, 120)
    out = RemoveBackground(p=1.0)(image=img)["image"]
    assert (out[24, 24] == RED).all()
    assert (out[:4, 40:] == 255).all()


def test_no_mark_found_leaves_the_crop_alone():
    flat = np.full((32, 32, 3), 90, np.uint8)
    for t in (FillToOutline(p=1.0), OutlineToFill(p=1.0), MonoMark(p=1.0), RemoveBackground(p=1.0)):
        assert (t(image=flat)["image"] == flat).all()


def test_deterministic_with_a_seed_and_off_by_default():
    pre = Preprocessing(32, 1.0, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear")
    style = {"fill_to_outline": 0.3, "outline_to_fill": 0.3, "mono": 0.2, "edge_map": 0.2}
    imgs = [_filled_square(), _outlined_square()] * 4

    def run(seed):
        tf = build_train_transform("logo", pre, style)
        tf.set_random_seed(seed)
        return np.stack([tf(image=i)["image"].numpy() for i in imgs])

    assert np.array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))
    # off by default: the preset's pipeline has no style transform
    names = [type(t).__name__ for t in build_train_transform("logo", pre).transforms]
    assert "OneOf" not in names
    assert type(build_train_transform("logo", pre, style).transforms[0]) is A.OneOf


def test_style_augment_ops_validates():
    assert style_augment_ops(None) == [] and style_augment_ops({"mono": 0.0}) == []
    with pytest.raises(ValueError, match="unknown style augmentation"):
        style_augment_ops({"cartoonify": 0.1})
    with pytest.raises(ValueError, match="sum to at most 1"):
        style_augment_ops({"mono": 0.7, "edge_map": 0.6})


def test_brand_data_module_takes_style_augment_from_its_config(tmp_path):
    from PIL import Image

    from vision.data.brands import BrandDataModule

    for brand in ("a", "b"):
        (tmp_path / brand).mkdir()
        for i, img in enumerate((_filled_square(), _outlined_square())):
            Image.fromarray(img).save(tmp_path / brand / f"{i}.png")
    plain = BrandDataModule(str(tmp_path), m_per_class=2, batch_size=4, input_size=32, num_workers=0)
    styled = BrandDataModule(str(tmp_path), m_per_class=2, batch_size=4, input_size=32, num_workers=0,
                             style_augment={"outline_to_fill": 1.0})
    assert plain.hparams.style_augment is None
    styled.setup("fit")
    image, label, _ = styled._datasets["train"][1]          # brand a's outlined square, filled by the transform
    assert image.shape == (3, 32, 32)
    with pytest.raises(ValueError, match="unknown style augmentation"):
        BrandDataModule(str(tmp_path), m_per_class=2, batch_size=4, input_size=32, style_augment={"blur": 0.1})


def _rgba_ring(size=40, lo=8, hi=32, width=3):
    """A red square outline on a transparent ground: an RGBA mark as rendered, with a hole in the middle."""
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[lo:hi, lo:hi] = (*RED, 255)
    rgba[lo + width:hi - width, lo + width:hi - width] = 0
    return rgba


def test_mark_styles_change_the_rgba_mark_before_compositing():
    styles, rng = MarkStyles(), np.random.default_rng(0)
    filled = _rgba_ring(width=12)                              # a filled 24 px square
    outline = styles.apply(filled, "fill_to_outline", rng)
    assert outline[20, 20, 3] == 0 and outline[8, 20, 3] == 255      # inside cleared, contour band kept
    assert 0 < (outline[..., 3] > 0).sum() < (filled[..., 3] > 0).sum()
    solid = styles.apply(_rgba_ring(), "outline_to_fill", rng)
    assert (solid[8:32, 8:32, 3] == 255).all() and (solid[20, 20, :3] == RED).all()
    assert (solid[:8, :, 3] == 0).all()                        # outside the silhouette stays transparent
    dark = MarkStyles(mono=1.0, mono_invert=0.0)(_rgba_ring(), rng)
    light = MarkStyles(mono=1.0, mono_invert=1.0)(_rgba_ring(), rng)
    assert (dark[8, 20] == (0, 0, 0, 255)).all() and (light[8, 20] == (255, 255, 255, 255)).all()
    assert (dark[..., 3] == _rgba_ring()[..., 3]).all()        # the shape is the mark's
    # at most one style per mark, in proportion to the probabilities
    draws = [MarkStyles(fill_to_outline=0.5, mono=0.25).draw(rng) for _ in range(2000)]
    assert abs(draws.count("fill_to_outline") / 2000 - 0.5) < 0.05 and abs(draws.count(None) / 2000 - 0.25) < 0.05
    assert draws.count("outline_to_fill") == 0


def test_mark_styles_parse_and_errors_name_the_field():
    assert MarkStyles.parse(None) is None and MarkStyles.parse("") is None and MarkStyles.parse("mono=0") is None
    parsed = MarkStyles.parse("fill_to_outline=0.2, outline_to_fill=0.2,mono=0.15")
    assert parsed == MarkStyles(fill_to_outline=0.2, outline_to_fill=0.2, mono=0.15)
    with pytest.raises(ValueError, match=r"mark_styles\.mono must be a probability"):
        MarkStyles.parse("mono=1.5")
    with pytest.raises(ValueError, match=r"mark_styles\.mono must be a probability.*'lots'"):
        MarkStyles.parse("mono=lots")
    with pytest.raises(ValueError, match=r"mark_styles: unknown field.*'edge_map'"):
        MarkStyles.parse("edge_map=0.1")
    with pytest.raises(ValueError, match="mark_styles probabilities must sum to at most 1"):
        MarkStyles.parse({"mono": 0.6, "fill_to_outline": 0.6})
    with pytest.raises(ValueError, match="mark_styles: expected name=probability"):
        MarkStyles.parse("mono")


def test_wild_crop_takes_the_styled_mark_and_is_unchanged_without_it():
    from vision.synth.composite import wild_logo_crop

    background = np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    mark = _rgba_ring(width=12)
    seen = []

    def style(rgba, rng):
        seen.append(rgba.shape)
        return MarkStyles().apply(rgba, "fill_to_outline", rng)

    def crop(**kw):
        return wild_logo_crop(mark, background, np.random.default_rng(5), 32, print_conditions=None, **kw)

    assert np.array_equal(crop(), crop(mark_style=None))      # off: the same crops as before the option
    assert seen == [] and crop(mark_style=style) is not None and seen == [mark.shape]


def test_brand_dataset_rejects_a_bad_mark_styles_value(tmp_path):
    from vision.commands.make_brand_dataset import main
    from vision.synth.brand_dataset import write_brand_dataset

    with pytest.raises(ValueError, match=r"mark_styles\.fill_to_outline"):
        write_brand_dataset(tmp_path / "set", [tmp_path], mark_styles="fill_to_outline=2")
    assert main(["--backgrounds", str(tmp_path), "--out", str(tmp_path / "set"), "--no-progress",
                 "--mark-styles", "outline=0.2"]) == 1
    assert not (tmp_path / "set").exists()                     # refused before anything is written
