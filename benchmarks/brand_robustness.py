#!/usr/bin/env python
"""Brand recognition on real photos: cross-style unseen brands, impostors, detector mAP, Grocery Store check.

    python -m benchmarks.brand_robustness --grocery ../shared/datasets/grocery_store --icon-sets runs/iconify \
        --data runs/brand_robustness/data --out runs/brand_robustness/report.json \
        --zoo-dir runs/brand_styles_zoo --zoo-dir runs/logo_styles_zoo   # shipped models + the candidates there

One row per model set (``shipped``: today's ``brand_ensemble`` + ``logo_yolo11n`` + ``simple_icons_gallery``;
``candidate``: ``--embedder/--detector/--gallery`` and the models found in ``--zoo-dir`` folders, the shipped ones
where none is given), each measured four ways for the open set: the gallery as given, and recalibrated against
impostors with the plain cosine score, the top-5 margin and the background-cohort score (:mod:`vision.brands.gallery`);
plus the detection-aware rules (:mod:`vision.brands.detection_rule`: detector confidence with the gallery's open-set
score;
a pair and a logistic rule calibrated here on the known scenes against the brand-free TRAIN photos, and the
gallery's own rule when it holds one for the detector).

Data (built once under ``--data``, seeded; ``brands.json``-style record in ``record.json``):

- ``cross_style/``: test-split brands drawn in the held-out style (:data:`vision.synth.styles.EVAL_STYLES`, never
  used in training), one mark per photo composited on Grocery Store VAL fruit/vegetable photos; a YOLO set
  (``data.yaml``, one class) and ``queries.json`` (brand, icon, box per image).
- ``known/<brand>/``: calibration queries of known brands: val-split brands in the training styles (simple-icons
  and the Iconify training sets), composited on TRAIN photos, square-cropped at the true box.
- ``known_scenes/``: the whole composited photos those crops were cut from (the same draws), ``queries.json`` with
  brand and box: the detection rules' known marks.
- ``known_wordmark_scenes/`` (only with ``--known-wordmarks N``): N more known scenes whose mark is a val brand's
  name set as a wordmark (:mod:`vision.synth.wordmarks`, a training style, fonts from ``--fonts``) on TRAIN photos:
  known marks with text to read, for ``--channels``' fused rule and figures.
- ``detections/``: every photo set's detections at confidence :data:`RULE_COLLECT` and their embeddings, cached per
  detector and embedder (sha256) and photo list.
- ``impostors/{train,val}``: the shipped detector's detections on brand-free TRAIN / VAL fruit and vegetable
  photos, square-cropped as the recogniser does (or ``--impostors DIR`` with ``train/`` and ``val/``, e.g. the
  output of ``vision make-impostors``).

Each part is built once and listed in ``record.json``; a later run reuses it.

Figures per row: cross-style Recall@1 through the whole recogniser (a query counts when a detection overlapping the
true box with IoU >= 0.5 has the right best brand; also the share accepted as the right brand at the threshold) and
on oracle crops; impostor false-accept rate (VAL crops) with the known-brand false-reject rate at the same
threshold (calibration known queries, and the cross-style oracle crops); the share of brand-free VAL photos with any
accepted brand; the known FRR end to end (a known mark on a whole photo is rejected when no detection of it passes,
marks the detector misses included); detector mAP50/mAP50-95 on the cross-style set (``vision eval``); the Grocery
Store packaged-goods check of ``benchmarks/brand_eval.py``. Calibration uses TRAIN photos only; the Grocery Store
test split is never read.

``--channels`` (needs the ``[ocr]`` extra) adds ``benchmarks/brand_channels.py``'s report per row: each channel alone
(embedder, text), the gallery's image rule with and without today's text renaming, and a fused ``logistic_text`` rule
calibrated here on the known scenes and brand-free train photos, on the val sets, icons and wordmarks apart, with the
cost per photo of each channel and the count of "different artwork" queries; ``--text-rule-out G.npz`` writes the
gallery with that fused rule attached. ``--candidates K ...`` adds a ``logistic_candidates`` rule per K, choosing
among each logo's K best brands and the brands its text names (``--candidate-rule-out G.npz``: the first K's gallery).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vision.brands.detection_rule import (
    IOU_MATCH,
    RULE_KINDS,
    DetectionRule,
    DetectionRuleError,
    RuleSet,
    calibrate_detection_rule,
    iou,
    known_scene_set,
    photo_set,
    rule_figures,
    source_rows,
)
from vision.brands.gallery import BrandGallery
from vision.brands.recognition import embed_logos, score_logos
from vision.crops import CROP_MARGIN, square_crop
from vision.data.io import list_images, load_image
from vision.fileio import atomic_write_text
from vision.synth.negatives import check_recorded_margin, impostor_groups

SHIPPED = {"embedder": "brand_ensemble", "detector": "logo_yolo11n", "gallery": "simple_icons_gallery"}
KNOWN_MARGIN = 0.15      # the framing of the known/ crops (written before galleries recorded their crop margin);
                         # a gallery framing its queries otherwise gets known crops re-cut from known_scenes/
_JPEG_QUALITY = 92
BACKGROUND_SIZE = 416    # composited photos (the detector letterboxes them to its own input size)
CROP_SIZE = 96
RULE_COLLECT = 0.05      # detector confidence the detection-rule rows collect (and cache) detections at
RULE_FLOOR = 0.10        # the rules' lowest detection confidence; their FRR budget counts the marks found there


# --- data
def brand_free_photos(grocery: Path, split: str, limit: int | None = None, seed: int = 0) -> list[Path]:
    """Grocery Store fruit and vegetable photos of ``split`` (``train`` or ``val``; the test split is refused):
    no brand in the gallery (:func:`vision.synth.negatives.brand_free_photos`); ``limit``: a seeded subset."""
    from vision.synth.negatives import BRAND_FREE_CATEGORIES
    from vision.synth.negatives import brand_free_photos as photos_of

    present = [c for c in BRAND_FREE_CATEGORIES if (grocery / split / c).is_dir()] or list(BRAND_FREE_CATEGORIES)
    photos = photos_of(grocery, split, categories=present)
    if limit is not None and limit < len(photos):
        photos = [photos[i] for i in sorted(np.random.default_rng(seed).choice(len(photos), limit, replace=False))]
    return photos


def build_data(out: Path, grocery: Path, icon_sets: Path, detector_name: str, impostors: Path | None = None,
               seed: int = 0, queries_per_brand: int = 3, known_brands: int = 150, known_per_brand: int = 2,
               max_test_brands: int | None = None, impostor_train_photos: int | None = 700,
               val_photos: int | None = None, known_wordmarks: int = 0, fonts: Path | None = None) -> dict:
    """Write the data parts under ``out`` (see the module docstring) that ``out/record.json`` does not list yet
    (each part has its own seeded generator, so a part is the same whether or not the others were built) and
    return the record. ``impostors``: a folder with ``train/`` and ``val/`` impostor crops to use instead of
    building them."""
    from vision.synth.catalog import list_brands, split_brands
    from vision.synth.styles import EVAL_STYLES, load_icon_sets, style_catalogue, training_styles

    out.mkdir(parents=True, exist_ok=True)
    path = out / "record.json"
    record = json.loads(path.read_text()) if path.is_file() else {"seed": seed, "skipped": []}
    brands = list_brands()
    split = split_brands(brands, seed=seed)
    if "cross_style" not in record or "known" not in record or "known_scenes" not in record:
        sets = load_icon_sets(icon_sets)
        held_out = {p: s for p, s in sets.items() if p in EVAL_STYLES}
        if not held_out:
            raise FileNotFoundError(f"{icon_sets}: none of the held-out styles {list(EVAL_STYLES)} is there")
        record.update(held_out_styles=sorted(held_out), training_styles=sorted(training_styles(sets)),
                      licences={p: s.record() for p, s in sets.items()})
        photos = {part: brand_free_photos(grocery, part) for part in ("train", "val")}
        if "cross_style" not in record:
            catalogue, _ = style_catalogue(held_out, brands)
            record["cross_style"] = _cross_style(out / "cross_style", split["test"], catalogue, photos["val"],
                                                 np.random.default_rng([seed, 1]), queries_per_brand,
                                                 max_test_brands, record["skipped"])
            atomic_write_text(path, json.dumps(record, indent=1) + "\n")
        if "known" not in record:
            catalogue, _ = style_catalogue(training_styles(sets), brands)
            record["known"] = _known(out / "known", split["val"], catalogue, {b.slug: b for b in brands},
                                     photos["train"], np.random.default_rng([seed, 2]), known_brands,
                                     known_per_brand, record["skipped"])
            atomic_write_text(path, json.dumps(record, indent=1) + "\n")
        if "known_scenes" not in record:   # the same draws as "known": the whole photos the crops came from
            catalogue, _ = style_catalogue(training_styles(sets), brands)
            record["known_scenes"] = _known(None, split["val"], catalogue, {b.slug: b for b in brands},
                                            photos["train"], np.random.default_rng([seed, 2]), known_brands,
                                            known_per_brand, [], scenes=out / "known_scenes")
            atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    if known_wordmarks and "known_wordmark_scenes" not in record:
        photos = brand_free_photos(grocery, "train")
        record["known_wordmark_scenes"] = _known_wordmarks(out / "known_wordmark_scenes", split["val"],
                                                           {b.slug: b for b in brands}, photos,
                                                           np.random.default_rng([seed, 3]), known_wordmarks, fonts)
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    if impostors is not None:
        for part in ("train", "val"):
            if not list_images(impostors / part):
                raise FileNotFoundError(f"--impostors {impostors}: no images under {impostors / part}")
        record["impostors"] = {"folder": str(impostors.resolve()), "built_by": "given (--impostors)"}
    elif "impostors" not in record:
        from vision.inference import LogoDetector

        record["impostors"] = _impostors(out / "impostors", grocery, LogoDetector.from_pretrained(detector_name),
                                         seed, impostor_train_photos, val_photos)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return record


def _paste(rgba: np.ndarray, photos: list[Path], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """``rgba`` composited on one of ``photos`` with the detector data's conditions: ``(image, box)``."""
    from vision.synth.composite import composite_logos, random_resized_background

    for _ in range(5):   # a mark that finds no place is retried on another photo
        photo = load_image(photos[int(rng.integers(len(photos)))], draft_size=BACKGROUND_SIZE)
        image, boxes = composite_logos(random_resized_background(photo, BACKGROUND_SIZE, rng), [(rgba, 0)], rng)
        if len(boxes):
            return image, boxes[0, 1:]
    return None


def _cross_style(out: Path, test_brands: list[str], catalogue: dict, photos: list[Path], rng: np.random.Generator,
                 per_brand: int, max_brands: int | None, skipped: list) -> dict:
    """Test-split brands in the held-out style (icons and wordmarks cycled), one per val photo: a YOLO set and
    ``queries.json``."""
    from PIL import Image

    from vision.synth.catalog import unit_hash
    from vision.synth.render import LogoRenderError, render_logo
    from vision.synth.styles import icon_svg

    (out / "images" / "val").mkdir(parents=True, exist_ok=True)
    (out / "labels" / "val").mkdir(parents=True, exist_ok=True)
    slugs = sorted((s for s in test_brands if s in catalogue), key=lambda s: unit_hash(0, "robustness-pick", s))
    queries = []
    for slug in sorted(slugs[:max_brands]):
        icons = [icon for styled in catalogue[slug].values() for icon in styled]
        for i in range(per_brand):
            icon = icons[i % len(icons)]
            try:
                pasted = _paste(render_logo(icon_svg(icon), 160), photos, rng)
            except LogoRenderError as e:
                skipped.append([icon.key, e.reason])
                continue
            if pasted is None:
                continue
            image, box = pasted
            name = f"{len(queries):05d}_{slug}"
            Image.fromarray(image).save(out / "images" / "val" / f"{name}.jpg", quality=_JPEG_QUALITY)
            h, w = image.shape[:2]
            x1, y1, x2, y2 = (float(v) for v in box)
            (out / "labels" / "val" / f"{name}.txt").write_text(
                f"0 {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n")
            queries.append({"image": f"images/val/{name}.jpg", "brand": slug, "icon": icon.key, "kind": icon.kind,
                            "box": [x1, y1, x2, y2]})
    (out / "queries.json").write_text(json.dumps(queries, indent=0) + "\n")
    (out / "data.yaml").write_text("path: .\ntrain: images/val\nval: images/val\nnames:\n  0: logo\n")
    return {"brands": len({q["brand"] for q in queries}), "images": len(queries),
            "wordmarks": sum(q["kind"] == "wordmark" for q in queries), "backgrounds": "val Fruit+Vegetables"}


def _known(out: Path | None, val_brands: list[str], catalogue: dict, by_slug: dict, photos: list[Path],
           rng: np.random.Generator, count: int, per_brand: int, skipped: list, scenes: Path | None = None) -> dict:
    """Val-split brands in the training styles (simple-icons or an Iconify training set), on train photos,
    square-cropped at the true box: the known-brand calibration queries (under ``out``). ``scenes``: also (or,
    with ``out=None``, only) the whole composited photos, ``scenes/images/*.jpg`` and ``scenes/queries.json``
    (brand, box), for calibrating the detection-aware rule (the same draws: the same composites as the crops)."""
    from PIL import Image

    from vision.synth.catalog import unit_hash
    from vision.synth.render import LogoRenderError, render_logo
    from vision.synth.styles import icon_svg

    crops, scene_queries, written = 0, [], set()
    for slug in sorted(val_brands, key=lambda s: unit_hash(0, "robustness-known", s))[:count]:
        styled = [None] + [icon for icons in catalogue.get(slug, {}).values() for icon in icons]
        for i in range(per_brand):
            # the first crop of a brand drawn in another style shows that style
            icon = styled[int(rng.integers(len(styled)))] if i else styled[min(1, len(styled) - 1)]
            try:
                rgba = render_logo(by_slug[slug] if icon is None else icon_svg(icon), 160)
            except LogoRenderError as e:
                skipped.append([slug if icon is None else icon.key, e.reason])
                continue
            pasted = _paste(rgba, photos, rng)
            if pasted is None:
                continue
            style = "simple-icons" if icon is None else icon.prefix
            if out is not None:
                (out / slug).mkdir(parents=True, exist_ok=True)
                Image.fromarray(square_crop(pasted[0], pasted[1], KNOWN_MARGIN, size=CROP_SIZE)).save(
                    out / slug / f"{style}_{i:02d}.jpg", quality=_JPEG_QUALITY)
            if scenes is not None:
                name = f"images/{slug}_{style}_{i:02d}.jpg"
                (scenes / "images").mkdir(parents=True, exist_ok=True)
                Image.fromarray(pasted[0]).save(scenes / name, quality=_JPEG_QUALITY)
                scene_queries.append({"image": name, "brand": slug, "style": style,
                                      "box": [float(v) for v in pasted[1]]})
            crops += 1
            written.add(slug)
    if scenes is not None:
        atomic_write_text(scenes / "queries.json", json.dumps(scene_queries, indent=0) + "\n")
    return {"brands": len(written), "crops": crops, "backgrounds": "train Fruit+Vegetables"}


def _known_wordmarks(scenes: Path, val_brands: list[str], by_slug: dict, photos: list[Path],
                     rng: np.random.Generator, count: int, fonts: Path | None) -> dict:
    """``count`` val-split brands, each its name set as one training wordmark (a font, case and colours drawn by
    :func:`vision.synth.wordmarks.wordmark_variants`) pasted on a TRAIN photo: ``scenes/images/*.jpg`` and
    ``scenes/queries.json`` (brand, style ``wordmark``, box), like ``known_scenes/``."""
    from PIL import Image

    from vision.synth.catalog import unit_hash
    from vision.synth.wordmarks import load_fonts, render_wordmark, wordmark_variants

    faces = load_fonts(fonts)
    (scenes / "images").mkdir(parents=True, exist_ok=True)
    queries = []
    for slug in sorted(val_brands, key=lambda s: unit_hash(0, "robustness-known-wordmark", s))[:count]:
        marks = wordmark_variants(by_slug[slug], faces, 1, rng)
        pasted = _paste(render_wordmark(marks[0], 160), photos, rng) if marks else None
        if pasted is None:
            continue
        name = f"images/{slug}_wordmark_00.jpg"
        Image.fromarray(pasted[0]).save(scenes / name, quality=_JPEG_QUALITY)
        queries.append({"image": name, "brand": slug, "style": "wordmark", "font": marks[0].font_key,
                        "box": [float(v) for v in pasted[1]]})
    atomic_write_text(scenes / "queries.json", json.dumps(queries, indent=0) + "\n")
    return {"brands": len(queries), "scenes": len(queries), "fonts": len(faces),
            "backgrounds": "train Fruit+Vegetables"}


def known_crops(data: Path, margin: float) -> Path:
    """The folder of known-brand calibration crops framed with ``margin``: ``known/`` at :data:`KNOWN_MARGIN`, else
    ``known_margin<m>/``, cut once from the ``known_scenes/`` photos (the same composites, read back from their JPEGs)
    at the true boxes."""
    from PIL import Image

    if abs(margin - KNOWN_MARGIN) < 1e-9:
        return data / "known"
    out = data / f"known_margin{margin:g}"
    if (out / "crops.json").is_file():
        return out
    scenes = json.loads((data / "known_scenes" / "queries.json").read_text())
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=data))
    for q in scenes:
        name = Path(q["image"]).name[len(q["brand"]) + 1:]   # images/<slug>_<style>_NN.jpg -> <style>_NN.jpg
        crop = square_crop(load_image(data / "known_scenes" / q["image"]), q["box"], margin, size=CROP_SIZE)
        (tmp / q["brand"]).mkdir(exist_ok=True)
        Image.fromarray(crop).save(tmp / q["brand"] / name, quality=_JPEG_QUALITY)
    atomic_write_text(tmp / "crops.json", json.dumps({"margin": margin, "crops": len(scenes),
                                                      "from": "known_scenes/queries.json"}) + "\n")
    tmp.rename(out)
    return out


def _impostors(out: Path, grocery: Path, detector, seed: int, train_photos: int | None,
               val_photos: int | None) -> dict:
    """The detector's boxes on brand-free train / val photos (every one a false detection), square-cropped by
    ``vision make-impostors``' writer (detections only)."""
    from vision.synth.negatives import BRAND_FREE_CATEGORIES, write_impostors

    present = [c for c in BRAND_FREE_CATEGORIES if (grocery / "train" / c).is_dir()] or list(BRAND_FREE_CATEGORIES)
    summary = write_impostors(out, grocery, detector.predict, max_photos={"train": train_photos, "val": val_photos},
                              categories=present, textured_per_photo=0, conf=detector.conf, margin=CROP_MARGIN,
                              size=CROP_SIZE, seed=seed, detector_name=detector.card.name, overwrite=True)
    return {"folder": str(out.resolve()), "built_by": f"detections of {detector.card.name} (conf {detector.conf})",
            **{part: {"photos": summary.photos[part], "crops": sum(summary.crops[part].values())}
               for part in ("train", "val")}}


# --- measuring
def open_set_variants(gallery: BrandGallery, known: np.ndarray, known_brands: list[str], impostors: np.ndarray,
                      impostor_groups: list[str], max_false_reject: float) -> dict[str, BrandGallery]:
    """The gallery as given, and copies recalibrated on (known, impostor) queries with the plain score, the top-k
    margin and the background-cohort score (the impostors are the cohort, each scored without its own photo's
    crops)."""
    variants = {"as given": gallery}
    for normalization in ("none", "topk", "background"):
        variant = copy.copy(gallery)     # vectors and index shared (read-only); open-set fields replaced
        variant.normalization, variant.topk = normalization, 5
        variant._background = gallery.background[:0]
        if normalization == "background":
            variant.set_background(impostors)
        variant.calibrate(known, impostors, max_false_reject, known_brands=known_brands,
                          impostor_groups=impostor_groups,
                          known_set="calibration known queries (val brands, training styles, train photos)",
                          impostor_set="impostor crops of brand-free train photos")
        variants[f"impostors, {normalization}"] = variant
    return variants


def evaluate_row(fx, detector, gallery: BrandGallery, data: Path, impostor_folder: Path, grocery: Path,
                 max_false_reject: float, detector_name: str, packaged_goods: bool = True,
                 val_photos: int | None = None, detector_data: list[Path] = (),
                 detector_maps: dict | None = None, rule_train_photos: int | None = None,
                 channels: bool = False, text_rule_out: Path | None = None, candidates=(),
                 candidate_rule_out: Path | None = None) -> dict:
    """Every figure of one model set (see the module docstring); ``detector_maps`` caches the detector's mAP
    figures across rows that share a detector."""
    from vision.data.datasets import scan_image_folder

    timings = {}
    start = time.perf_counter()
    margin = gallery.crop_margin   # queries are framed as the gallery was calibrated
    check_recorded_margin(impostor_folder, margin)
    samples, table = scan_image_folder(known_crops(data, margin))
    known = fx([s.path for s in samples], batch_size=128)
    known_brands = [table.names[s.label] for s in samples]
    impostor_files = {part: list_images(impostor_folder / part) for part in ("train", "val")}
    impostors = {part: fx(files, batch_size=128) for part, files in impostor_files.items()}
    missing = sorted(set(known_brands) - set(gallery.brands))
    if missing:
        raise ValueError(f"{len(missing)} calibration brands are not in the gallery (e.g. {missing[0]!r})")
    variants = open_set_variants(gallery, known, known_brands, impostors["train"],
                                 impostor_groups(impostor_files["train"]), max_false_reject)
    timings["calibration_s"] = round(time.perf_counter() - start, 1)

    # cross-style queries: whole recogniser and oracle crops
    start = time.perf_counter()
    queries = json.loads((data / "cross_style" / "queries.json").read_text())
    images = [load_image(data / "cross_style" / q["image"]) for q in queries]
    truth = [q["brand"] for q in queries]
    kinds = [q.get("kind", "icon") for q in queries]
    # one detector pass at the rule's floor; the threshold-only rows keep the detections at the detector's own
    # confidence (NMS keeps the same boxes above it)
    detected_floor = photo_detections(fx, detector, [data / "cross_style" / q["image"] for q in queries],
                                      data / "detections", margin)
    detected = [above(logos, detector.conf) for logos in detected_floor]
    oracle = fx([square_crop(image, q["box"], margin) for image, q in zip(images, queries)], batch_size=128)
    timings["cross_style_s"] = round(time.perf_counter() - start, 1)
    # brand-free whole photos (val)
    start = time.perf_counter()
    photos = brand_free_photos(grocery, "val", val_photos)
    photo_logos_floor = photo_detections(fx, detector, photos, data / "detections", margin)
    photo_logos = [above(logos, detector.conf) for logos in photo_logos_floor]
    timings["brand_free_photos_s"] = round(time.perf_counter() - start, 1)
    # detection-aware rules: known scenes (the calibration crops' whole photos) and brand-free TRAIN photos
    start = time.perf_counter()
    scenes = json.loads((data / "known_scenes" / "queries.json").read_text())
    scene_logos = photo_detections(fx, detector, [data / "known_scenes" / q["image"] for q in scenes],
                                   data / "detections", margin)
    train_photos = brand_free_photos(grocery, "train", rule_train_photos)
    train_logos = photo_detections(fx, detector, train_photos, data / "detections", margin)
    timings["rule_photos_s"] = round(time.perf_counter() - start, 1)

    cache: dict = {}
    # per brand-free train photo the impostor-cohort rows cut from it, left out of its detections' scores (they are
    # near-copies); used where the cohort is the train impostor crops (the recalibrated variants' and, when its
    # vectors are those crops', the gallery's own)
    train_rows = source_rows(train_photos, impostor_groups(impostor_files["train"]), by="folder")
    left_out = {}

    def scored_sets(variant: BrandGallery, part: str) -> RuleSet:
        """The detections of one photo set scored by ``variant`` (a detection-rule RuleSet), cached per variant."""
        key = (id(variant), part)
        if key not in cache:
            if part == "known":
                logos, boxes, brands = scene_logos, [q["box"] for q in scenes], [q["brand"] for q in scenes]
            elif part == "cross":
                logos, boxes, brands = detected_floor, [q["box"] for q in queries], truth
            else:
                logos = train_logos if part == "train" else photo_logos_floor
            same_cohort = part == "train" and len(variant.background) and \
                variant.background.shape == impostors["train"].shape and \
                np.allclose(variant.background, impostors["train"], atol=1e-3)
            if part == "train":
                left_out[id(variant)] = bool(same_cohort)
            best, scores = score_logos(variant, logos, train_rows if same_cohort else None)
            dets = [d for d, _ in logos]
            cache[key] = known_scene_set(dets, scores, boxes, best, brands) if part in ("known", "cross") \
                else photo_set(dets, scores)
        return cache[key]

    row = {"cross_style": {"queries": len(queries), "brands": len(set(truth)),
                           "detected@iou0.5": _share([any(iou(d["box"], q["box"]) >= IOU_MATCH for d in dets)
                                                      for (dets, _), q in zip(detected, queries)])},
           "open_set": {}}
    for name, variant in variants.items():
        threshold = variant.threshold
        accept = (lambda s: np.ones(len(s), bool)) if threshold is None else (lambda s, t=threshold: s >= t)
        figures = {"threshold": None if threshold is None else round(float(threshold), 4),
                   "normalization": variant.normalization}
        if variant.calibration is not None and "far" in variant.calibration:
            figures["calibration"] = {k: variant.calibration[k] for k in ("frr", "far", "eer", "known", "impostors")}
        _, _, s = variant.open_set_scores(known)
        figures["known_frr"] = _share(~accept(s))
        _, _, s = variant.open_set_scores(impostors["val"], leave_one_out=False)
        figures["impostor_far_val_crops"] = _share(accept(s))
        best, _, s = variant.open_set_scores(oracle)
        right = np.array([b == t for b, t in zip(best, truth)])
        figures["oracle_recall@1"] = _share(right)
        figures["oracle_accepted_correct"] = _share(right & accept(s))
        figures["oracle_frr"] = _share(~accept(s))
        e2e_top1, e2e_accepted = [], []
        for (dets, vectors), q in zip(detected, queries):
            hits = [i for i, d in enumerate(dets) if iou(d["box"], q["box"]) >= IOU_MATCH]
            if not hits:
                e2e_top1.append(False)
                e2e_accepted.append(False)
                continue
            best, _, s = variant.open_set_scores(vectors[hits])
            e2e_top1.append(q["brand"] in best)
            e2e_accepted.append(any(b == q["brand"] and ok for b, ok in zip(best, accept(s))))
        figures["end_to_end_recall@1"] = _share(e2e_top1)
        figures["end_to_end_recall@1_by_kind"] = _share_by_kind(e2e_top1, kinds)
        figures["end_to_end_accepted_correct"] = _share(e2e_accepted)
        flagged, logos, accepted = 0, 0, 0
        for dets, vectors in photo_logos:
            logos += len(dets)
            if len(dets):
                _, _, s = variant.open_set_scores(vectors)
                accepted += int(accept(s).sum())
                flagged += bool(accept(s).any())
        figures["brand_free_photos"] = {"photos": len(photos), "detections": logos, "accepted_as_a_brand": accepted,
                                        "with_any_false_brand": round(flagged / len(photos), 4)}
        if threshold is not None:   # the same decision end to end: known marks on whole photos, conf as deployed
            as_rule = DetectionRule("pair", detector.card.name, detector.card.sha256 or "-", detector.conf,
                                    float(threshold))
            on_scenes = rule_figures(as_rule, scored_sets(variant, "known"), scored_sets(variant, "train"),
                                     RULE_FLOOR)
            figures["known_frr_end_to_end"] = on_scenes["frr"]
            figures["known_frr_found"] = on_scenes["frr_found"]   # of the marks found at RULE_FLOOR
        row["open_set"][name] = figures
    start = time.perf_counter()
    for name, rule, how in detection_rules(gallery, detector, scored_sets(gallery, "known"),
                                           scored_sets(gallery, "train"), max_false_reject):
        row["open_set"][name] = rule_row(rule, how, gallery, scored_sets(gallery, "known"),
                                         scored_sets(gallery, "train"), scored_sets(gallery, "val"),
                                         scored_sets(gallery, "cross"), oracle, truth, kinds)
    timings["rules_s"] = round(time.perf_counter() - start, 1)
    if channels:   # each channel alone and the fused rule (benchmarks/brand_channels.py)
        from benchmarks.brand_channels import channel_rows

        start = time.perf_counter()
        scored_sets(gallery, "train")   # decides whether the train photos' scores leave their cohort rows out
        known = [(data / "known_scenes" / q["image"], q) for q in scenes]
        if (data / "known_wordmark_scenes" / "queries.json").is_file():   # known marks with text (--known-wordmarks)
            known += [(data / "known_wordmark_scenes" / q["image"], q) for q in
                      json.loads((data / "known_wordmark_scenes" / "queries.json").read_text())]
        known_logos = scene_logos + photo_detections(fx, detector, [p for p, _ in known[len(scenes):]],
                                                     data / "detections", margin)
        row["channels"] = channel_rows(
            fx, detector, gallery, data, queries, detected_floor, [p for p, _ in known], [q for _, q in known],
            known_logos, train_photos, train_logos, train_rows if left_out.get(id(gallery)) else None, photos,
            photo_logos_floor, max_false_reject, RULE_FLOOR, text_rule_out, candidates=candidates,
            candidate_rule_out=candidate_rule_out)
        timings["channels_s"] = round(time.perf_counter() - start, 1)
    row["train_photos_cohort_left_out"] = {name: left_out.get(id(variants.get(name, gallery)))
                                           for name in row["open_set"]}

    start = time.perf_counter()
    maps = {} if detector_maps is None else detector_maps
    for yaml in [data / "cross_style" / "data.yaml", *detector_data]:
        if (detector_name, str(yaml)) not in maps:
            maps[detector_name, str(yaml)] = detector_map(detector_name, yaml)
    row["detector_cross_style"] = maps[detector_name, str(data / "cross_style" / "data.yaml")]
    row["detector_other_sets"] = {str(yaml): maps[detector_name, str(yaml)] for yaml in detector_data}
    timings["detector_map_s"] = round(time.perf_counter() - start, 1)
    if packaged_goods:
        start = time.perf_counter()
        row["grocery_packaged_goods"] = brand_eval().grocery(fx, grocery, detector)
        timings["grocery_s"] = round(time.perf_counter() - start, 1)
    row["timings"] = timings
    return row


class AtConfidence:
    """A detector whose ``predict`` keeps boxes down to ``conf`` (:data:`RULE_COLLECT`)."""

    def __init__(self, detector, conf: float):
        self.detector, self.conf, self.card = detector, conf, detector.card

    def predict(self, images):
        return self.detector.predict(images, conf=self.conf)


def above(logos: tuple[list[dict], np.ndarray], conf: float) -> tuple[list[dict], np.ndarray]:
    """The detections (and their embeddings) of one photo scoring at least ``conf``."""
    dets, vectors = logos
    keep = [i for i, d in enumerate(dets) if d["score"] >= conf]
    return [dets[i] for i in keep], vectors[keep]


def photo_detections(fx, detector, photos: list[Path], cache: Path | None,
                     margin: float = CROP_MARGIN) -> list[tuple[list[dict], np.ndarray]]:
    """Per photo its detections at :data:`RULE_COLLECT` and their embeddings (boxes framed with ``margin``); with
    ``cache``, kept in ``cache/<detector>_<embedder>_<photos>.npz`` (keyed by both models' sha256, the margin and
    the photo list) and reused."""
    path = None if cache is None else detections_cache(cache, detector.card, fx.card, photos, margin,
                                                       getattr(fx, "view", None))
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as c:
            photo, score, box, vectors = c["photo"], c["score"], c["box"], c["vectors"]
        return [([{"box": b.tolist(), "score": float(s)} for b, s in zip(box[photo == i], score[photo == i])],
                 vectors[photo == i]) for i in range(len(photos))]
    floor = AtConfidence(detector, RULE_COLLECT)
    logos = [found for i in range(0, len(photos), 16)
             for found in embed_logos(fx, photos[i:i + 16], floor, margin)]
    if path is not None:
        from vision.fileio import atomic_path

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, photo=np.array([i for i, (d, _) in enumerate(logos) for _ in d], np.int64),
                     score=np.array([x["score"] for d, _ in logos for x in d], np.float64),
                     box=np.array([x["box"] for d, _ in logos for x in d], np.float64).reshape(-1, 4),
                     vectors=np.concatenate([v for _, v in logos]).astype(np.float32) if logos
                     else np.empty((0, fx.dim), np.float32))
    return logos


def detections_cache(folder: Path, detector_card, embedder_card, photos: list[Path],
                     margin: float = CROP_MARGIN, foreground: dict | None = None) -> Path:
    """The cache file of :func:`photo_detections`: named by both models and keyed by their sha256, the floor, the
    crop margin, the photo list and the foreground option of the embedding (``vision.brands.views``; plain crops
    keep the keys they had)."""
    import hashlib

    parts = [detector_card.sha256, embedder_card.sha256, RULE_COLLECT, margin, [str(p) for p in photos]]
    if foreground is not None:
        parts.append(foreground)
    key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
    return folder / f"{detector_card.name}_{embedder_card.name}_{key}.npz"


CURVE_FALSE_PHOTOS = 20   # operating_curve: brand-free val photos with a false brand, 0 to this many


def detection_rules(gallery: BrandGallery, detector, known: RuleSet, train: RuleSet, max_false_reject: float):
    """``(row name, rule, how)``: the gallery's own rule when it was calibrated for this detector, and a pair and
    a logistic rule calibrated here on the known scenes and the brand-free train photos."""
    own = gallery.detection_rule
    if own is not None and own.matches(detector.card.name, detector.card.sha256):
        yield f"as given, detection rule ({own.kind})", own, "stored in the gallery"
    for kind in RULE_KINDS:
        try:
            rule = calibrate_detection_rule(known, train, detector.card.name, detector.card.sha256 or "-",
                                            kind=kind, max_false_reject=max_false_reject,
                                            min_detection_score=RULE_FLOOR)
        except DetectionRuleError as e:   # e.g. the detector misses too many marks: reported, not a crash
            print(f"detection rule ({kind}) not calibrated: {e}", file=sys.stderr)
            continue
        yield f"as given + detection rule ({kind})", rule, "calibrated here"


def rule_row(rule: DetectionRule, how: str, gallery: BrandGallery, known: RuleSet, train: RuleSet, val: RuleSet,
             cross: RuleSet, oracle: np.ndarray, truth: list[str], kinds: list[str] | None = None) -> dict:
    """The figures of a detection-rule row, with the threshold-only rows' keys (crop FAR: the val photos'
    detections, the only val crops with a detection score; FRR: known marks end to end)."""
    calibrated = rule_figures(rule, known, train, RULE_FLOOR)
    on_val = rule_figures(rule, cross, val, RULE_FLOOR)
    seen = cross.detection >= rule.min_detection_score
    top1 = np.zeros(cross.photos, bool)
    top1[cross.photo[seen & cross.correct]] = True
    best, _, _ = gallery.open_set_scores(oracle)
    weights = "" if rule.kind == "pair" else f", {rule.weights[0]:.3g} det + {rule.weights[1]:.3g} score"
    return {"threshold": f"det >= {rule.min_detection_score:.3g}{weights}, score >= {rule.threshold:.4g}",
            "normalization": gallery.normalization, "rule": {**rule.to_json(), "how": how},
            "calibration": {k: calibrated[k] for k in ("frr", "frr_found", "far_photos", "far_detections")},
            "known_frr": calibrated["frr_found"], "known_frr_is": f"marks found at confidence {RULE_FLOOR}",
            "known_frr_found": calibrated["frr_found"], "known_frr_end_to_end": calibrated["frr"],
            "impostor_far_val_crops": on_val["far_detections"], "impostor_far_is": "val photo detections",
            "oracle_recall@1": _share([b == t for b, t in zip(best, truth)]),
            "oracle_accepted_correct": float("nan"), "oracle_frr": float("nan"),
            "end_to_end_recall@1": _share(top1),
            "end_to_end_recall@1_by_kind": _share_by_kind(top1, kinds or ["icon"] * len(top1)),
            "end_to_end_accepted_correct": on_val["known_accepted_correct"],
            "brand_free_photos": {"photos": val.photos, "detections": on_val["impostor_detections"],
                                  "accepted_as_a_brand": int(rule.accept(val.detection, val.open_set).sum()),
                                  "with_any_false_brand": on_val["far_photos"]},
            "accepted_correct_at_false_photos": operating_curve(rule, cross, val)}


def rule_photo_best(rule: DetectionRule, rs: RuleSet, mask: np.ndarray | None = None) -> np.ndarray:
    """Per photo of ``rs``, the highest score ``rule`` gives its detections at or above the rule's floor (those in
    ``mask`` only, e.g. the detections of the right brand); -inf for a photo with none. A photo is accepted when
    this reaches the rule's threshold."""
    keep = rs.detection >= rule.min_detection_score
    return rs.photo_max(rule.combined(rs.detection, rs.open_set), keep if mask is None else keep & mask)


def operating_curve(rule: DetectionRule, cross: RuleSet, val: RuleSet, most: int = CURVE_FALSE_PHOTOS) -> dict:
    """The rule's weights with its threshold moved: for each count ``k`` of brand-free val photos with a false brand
    (0 to ``most``), how many cross-style queries are accepted as their right brand at the lowest threshold that
    flags at most ``k`` of those photos. Two embedders' rules compared at one ``k`` are compared at the same false
    brands (a rule calibrated on train photos lands where its threshold puts it; this reads the whole trade-off)."""
    right = rule_photo_best(rule, cross, cross.correct)
    brand_free = np.sort(rule_photo_best(rule, val))[::-1]
    curve = {}
    for k in range(most + 1):
        # the (k + 1)-th most confident brand-free photo must be rejected: accept only above its score
        bar = brand_free[k] if k < len(brand_free) else -np.inf
        curve[str(k)] = int((right > bar).sum())
    return {"photos": val.photos, "queries": cross.photos, "accepted_correct": curve}


def detector_map(detector: str, data_yaml: Path) -> dict:
    """mAP50 / mAP50-95 of ``detector`` on a YOLO set (:func:`vision.evaluate`, the code path of ``vision eval``)."""
    import vision

    with tempfile.TemporaryDirectory() as out:
        report = vision.evaluate(detector, data_yaml, out=out, device="cpu", workers=0, progress=False)
    return {k: report[k] for k in report if k.startswith(("mAP", "precision", "recall"))}


def brand_eval():
    """benchmarks/brand_eval.py as a module (its packaged-goods check and hardware line are used, not copied)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("brand_eval", Path(__file__).with_name("brand_eval.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _share(values) -> float:
    values = np.asarray(values, bool)
    return round(float(values.mean()), 4) if len(values) else float("nan")


def _share_by_kind(values, kinds: list[str]) -> dict[str, float]:
    """:func:`_share` per query kind (``icon``, ``wordmark``: what the held-out icon draws)."""
    values = np.asarray(values, bool)
    return {kind: _share(values[[k == kind for k in kinds]]) for kind in sorted(set(kinds))}


# --- model sets
def zoo_models(zoo_dirs: list[Path]) -> dict[str, str]:
    """``{"embedder"|"detector"|"gallery": file}`` found in the ``--zoo-dir`` folders: the newest model of each task
    (its weights file, listed in the folder's manifest, so its sha256 is checked) and the newest ``*.npz``."""
    from vision.zoo.registry import read_manifest

    found: dict[str, tuple[str, str]] = {}
    for folder in zoo_dirs:
        if not folder.is_dir():
            continue
        for card in read_manifest(folder).values():
            role = {"embedding": "embedder", "detection": "detector"}.get(card.task)
            if role and (role not in found or card.created > found[role][1]):
                found[role] = (str(folder / card.file), card.created)
        for npz in sorted(folder.glob("*.npz"), key=lambda p: p.stat().st_mtime):
            found["gallery"] = (str(npz), "")
    return {role: path for role, (path, _) in found.items()}


def model_rows(args) -> dict[str, dict]:
    """The shipped set, and a candidate set when any candidate model is given or found (shipped models fill the
    roles it lacks; a candidate embedder without a gallery gets one built)."""
    rows = {"shipped": dict(SHIPPED)}
    candidate = zoo_models(args.zoo_dir)
    candidate.update({role: getattr(args, role) for role in ("embedder", "detector", "gallery", "verifier")
                      if getattr(args, role, None)})
    if candidate:
        gallery = candidate.get("gallery") or (None if "embedder" in candidate else SHIPPED["gallery"])
        rows["candidate"] = {**SHIPPED, **candidate, "gallery": gallery,
                             "verifier_power": getattr(args, "verifier_power", 0.75),
                             "verifier_detector_conf": getattr(args, "verifier_detector_conf", None)}
    return rows


def load_row(models: dict, batch_size: int = 128):
    from vision.brands.verification import LogoVerifier, VerifiedDetector, verified_for_rule
    from vision.features import FeatureExtractor
    from vision.inference import LogoDetector

    fx = FeatureExtractor.from_pretrained(models["embedder"], backend="torch")
    detector = LogoDetector.from_pretrained(models["detector"])
    if models["gallery"] is None:
        gallery = simple_icons_gallery(fx, batch_size)
    else:
        gallery = BrandGallery.load(models["gallery"], model=fx.card, dim=fx.dim)
    if models.get("verifier"):   # the detector's boxes rescored by a logo verifier (vision.brands.verification)
        detector = VerifiedDetector(detector, LogoVerifier.from_pretrained(models["verifier"], backend="torch"),
                                    power=models.get("verifier_power", 0.75),
                                    detector_conf=models.get("verifier_detector_conf"))
    else:   # as the recogniser does: the verifier the gallery's rule was calibrated with, if any
        detector = verified_for_rule(detector, gallery.detection_rule, backend="torch")
    if gallery.foreground is not None:   # as the recogniser does: crops embedded as the gallery was calibrated
        from vision.brands.views import deciding_view, with_foreground

        # a naming view ("name" fusion) is not measured here: its crops are scored plain, as they are decided
        # (benchmarks/brand_text.py --default-check measures the recogniser with it)
        fx = with_foreground(fx, deciding_view(gallery.foreground), gallery.crop_margin)
    return fx, detector, gallery


def simple_icons_gallery(fx, batch_size: int = 128) -> BrandGallery:
    """The shipped gallery's construction for another embedder: every simple-icons brand, mean of its brand-colour,
    black and white renders."""
    from vision.synth.render import simple_icons_renders

    renders = simple_icons_renders(fx.card.data_config.input_size, colors=("brand", "black", "white"))
    return BrandGallery.from_images(fx, renders, batch_size=batch_size, merge="mean",
                                    references={b: ["simple-icons"] * len(r) for b, r in renders.items()})


def summary_table(report: dict) -> str:
    """One markdown line per (row, open-set variant): the issue's goals side by side."""
    head = ("| models | open set | e2e Recall@1 (icons / wordmarks) | e2e accepted+correct | oracle Recall@1 | "
            "known FRR | known FRR end to end | impostor FAR (val crops) | brand-free photos with a false brand | "
            "detector mAP50 / 50-95 (cross-style) | Grocery brand R@1 (detected logos) |\n|" + "---|" * 11)
    lines = [head]
    for name, row in report["rows"].items():
        det = row.get("detector_cross_style", {})
        groc = row.get("grocery_packaged_goods", {}).get("detected_logos", {})
        for variant, f in row["open_set"].items():
            photos = f.get("brand_free_photos", {}).get("with_any_false_brand", float("nan"))
            by_kind = " / ".join(f"{v:.3f}" for v in f.get("end_to_end_recall@1_by_kind", {}).values())
            lines.append(f"| {name} | {variant} (thr {f['threshold']}) | {f['end_to_end_recall@1']:.3f}"
                         f"{f' ({by_kind})' if by_kind else ''} | "
                         f"{f['end_to_end_accepted_correct']:.3f} | {f['oracle_recall@1']:.3f} | {f['known_frr']:.3f}"
                         f"{' (found marks)' if 'known_frr_is' in f else ''} "
                         f"| {f.get('known_frr_end_to_end', float('nan')):.3f} | {f['impostor_far_val_crops']:.3f}"
                         f"{' (detections)' if 'impostor_far_is' in f else ''} | {photos:.3f} | "
                         f"{det.get('mAP50', float('nan')):.3f} / "
                         f"{det.get('mAP50-95', float('nan')):.3f} | {groc.get('brand_recall@1', float('nan'))} |")
    lines += ["", "| models | detector set | mAP50 | mAP50-95 | precision | recall |", "|---|---|---|---|---|---|"]
    for name, row in report["rows"].items():
        sets = {"cross-style (this benchmark)": row.get("detector_cross_style", {}),
                **row.get("detector_other_sets", {})}
        for set_name, m in sets.items():
            lines.append(f"| {name} | {set_name} | {m.get('mAP50', float('nan')):.3f} | "
                         f"{m.get('mAP50-95', float('nan')):.3f} | {m.get('precision', float('nan')):.3f} | "
                         f"{m.get('recall', float('nan')):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from vision.commands import add_verifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="data folder (built there when missing)")
    ap.add_argument("--grocery", type=Path, required=True,
                    help="Grocery Store root (train/val; its test split is never read)")
    ap.add_argument("--icon-sets", type=Path, help="Iconify sets folder (to build --data)")
    ap.add_argument("--embedder", help="candidate embedding model (zoo name or file)")
    ap.add_argument("--detector", help="candidate logo detector (zoo name or file)")
    ap.add_argument("--gallery", help="candidate gallery .npz (default: built for the candidate embedder)")
    add_verifier(ap, ", a candidate")
    ap.add_argument("--zoo-dir", type=Path, action="append", default=[],
                    help="zoo folder(s) holding candidate models (newest embedder, detector, gallery .npz)")
    ap.add_argument("--no-shipped", action="store_true", help="skip the shipped row")
    ap.add_argument("--frr", type=float, default=0.10, help="known-brand false-reject budget of the calibration")
    ap.add_argument("--queries-per-brand", type=int, default=3)
    ap.add_argument("--known-brands", type=int, default=150)
    ap.add_argument("--known-per-brand", type=int, default=2)
    ap.add_argument("--data-only", action="store_true",
                    help="build the parts of --data that are missing, print its record and stop (e.g. a larger "
                         "calibration set: a new --data with --known-brands 526, every val-split brand)")
    ap.add_argument("--max-test-brands", type=int)
    ap.add_argument("--impostor-train-photos", type=int, default=700,
                    help="brand-free train photos whose detections are the calibration impostors")
    ap.add_argument("--val-photos", type=int, help="brand-free val photos used (default: all)")
    ap.add_argument("--rule-train-photos", type=int,
                    help="brand-free train photos the detection rules are calibrated on (default: all; their "
                         "detections are cached under --data/detections)")
    ap.add_argument("--impostors", type=Path,
                    help="impostor crops to use (train/ calibrates, val/ measures; e.g. vision make-impostors' "
                         "output) instead of the shipped detector's detections built under --data")
    ap.add_argument("--detector-data", type=Path, action="append", default=[],
                    help="more YOLO data.yaml sets for the detector's mAP (e.g. another cross-style set, the "
                         "in-distribution simple-icons val)")
    ap.add_argument("--skip-grocery-check", action="store_true", help="skip the packaged-goods check")
    ap.add_argument("--channels", action="store_true",
                    help="also each channel alone (embedder, text) and a fused detection+embedder+text rule "
                         "calibrated on train, with each channel's cost per photo (benchmarks/brand_channels.py; "
                         "needs the [ocr] extra)")
    ap.add_argument("--known-wordmarks", type=int, default=0,
                    help="build N known scenes whose mark is a val brand's name as a wordmark (train photos), used "
                         "by --channels beside the known scenes")
    ap.add_argument("--fonts", type=Path, default=Path("runs/fonts"),
                    help="@fontsource fonts for --known-wordmarks (tools/fetch_fonts.py)")
    ap.add_argument("--text-rule-out", type=Path,
                    help="with --channels: write the (last row's) gallery with the fused rule attached here (.npz)")
    ap.add_argument("--candidates", type=int, nargs="+", default=[], metavar="K",
                    help="with --channels: also a fused rule choosing among the embedder's K best brands and the "
                         "brands the text names (one row per K)")
    ap.add_argument("--candidate-rule-out", type=Path,
                    help="with --candidates: write the (last row's) gallery with the first K's rule attached here")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    report = {"hardware": brand_eval().hardware(), "frr_budget": args.frr, "data": str(args.data), "rows": {}}
    start = time.perf_counter()
    rows = model_rows(args)
    if args.no_shipped:
        rows.pop("shipped")
    if args.icon_sets is None and not (args.data / "record.json").is_file():
        ap.error("--icon-sets is needed to build --data")
    build_start = time.perf_counter()
    record = build_data(args.data, args.grocery, args.icon_sets, SHIPPED["detector"], impostors=args.impostors,
                        queries_per_brand=args.queries_per_brand, known_brands=args.known_brands,
                        known_per_brand=args.known_per_brand, max_test_brands=args.max_test_brands,
                        impostor_train_photos=args.impostor_train_photos, val_photos=args.val_photos,
                        known_wordmarks=args.known_wordmarks, fonts=args.fonts)
    report["data_record"], report["data_s"] = record, round(time.perf_counter() - build_start, 1)
    if args.data_only:
        print(json.dumps({"data": str(args.data), "record": record, "data_s": report["data_s"]}, indent=1))
        return 0
    detector_maps: dict = {}
    for name, models in rows.items():
        row_start = time.perf_counter()
        fx, detector, gallery = load_row(models)
        row = evaluate_row(fx, detector, gallery, args.data, Path(record["impostors"]["folder"]), args.grocery,
                           args.frr, models["detector"], packaged_goods=not args.skip_grocery_check,
                           val_photos=args.val_photos, detector_data=args.detector_data,
                           detector_maps=detector_maps, rule_train_photos=args.rule_train_photos,
                           channels=args.channels, text_rule_out=args.text_rule_out,
                           candidates=tuple(args.candidates), candidate_rule_out=args.candidate_rule_out)
        row["models"] = {"embedder": models["embedder"], "detector": models["detector"],
                         "verifier": models.get("verifier"),
                         "gallery": models["gallery"] or "simple-icons renders, mean of 3 (built here)",
                         "gallery_brands": len(gallery), "gallery_vectors": len(gallery.vectors),
                         "foreground": gallery.foreground}
        row["wall_s"] = round(time.perf_counter() - row_start, 1)
        report["rows"][name] = row
    report["wall_s"] = round(time.perf_counter() - start, 1)
    report["table"] = summary_table(report)
    if args.channels:
        from benchmarks.brand_channels import channels_markdown

        report["table"] += "\n\n" + channels_markdown(report)
    text = json.dumps(report, indent=1)
    print(report["table"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        args.out.with_suffix(".md").write_text(report["table"] + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
