"""Building a brand gallery: embed the brands, calibrate the open-set threshold (and a detection-aware rule).

The library behind ``vision build-gallery`` (whose ``--help`` explains each option at length); every flag is a
field of :class:`GallerySpec` with the same name (``--known-scenes`` is ``known_scenes``; ``--folder`` is
``folders``)::

    import vision
    gallery, report = vision.build_gallery(embedder="brand_resnet10t", folders=["my_logos/"], out="my_gallery.npz")
    gallery, report = vision.build_gallery(embedder="brand_resnet10t", simple_icons=True,
                                           renders="brand,black,white", merge="mean", calibrate="val/")

Options that do not fit together raise :class:`GallerySpecError` (naming the flag) before any model loads;
problems found while building (a missing folder, a brand in two sources) raise their own error types.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vision.brands.gallery import MERGES, NORMALIZATIONS, BrandGallery, GalleryError

RULE_BUDGETS = ("found", "all")
REFERENCE_STYLES = ("outline", "fill", "mono", "inverted")   # vision build-gallery --reference-styles


class GallerySpecError(GalleryError):
    """Gallery options that do not fit together (the command's usage errors: exit 2)."""


def _paths(value) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [Path(value)]
    return [Path(v) for v in value]


def _path(value) -> Path | None:
    return None if value is None else Path(value)


@dataclass
class GallerySpec:
    """Everything ``vision build-gallery`` takes, as typed fields (see that command's ``--help`` for each).

    ``renders`` is the simple-icons render colours, a tuple or the command's comma-separated text; ``out`` and
    ``report`` are written when given. :meth:`checked` resolves the defaults that depend on other fields
    (``normalization``, ``frr``) and refuses what does not fit together."""

    embedder: str | Path
    folders: list[Path] = field(default_factory=list)
    simple_icons: bool = False
    renders: tuple[str, ...] | str = ("brand",)
    merge: str = "all"
    icon_sets: Path | None = None
    # each symbol reference (simple-icons' brand-colour render, each icon-set symbol) also drawn in these styles
    # (REFERENCE_STYLES), one reference each
    reference_styles: tuple[str, ...] | str = ()
    wordmarks: int = 0
    lockups: int = 0
    fonts: Path | None = None
    references: list[Path] = field(default_factory=list)
    calibrate: Path | None = None
    queries: list[Path] = field(default_factory=list)
    impostors: list[Path] = field(default_factory=list)
    normalization: str | None = None     # default: background with impostors, else none
    topk: int = 5
    frr: float | None = None             # default: 0.10 with impostors or a detector, else 0.05
    threshold: float | None = None
    detector: str | Path | None = None
    verifier: str | Path | None = None
    verifier_power: float = 0.75
    verifier_detector_conf: float | None = None
    known_scenes: list[Path] = field(default_factory=list)
    impostor_photos: list[Path] = field(default_factory=list)
    decision_rule: str = "logistic"
    text_rule: bool = False              # also a logistic_text rule over the text read on each logo (the [ocr] extra)
    text_rule_candidates: int = 0        # K > 0: the text rule chooses among K best brands + text-named ones instead
    rule_budget: str = "found"
    detector_floor: float = 0.10
    margin: float | None = None          # default: vision.crops.CROP_MARGIN
    # query crops (calibration queries, impostors and their cohort, detections) embedded with their foreground view
    # fused (vision.brands.views; a method name or an option record); references stay plain. None: plain crops
    foreground: str | dict | None = None
    index: str = "flat"
    out: Path | None = None
    report: Path | None = None
    device: str | None = None
    batch_size: int = 128
    progress: bool = True

    def checked(self) -> GallerySpec:
        """A copy with paths made ``Path``, the render colours parsed and the defaults resolved; a
        :class:`GallerySpecError` naming the flag for options that do not fit together."""
        from vision.brands.detection_rule import RULE_KINDS
        from vision.retrieval import INDEX_KINDS
        from vision.synth.render import parse_render_colors

        s = dataclasses.replace(
            self, folders=_paths(self.folders), references=_paths(self.references), queries=_paths(self.queries),
            impostors=_paths(self.impostors), known_scenes=_paths(self.known_scenes),
            impostor_photos=_paths(self.impostor_photos), icon_sets=_path(self.icon_sets), fonts=_path(self.fonts),
            calibrate=_path(self.calibrate), out=_path(self.out), report=_path(self.report))
        for name, allowed in (("merge", MERGES), ("index", INDEX_KINDS), ("decision_rule", RULE_KINDS),
                              ("rule_budget", RULE_BUDGETS), ("normalization", (None, *NORMALIZATIONS))):
            if getattr(s, name) not in allowed:
                raise GallerySpecError(f"--{name.replace('_', '-')} {getattr(s, name)!r}: choose one of "
                                       f"{', '.join(str(a) for a in allowed if a is not None)}")
        if s.batch_size < 1:
            raise GallerySpecError(f"--batch-size {s.batch_size}: give at least 1")
        for name in ("wordmarks", "lockups"):
            if getattr(s, name) < 0:
                raise GallerySpecError(f"--{name} {getattr(s, name)}: give 0 or more")
            if getattr(s, name) and not s.simple_icons:
                raise GallerySpecError(f"--{name} adds references to simple-icons brands: give --simple-icons too")
        if not s.folders and not s.simple_icons and not s.references:
            raise GallerySpecError("give --folder, --simple-icons and/or --references")
        if (s.queries or s.normalization not in (None, "none")) and not s.impostors:
            raise GallerySpecError(f"--queries and --normalization {s.normalization or ''} calibrate against "
                                   "impostors: give --impostors DIR")
        if s.normalization is None:
            s.normalization = "background" if s.impostors else "none"
        if s.impostors and s.threshold is not None:
            raise GallerySpecError("--threshold sets the threshold, --impostors calibrates it: give one")
        if s.frr is None:
            s.frr = 0.10 if s.impostors or s.detector else 0.05
        if (s.detector or s.known_scenes or s.impostor_photos) and not (
                s.detector and s.known_scenes and s.impostor_photos):
            raise GallerySpecError("a detection-aware rule needs --detector, --known-scenes and --impostor-photos "
                                   "together")
        if s.text_rule_candidates < 0 or (s.text_rule_candidates and not s.text_rule):
            raise GallerySpecError(f"--text-rule-candidates {s.text_rule_candidates}: give 0 or more, with "
                                   "--text-rule")
        if s.text_rule and not s.detector:
            raise GallerySpecError("--text-rule is calibrated with the detection rule: give --detector, "
                                   "--known-scenes and --impostor-photos too")
        if s.verifier and not s.detector:
            raise GallerySpecError("--verifier rescores a detector's boxes: give --detector (with --known-scenes "
                                   "and --impostor-photos) too")
        from vision.brands.views import ForegroundOptionError, foreground_option

        try:
            s.foreground = foreground_option(s.foreground)
        except ForegroundOptionError as e:
            raise GallerySpecError(f"--foreground: {e}") from None
        if s.foreground is not None and s.foreground["fusion"] == "name" and s.text_rule:
            raise GallerySpecError("--foreground with fusion 'name' decides on plain crops, and --text-rule scores "
                                   "candidates on one vector: give one of them (or fusion 'mean')")
        if s.foreground is not None and s.foreground["fusion"] == "mean" and not s.impostors:
            raise GallerySpecError("--foreground sets how the calibration crops are embedded: give --impostors "
                                   "(and --queries) to calibrate with it")
        styles = s.reference_styles
        styles = tuple(v.strip() for v in (styles.split(",") if isinstance(styles, str) else styles) if v.strip())
        unknown = [v for v in styles if v not in REFERENCE_STYLES]
        if unknown or len(set(styles)) != len(styles):
            wrong = f" (not {', '.join(unknown)})" if unknown else ""
            raise GallerySpecError(f"--reference-styles {','.join(styles)}: give distinct styles of "
                                   f"{', '.join(REFERENCE_STYLES)}{wrong}")
        if styles and not s.simple_icons:
            raise GallerySpecError("--reference-styles redraws simple-icons and icon-set symbols: give --simple-icons "
                                   "too")
        s.reference_styles = styles
        try:
            s.renders = parse_render_colors(s.renders if isinstance(s.renders, str) else ",".join(s.renders))
        except ValueError as e:
            raise GallerySpecError(f"--renders: {e}") from None
        return s


def build_gallery(spec: GallerySpec | None = None, /, **options: Any) -> tuple[BrandGallery, dict]:
    """Build (and calibrate) a brand gallery; ``(gallery, report)``. Give a :class:`GallerySpec` or its fields as
    keywords (keywords next to a spec override its fields). The gallery is saved to ``out`` and the report written
    to ``report`` (JSON, and text beside it) when those are given; the report ends with the gallery's threshold,
    ``out`` and the wall time."""
    fields = {f.name for f in dataclasses.fields(GallerySpec)}
    unknown = sorted(set(options) - fields)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(fields), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the options are {', '.join(sorted(fields))}"
        raise GallerySpecError(f"unknown gallery option {unknown[0]!r}; {hint}")
    if spec is None:
        if "embedder" not in options:
            raise GallerySpecError("give embedder= (a zoo name or file of an embedding model)")
        spec = GallerySpec(**options)
    elif options:
        spec = dataclasses.replace(spec, **options)
    spec = spec.checked()
    start = time.perf_counter()
    gallery, report = _build(spec)
    report.update(reference_kinds=kinds_summary(gallery), threshold=gallery.threshold,
                  out=None if spec.out is None else str(spec.out),
                  wall_s=round(time.perf_counter() - start, 1))
    if spec.report is not None:
        write_report(report, spec.report)
    return gallery, report


def _build(spec: GallerySpec) -> tuple[BrandGallery, dict]:
    """Embed the brands, calibrate and save the gallery, for a checked ``spec``."""
    from vision.crops import CROP_MARGIN
    from vision.data.datasets import scan_image_folder
    from vision.features import FeatureExtractor
    from vision.progress import progress_bar
    from vision.synth.render import simple_icons_renders

    bar = partial(progress_bar, enabled=spec.progress)
    fx = FeatureExtractor.from_pretrained(spec.embedder, backend="torch", device=spec.device)
    if not fx.card.sha256:  # the gallery could not be bound to the model: recognisers refuse it by default
        raise GalleryError(f"--embedder {spec.embedder}: this model has no sha256 (a weights file outside a zoo "
                           "manifest), so the gallery could not record which model built it; pass a zoo name or a "
                           "file listed in its folder's manifest")
    images: dict[str, list] = {}
    references: dict[str, list[str]] = {}
    kinds: dict[str, list[str]] = {}     # per image its kind of artwork (vision.brands.gallery.REFERENCE_KINDS)
    for folder in spec.folders:
        samples, table = scan_image_folder(folder)
        for s in samples:
            images.setdefault(table.names[s.label], []).append(s.path)
            references.setdefault(table.names[s.label], []).append(folder.name)
            kinds.setdefault(table.names[s.label], []).append("other")
    if spec.simple_icons:
        size = fx.card.data_config.input_size
        for slug, renders in simple_icons_renders(size, colors=spec.renders, progress=bar).items():
            if slug in images:
                raise GalleryError(f"brand {slug!r} is both in a --folder and in simple-icons; rename one")
            images[slug] = renders
            references[slug] = ["simple-icons"] * len(renders)
            kinds[slug] = ["symbol"] * len(renders)
    if spec.icon_sets is not None:
        if not spec.simple_icons:
            raise GalleryError("--icon-sets adds artwork styles to simple-icons brands: give --simple-icons too")
        from vision.synth.styles import icon_kind

        for slug, renders in style_renders(spec.icon_sets, fx.card.data_config.input_size).items():
            images[slug] += [image for _, image in renders]
            references[slug] += [key for key, _ in renders]
            kinds[slug] += ["wordmark" if icon_kind(*key.split(":", 1)) == "wordmark" else "symbol"
                            for key, _ in renders]
    if spec.reference_styles:
        add_reference_styles(images, references, kinds, spec.reference_styles,
                             spec.renders.index("brand") if "brand" in spec.renders else 0)
    if spec.wordmarks or spec.lockups:   # the name as text, alone and beside the symbol, in the render colours
        from vision.synth.wordmarks import load_fonts, lockup_references, wordmark_references

        fonts = load_fonts(spec.fonts)
        for make, count, kind in ((wordmark_references, spec.wordmarks, "wordmark"),
                                  (lockup_references, spec.lockups, "lockup")):
            if not count:
                continue
            for slug, renders in make(fx.card.data_config.input_size, brands=list(images), fonts=fonts, count=count,
                                      progress=bar, colors=spec.renders).items():
                images[slug] += [image for _, image in renders]
                references[slug] += [key for key, _ in renders]
                kinds[slug] += [kind] * len(renders)
    margin = CROP_MARGIN if spec.margin is None else spec.margin
    gallery = BrandGallery.for_model(fx, index=spec.index, threshold=spec.threshold,
                                     normalization=spec.normalization, topk=spec.topk, crop_margin=margin)
    if images:
        gallery.add_images(fx, images, batch_size=spec.batch_size, merge=spec.merge, references=references,
                           kinds=kinds)
    report = {"brands": len(gallery), "vectors": len(gallery.vectors), "dim": gallery.dim,
              "model": gallery.model_name}
    from vision.brands.views import deciding_view, with_foreground

    # the calibration's query crops are embedded as the recogniser will embed its logos with this gallery: fused
    # ("mean"), or plain where the view only names the brand ("name": the plain crop's open-set score decides)
    gallery.foreground = spec.foreground
    qfx = with_foreground(fx, deciding_view(spec.foreground), margin)
    if spec.foreground is not None:
        report["foreground"] = dict(spec.foreground)
    user_refs = reference_photos(spec.references)
    groups = None
    if spec.impostors:
        known, known_brands, known_sources, known_set = known_queries(qfx, spec.calibrate, spec.queries,
                                                                      spec.batch_size)
        impostors, groups, impostor_set = impostor_queries(qfx, spec.impostors, spec.batch_size, margin)
        if spec.normalization == "background":   # calibration scores each impostor against the others
            gallery.set_background(impostors)
            impostor_set += " (also the background cohort: each scored without its own photo's crops)"
        sets = dict(known=known, known_brands=known_brands, known_sources=known_sources, impostors=impostors,
                    max_false_reject=spec.frr,
                    known_set=known_set, impostor_set=impostor_set, impostor_groups=groups)
        if user_refs:
            if len(gallery):
                report["before_references"] = open_set_report(gallery, **sets)
            add_references(fx, gallery, user_refs, spec.batch_size)
            report.update(brands=len(gallery), vectors=len(gallery.vectors), references=references_summary(user_refs))
        report["calibration"] = open_set_report(gallery, **sets)
    else:
        if user_refs:
            add_references(fx, gallery, user_refs, spec.batch_size)
            report.update(brands=len(gallery), vectors=len(gallery.vectors), references=references_summary(user_refs))
        if spec.calibrate is not None and spec.threshold is None:
            # a simple-icons-only gallery is calibrated on galleries built the same way
            same_way = spec.renders if spec.simple_icons and not spec.folders and not user_refs else None
            report["calibration"] = calibrate(fx, spec.calibrate, spec.frr, same_way, spec.merge)
            gallery.threshold = report["calibration"]["threshold"]
            gallery.calibration = {"method": "known-only quantile", **report["calibration"]}
    if spec.detector:
        if gallery.threshold is None:
            raise GalleryError("a detection-aware rule is calibrated on a calibrated gallery: give --impostors "
                               "(or --calibrate, or --threshold) too")
        report["detection_rule"] = calibrate_rule(
            qfx, gallery, spec.detector, spec.known_scenes, spec.impostor_photos, spec.frr, kind=spec.decision_rule,
            floor=spec.detector_floor, budget=spec.rule_budget, verifier=spec.verifier,
            verifier_power=spec.verifier_power, verifier_detector_conf=spec.verifier_detector_conf,
            device=spec.device, cohort_groups=groups, bar=bar, text_rule=spec.text_rule,
            text_rule_candidates=spec.text_rule_candidates)
        if "text_rule" in report["detection_rule"]:
            report["text_rule"] = report["detection_rule"].pop("text_rule")
    if spec.out is not None:
        gallery.save(spec.out)
    return gallery, report


def calibrate(fx, folder: Path, frr: float, renders: tuple[str, ...] | None = None, merge: str = "all") -> dict:
    """Threshold at ``frr`` for ``folder/query`` against a gallery of ``folder/gallery``; also its recall@1.

    With ``renders`` the calibration gallery is rebuilt from simple-icons renders of ``folder/gallery``'s brand
    slugs in those colours and merged as ``merge``: the same construction as the gallery being calibrated."""
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


def read_known_scenes(folders: list[Path]) -> list[dict]:
    """The ``queries.json`` entries of the ``--known-scenes`` folders (``image`` made a path), each checked."""

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


def calibrate_rule(fx, gallery: BrandGallery, detector: str | Path, known_scenes: Sequence[Path],
                   impostor_photos: Sequence[Path], frr: float = 0.10, *, kind: str = "logistic",
                   floor: float = 0.10, budget: str = "found", verifier: str | Path | None = None,
                   verifier_power: float = 0.75, verifier_detector_conf: float | None = None,
                   device: str | None = None, cohort_groups: list[str] | None = None,
                   bar: Callable | None = None, text_rule: bool = False, text_rule_candidates: int = 0) -> dict:
    """Calibrate and attach the detection-aware rule (``vision build-gallery --help``: ``--detector``); its record,
    and the threshold alone at the recogniser's default confidence measured on the same photos. ``frr``, ``kind``,
    ``floor`` and ``budget`` are ``--frr``, ``--decision-rule``, ``--detector-floor`` and ``--rule-budget``;
    ``cohort_groups``: the impostor crops' groups (their ``source`` photos), with a background-normalised gallery.
    ``text_rule`` (``--text-rule``): also read the text on the same photos' logos as the recogniser reads it and
    attach a ``logistic_text`` rule (:mod:`vision.brands.fusion`) as the gallery's ``text_rule``, refused when it
    accepts a brand on more than 5% of the brand-free photos; its record is the report's ``text_rule``.
    ``text_rule_candidates`` (``--text-rule-candidates K``): that rule is a ``logistic_candidates`` one instead,
    choosing per logo among the embedder's K best brands and the brands its text names
    (:func:`vision.brands.fusion.calibrate_candidate_rule`)."""
    from vision.brands.detection_rule import (
        DetectionRule,
        calibrate_detection_rule,
        known_scene_set,
        photo_set,
        rule_figures,
        source_rows,
    )
    from vision.brands.recognition import DEFAULT_DETECTOR_CONF, detect_and_embed, score_logos
    from vision.data.io import list_images
    from vision.predictors import predictor
    from vision.progress import progress_bar

    bar = bar or progress_bar
    known_scenes, impostor_photos = _paths(known_scenes), _paths(impostor_photos)
    model = predictor(detector, backend="torch", device=device, conf=floor)
    if model.card.task != "detection":
        raise GalleryError(f"--detector {detector} is a {model.card.task} model, not a detector")
    if not model.card.sha256:
        raise GalleryError(f"--detector {detector}: this model has no sha256 (a weights file outside a zoo "
                           "manifest), so the rule could not record which detector it was calibrated for")
    if verifier:
        from vision.brands.verification import LogoVerifier, VerifiedDetector

        checker = LogoVerifier.from_pretrained(verifier, backend="torch", device=device)
        if not checker.card.sha256:
            raise GalleryError(f"--verifier {verifier}: this model has no sha256 (a weights file outside a zoo "
                               "manifest), so the rule could not record which verifier it was calibrated for")
        model = VerifiedDetector(model, checker, power=verifier_power, detector_conf=verifier_detector_conf)
    scenes = read_known_scenes(known_scenes)
    missing = sorted({s["brand"] for s in scenes} - set(gallery.brands))
    if missing:
        raise GalleryError(f"--known-scenes: {len(missing)} brands are not in the gallery (e.g. {missing[0]!r})")
    photos = []
    for folder in impostor_photos:
        found = list_images(folder) if folder.is_dir() else []
        if not found:
            raise FileNotFoundError(f"--impostor-photos {folder}: no images in it")
        photos += found
    if text_rule:
        from vision.brands.ocr import BrandNames, TextReader, missing_packages

        if missing_packages():
            raise GalleryError(f"--text-rule reads the text on logos: {', '.join(missing_packages())} not installed "
                               "(pip install 'vision-zoo[ocr]')")
        reader, names = TextReader(), BrandNames.from_gallery(gallery)   # before the photos: a missing extra fails now
    with bar(total=len(scenes) + len(photos), desc="detection rule", unit="img") as progress:
        known_logos = detect_and_embed(fx, model, [s["image"] for s in scenes], gallery.crop_margin,
                                       progress=progress.update)
        background = cohort_groups and gallery.normalization == "background"
        rows = source_rows(photos, cohort_groups, by="folder") if background else None
        free_logos = detect_and_embed(fx, model, photos, gallery.crop_margin, progress=progress.update)
    known_best, known_scores = score_logos(gallery, known_logos)
    free_best, free_scores = score_logos(gallery, free_logos, rows)
    known_set = known_scene_set([d for d, _ in known_logos], known_scores, [s["box"] for s in scenes], known_best,
                                [s["brand"] for s in scenes])
    impostors = photo_set([d for d, _ in free_logos], free_scores)
    left_out = 0 if rows is None else sum(len(r) > 0 for r in rows)
    rule = calibrate_detection_rule(
        known_set, impostors, model.card.name, model.card.sha256, kind=kind,
        max_false_reject=frr, min_detection_score=floor, budget=budget,
        known_set=f"{len(scenes)} photos with one known-brand mark from {', '.join(map(str, known_scenes))}",
        impostor_set=f"{len(photos)} brand-free photos from {', '.join(map(str, impostor_photos))}"
                     + (f" ({left_out} scored without the cohort crops of their folder)" if rows is not None else ""))
    if verifier:   # the rule records its VerifiedDetector: the recogniser brings the same verifier along
        rule = dataclasses.replace(rule, verifier=model.describe())
    gallery.detection_rule = rule
    record = {}
    if text_rule:
        from vision.brands.fusion import (
            calibrate_candidate_rule,
            calibrate_text_rule,
            channel_table,
            marks,
            read_logos,
            text_gate,
        )

        boxes = [s["box"] for s in scenes]
        images = [s["image"] for s in scenes]
        k = text_rule_candidates
        known_table = channel_table(gallery, names, known_logos, read_logos(
            reader, images, known_logos, text_gate(gallery, known_logos, marks(boxes))), top_k=k)
        free_table = channel_table(gallery, names, free_logos, read_logos(
            reader, photos, free_logos, text_gate(gallery, free_logos)), rows, top_k=k)
        sets = dict(known_set=rule.calibration["known_set"], impostor_set=rule.calibration["impostor_set"])
        fused = (calibrate_candidate_rule(known_table, scenes, free_table, model.card, fx.card, k, frr, floor, budget,
                                          **sets) if k else
                 calibrate_text_rule(known_table, scenes, free_table, model.card, fx.card, frr, floor, budget, **sets))
        gallery.text_rule = dataclasses.replace(fused, verifier=rule.verifier)
        record["text_rule"] = gallery.text_rule.to_json()
    threshold_only = DetectionRule("pair", rule.detector_name, rule.detector_sha256, DEFAULT_DETECTOR_CONF,
                                   float(gallery.threshold))
    return {**rule.to_json(), "threshold_only_at_default_conf": {
        "detection_threshold": DEFAULT_DETECTOR_CONF, "threshold": round(float(gallery.threshold), 6),
        **rule_figures(threshold_only, known_set, impostors)}, **record}


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


def reference_style_image(image: np.ndarray, style: str) -> np.ndarray:
    """A clean reference image redrawn in one of :data:`REFERENCE_STYLES` (the training augmentation's drawing,
    :mod:`vision.data.style_augment`): ``outline`` a band along the mark's contour, ``fill`` its silhouette (holes
    filled), ``mono`` dark on light, ``inverted`` light on dark."""
    from vision.data.style_augment import FillToOutline, MonoMark, OutlineToFill

    image = np.asarray(image)
    if style == "outline":
        return FillToOutline(p=1).apply(image, width=0.035)
    if style == "fill":
        return OutlineToFill(p=1).apply(image)
    if style in ("mono", "inverted"):
        return MonoMark(p=1).apply(image, inverted=style == "inverted")
    raise GallerySpecError(f"unknown reference style {style!r}; choose one of {', '.join(REFERENCE_STYLES)}")


def add_reference_styles(images: dict, references: dict, kinds: dict, styles: Sequence[str],
                         brand_render: int = 0) -> None:
    """Add each symbol reference of each brand redrawn in ``styles``, in place: simple-icons' render number
    ``brand_render`` (the brand colour) and every other symbol that is not a simple-icons render; reference names
    ``<reference>/<style>``. A redrawing identical to its source (no mark found, nothing to fill) is left out."""
    for slug in list(images):
        sources = [(i, name) for i, (name, kind) in enumerate(zip(references[slug], kinds[slug]))
                   if kind == "symbol" and (name != "simple-icons" or i == brand_render)]
        for i, name in sources:
            image = np.asarray(images[slug][i]) if not isinstance(images[slug][i], (str, Path)) else None
            if image is None:
                continue
            for style in styles:
                drawn = reference_style_image(image, style)
                if drawn is image or np.array_equal(drawn, image):
                    continue
                images[slug].append(drawn)
                references[slug].append(f"{name}/{style}")
                kinds[slug].append("symbol")


def kinds_summary(gallery) -> dict:
    """How many brands hold each kind of reference (:data:`vision.brands.gallery.REFERENCE_KINDS`), and each
    combination of kinds (``"symbol+wordmark+lockup"``); per brand they are in the gallery file
    (:meth:`BrandGallery.reference_kinds`)."""
    from collections import Counter

    held = gallery.reference_kinds()
    return {"brands_with": dict(Counter(k for kinds in held.values() for k in kinds)),
            "combinations": dict(Counter("+".join(kinds) for kinds in held.values()).most_common()),
            "vectors": dict(Counter(gallery.kinds))}


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


def known_queries(fx, calibrate: Path | None, queries: Sequence[Path], batch_size: int = 128):
    """Embeddings, brands, source folders and a description of the known-brand queries (``--calibrate DIR/query``,
    ``--queries``)."""
    from vision.data.datasets import scan_image_folder

    folders = ([Path(calibrate) / "query"] if calibrate is not None else []) + _paths(queries)
    if not folders:
        raise GalleryError("--impostors needs known-brand queries too: --calibrate DIR (DIR/query/<brand>/*) or "
                           "--queries DIR/<brand>/*")
    paths, brands, sources = [], [], []
    for folder in folders:
        samples, table = scan_image_folder(folder)
        paths += [s.path for s in samples]
        brands += [table.names[s.label] for s in samples]
        sources += [str(folder)] * len(samples)
    return fx(paths, batch_size=batch_size), brands, sources, \
        f"{len(paths)} crops of {len(set(brands))} brands from {', '.join(map(str, folders))}"


def impostor_queries(fx, folders: list[Path], batch_size: int, margin: float | None = None):
    """Embeddings, groups and a description of the impostor crops under ``folders`` (any image tree). ``margin``:
    the gallery's crop margin, which the crops' ``impostors.json`` (``vision make-impostors``), when there is one in
    a folder or the folder above it, must record."""
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
    kinds = report.get("reference_kinds")
    if kinds:
        lines += ["reference kinds, brands holding each: " + ", ".join(f"{k} {n}" for k, n in
                                                                       kinds["brands_with"].items()),
                  "  combinations: " + ", ".join(f"{k} {n}" for k, n in kinds["combinations"].items())]
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
    fused = report.get("text_rule")
    if fused:
        c, w = fused["calibration"], fused["weights"]
        top = f", top {fused['top_k']}" if "top_k" in fused else ""
        lines += [f"text rule ({fused['kind']}{top}) for detector {fused['detector']['name']} and embedder "
                  f"{fused['embedder']['name']}: detection >= {fused['min_detection_score']:.4g} and {w[0]:.4g} * "
                  f"detection + {w[1]:.4g} * open-set score + {w[2]:.4g} * text match + {w[3]:.4g} * other text >= "
                  f"{fused['threshold']:.4g}",
                  f"  FRR (found marks) {c['frr_found']:.3f}, FRR (end to end) {c['frr']:.3f}, brand-free photos "
                  f"accepted {c['far_photos']:.3f}, detections accepted {c['far_detections']:.3f} (logos read: "
                  f"{c['read_known']} known, {c['read_impostors']} brand-free)"]
    atomic_write_text(path.with_suffix(".txt"), "\n".join(lines) + "\n")
