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
(e.g. the val split of ``vision make-brand-dataset``): the threshold is set so that ``--frr`` of those queries
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
brand (see :mod:`vision.synth.styles`). ``--wordmarks N`` and ``--lockups N`` add the brand's name set as text
(alone, and beside or under its symbol) in N fonts; the gallery records which kinds of reference (symbol, wordmark,
lockup, photo) each brand holds, and the report counts them.

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

In Python: ``vision.build_gallery(embedder=..., folders=[...], out=...)``, each flag a field of
:class:`vision.brands.building.GallerySpec`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vision.commands import add_device, add_no_progress, add_verifier, add_zoo_dir, command_parser, zoo_dir_scope

# (vision.brands.gallery.MERGES, vision.retrieval.INDEX_KINDS; spelled out so --help loads neither numpy nor faiss:
# tests/test_commands.py checks they agree)
MERGES = ("all", "mean")
INDEX_KINDS = ("flat", "hnsw", "ivf")
NORMALIZATIONS = ("none", "background", "topk")
RULE_KINDS = ("pair", "logistic")   # vision.brands.detection_rule.RULE_KINDS


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
    ap.add_argument("--reference-styles", default="", metavar="STYLES",
                    help="comma-separated: each symbol reference (the simple-icons render in brand colour, each "
                         "--icon-sets symbol) also redrawn as outline, fill (its silhouette), mono and/or inverted, "
                         "one reference each (default: none)")
    ap.add_argument("--wordmarks", type=int, default=0, metavar="N",
                    help="each --simple-icons brand gets N more references: its title set as text in N fonts, each "
                         "drawn in the --renders colours (vision.synth.wordmarks; 0: none)")
    ap.add_argument("--lockups", type=int, default=0, metavar="N",
                    help="each --simple-icons brand gets N more references: its symbol with its title beside it "
                         "and under it, font by font, in the --renders colours (0: none)")
    ap.add_argument("--fonts", type=Path, help="fetched @fontsource fonts (tools/fetch_fonts.py) for --wordmarks "
                    "and --lockups, "
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
    ap.add_argument("--text-rule", action="store_true",
                    help="also calibrate one decision over detection, open-set score and the text read on each logo "
                         "(the [ocr] extra) on the same photos, stored as the gallery's text rule: the recogniser "
                         "uses it when it reads text; refused when it accepts a brand on more than 5%% of the "
                         "brand-free photos")
    ap.add_argument("--text-rule-candidates", type=int, default=0, metavar="K",
                    help="with --text-rule: the rule chooses per logo among the embedder's K best brands and the "
                         "brands its text names, however weakly (measured: see the brand results; default 0: it "
                         "decides on the embedder's best or the brand the text names at 0.8)")
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
    ap.add_argument("--foreground", default=None, metavar="METHOD",
                    help="calibrate for logo crops embedded with their foreground view fused (grabcut, border, "
                         "colour; or tight, box: the box framed tighter; vision.brands.views): the --queries, "
                         "--impostors (and cohort) and detections are embedded so, references stay plain; stored "
                         "in the gallery, which the recogniser then "
                         "embeds its logos with. Default: plain crops")
    ap.add_argument("--index", choices=INDEX_KINDS, default="flat")
    ap.add_argument("--out", type=Path, required=True, help="gallery file to write (.npz)")
    ap.add_argument("--report", type=Path, help="also write the report as JSON here and as text next to it (.txt)")
    add_device(ap)
    ap.add_argument("--batch-size", type=int, default=128)
    add_zoo_dir(ap)
    add_no_progress(ap)
    args = ap.parse_args(argv)
    from vision.brands.building import GallerySpec, GallerySpecError, build_gallery
    from vision.brands.detection_rule import DetectionRuleError
    from vision.brands.gallery import GalleryError
    from vision.brands.verification import VerifierError
    from vision.data.datasets import ManifestError
    from vision.progress import warnings_above_progress_bar
    from vision.synth.styles import IconSetError
    from vision.synth.wordmarks import FontError
    from vision.zoo import ZooError

    spec = GallerySpec(
        embedder=args.embedder, folders=args.folder, simple_icons=args.simple_icons, renders=args.renders,
        merge=args.merge, icon_sets=args.icon_sets, reference_styles=args.reference_styles,
        wordmarks=args.wordmarks, lockups=args.lockups,
        fonts=args.fonts,
        references=args.references, calibrate=args.calibrate, queries=args.queries, impostors=args.impostors,
        normalization=args.normalization, topk=args.topk, frr=args.frr, threshold=args.threshold,
        detector=args.detector, verifier=args.verifier, verifier_power=args.verifier_power,
        verifier_detector_conf=args.verifier_detector_conf, known_scenes=args.known_scenes,
        impostor_photos=args.impostor_photos, decision_rule=args.decision_rule, rule_budget=args.rule_budget,
        text_rule=args.text_rule, text_rule_candidates=args.text_rule_candidates,
        detector_floor=args.detector_floor, margin=args.margin, foreground=args.foreground, index=args.index,
        out=args.out, report=args.report,
        device=args.device, batch_size=args.batch_size, progress=not args.no_progress)
    try:
        spec = spec.checked()   # options that do not fit together: a usage error, before any model loads
    except GallerySpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        with warnings_above_progress_bar(), zoo_dir_scope(args.zoo_dir):
            _, report = build_gallery(spec)
    except (GalleryError, ManifestError, ZooError, FileNotFoundError, IconSetError, FontError, DetectionRuleError,
            VerifierError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0
