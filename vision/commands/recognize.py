"""``vision recognize``: the brands on photos: logo detector -> verifier -> crops -> embeddings -> gallery, as JSON
Lines, like ``vision predict``.

    vision recognize --images shelf/                          # the shipped pipeline, results on stdout
    vision recognize --images 'shelf/*.jpg' --out brands.jsonl --draw runs/drawn
    vision recognize --images crops/ --crops --embedder my_brands --gallery my_gallery.npz   # images are logo crops
    vision recognize --images shelf/ --embedder my_brands --gallery my_gallery --zoo-dir runs/my_zoo

Defaults: the shipped pair, embedder ``brand_ensemble`` with gallery ``simple_icons_gallery``, and detector
``logo_yolo11n`` (``--crops``: no detector, each image is one logo crop). One line per image: ``{"image",
"width", "height", "logos": [{"box", "brand", "score", "best", "detection_score"}]}``, ``brand`` = ``"unknown"``
below the gallery threshold; on stdout, or ``--out FILE`` (written as ``FILE.partial`` until the run finishes; a
folder gets ``results.jsonl`` inside). ``--draw DIR`` saves an annotated PNG per image (``shelf.1.jpg`` ->
``000001_shelf.1.jpg.png``). The summary goes to stderr.
The text on each logo is read too (OCR, :mod:`vision.brands.ocr`, the ``pip install 'vision-zoo[ocr]'`` extra; logos
detected at 0.3 or more that the embedder does not name with a clear lead): a logo whose text names a gallery brand is
that brand (its result carries ``text`` when read, and ``source``). Without the extra the logos are named by the image
alone, with a warning; ``--read-text`` makes the extra required, ``--no-read-text`` turns reading off.
A gallery with a detection rule for the detector (``vision build-gallery --detector``) decides on the detection
confidence and the open-set score together; with another detector it warns and falls back to the threshold.
Unreadable files are skipped and listed; a folder without images, or no readable image at all, exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vision.brands import DEFAULT_DETECTOR, DEFAULT_EMBEDDER, DEFAULT_GALLERY
from vision.commands import add_device, add_images, add_no_progress, add_zoo_dir, command_parser


def main(argv: list[str] | None = None) -> int:
    ap = command_parser("vision recognize", __doc__)
    add_images(ap)
    ap.add_argument("--embedder", default=DEFAULT_EMBEDDER,
                    help=f"zoo name or file of an embedding model (default: {DEFAULT_EMBEDDER})")
    ap.add_argument("--gallery", type=Path, default=None,
                    help=f"gallery .npz built with that embedding model, or the name of one in the zoo (default: "
                         f"{DEFAULT_GALLERY} with the default embedder)")
    ap.add_argument("--detector", help=f"zoo name or file of a logo detector (default: {DEFAULT_DETECTOR})")
    ap.add_argument("--crops", action="store_true",
                    help="the images are logo crops: no detector, each whole image is one logo")
    ap.add_argument("--verifier", help="zoo name or file of a logo verifier rescoring the detector's boxes "
                                       "(a gallery rule calibrated for the pair applies; vision.brands.verification)")
    ap.add_argument("--conf", type=float, default=None,
                    help="detector confidence threshold (default: the confidence of the gallery's detection rule "
                         "when it was calibrated for this detector, else 0.25)")
    ap.add_argument("--threshold", type=float,
                    help="override the gallery's open-set threshold (its detection rule is then not used)")
    ap.add_argument("--no-detection-rule", action="store_true",
                    help="decide on the open-set threshold alone even when the gallery holds a detection rule for "
                         "this detector")
    text = ap.add_mutually_exclusive_group()
    text.add_argument("--read-text", dest="read_text", action="store_true", default=None,
                      help="read the text on each logo (OCR; the default when vision-zoo[ocr] is installed): a logo "
                           "whose text names a gallery brand is that brand; an error without vision-zoo[ocr]")
    text.add_argument("--no-read-text", dest="read_text", action="store_false",
                      help="name logos by the image alone: no OCR")
    ap.add_argument("--text-threshold", type=float, default=None,
                    help="lowest text match score (OCR confidence x name similarity) that names a brand "
                         "(default 0.8)")
    ap.add_argument("--text-everyday", action="store_true",
                    help="let everyday words name a brand too (\"orange\" on a juice carton names Orange)")
    ap.add_argument("--brand-names", type=Path, metavar="YAML",
                    help="more names per gallery brand read on logos: 'brand: name' or 'brand: [name, ...]' lines")
    ap.add_argument("--margin", type=float, default=None,
                    help="context around each box, fraction of its side (default: the gallery's crop_margin, the "
                         "framing it was calibrated on)")
    ap.add_argument("--foreground", default="auto", metavar="METHOD",
                    help="how each logo crop is embedded: auto (as the gallery was calibrated, the default), off "
                         "(the plain crop) or grabcut, border, colour (the crop and its foreground view fused), tight, "
                         "box (the crop and the box framed tighter fused; vision.brands.views); METHOD:name "
                         "(border:name) names each logo by the fused view and "
                         "decides on the plain crop, as the gallery was calibrated")
    ap.add_argument("--out", type=Path, help="JSON lines file (default: stdout); a folder gets results.jsonl inside")
    ap.add_argument("--draw", type=Path, help="folder for annotated PNGs")
    ap.add_argument("--no-draw", action="store_true", help=argparse.SUPPRESS)  # the old default drew: now --draw
    add_device(ap)
    ap.add_argument("--batch-size", type=int, default=16, help="photos read and run at a time")
    add_zoo_dir(ap)
    add_no_progress(ap)
    args = ap.parse_args(argv)
    if args.crops and args.detector:
        ap.error("--crops means no detector; give --crops or --detector, not both")
    detector = None if args.crops else (args.detector or DEFAULT_DETECTOR)
    if args.gallery is None:
        if args.embedder != DEFAULT_EMBEDDER:
            ap.error(f"--gallery is needed with --embedder {args.embedder}: the default gallery "
                     f"{DEFAULT_GALLERY} was built with {DEFAULT_EMBEDDER}")
        args.gallery = Path(DEFAULT_GALLERY)
    for flag, value in (("--text-threshold", args.text_threshold is not None),
                        ("--text-everyday", args.text_everyday), ("--brand-names", args.brand_names is not None)):
        if value and args.read_text is False:
            ap.error(f"{flag} reads text: not with --no-read-text")
    from vision.brands.gallery import GalleryError
    from vision.brands.recognition import draw_brands
    from vision.commands import image_inputs, zoo_dir_scope
    from vision.data.io import ImageLoadError, load_image
    from vision.progress import progress_bar
    from vision.zoo import ZooError

    try:  # before loading the models: a mistyped or empty folder should fail at once
        files = image_inputs(args.images, allow_outside=args.allow_outside_paths)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        with zoo_dir_scope(args.zoo_dir):  # the embedder, detector and gallery names
            recognizer = recognizer_class().from_pretrained(args.embedder, args.gallery, detector=detector,
                                                         device=args.device, detector_conf=args.conf,
                                                         verifier=args.verifier,
                                                         margin=args.margin, threshold=args.threshold,
                                                         foreground=args.foreground,
                                                         detection_rule="off" if args.no_detection_rule
                                                         else "auto", **text_options(args))
    except (GalleryError, ZooError, FileNotFoundError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from vision.commands import results_output

    skipped, counts, named_by_text = [], {"images": 0, "logos": 0, "unknown": 0}, 0
    # (no bar when the results go to stdout: it would interleave with them on a terminal)
    bar = progress_bar(total=len(files), enabled=bool(args.out) and not args.no_progress, desc="recognize",
                       unit="img")
    with results_output(args.out) as out, bar:
        for start in range(0, len(files), args.batch_size):
            paths, images = [], []
            for path in files[start:start + args.batch_size]:
                try:
                    images.append(load_image(path))
                    paths.append(path)
                except ImageLoadError as e:
                    skipped.append((str(path), e.reason))
            for path, image, logos in zip(paths, images, recognizer.predict(images, batch_size=args.batch_size)
                                          if images else []):
                out.write(json.dumps({"image": str(path), "width": image.shape[1], "height": image.shape[0],
                                      "logos": logos}) + "\n")
                counts["images"] += 1
                counts["logos"] += len(logos)
                counts["unknown"] += sum(r["brand"] == "unknown" for r in logos)
                named_by_text += sum(r.get("source") == "text" for r in logos)
                if args.draw:
                    draw_brands(image, logos, args.draw / f"{counts['images']:06d}_{path.name}.png")
            bar.update(len(files[start:start + args.batch_size]))
    for path, why in skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    rule = getattr(recognizer, "rule", None)
    decision = "open-set threshold" if rule is None else (
        f"detection rule ({rule.kind}) for {rule.detector_name}: detection >= {rule.min_detection_score:.4g}, "
        f"{'open-set score' if rule.kind == 'pair' else 'combined score'} >= {rule.threshold:.4g}")
    if getattr(recognizer, "reader", None) is not None:
        counts["named_by_text"] = named_by_text
    from vision.commands import results_path

    where = results_path(args.out)
    print(json.dumps({**counts, "skipped": len(skipped), "decision": decision,
                      "out": str(where) if where else "stdout"}), file=sys.stderr)
    if not counts["images"]:
        print(f"error: none of the {len(files)} image(s) could be read; nothing was recognised", file=sys.stderr)
        return 1
    return 0


def text_options(args) -> dict:
    """The recogniser's text-reading keywords from ``--read-text`` / ``--no-read-text`` and the text options (which ask
    for text: with one of them the ``[ocr]`` extra is required, as with ``--read-text``)."""
    asked = args.text_threshold is not None or args.text_everyday or args.brand_names is not None
    options = {"read_text": True if asked and args.read_text is None else args.read_text,
               "text_everyday": args.text_everyday}
    if args.text_threshold is not None:
        options["text_threshold"] = args.text_threshold
    if args.brand_names is not None:
        options["text_aliases"] = args.brand_names   # read and checked against the gallery by the recogniser
    return options


def recognizer_class():
    """The recogniser class (a seam for tests: they swap in a stand-in without loading models)."""
    from vision.brands.recognition import BrandRecognizer

    return BrandRecognizer
