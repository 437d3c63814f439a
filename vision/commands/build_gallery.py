"""``vision build-gallery``: build a brand gallery (.npz) with an embedding model, and calibrate its open-set threshold.

    # every simple-icons brand: the mean of its renders in brand colour, black and white; threshold calibrated
    # on the val brands' queries against val galleries built the same way
    vision build-gallery --embedder brand_resnet10t --simple-icons --renders brand,black,white \
        --merge mean --calibrate runs/brands/val --frr 0.05 --out weights/simple_icons_gallery.npz
    # your own logos, one folder per brand (add --index hnsw for very large galleries)
    vision build-gallery --embedder brand_resnet10t --folder my_logos/ --out my_gallery.npz
    # open set against real non-logo crops: known-brand queries and impostors (lowest impostor false-accept rate
    # at <= 10% known false rejects), your own reference photos per brand added as extra references, and a report
    # of Recall@1, FRR and FAR before/after adding them
    vision build-gallery --embedder brand_resnet10t --simple-icons --renders brand,black,white --merge mean \
        --calibrate runs/brands/val --impostors impostors/train --frr 0.10 --references my_photos/ \
        --queries my_query_photos/ --report runs/gallery_report.json --out my_gallery.npz

``--calibrate DIR`` needs ``DIR/gallery/<brand>/`` and ``DIR/query/<brand>/`` of brands with known identity
(e.g. the val split of tools/make_brand_dataset.py): the threshold is set so that ``--frr`` of those queries
score below it against their gallery. For a ``--simple-icons`` gallery (no ``--folder``) that gallery is rebuilt
from the val brands' simple-icons renders with the same ``--renders`` and ``--merge``, so the threshold is
calibrated on scores of the kind the shipped gallery will give.

``--impostors DIR`` (crops of real photos without a brand, any image tree) switches to open-set calibration
(:meth:`vision.brands.gallery.BrandGallery.calibrate`): known queries (``--calibrate DIR``'s ``query/`` and/or
``--queries DIR/<brand>/*``, brands that are in the gallery) are scored against the gallery being built, and the
threshold gives the lowest impostor false-accept rate (FAR) at a known false-reject rate (FRR) of at most ``--frr``
(default 0.10 here). FRR, FAR, the equal error rate and what the sets were are stored in the gallery file.
``--normalization background`` keeps the impostors' embeddings in the gallery as a background cohort (each
impostor is calibrated against the others). ``--references DIR/<brand>/*`` adds each photo as one more reference
of its brand (a brand scores its best reference), to simple-icons brands or new ones; the report then holds the
figures before and after. ``--icon-sets DIR`` adds one reference per training-style icon of each simple-icons
brand (see :mod:`vision.synth.styles`).

``--detector NAME`` with ``--known-scenes DIR`` (whole photos with one known-brand mark each: ``DIR/queries.json``,
``[{"image", "brand", "box": [x1, y1, x2, y2]}]`` with images relative to DIR, as ``benchmarks/brand_robustness.py``
writes under ``known_scenes/``) and ``--impostor-photos DIR`` (brand-free photos, any image tree) also calibrates a
detection-aware rule (:mod:`vision.brands.detection_rule`, ``--decision-rule pair|logistic``): the detector's
confidence and
the open-set score together, the fewest brand-free photos with an accepted detection at a known-mark false-reject
rate of at most ``--frr`` (of the marks the detector finds at ``--detector-floor``; ``--rule-budget all`` counts the
marks it misses too). The rule, the
detector's name and sha256 and its figures are stored in the gallery (``vision recognize`` applies it with that
detector only); the report shows it next to the threshold alone at the recogniser's default confidence (0.25) on the
same photos. With ``--normalization background`` a brand-free photo's detections are scored without the cohort crops
cut from the photos of its folder (near-copies; matched by the ``source`` column of ``vision make-impostors``'
manifest).

    vision build-gallery --embedder brand_resnet10t --simple-icons --renders brand,black,white --merge mean \
        --icon-sets runs/iconify --queries runs/brand_robustness/data/known --impostors runs/impostors/train \
        --detector logo_yolo11n --known-scenes runs/brand_robustness/data/known_scenes \
        --impostor-photos ../shared/datasets/grocery_store/train/Fruit \
        --impostor-photos ../shared/datasets/grocery_store/train/Vegetables \
        --frr 0.10 --report runs/gallery_report.json --out my_gallery.npz
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vision.commands import add_device, add_no_progress, add_verifier, add_zoo_dir, command_parser, zoo_dir_scope

# (vision.brands.gallery.MERGES, vision.retrieval.INDEX_KINDS; spelled out so --help loads neither numpy nor faiss:
# tests/test_commands.py checks they agree)
MERGES = ("all", "mean")
INDEX_KINDS = ("flat", "hnsw", "ivf")
NORMALIZATIONS = ("none", "background", "topk")
RULE_KINDS = ("pair", "logistic")   # vision.brands.detection_rule.RULE_KINDS


def calibrate(fx, folder: Path, frr: float, renders: tuple[str, ...] | None = None, merge: str = "all") -> dict:
    """Threshold at ``frr`` for ``folder/query`` against a gallery of ``folder/gallery``; also its recall@1.

    With ``renders`` the calibration gallery is rebuilt from simple-icons renders of ``folder/gallery``'s brand
    slugs in those colours and merged as ``merge``: the same construction as the gallery being calibrated."""
    from vision.brands.gallery import BrandGallery, GalleryError
    from vision.data.datasets import scan_image_folder
    from vision.progress import progress_bar
    from vision.synth.render import simple_icons_renders

    samples, table = scan_image_folder(folder / "query")
    if renders:
        images = simple_icons_renders(fx.card.data_config.input_size, list(table.names), renders,
                                      progress=progress_bar)
        missing = sorted(set(table.names) - set(images))
        if missing:
            raise GalleryError(f"--calibrate {folder}: {len(missing)} query brands are not simple-icons slugs "
                               f"(e.g. {missing[0]!r}); calibrate a --simple-icons gallery on simple-icons brands")
        calibration = BrandGallery.from_images(fx, images, batch_size=128, merge=merge)
    else:
        calibration = BrandGallery.from_folder(fx, folder / "gallery", merge=merge)
    queries = fx([s.path for s in samples], batch_size=128)
    threshold = calibration.calibrate_threshold(queries, frr)
    top1 = [r["best"] for r in calibration.identify(queries)]
    recall = sum(b == table.names[s.label] for b, s in zip(top1, samples)) / len(samples)
    return {"threshold": round(threshold, 6), "frr": frr, "queries": len(samples), "brands": len(calibration),
            "recall@1": round(recall, 4), "gallery": f"simple-icons renders {list(renders)}" if renders
            else str(folder / "gallery"), "merge": merge}


def main(argv: list[str] | None = None) -> int:
    ap = command_parser("vision build-gallery", __doc__)
    ap.add_argument("--embedder", required=True, help="zoo name or file of an embedding model")
    ap.add_argument("--folder", type=Path, action="append", default=[], help="<folder>/<brand>/* images")
    ap.add_argument("--simple-icons", action="store_true", help="add every simple-icons brand's canonical render")
    ap.add_argument("--renders", default="brand",
                    help="comma-separated colours of the simple-icons renders per brand: brand, black, white, #rrggbb")
    ap.add_argument("--merge", choices=MERGES, default="all",
                    help="all: a vector per image (a brand scores its best); mean: one prototype per brand")
    ap.add_argument("--icon-sets", type=Path,
                    help="Iconify sets folder: each --simple-icons brand drawn in a training style gets one more "
                         "reference per icon (the held-out evaluation styles are never used)")
    ap.add_argument("--wordmarks", type=int, default=0, metavar="N",
                    help="each --simple-icons brand gets N more references: its title set as text "
                         "(vision.synth.wordmarks; 0: none)")
    ap.add_argument("--fonts", type=Path, help="fetched @fontsource fonts (tools/fetch_fonts.py) for --wordmarks, "
                    "added to the DejaVu/STIX faces inside matplotlib")
    ap.add_argument("--references", type=Path, action="append", default=[],
                    help="<dir>/<brand>/* reference photos: each one more reference of its brand (new or existing)")
    ap.add_argument("--calibrate", type=Path, help="folder with gallery/ and query/ of known brands")
    ap.add_argument("--queries", type=Path, action="append", default=[],
                    help="<dir>/<brand>/* known-brand query crops for open-set calibration (brands in the gallery)")
    ap.add_argument("--impostors", type=Path, action="append", default=[],
                    help="folder of impostor crops (real photo regions without a brand): open-set calibration")
    ap.add_argument("--normalization", choices=NORMALIZATIONS, default=None,
                    help="open-set score: none (best cosine), background (minus the best impostor-cohort cosine; "
                         "the default with --impostors), topk (minus the mean of the next --topk brands)")
    ap.add_argument("--topk", type=int, default=5, help="brands averaged by --normalization topk")
    ap.add_argument("--frr", type=float, default=None,
                    help="false-reject rate on known queries the threshold is set for (with --impostors: at most; "
                         "default 0.10 with --impostors, else 0.05)")
    ap.add_argument("--threshold", type=float, help="set the threshold directly instead of calibrating")
    ap.add_argument("--detector", help="logo detector (zoo name or file) to calibrate a detection-aware rule for "
                                       "(with --known-scenes and --impostor-photos)")
    add_verifier(ap, ": the rule is calibrated for the pair")
    ap.add_argument("--known-scenes", type=Path, action="append", default=[],
                    help="folder with queries.json (image, brand, box) of photos with one known-brand mark each")
    ap.add_argument("--impostor-photos", type=Path, action="append", default=[],
                    help="folder of brand-free photos (any image tree): every detection on them is a false one")
    ap.add_argument("--decision-rule", choices=RULE_KINDS, default="logistic",
                    help="logistic: a weighted sum of detection confidence and open-set score (default: it measured "
                         "better); pair: a detection threshold and an open-set threshold")
    ap.add_argument("--rule-budget", choices=("found", "all"), default="found",
                    help="marks the --frr budget of the detection rule counts: found (those the detector finds at "
                         "--detector-floor: the rule's own rejections; default) or all (end to end, missed marks "
                         "included)")
    ap.add_argument("--detector-floor", type=float, default=0.10,
                    help="detector confidence the calibration photos' detections are collected at (the lowest "
                         "detection threshold the rule may pick)")
    ap.add_argument("--margin", type=float, default=None,
                    help="how the recogniser frames each detected box (context per side, fraction of the box's "
                         "longer side), stored in the gallery; --queries and --impostors crops must be framed the "
                         "same way (vision make-impostors --margin; checked against its impostors.json). Default "
                         "vision.crops.CROP_MARGIN (0.15)")
    ap.add_argument("--index", choices=INDEX_KINDS, default="flat")
    ap.add_argument("--out", type=Path, required=True, help="gallery file to write (.npz)")
    ap.add_argument("--report", type=Path, help="also write the report as JSON here and as text next to it (.txt)")
    add_device(ap)
    ap.add_argument("--batch-size", type=int, default=128)
    add_zoo_dir(ap)
    add_no_progress(ap)
    args = ap.parse_args(argv)
    from vision.brands.detection_rule import DetectionRuleError
    from vision.brands.gallery import GalleryError
    from vision.brands.verification import VerifierError
    from vision.data.datasets import ManifestError
    from vision.progress import warnings_above_progress_bar
    from vision.synth.render import parse_render_colors
    from vision.synth.styles import IconSetError
    from vision.synth.wordmarks import FontError
    from vision.zoo import ZooError

    if not args.folder and not args.simple_icons and not args.references:
        print("error: give --folder, --simple-icons and/or --references", file=sys.stderr)
        return 2
    if (args.queries or args.normalization not in (None, "none")) and not args.impostors:
        print(f"error: --queries and --normalization {args.normalization or ''} calibrate against impostors: give "
              "--impostors DIR", file=sys.stderr)
        return 2
    if args.normalization is None:
        args.normalization = "background" if args.impostors else "none"
    if args.impostors and args.threshold is not None:
        print("error: --threshold sets the threshold, --impostors calibrates it: give one", file=sys.stderr)
        return 2
    if args.frr is None:
        args.frr = 0.10 if args.impostors or args.detector else 0.05
    if (args.detector or args.known_scenes or args.impostor_photos) and not (
            args.detector and args.known_scenes and args.impostor_photos):
        print("error: a detection-aware rule needs --detector, --known-scenes and --impostor-photos together",
              file=sys.stderr)
        return 2
    if args.verifier and not args.detector:
        print("error: --verifier rescores a detector's boxes: give --detector (with --known-scenes and "
              "--impostor-photos) too", file=sys.stderr)
        return 2
    try:
        colors = parse_render_colors(args.renders)
    except ValueError as e:
        print(f"error: --renders: {e}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        with warnings_above_progress_bar(), zoo_dir_scope(args.zoo_dir):
            gallery, report = build(args, colors)
    except (GalleryError, ManifestError, ZooError, FileNotFoundError, IconSetError, FontError, DetectionRuleError,
            VerifierError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    report.update(threshold=gallery.threshold, out=str(args.out), wall_s=round(time.perf_counter() - start, 1))
    if args.report is not None:
        write_report(report, args.report)
    print(json.dumps(report))
    return 0


def build(args: argparse.Namespace, colors: tuple[str, ...]):
    """Embed the brands, calibrate and save the gallery (errors propagate to :func:`main`)."""
    from functools import partial

    from vision.brands.gallery import BrandGallery, GalleryError
    from vision.crops import CROP_MARGIN
    from vision.data.datasets import scan_image_folder
    from vision.features import FeatureExtractor
    from vision.progress import progress_bar
    from vision.synth.render import simple_icons_renders

    bar = partial(progress_bar, enabled=not args.no_progress)
    fx = FeatureExtractor.from_pretrained(args.embedder, backend="torch", device=args.device)
    if not fx.card.sha256:  # the gallery could not be bound to the model: recognisers refuse it by default
        raise GalleryError(f"--embedder {args.embedder}: this model has no sha256 (a weights file outside a zoo "
                           "manifest), so the gallery could not record which model built it; pass a zoo name or a "
                           "file listed in its folder's manifest")
    images: dict[str, list] = {}
    references: dict[str, list[str]] = {}
    for folder in args.folder:
        samples, table = scan_image_folder(folder)
        for s in samples:
            images.setdefault(table.names[s.label], []).append(s.path)
            references.setdefault(table.names[s.label], []).append(folder.name)
    if args.simple_icons:
        size = fx.card.data_config.input_size
        for slug, renders in simple_icons_renders(size, colors=colors, progress=bar).items():
            if slug in images:
                raise GalleryError(f"brand {slug!r} is both in a --folder and in simple-icons; rename one")
            images[slug] = renders
            references[slug] = ["simple-icons"] * len(renders)
    if args.icon_sets is not None:
        if not args.simple_icons:
            raise GalleryError("--icon-sets adds artwork styles to simple-icons brands: give --simple-icons too")
        for slug, renders in style_renders(args.icon_sets, fx.card.data_config.input_size).items():
            images[slug] += [image for _, image in renders]
            references[slug] += [key for key, _ in renders]
    if args.wordmarks:
        if not args.simple_icons:
            raise GalleryError("--wordmarks adds references to simple-icons brands: give --simple-icons too")
        from vision.synth.wordmarks import load_fonts, wordmark_references

        for slug, renders in wordmark_references(fx.card.data_config.input_size, brands=list(images),
                                                 fonts=load_fonts(args.fonts), count=args.wordmarks,
                                                 progress=bar).items():
            images[slug] += [image for _, image in renders]
            references[slug] += [key for key, _ in renders]
    kwargs = dict(index=args.index, threshold=args.threshold, normalization=args.normalization, topk=args.topk,
                  crop_margin=CROP_MARGIN if args.margin is None else args.margin)
    gallery = BrandGallery.for_model(fx, **kwargs)
    if images:
        gallery.add_images(fx, images, batch_size=args.batch_size, merge=args.merge, references=references)
    report = {"brands": len(gallery), "vectors": len(gallery.vectors), "dim": gallery.dim,
              "model": gallery.model_name}
    user_refs = reference_photos(args.references)
    if args.impostors:
        known, known_brands, known_sources, known_set = known_queries(fx, args)
        impostors, groups, impostor_set = impostor_queries(fx, args.impostors, args.batch_size,
                                                           kwargs["crop_margin"])
        if args.normalization == "background":   # calibration scores each impostor against the others
            gallery.set_background(impostors)
            impostor_set += " (also the background cohort: each scored without its own photo's crops)"
        sets = dict(known=known, known_brands=known_brands, known_sources=known_sources, impostors=impostors,
                    max_false_reject=args.frr,
                    known_set=known_set, impostor_set=impostor_set, impostor_groups=groups)
        if user_refs:
            if len(gallery):
                report["before_references"] = open_set_report(gallery, **sets)
            add_references(fx, gallery, user_refs, args.batch_size)
            report.update(brands=len(gallery), vectors=len(gallery.vectors), references=references_summary(user_refs))
        report["calibration"] = open_set_report(gallery, **sets)
    else:
        if user_refs:
            add_references(fx, gallery, user_refs, args.batch_size)
            report.update(brands=len(gallery), vectors=len(gallery.vectors), references=references_summary(user_refs))
        if args.calibrate is not None and args.threshold is None:
            # a simple-icons-only gallery is calibrated on galleries built the same way
            same_way = colors if args.simple_icons and not args.folder and not user_refs else None
            report["calibration"] = calibrate(fx, args.calibrate, args.frr, same_way, args.merge)
            gallery.threshold = report["calibration"]["threshold"]
            gallery.calibration = {"method": "known-only quantile", **report["calibration"]}
    if args.detector:
        if gallery.threshold is None:
            raise GalleryError("a detection-aware rule is calibrated on a calibrated gallery: give --impostors "
                               "(or --calibrate, or --threshold) too")
        report["detection_rule"] = calibrate_rule(fx, gallery, args, groups if args.impostors else None, bar)
    gallery.save(args.out)
    return gallery, report


def read_known_scenes(folders: list[Path]) -> list[dict]:
    """The ``queries.json`` entries of the ``--known-scenes`` folders (``image`` made a path), each checked."""
    from vision.brands.gallery import GalleryError

    scenes = []
    for folder in folders:
        path = folder / "queries.json"
        if not path.is_file():
            raise FileNotFoundError(f"--known-scenes {folder}: no queries.json in it")
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise GalleryError(f"{path}: not JSON ({e})") from None
        if not isinstance(entries, list) or not entries:
            raise GalleryError(f"{path}: expected a non-empty list of {{image, brand, box}} entries")
        for i, entry in enumerate(entries):
            box = entry.get("box") if isinstance(entry, dict) else None
            if not (isinstance(entry, dict) and isinstance(entry.get("image"), str)
                    and isinstance(entry.get("brand"), str) and isinstance(box, list) and len(box) == 4
                    and all(type(v) in (int, float) for v in box) and box[2] > box[0] and box[3] > box[1]):
                raise GalleryError(f"{path}: entry {i} must be {{\"image\": str, \"brand\": str, \"box\": "
                                   f"[x1, y1, x2, y2] with x2 > x1, y2 > y1}}, got {str(entry)[:120]}")
            image = folder / entry["image"]
            if not image.is_file():
                raise FileNotFoundError(f"{path}: entry {i}: image {image} not found")
            scenes.append({**entry, "image": image})
    return scenes


def calibrate_rule(fx, gallery, args: argparse.Namespace, cohort_groups: list[str] | None, bar) -> dict:
    """Calibrate and attach the detection-aware rule (see the module docstring); its record, and the threshold
    alone at the recogniser's default confidence measured on the same photos."""
    from vision.brands.detection_rule import (
        DetectionRule,
        calibrate_detection_rule,
        known_scene_set,
        photo_set,
        rule_figures,
        source_rows,
    )
    from vision.brands.gallery import GalleryError
    from vision.brands.recognition import DEFAULT_DETECTOR_CONF, detect_and_score
    from vision.data.io import list_images
    from vision.predictors import predictor

    detector = predictor(args.detector, backend="torch", device=args.device, conf=args.detector_floor)
    if detector.card.task != "detection":
        raise GalleryError(f"--detector {args.detector} is a {detector.card.task} model, not a detector")
    if not detector.card.sha256:
        raise GalleryError(f"--detector {args.detector}: this model has no sha256 (a weights file outside a zoo "
                           "manifest), so the rule could not record which detector it was calibrated for")
    if args.verifier:
        from vision.brands.verification import LogoVerifier, VerifiedDetector

        verifier = LogoVerifier.from_pretrained(args.verifier, backend="torch", device=args.device)
        if not verifier.card.sha256:
            raise GalleryError(f"--verifier {args.verifier}: this model has no sha256 (a weights file outside a zoo "
                               "manifest), so the rule could not record which verifier it was calibrated for")
        detector = VerifiedDetector(detector, verifier, power=args.verifier_power,
                                    detector_conf=args.verifier_detector_conf)
    scenes = read_known_scenes(args.known_scenes)
    missing = sorted({s["brand"] for s in scenes} - set(gallery.brands))
    if missing:
        raise GalleryError(f"--known-scenes: {len(missing)} brands are not in the gallery (e.g. {missing[0]!r})")
    photos = []
    for folder in args.impostor_photos:
        found = list_images(folder) if folder.is_dir() else []
        if not found:
            raise FileNotFoundError(f"--impostor-photos {folder}: no images in it")
        photos += found
    with bar(total=len(scenes) + len(photos), desc="detection rule", unit="img") as progress:
        known = detect_and_score(fx, detector, gallery, [s["image"] for s in scenes], progress=progress.update)
        background = cohort_groups and gallery.normalization == "background"
        rows = source_rows(photos, cohort_groups, by="folder") if background else None
        free = detect_and_score(fx, detector, gallery, photos, cohort_rows=rows, progress=progress.update)
    known_set = known_scene_set([d for d, _, _ in known], [s for _, _, s in known], [s["box"] for s in scenes],
                                [b for _, b, _ in known], [s["brand"] for s in scenes])
    impostors = photo_set([d for d, _, _ in free], [s for _, _, s in free])
    left_out = 0 if rows is None else sum(len(r) > 0 for r in rows)
    rule = calibrate_detection_rule(
        known_set, impostors, detector.card.name, detector.card.sha256, kind=args.decision_rule,
        max_false_reject=args.frr, min_detection_score=args.detector_floor, budget=args.rule_budget,
        known_set=f"{len(scenes)} photos with one known-brand mark from {', '.join(map(str, args.known_scenes))}",
        impostor_set=f"{len(photos)} brand-free photos from {', '.join(map(str, args.impostor_photos))}"
                     + (f" ({left_out} scored without the cohort crops of their folder)" if rows is not None else ""))
    if args.verifier:   # the rule records its VerifiedDetector: the recogniser brings the same verifier along
        import dataclasses

        rule = dataclasses.replace(rule, verifier=detector.describe())
    gallery.detection_rule = rule
    threshold_only = DetectionRule("pair", rule.detector_name, rule.detector_sha256, DEFAULT_DETECTOR_CONF,
                                   float(gallery.threshold))
    return {**rule.to_json(), "threshold_only_at_default_conf": {
        "detection_threshold": DEFAULT_DETECTOR_CONF, "threshold": round(float(gallery.threshold), 6),
        **rule_figures(threshold_only, known_set, impostors)}}


def style_renders(folder: Path, size: int) -> dict[str, list[tuple]]:
    """``{slug: [("prefix:icon", image), ...]}``: every simple-icons brand's icons in the training styles of the
    Iconify sets under ``folder``, drawn as the brand datasets draw gallery images (single-colour icons in the brand
    colour, full-colour ones in their own); icons that do not render are left out."""
    from vision.synth.catalog import list_brands
    from vision.synth.render import LogoRenderError, canonical_logo, is_monochrome, render_logo
    from vision.synth.styles import icon_svg, load_icon_sets, style_catalogue, training_styles

    brands = list_brands()
    by_slug = {b.slug: b for b in brands}
    catalogue, _ = style_catalogue(training_styles(load_icon_sets(folder)), brands)
    out: dict[str, list] = {}
    for slug, styles in catalogue.items():
        for icons in styles.values():
            for icon in icons:
                try:
                    svg = icon_svg(icon)
                    mono = is_monochrome(render_logo(svg, 32))
                    image = canonical_logo(svg, size, color=by_slug[slug].rgb if mono else None)
                except LogoRenderError:
                    continue
                out.setdefault(slug, []).append((icon.key, image))
    return out


def reference_photos(folders: list[Path]) -> dict[str, list[Path]]:
    """``{brand: [photo, ...]}`` of the ``--references`` folders (``<dir>/<brand>/*``)."""
    from vision.data.datasets import scan_image_folder

    photos: dict[str, list[Path]] = {}
    for folder in folders:
        samples, table = scan_image_folder(folder)
        for s in samples:
            photos.setdefault(table.names[s.label], []).append(s.path)
    return photos


def add_references(fx, gallery, photos: dict[str, list[Path]], batch_size: int) -> None:
    """Each photo one more reference of its brand (named by its file), new brands or existing ones."""
    names = {brand: [f"reference:{p.parent.name}/{p.name}" for p in paths] for brand, paths in photos.items()}
    gallery.add_images(fx, photos, batch_size=batch_size, merge="all", references=names, extend=True)


def references_summary(photos: dict[str, list[Path]]) -> dict:
    return {"brands": len(photos), "photos": sum(map(len, photos.values()))}


def known_queries(fx, args: argparse.Namespace):
    """Embeddings, brands, source folders and a description of the known-brand queries (``--calibrate DIR/query``,
    ``--queries``)."""
    from vision.brands.gallery import GalleryError
    from vision.data.datasets import scan_image_folder

    folders = ([args.calibrate / "query"] if args.calibrate is not None else []) + list(args.queries)
    if not folders:
        raise GalleryError("--impostors needs known-brand queries too: --calibrate DIR (DIR/query/<brand>/*) or "
                           "--queries DIR/<brand>/*")
    paths, brands, sources = [], [], []
    for folder in folders:
        samples, table = scan_image_folder(folder)
        paths += [s.path for s in samples]
        brands += [table.names[s.label] for s in samples]
        sources += [str(folder)] * len(samples)
    return fx(paths, batch_size=args.batch_size), brands, sources, \
        f"{len(paths)} crops of {len(set(brands))} brands from {', '.join(map(str, folders))}"


def impostor_queries(fx, folders: list[Path], batch_size: int, margin: float | None = None):
    """Embeddings, groups and a description of the impostor crops under ``folders`` (any image tree). ``margin``:
    the gallery's crop margin, which the crops' ``impostors.json`` (``vision make-impostors``), when there is one in
    a folder or the folder above it, must record."""
    from vision.brands.gallery import GalleryError
    from vision.data.io import list_images

    paths = []
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"--impostors {folder}: no such folder")
        if margin is not None:
            from vision.synth.negatives import check_recorded_margin

            try:
                check_recorded_margin(folder, margin)
            except ValueError as e:
                raise GalleryError(f"{e}, or pass --margin to match") from None
        found = list_images(folder)
        if not found:
            raise GalleryError(f"--impostors {folder}: no images in it")
        paths += found
    from vision.synth.negatives import impostor_groups

    return fx(paths, batch_size=batch_size), impostor_groups(paths), \
        f"{len(paths)} crops from {', '.join(map(str, folders))}"


def open_set_report(gallery, known, known_brands, known_sources, impostors, max_false_reject: float,
                    known_set: str, impostor_set: str, impostor_groups: list[str]) -> dict:
    """Calibrate ``gallery`` on the known queries of its brands and the impostors; its calibration record, Recall@1
    and FRR of the known queries of each query folder, and the number of brands and vectors it held. Queries of
    brands not in the gallery (before their references are added) are left out of the calibration: for this gallery
    they are unknown brands, so their share accepted as some brand is reported instead (and they count as misses
    in Recall@1)."""
    import numpy as np

    from vision.brands.gallery import GalleryError

    inside = np.array([brand in gallery for brand in known_brands])
    if not inside.any():
        raise GalleryError("none of the known queries is of a brand in the gallery")
    record = gallery.calibrate(known[inside], impostors, max_false_reject,
                               known_brands=[b for b, i in zip(known_brands, inside) if i], known_set=known_set,
                               impostor_set=impostor_set, impostor_groups=impostor_groups)
    best, _, scores = gallery.open_set_scores(known)
    accepted = scores >= gallery.threshold
    per_folder = {}
    for folder in dict.fromkeys(known_sources):
        rows = np.array([source == folder for source in known_sources])
        right = np.array([b == t for b, t in zip(best, known_brands)])[rows]
        per_folder[folder] = {"queries": int(rows.sum()), "recall@1": round(float(right.mean()), 4),
                              "frr": round(float((~accepted[rows & inside]).mean()), 4) if (rows & inside).any()
                              else None,
                              "brand_not_in_gallery": int((rows & ~inside).sum())}
        if (rows & ~inside).any():
            per_folder[folder]["not_in_gallery_accepted_as_a_brand"] = round(float(accepted[rows & ~inside].mean()), 4)
    record["known_recall@1_all_folders"] = round(float(np.mean([b == t for b, t in zip(best, known_brands)])), 4)
    return {**record, "per_query_folder": per_folder, "gallery_brands": len(gallery),
            "gallery_vectors": len(gallery.vectors), "query_brands_not_in_gallery": len(set(known_brands) -
                                                                                         set(gallery.brands))}


def write_report(report: dict, path: Path) -> None:
    """The report as JSON at ``path`` and as text beside it (``.txt``): the open-set figures before/after."""
    from vision.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(report, indent=1) + "\n")
    rows = [("", "Recall@1", "threshold", "FRR (known)", "FAR (impostors)", "EER", "brands", "vectors")]
    for name in ("before_references", "calibration"):
        r = report.get(name)
        if r and "far" in r:
            rows.append(("before references" if name == "before_references" else
                         "after references" if "before_references" in report else "gallery",
                         f"{r['known_recall@1_all_folders']:.3f}", f"{r['threshold']:.4f}", f"{r['frr']:.3f}",
                         f"{r['far']:.3f}", f"{r['eer']:.3f}", str(r["gallery_brands"]), str(r["gallery_vectors"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"gallery {report['out']} ({report['model']}): {report['brands']} brands, {report['vectors']} vectors"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    cal = report.get("calibration", {})
    for name in ("before_references", "calibration"):
        for folder, figures in report.get(name, {}).get("per_query_folder", {}).items():
            line = (f"  {'before' if name == 'before_references' else 'now'}: queries of {folder}: "
                    f"Recall@1 {figures['recall@1']:.3f}, FRR {figures['frr']} ({figures['queries']})")
            if figures["brand_not_in_gallery"]:
                line += (f"; {figures['brand_not_in_gallery']} of brands not in the gallery, "
                         f"{figures['not_in_gallery_accepted_as_a_brand']:.3f} of them accepted as some brand")
            lines.append(line)
    if "known_set" in cal:
        lines += [f"known queries: {cal['known_set']}", f"impostors: {cal['impostor_set']}",
                  f"threshold: lowest FAR at FRR <= {cal['max_false_reject']} (score: {cal['normalization']})"]
    rule = report.get("detection_rule")
    if rule:
        c, base = rule["calibration"], rule["threshold_only_at_default_conf"]
        how = (f"detection >= {rule['min_detection_score']:.4g} and open-set score >= {rule['threshold']:.4g}"
               if rule["kind"] == "pair" else
               f"detection >= {rule['min_detection_score']:.4g} and {rule['weights'][0]:.4g} * detection + "
               f"{rule['weights'][1]:.4g} * open-set score >= {rule['threshold']:.4g}")
        lines += [f"detection rule ({rule['kind']}) for detector {rule['detector']['name']} "
                  f"(sha256 {rule['detector']['sha256'][:12]}...): {how}",
                  f"  {'':26}  FRR (found marks)  FRR (end to end)  brand-free photos accepted  detections "
                  "accepted",
                  f"  {'detection rule':26}  {c['frr_found']:<17.3f}  {c['frr']:<16.3f}  {c['far_photos']:<26.3f}  "
                  f"{c['far_detections']:.3f}",
                  f"  {'threshold alone, conf ' + str(base['detection_threshold']):26}  {base['frr_found']:<17.3f}  "
                  f"{base['frr']:<16.3f}  {base['far_photos']:<26.3f}  {base['far_detections']:.3f}",
                  f"  known marks: {c['known_set']} ({c['known_missed']} not detected at confidence "
                  f"{c['collected_at_confidence']})", f"  brand-free photos: {c['impostor_set']}"]
    atomic_write_text(path.with_suffix(".txt"), "\n".join(lines) + "\n")
