#!/usr/bin/env python
"""Brand-recognition figures for the README: unseen simple-icons brands, open-set rejection, Grocery Store photos.

    python -m benchmarks.brand_eval --embedder brand_resnet10t --data runs/brands \
        --gallery weights/simple_icons_gallery.npz --grocery ../shared/datasets/grocery_store --detector logo_yolo11n \
        --out runs/brand_eval.json

1. Closed set: gallery = one clean canonical render per test brand (or, with ``--renders``/``--merge``, the
   shipped gallery's construction: renders in several colours merged into one prototype), queries = the test
   brands' logos composited onto product photos (tools/make_brand_dataset.py); recall@1/5, precision@1, MAP@R.
   Test brands were never seen in training, nor used for any choice. On a cross-style set
   (``make_brand_dataset --icon-sets``) the gallery is every test brand in simple-icons and the training styles
   and the queries are in the held-out style: the cross-style figure, with icon and wordmark queries apart.
2. Open set: the test brands are halved by a hash of the slug; the gallery holds one half (known), queries of the
   other half (unseen brands) should come out "unknown". Reported at the threshold shipped with ``--gallery``
   (calibrated on val brands at 5% false rejects) and at the threshold giving exactly ``--frr`` false rejects on
   the known test queries.
3. Grocery Store real photos: gallery = the iconic studio image of each packaged-goods class, queries = the val
   split's natural photos of packaged goods. Product-level recall@1 (nearest iconic image is the right product)
   and brand-level recall@1 (its brand, the leading word of the class name) against chance, for the whole photo
   embedded as one vector and, with ``--detector``, for the recogniser's logo crops (every detected logo plus the
   whole frame; a photo pair scores its most similar pair of crops). With ``--read-text`` also the brand read on
   those crops (:mod:`vision.brands.ocr`, the 9 brands' names; everyday words excluded): a photo whose text names a
   brand
   is that brand, else the crops' nearest product's. ``--data`` may be left out to run this check alone.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from vision.brands.gallery import MERGES, BrandGallery, mean_prototypes
from vision.brands.recognition import embed_logos
from vision.data.datasets import scan_image_folder
from vision.data.inputs import to_rgb_array
from vision.features import FeatureExtractor
from vision.retrieval import retrieval_metrics
from vision.synth.render import parse_render_colors, simple_icons_renders

# brands of the Grocery Store packaged goods (its SOURCE.md); "God Morgon" is the only two-word one
_TWO_WORD_BRANDS = ("God-Morgon",)


def grocery_brand(class_name: str) -> str:
    """The brand of a Grocery Store packaged-goods class (``God-Morgon-Orange-Juice`` -> ``God-Morgon``)."""
    return next((b for b in _TWO_WORD_BRANDS if class_name.startswith(b + "-")), class_name.split("-")[0])


def grocery_names(brands):
    """:class:`vision.brands.ocr.BrandNames` of Grocery Store brands, each named as printed (``God-Morgon``: God
    Morgon)."""
    from vision.brands.ocr import BrandNames

    return BrandNames({b: [b.replace("-", " ")] for b in sorted(set(brands))})


def named_brand(names, line_sets, threshold: float, everyday: bool = False) -> str | None:
    """The brand of the strongest text match scoring at least ``threshold`` over ``line_sets`` (the lines read on
    each logo of a photo), or ``None``."""
    found = [m for m in (names.match(lines, everyday=everyday) for lines in line_sets)
             if m is not None and m.score >= threshold]
    return max(found, key=lambda m: m.score).brand if found else None


def embed_folder(fx: FeatureExtractor, folder: Path, exclude_styles: tuple[str, ...] = ()
                 ) -> tuple[np.ndarray, list[str]]:
    """Embeddings and brand names of ``folder/<brand>/*``; ``exclude_styles`` leaves out images whose file name
    says they are in one of those styles (``<style>__<icon>__<variant>_NN.jpg``, e.g. ``wordmark``)."""
    from vision.synth.brand_dataset import parse_image_name

    samples, table = scan_image_folder(folder)
    if exclude_styles:
        samples = [s for s in samples if (parse_image_name(s.path) or {}).get("style") not in exclude_styles]
    return fx([s.path for s in samples], batch_size=128), [table.names[s.label] for s in samples]


def closed_set(fx, data: Path, renders: tuple[str, ...] | None = None, merge: str = "all",
               exclude_styles: tuple[str, ...] = (), split: str = "test") -> dict:
    queries, q_names = embed_folder(fx, data / split / "query")
    if renders:
        # the shipped gallery's construction: simple-icons renders of each test brand in these colours
        images = simple_icons_renders(fx.card.data_config.input_size, sorted(set(q_names)), renders)
        g_names = [name for name, renders_of in images.items() for _ in renders_of]
        gallery = fx([image for renders_of in images.values() for image in renders_of], batch_size=128)
    else:
        gallery, g_names = embed_folder(fx, data / split / "gallery", exclude_styles)
    if merge == "mean":
        g_names, gallery = mean_prototypes(g_names, gallery)
    names = sorted(set(g_names))
    index = {n: i for i, n in enumerate(names)}
    metrics = retrieval_metrics(queries, [index[n] for n in q_names], gallery, [index[n] for n in g_names])
    result = {"split": split, "brands": len(names), "queries": len(q_names),
              "gallery": f"renders {list(renders)}" if renders else f"{split}/gallery", "merge": merge,
              "gallery_images": len(g_names),
              "gallery_styles_left_out": list(exclude_styles), **{k: round(v, 4) for k, v in metrics.items()}}
    record = json.loads((data / "brands.json").read_text()) if (data / "brands.json").is_file() else {}
    if "styles" in record:
        result["cross_style"] = cross_style_breakdown(data, record["styles"], queries, q_names, gallery, g_names,
                                                      split)
    return result, (gallery, g_names, queries, q_names)


def cross_style_breakdown(data: Path, styles: dict, queries, q_names, gallery, g_names, split: str = "test"
                          ) -> dict:
    """For a cross-style set (``make_brand_dataset --icon-sets``): Recall@1 of the held-out style's icon and
    wordmark queries separately, and how many gallery references each brand has."""
    from vision.synth.brand_dataset import parse_image_name

    samples, _ = scan_image_folder(data / split / "query")   # the order embed_folder used
    kinds = {entry.rsplit(" (", 1)[0]: entry.rsplit(" (", 1)[1].rstrip(")")
             for icons in styles["query_icons"][split].values() for entry in icons}
    nearest = np.asarray(g_names)[np.argmax(queries @ gallery.T, axis=1)]
    hits = nearest == np.asarray(q_names)
    out = {"held_out_styles": styles["eval_styles"], "gallery_brands": len(set(g_names)),
           "query_brands": len(set(q_names)), "references_per_brand": round(len(g_names) / len(set(g_names)), 2)}
    parsed = [parse_image_name(s.path) or {"style": None, "icon": None} for s in samples]
    query_kinds = np.array([kinds.get(f"{p['style']}:{p['icon']}") for p in parsed])
    for kind in ("icon", "wordmark"):
        mask = query_kinds == kind
        out[f"{kind}_queries"] = int(mask.sum())
        if mask.any():
            out[f"{kind}_recall@1"] = round(float(hits[mask].mean()), 4)
    return out


def open_set(fx, embedded, shipped_threshold: float | None, frr: float) -> dict:
    gallery, g_names, queries, q_names = embedded
    known = {n for n in set(g_names) if int(hashlib.sha256(n.encode()).hexdigest(), 16) % 2 == 0}
    half = BrandGallery(fx.dim, fx.card.name, fx.card.sha256)
    rows = [i for i, n in enumerate(g_names) if n in known]
    half.add_many([g_names[i] for i in rows], gallery[rows])
    is_known = np.array([n in known for n in q_names])
    if is_known.all() or not is_known.any():   # e.g. a tiny set whose query brands all hash to one half
        return {"skipped": "the queries' brands all fall in one half; open set needs known and unseen queries"}
    best = half.search(queries, k=1)
    scores = np.array([b[0][1] for b in best])
    correct = np.array([b[0][0] == n for b, n in zip(best, q_names)])

    def at(threshold: float) -> dict:
        accepted = scores >= threshold
        return {"threshold": round(float(threshold), 4),
                "false_reject_rate_known": round(float((~accepted[is_known]).mean()), 4),
                "correct_rejection_rate_unseen": round(float((~accepted[~is_known]).mean()), 4),
                "known_accepted_and_correct": round(float((accepted & correct)[is_known].mean()), 4)}

    result = {"known_brands": len(known), "unseen_brands": len(set(g_names) - known),
              "known_queries": int(is_known.sum()), "unseen_queries": int((~is_known).sum()),
              "known_recall@1_no_threshold": round(float(correct[is_known].mean()), 4),
              f"at_test_frr_{frr}": at(np.quantile(scores[is_known], frr))}
    if shipped_threshold is not None:
        result["at_shipped_threshold"] = at(shipped_threshold)
    return result


def grocery(fx, root: Path, detector=None, reader=None, text_threshold: float = 0.8) -> dict:
    with open(root / "classes.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    iconic = {int(r[1]): root / r[4].lstrip("/") for r in rows
              if "/Packages/" in r[4] and (root / r[4].lstrip("/")).is_file()}
    names = {int(r[1]): r[0] for r in rows}
    queries = []
    for line in (root / "val.txt").read_text().splitlines():
        if line.strip():
            path, label = [x.strip() for x in line.split(",")[:2]]
            if int(label) in iconic:
                queries.append((root / path, int(label)))
    ids = sorted(iconic)
    labels = np.array([label for _, label in queries])
    gallery_images = [to_rgb_array(iconic[i]) for i in ids]
    query_images = [to_rgb_array(p) for p, _ in queries]

    def brand(class_id: int) -> str:
        return grocery_brand(names[class_id])

    gallery_brands = [brand(i) for i in ids]
    report = {"gallery_products": len(ids), "gallery_brands": len(set(gallery_brands)), "queries": len(queries),
              "product_chance@1": round(1 / len(ids), 4),
              "brand_chance@1": round(float(np.mean([gallery_brands.count(brand(t)) / len(ids) for t in labels])), 4)}

    def score(scores: np.ndarray) -> dict:
        ranked = np.asarray(ids)[np.argsort(-scores, axis=1)]
        return {"product_recall@1": round(float((ranked[:, 0] == labels).mean()), 4),
                "product_recall@5": round(float((ranked[:, :5] == labels[:, None]).any(1).mean()), 4),
                "brand_recall@1": round(float(np.mean([brand(n) == brand(t) for n, t in zip(ranked[:, 0], labels)])),
                                        4)}

    # whole image: one vector per photo
    gallery_whole, query_whole = fx(gallery_images), fx(query_images, batch_size=64)
    report["whole_image"] = score(query_whole @ gallery_whole.T)
    if detector is not None:
        # the recogniser's crops: every detected logo plus the whole frame; a photo pair scores its best logo pair
        def logo_sets(images, whole):
            return [np.concatenate([vectors, whole[i:i + 1]])
                    for i, (_, vectors) in enumerate(embed_logos(fx, images, detector))]

        query_logos = embed_logos(fx, query_images, detector)
        gallery_sets = logo_sets(gallery_images, gallery_whole)
        query_sets = [np.concatenate([vectors, query_whole[i:i + 1]]) for i, (_, vectors) in enumerate(query_logos)]
        scores = np.array([[float((q @ g.T).max()) for g in gallery_sets] for q in query_sets])
        report["detected_logos"] = {
            **score(scores), "detector": detector.card.name,
            "logos_per_gallery_image": round(float(np.mean([len(g) - 1 for g in gallery_sets])), 2),
            "logos_per_query": round(float(np.mean([len(q) - 1 for q in query_sets])), 2)}
        if reader is not None:
            report["detected_logos_and_text"] = read_brands(reader, query_images, query_logos, scores, ids, labels,
                                                            brand, text_threshold)
    return report


def read_brands(reader, images, logos, scores, ids, labels, brand, threshold: float) -> dict:
    """Brand Recall@1 when the text read on a photo's detected logos (the recogniser's crops) names its brand
    where it names one (the strongest match over its logos), the crops' nearest product's brand elsewhere."""
    from vision.crops import square_crop

    names = grocery_names(brand(i) for i in ids)
    nearest = np.asarray(ids)[np.argmax(scores, axis=1)]
    named, crops = [], 0
    for image, (dets, _) in zip(images, logos):
        lines = reader.read([square_crop(image, d["box"], 0.15) for d in dets]) if dets else []
        crops += len(dets)
        named.append(named_brand(names, lines, threshold))
    decided = [n if n is not None else brand(b) for n, b in zip(named, nearest)]
    truth = [brand(t) for t in labels]
    return {"brand_recall@1": round(float(np.mean([d == t for d, t in zip(decided, truth)])), 4),
            "named_by_text": round(float(np.mean([n is not None for n in named])), 4),
            "named_by_text_wrong": round(float(np.mean([n is not None and n != t for n, t in zip(named, truth)])),
                                         4),
            "crops_read": crops}


def hardware() -> str:
    """CPU model and core count (what every figure in the README names)."""
    model = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), model)
    return f"{model}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedder", required=True)
    ap.add_argument("--data", type=Path, help="output of tools/make_brand_dataset.py (else only the Grocery check)")
    ap.add_argument("--gallery", type=Path, help="shipped gallery whose calibrated threshold is evaluated")
    ap.add_argument("--grocery", type=Path, help="Grocery Store dataset root (train/val only)")
    ap.add_argument("--renders", help="build the test gallery from simple-icons renders in these colours "
                    "(comma-separated: brand, black, white, #rrggbb) instead of the dataset's test/gallery")
    ap.add_argument("--gallery-exclude", nargs="+", default=[], metavar="STYLE",
                    help="leave these styles' images out of the dataset's test/gallery (e.g. wordmark: the same "
                    "queries against the gallery without them)")
    ap.add_argument("--merge", choices=MERGES, default="all", help="how a brand's gallery images are combined")
    ap.add_argument("--detector", help="logo detector (zoo name) for the Grocery Store check's logo crops")
    ap.add_argument("--detector-conf", type=float, default=0.25)
    ap.add_argument("--read-text", action="store_true",
                    help="Grocery check: also name brands by the text read on the detected logos (vision-zoo[ocr])")
    ap.add_argument("--frr", type=float, default=0.05)
    ap.add_argument("--split", choices=("test", "val"), default="test",
                    help="which split of --data to measure (val: for choices, test: for the final figures)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.data is None and args.grocery is None:
        ap.error("--data or --grocery is needed")
    if args.read_text and not (args.detector and args.grocery):
        ap.error("--read-text needs --detector and --grocery")
    try:
        renders = parse_render_colors(args.renders) if args.renders else None
    except ValueError as e:
        ap.error(f"--renders: {e}")
    fx = FeatureExtractor.from_pretrained(args.embedder, backend="torch")
    threshold = BrandGallery.load(args.gallery, model=fx.card, dim=fx.dim).threshold if args.gallery else None
    report = {"model": fx.card.name, "hardware": hardware()}
    start = time.perf_counter()
    if args.data is not None:
        report["closed_set"], embedded = closed_set(fx, args.data, renders, args.merge,
                                                    tuple(args.gallery_exclude), args.split)
        report["open_set"] = open_set(fx, embedded, threshold, args.frr)
        report["simple_icons_wall_s"] = round(time.perf_counter() - start, 1)
    if args.grocery:
        start = time.perf_counter()
        detector = None
        if args.detector:
            from vision.inference import LogoDetector

            detector = LogoDetector.from_pretrained(args.detector, conf=args.detector_conf)
        reader = None
        if args.read_text:
            from vision.brands.ocr import TextReader

            reader = TextReader()
        report["grocery"] = grocery(fx, args.grocery, detector, reader)
        report["grocery_wall_s"] = round(time.perf_counter() - start, 1)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
