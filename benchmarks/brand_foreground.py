"""A foreground view of each logo crop, fused with the plain crop (``vision.brands.views``), on true-box crops.

Recall@1 (icons and wordmarks apart) of the plain crop, the foreground view alone, the two fused by the mean of
their unit embeddings (what the library does) and by z-scores of their two similarity vectors over the gallery's
references, per foreground method and setting; and the foreground step's CPU ms per crop on one OpenCV thread.

Two VAL sets, nothing else is read:

- ``--data``: ``benchmarks/brand_robustness.py``'s cross-style set (186 devicon queries of 62 unseen brands on
  Grocery Store val photos), each query's true box square-cropped as the recogniser frames it (its "oracle"
  Recall@1), against ``--gallery`` (default the shipped one: all simple-icons brands);
- ``--styles``: ``benchmarks/brand_eval.py``'s cross-style val split (``runs/brand_styles``: 408 devicon queries of
  68 val brands, against the 526 val brands' references), its query crops as they are.

    python -m benchmarks.brand_foreground --data runs/brand_robustness/data --styles runs/brand_styles \\
        --out runs/issue27d/foreground.json

``--plain runs/brands_plain``: the in-distribution check, ``brand_eval``'s simple-icons val split without the print
conditions (1,578 composites of 526 brands against one clean render each); ``--settings`` limits the settings.

``--hybrid G --grocery ROOT``: end to end on ``--data`` (the shipped detector + verifier, detections cached as
``brand_robustness`` caches them), each logo **named** by the gallery ``G`` built with ``--foreground`` (its fused
vector's best brand) but **accepted** by the shipped gallery's rule on the plain crop's open-set score, beside the
shipped pipeline and ``G`` with its own rule: e2e Recall@1 (icons / wordmarks), accepted + correct, brand-free val
photos with a false brand.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

# (method, size, iterations, fill) measured by default; "box" methods use the true box as GrabCut's rectangle
SETTINGS = [("grabcut", 32, 1, "border"), ("grabcut", 48, 1, "border"), ("grabcut", 64, 1, "border"),
            ("grabcut", 64, 1, "white"), ("grabcut", 64, 3, "border"), ("grabcut", 96, 3, "border"),
            ("border", 64, 1, "border"), ("border", 64, 1, "white"), ("colour", 64, 1, "border"),
            ("colour", 64, 1, "white"), ("grabcut_box", 64, 1, "border"), ("grabcut_box", 64, 3, "border"),
            ("grabcut_box", 128, 5, "border")]


def recall(best: np.ndarray, truth: np.ndarray, kinds: np.ndarray) -> dict:
    right = best == truth
    out = {"all": round(float(right.mean()), 4), "right": int(right.sum())}
    for kind in ("icon", "wordmark"):
        if (kinds == kind).any():
            out[kind] = round(float(right[kinds == kind].mean()), 4)
    return out


def zscores(sims: np.ndarray) -> np.ndarray:
    return (sims - sims.mean(1, keepdims=True)) / np.maximum(sims.std(1, keepdims=True), 1e-12)


def box_rect(box, margin: float, size: int) -> tuple[int, int, int, int]:
    """The true box inside its square crop (vision.crops.square_crop's framing), in a ``size`` px view."""
    x1, y1, x2, y2 = box
    side = max(2, int(round(max(x2 - x1, y2 - y1) * (1 + 2 * margin))))
    left, top = int(round((x1 + x2 - side) / 2)), int(round((y1 + y2 - side) / 2))
    s = size / side
    rx, ry = max(0, int(np.floor((x1 - left) * s))), max(0, int(np.floor((y1 - top) * s)))
    return rx, ry, max(1, min(int(np.ceil((x2 - x1) * s)), size - rx)), max(1, min(int(np.ceil((y2 - y1) * s)),
                                                                                  size - ry))


def grabcut_on_box(crop: np.ndarray, box, margin: float, size: int, iterations: int, fill: str) -> np.ndarray:
    """GrabCut with the true box as its rectangle (what a recogniser could do with the detected box)."""
    import cv2

    from vision.brands.views import _grabcut, _ring

    image = np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
    mask = _grabcut(image, box_rect(box, margin, size), iterations)
    if mask is None or not 0.02 <= mask.mean() <= 0.98:
        return image
    out = image.copy()
    out[~mask] = 255 if fill == "white" else np.median(_ring(image), axis=0).astype(np.uint8)
    return out


def measure(fx, crops, boxes, margin, refs, owners, truth, kinds, settings) -> dict:
    from vision.brands.views import foreground_view, fuse_mean

    plain = fx(crops, batch_size=64)
    sp = plain @ refs.T
    rows = {"plain": recall(owners[sp.argmax(1)], truth, kinds)}
    print("plain", rows["plain"], flush=True)
    for method, size, iterations, fill in settings:
        if method == "grabcut_box" and boxes is None:
            continue
        start = time.process_time()
        if method == "grabcut_box":
            views = [grabcut_on_box(c, b, margin, size, iterations, fill) for c, b in zip(crops, boxes)]
        else:
            views = [foreground_view(c, method, margin, size, iterations, fill) for c in crops]
        cpu_ms = (time.process_time() - start) / len(crops) * 1000
        fore = fx(views, batch_size=64)
        sf = fore @ refs.T
        name = f"{method} {size}px x{iterations} fill={fill}"
        rows[name] = {"cpu_ms_per_crop": round(cpu_ms, 2), "view_alone": recall(owners[sf.argmax(1)], truth, kinds),
                      "mean": recall(owners[(fuse_mean(plain, fore) @ refs.T).argmax(1)], truth, kinds),
                      "zscore": recall(owners[(zscores(sp) + zscores(sf)).argmax(1)], truth, kinds)}
        print(name, json.dumps(rows[name]), flush=True)
    return rows


def robustness_set(fx, data: Path, gallery_path: str, settings) -> dict:
    from vision.brands.gallery import BrandGallery
    from vision.crops import square_crop
    from vision.data.io import load_image

    gallery = BrandGallery.load(gallery_path)
    margin = gallery.crop_margin
    queries = json.loads((data / "cross_style" / "queries.json").read_text())
    crops = [square_crop(load_image(data / "cross_style" / q["image"]), q["box"], margin) for q in queries]
    rows = measure(fx, crops, [q["box"] for q in queries], margin, gallery.vectors, np.asarray(gallery.owners),
                   np.array([q["brand"] for q in queries]), np.array([q.get("kind", "icon") for q in queries]),
                   settings)
    return {"set": f"{data}/cross_style (true boxes, margin {margin})", "gallery": gallery_path,
            "queries": len(queries), "references": len(gallery.vectors), "rows": rows}


def styles_set(fx, data: Path, settings) -> dict:
    from benchmarks.brand_eval import embed_folder
    from vision.data.datasets import scan_image_folder
    from vision.data.io import load_image
    from vision.synth.brand_dataset import parse_image_name

    styles = json.loads((data / "brands.json").read_text()).get("styles")
    refs, g_names = embed_folder(fx, data / "val" / "gallery")
    samples, table = scan_image_folder(data / "val" / "query")
    if styles is None:   # a single-style set (simple-icons): every query an icon
        kinds = np.array(["icon"] * len(samples))
    else:
        kind_of = {e.rsplit(" (", 1)[0]: e.rsplit(" (", 1)[1].rstrip(")")
                   for icons in styles["query_icons"]["val"].values() for e in icons}
        parsed = [parse_image_name(s.path) or {"style": None, "icon": None} for s in samples]
        kinds = np.array([kind_of.get(f"{p['style']}:{p['icon']}") for p in parsed])
    crops = [load_image(s.path) for s in samples]
    rows = measure(fx, crops, None, 0.15, refs, np.asarray(g_names), np.array([table.names[s.label] for s in samples]),
                   kinds, settings)
    return {"set": f"{data}/val/query", "queries": len(samples), "references": len(g_names), "rows": rows}


def hybrid(data: Path, grocery: Path, fused_path: str, shipped_path: str) -> dict:
    """``--hybrid``: see the module docstring."""
    from benchmarks.brand_robustness import RULE_FLOOR, _share, _share_by_kind, brand_free_photos, photo_detections
    from vision.brands.detection_rule import known_scene_set, photo_set, rule_figures
    from vision.brands.gallery import BrandGallery
    from vision.brands.recognition import score_logos
    from vision.brands.verification import verified_for_rule
    from vision.brands.views import with_foreground
    from vision.features import FeatureExtractor
    from vision.inference import LogoDetector

    fx = FeatureExtractor.from_pretrained("brand_ensemble", backend="torch")
    shipped = BrandGallery.load(shipped_path)
    if Path(fused_path).is_file():
        fused = BrandGallery.load(fused_path)
    else:   # a foreground method: named by its fused vector in the shipped gallery (no gallery of its own)
        from vision.brands.views import foreground_option

        fused = copy.deepcopy(shipped)
        fused.foreground = foreground_option(fused_path)
    if fused.foreground is None or shipped.foreground is not None:
        raise SystemExit("--hybrid needs a gallery built with --foreground (or a method) and a plain one")
    detector = verified_for_rule(LogoDetector.from_pretrained("logo_yolo11n"), shipped.detection_rule, backend="torch")
    fxf = with_foreground(fx, fused.foreground, fused.crop_margin)
    queries = json.loads((data / "cross_style" / "queries.json").read_text())
    truth, kinds = [q["brand"] for q in queries], [q.get("kind", "icon") for q in queries]
    cross_paths = [data / "cross_style" / q["image"] for q in queries]
    free_paths = brand_free_photos(grocery, "val")
    out = {}
    sets = {}
    scenes = json.loads((data / "known_scenes" / "queries.json").read_text())
    scene_paths = [data / "known_scenes" / q["image"] for q in scenes]
    for name, f, gallery in (("plain", fx, shipped), ("fused", fxf, fused)):
        cross = photo_detections(f, detector, cross_paths, data / "detections", shipped.crop_margin)
        free = photo_detections(f, detector, free_paths, data / "detections", shipped.crop_margin)
        known = photo_detections(f, detector, scene_paths, data / "detections", shipped.crop_margin)
        sets[name] = (cross, free, score_logos(gallery, cross), score_logos(gallery, free), known,
                      score_logos(gallery, known))
    for (dp, _), (df, _) in zip(sets["plain"][0] + sets["plain"][1], sets["fused"][0] + sets["fused"][1]):
        assert [d["box"] for d in dp] == [d["box"] for d in df], "the two runs' detections differ"
    boxes = [q["box"] for q in queries]
    rows = {"shipped (plain: named and accepted)": ("plain", "plain", shipped.detection_rule),
            "fused gallery, its own rule (named and accepted fused)": ("fused", "fused", fused.detection_rule),
            "hybrid: named by the fused vector, accepted by the shipped rule on the plain score":
                ("fused", "plain", shipped.detection_rule)}
    for row, (naming, scoring, rule) in rows.items():
        cross_dets = [d for d, _ in sets["plain"][0]]
        best = sets[naming][2][0]
        cross = known_scene_set(cross_dets, sets[scoring][2][1], boxes, best, truth)
        val = photo_set([d for d, _ in sets["plain"][1]], sets[scoring][3][1])
        on_val = rule_figures(rule, cross, val, RULE_FLOOR)
        seen = cross.detection >= rule.min_detection_score
        top1 = np.zeros(cross.photos, bool)
        top1[cross.photo[seen & cross.correct]] = True
        # in distribution: the known scenes (val-split brands in the training styles on TRAIN photos: the rule's
        # calibration marks), named and accepted the same way
        known = known_scene_set([d for d, _ in sets["plain"][4]], sets[scoring][5][1], [q["box"] for q in scenes],
                                sets[naming][5][0], [q["brand"] for q in scenes])
        on_known = rule_figures(rule, known, val, RULE_FLOOR)
        seen = known.detection >= rule.min_detection_score
        known_top1 = np.zeros(known.photos, bool)
        known_top1[known.photo[seen & known.correct]] = True
        out[row] = {"end_to_end_recall@1": _share(top1), "by_kind": _share_by_kind(top1, kinds),
                    "accepted_correct": on_val["known_accepted_correct"],
                    "brand_free_photos_with_a_false_brand": on_val["far_photos"],
                    "impostor_far_detections": on_val["far_detections"],
                    "known_scenes_recall@1": _share(known_top1),
                    "known_scenes_accepted_correct": on_known["known_accepted_correct"]}
        print(row, json.dumps(out[row]), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    import cv2

    from benchmarks.brand_eval import hardware
    from vision.features import FeatureExtractor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="brand_robustness data folder (its cross_style set)")
    ap.add_argument("--gallery", default="weights/simple_icons_gallery.npz")
    ap.add_argument("--styles", type=Path, help="brand_eval cross-style data folder (its val split)")
    ap.add_argument("--plain", type=Path,
                    help="brand_eval's simple-icons set without print conditions (runs/brands_plain, its val split): "
                         "the in-distribution check, composites against one clean render per brand")
    ap.add_argument("--settings", nargs="+", metavar="METHOD:SIZE:ITER:FILL",
                    help="only these settings (e.g. border:64:1:border); default: every one in SETTINGS")
    ap.add_argument("--embedder", default="brand_ensemble")
    ap.add_argument("--hybrid", help="a gallery built with --foreground: the end-to-end hybrid check (see above)")
    ap.add_argument("--grocery", type=Path, help="Grocery Store root (--hybrid's brand-free val photos)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)   # the per-crop cost on one core
    fx = FeatureExtractor.from_pretrained(args.embedder, backend="torch")
    report = {"hardware": hardware(), "embedder": args.embedder, "fusion_note": "mean: normalise(plain + view); "
              "zscore: per query, z-scored similarities to every reference, summed", "sets": {}}
    settings = SETTINGS if not args.settings else [
        (m, int(size), int(it), fill) for m, size, it, fill in (x.split(":") for x in args.settings)]
    start = time.perf_counter()
    if args.data and not args.hybrid:   # --hybrid alone measures end to end
        report["sets"]["brand_robustness_cross_style_val"] = robustness_set(fx, args.data, args.gallery, settings)
    if args.styles:
        report["sets"]["brand_eval_cross_style_val"] = styles_set(fx, args.styles, settings)
    if args.plain:
        report["sets"]["brand_eval_simple_icons_plain_val"] = styles_set(fx, args.plain, settings)
    if args.hybrid:
        if not (args.data and args.grocery):
            ap.error("--hybrid needs --data and --grocery")
        report["hybrid"] = hybrid(args.data, args.grocery, args.hybrid, args.gallery)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
