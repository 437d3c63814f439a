"""``vision recognize``: recognise brands in a folder of photos: logo detector -> crops -> embeddings -> gallery,
as JSON lines.

    vision recognize --images photos/ --detector logo_yolo11n --embedder brand_resnet10t \
        --gallery simple_icons_gallery --out runs/recognized
    vision recognize --images crops/ --embedder brand_resnet10t --gallery my_gallery.npz \
        --out runs/crops     # no detector: each image is one logo crop
    vision recognize --images 'shelf/*.jpg' --embedder my_brands --gallery my_gallery --zoo-dir runs/my_zoo \
        --out runs/mine      # names looked up in your zoo folder

Writes ``<out>/results.jsonl`` (one line per image: ``{"image", "width", "height", "logos": [{"box", "brand",
"score", "best", "detection_score"}]}``, ``brand`` = ``"unknown"`` below the gallery threshold) and an annotated
PNG per image under ``<out>/annotated/`` (``--no-draw`` skips them, ``shelf.1.jpg`` -> ``000001_shelf.1.jpg.png``).
``--read-text`` also reads the text on each logo (OCR, :mod:`vision.ocr`; ``pip install 'vision-zoo[ocr]'``): a
logo whose text names a gallery brand is that brand (its result carries ``text`` and ``source``).
A gallery with a detection rule for ``--detector`` (``vision build-gallery --detector``) decides on the detection
confidence and the open-set score together; with another detector it warns and falls back to the threshold.
Unreadable files are skipped and listed; a folder without images, or no readable image at all, exits non-zero.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vision.commands import add_device, add_images, add_no_progress, add_zoo_dir, command_parser


def main(argv: list[str] | None = None) -> int:
    ap = command_parser("vision recognize", __doc__)
    add_images(ap)
    ap.add_argument("--embedder", required=True, help="zoo name or file of an embedding model")
    ap.add_argument("--gallery", type=Path, required=True,
                    help="gallery .npz built with that embedding model, or the name of one in the zoo")
    ap.add_argument("--detector", help="zoo name or file of a logo detector (default: whole image = one logo)")
    ap.add_argument("--verifier", help="zoo name or file of a logo verifier rescoring the detector's boxes "
                                       "(a gallery rule calibrated for the pair applies; vision.verification)")
    ap.add_argument("--conf", type=float, default=None,
                    help="detector confidence threshold (default: the confidence of the gallery's detection rule "
                         "when it was calibrated for this detector, else 0.25)")
    ap.add_argument("--threshold", type=float,
                    help="override the gallery's open-set threshold (its detection rule is then not used)")
    ap.add_argument("--no-detection-rule", action="store_true",
                    help="decide on the open-set threshold alone even when the gallery holds a detection rule for "
                         "this detector")
    ap.add_argument("--read-text", action="store_true",
                    help="also read the text on each logo (OCR): a logo whose text names a gallery brand is that "
                         "brand; needs vision-zoo[ocr]")
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
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--no-draw", action="store_true", help="skip the annotated PNGs")
    add_device(ap)
    ap.add_argument("--batch-size", type=int, default=16, help="photos read and run at a time")
    add_zoo_dir(ap)
    add_no_progress(ap)
    args = ap.parse_args(argv)
    for flag, value in (("--text-threshold", args.text_threshold is not None),
                        ("--text-everyday", args.text_everyday), ("--brand-names", args.brand_names is not None)):
        if value and not args.read_text:
            ap.error(f"{flag} needs --read-text")
    from vision.commands import image_inputs, zoo_dir_scope
    from vision.data.io import ImageLoadError, load_image
    from vision.gallery import GalleryError
    from vision.progress import progress_bar
    from vision.recognition import draw_brands
    from vision.zoo import ZooError

    try:  # before loading the models: a mistyped or empty folder should fail at once
        files = image_inputs(args.images, allow_outside=args.allow_outside_paths)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        with zoo_dir_scope(args.zoo_dir):  # the embedder, detector and gallery names
            recognizer = recognizer_class().from_pretrained(args.embedder, args.gallery, detector=args.detector,
                                                         device=args.device, detector_conf=args.conf,
                                                         verifier=args.verifier,
                                                         margin=args.margin, threshold=args.threshold,
                                                         detection_rule="off" if args.no_detection_rule
                                                         else "auto", **text_options(args))
    except (GalleryError, ZooError, FileNotFoundError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    skipped, counts, named_by_text = [], {"images": 0, "logos": 0, "unknown": 0}, 0
    bar = progress_bar(total=len(files), enabled=not args.no_progress, desc="recognize", unit="img")
    with open(args.out / "results.jsonl", "w", encoding="utf-8") as out, bar:
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
                if not args.no_draw:
                    draw_brands(image, logos, args.out / "annotated" / f"{counts['images']:06d}_{path.name}.png")
            bar.update(len(files[start:start + args.batch_size]))
    for path, why in skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    rule = getattr(recognizer, "rule", None)
    decision = "open-set threshold" if rule is None else (
        f"detection rule ({rule.kind}) for {rule.detector_name}: detection >= {rule.min_detection_score:.4g}, "
        f"{'open-set score' if rule.kind == 'pair' else 'combined score'} >= {rule.threshold:.4g}")
    if args.read_text:
        counts["named_by_text"] = named_by_text
    print(json.dumps({**counts, "skipped": len(skipped), "decision": decision,
                      "out": str(args.out / "results.jsonl")}))
    if not counts["images"]:
        print(f"error: none of the {len(files)} image(s) could be read; nothing was recognised", file=sys.stderr)
        return 1
    return 0


def text_options(args) -> dict:
    """The recogniser's text-reading keywords from ``--read-text`` and its options (none without it)."""
    if not args.read_text:
        return {}
    from vision.ocr import TextReader

    reader = TextReader()
    reader.engine   # RapidOCR missing: fail before any photo is read
    options = {"reader": reader, "text_everyday": args.text_everyday}
    if args.text_threshold is not None:
        options["text_threshold"] = args.text_threshold
    if args.brand_names is not None:
        options["text_aliases"] = args.brand_names   # read and checked against the gallery by the recogniser
    return options


def recognizer_class():
    """The recogniser class (a seam for tests: they swap in a stand-in without loading models)."""
    from vision.recognition import BrandRecognizer

    return BrandRecognizer
