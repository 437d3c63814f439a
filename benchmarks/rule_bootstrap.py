"""How much of a gallery comparison is the calibration's luck: a paired bootstrap of the detection rule's train photos.

A gallery's detection rule is fitted on train photos (known scenes, brand-free photos); its threshold decides how
many brand-free val photos get a false brand. Two pipelines compared on val at their own calibrated thresholds can
differ by a few photos because of which train photos happened to sit at the threshold. This script resamples the
train photos (known scenes and brand-free photos, with replacement, the same resample for every pipeline), refits
each pipeline's threshold on the resample (the rule's weights kept), and reports, on val, the cross-style queries
accepted and right and the brand-free photos flagged, per pipeline and as paired differences.

    python -m benchmarks.rule_bootstrap --grocery $G --data runs/brand_robustness/data --impostors runs/impostors \\
        --pipeline old=<another zoo>/brand_resnet10t.safetensors,<its gallery>.npz \\
        --pipeline new=brand_resnet10t,weights/simple_icons_gallery.npz --out runs/rule_bootstrap.json

Each pipeline's train scores come from its gallery's own build code path (``vision.build_gallery`` with the
shipped build's options, nothing saved) and its val scores from ``benchmarks/brand_robustness.py`` (the gallery's
rule row); both are cached under ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from vision.brands.detection_rule import _threshold


def paired_bootstrap(pipelines: dict[str, dict[str, np.ndarray]], max_false_reject: float = 0.10,
                     resamples: int = 2000, seed: int = 0) -> dict:
    """``pipelines``: name -> ``known_best`` (per counted known scene), ``impostor_best`` (per brand-free train photo;
    the same photos in the same order for every pipeline), ``right`` (per cross-style val query: the rule's score of
    its right brand, -inf if none) and ``free`` (per brand-free val photo: its best score). Per pipeline the medians
    and 5/50/95th percentiles of val queries accepted and right and brand-free val photos flagged; for the second
    and later pipelines the paired differences against the first. Pipelines may be refitted on known-scene sets of
    different sizes (e.g. more calibration scenes): each size gets its own resample, so their differences are paired
    on the brand-free photos only."""
    names = list(pipelines)
    n_known = sorted({len(p["known_best"]) for p in pipelines.values()})
    n_free = {len(p["impostor_best"]) for p in pipelines.values()}
    if len(n_free) != 1:
        raise ValueError(f"the pipelines were calibrated on different brand-free photos: {sorted(n_free)} photos")
    n_free = n_free.pop()
    rng = np.random.default_rng(seed)
    figures = {name: [] for name in names}
    for _ in range(resamples):
        # one resample per known-scene set size: pipelines refitted on the same scenes are paired on them too
        known_rows = {n: rng.integers(0, n, n) for n in n_known}
        free_rows = rng.integers(0, n_free, n_free)
        for name, p in pipelines.items():
            threshold = _threshold(p["known_best"][known_rows[len(p["known_best"])]], p["impostor_best"][free_rows],
                                   max_false_reject)
            if threshold is None:
                figures[name].append((np.nan, np.nan))
                continue
            figures[name].append((int((p["right"] >= threshold).sum()), int((p["free"] >= threshold).sum())))
    arrays = {name: np.asarray(rows, float) for name, rows in figures.items()}

    def spread(values: np.ndarray) -> list[float]:
        return [round(float(v), 2) for v in np.nanpercentile(values, [5, 50, 95])]

    out = {"resamples": resamples, "seed": seed, "max_false_reject": max_false_reject,
           "brand_free_train_photos": n_free, "pipelines": {}}
    for name, a in arrays.items():
        out["pipelines"][name] = {"known_scenes": len(pipelines[name]["known_best"]),
                                  "accepted_right_5_50_95": spread(a[:, 0]), "flagged_5_50_95": spread(a[:, 1]),
                                  "accepted_right_mean": round(float(np.nanmean(a[:, 0])), 3),
                                  "flagged_mean": round(float(np.nanmean(a[:, 1])), 3)}
    base = arrays[names[0]]
    for name in names[1:]:
        right, flagged = arrays[name][:, 0] - base[:, 0], arrays[name][:, 1] - base[:, 1]
        out["pipelines"][name][f"minus_{names[0]}"] = {
            "accepted_right_5_50_95": spread(right), "flagged_5_50_95": spread(flagged),
            "share_better_on_both": round(float(((right > 0) & (flagged < 0)).mean()), 4),
            "share_more_flagged": round(float((flagged > 0).mean()), 4),
            "share_fewer_flagged": round(float((flagged < 0).mean()), 4)}
    return out


def _train_scores(embedder: str, grocery: Path, data: Path, impostors: Path, icon_sets: Path,
                  cache: Path, known_scenes: Path, foreground: dict | None = None) -> dict:
    """Per-photo rule scores of the known scenes and brand-free train photos, through the shipped build's code
    (``foreground``: the gallery's option, so its crops are embedded as the gallery was calibrated)."""
    import vision
    import vision.brands.detection_rule as rules
    from benchmarks.brand_robustness import rule_photo_best

    captured = {}
    original = rules.calibrate_detection_rule

    def capture(known, free, *args, **kwargs):
        rule = original(known, free, *args, **kwargs)
        known_best = rule_photo_best(rule, known)
        # the known scenes the FRR budget counts: those with a detection at the floor (the rule's budget "found")
        captured.update(known_best=known_best[np.isfinite(known_best)], impostor_best=rule_photo_best(rule, free),
                        train_threshold=np.float64(rule.threshold), known_scenes=np.str_(known_scenes))
        return rule

    rules.calibrate_detection_rule = capture
    try:
        vision.build_gallery(embedder=embedder, simple_icons=True, renders="brand,black,white", merge="mean",
                             icon_sets=icon_sets,
                             queries=[data / "known"], impostors=[impostors / "train"], frr=0.10,
                             detector="logo_yolo11n", verifier="logo_verifier_lite0", verifier_power=0.75,
                             known_scenes=[known_scenes],
                             impostor_photos=[grocery / "train" / "Fruit", grocery / "train" / "Vegetables"],
                             foreground=foreground)
    finally:
        rules.calibrate_detection_rule = original
    np.savez(cache, **captured)
    return captured


def pipeline_key(embedder: str, gallery: str) -> str:
    """12 hex digits naming what a pipeline scores: the embedder's sha256 (a zoo name's card, or the file's) and the
    gallery file's sha256 (a bare gallery name resolved as ``BrandGallery.load`` does)."""
    import hashlib

    from vision.brands.gallery import _resolve_gallery
    from vision.fileio import sha256_file
    from vision.zoo.registry import find_card

    if Path(embedder).is_file():
        model = sha256_file(Path(embedder))
    else:
        found = find_card(embedder)
        model = found[0].sha256 if found else embedder
    return hashlib.sha256(f"{model}|{sha256_file(_resolve_gallery(Path(gallery)))}".encode()).hexdigest()[:12]


def _val_scores(embedder: str, gallery: str, grocery: Path, data: Path, impostors: Path, cache: Path) -> dict:
    """Per-query and per-photo val scores of the gallery's own rule (the benchmark's "as given, detection rule")."""
    import benchmarks.brand_robustness as bench
    from vision.brands.gallery import BrandGallery

    stored = BrandGallery.load(gallery, allow_unbound=True).detection_rule.threshold
    captured = {}
    original = bench.operating_curve

    def capture(rule, cross, val, most=bench.CURVE_FALSE_PHOTOS):
        if abs(rule.threshold - stored) < 1e-6:   # the gallery's rule, not the benchmark's refits
            captured.update(right=bench.rule_photo_best(rule, cross, cross.correct),
                            free=bench.rule_photo_best(rule, val), val_threshold=np.float64(rule.threshold))
        return original(rule, cross, val, most)

    bench.operating_curve = capture
    try:
        bench.main(["--grocery", str(grocery), "--data", str(data), "--impostors", str(impostors), "--no-shipped",
                    "--embedder", embedder, "--gallery", gallery, "--skip-grocery-check",
                    "--out", str(cache.with_suffix(".bench.json"))])
    finally:
        bench.operating_curve = original
    if not captured:
        raise RuntimeError(f"{gallery}: the benchmark ran no row with the gallery's own rule")
    np.savez(cache, **captured)
    return captured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", action="append", required=True, metavar="NAME=EMBEDDER,GALLERY",
                        help="a pipeline to compare (the first is the baseline of the paired differences)")
    parser.add_argument("--grocery", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("runs/brand_robustness/data"))
    parser.add_argument("--impostors", type=Path, default=Path("runs/impostors"))
    parser.add_argument("--icon-sets", type=Path, default=Path("runs/iconify"))
    parser.add_argument("--known-scenes", action="append", metavar="NAME=DIR", default=[],
                        help="the known scenes a pipeline's rule is refitted on (default: --data's known_scenes/), "
                             "as NAME=DIR for the pipeline NAME")
    parser.add_argument("--cache", type=Path, default=Path("runs/rule_bootstrap"))
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    args.cache.mkdir(parents=True, exist_ok=True)
    known_scenes = {}
    for spec in args.known_scenes:
        name, _, folder = spec.partition("=")
        if not (name and folder):
            parser.error(f"--known-scenes {spec}: expected NAME=DIR")
        known_scenes[name] = Path(folder)
    named = {spec.partition("=")[0] for spec in args.pipeline}
    if set(known_scenes) - named:
        parser.error(f"--known-scenes names no --pipeline: {sorted(set(known_scenes) - named)}")
    pipelines = {}
    for spec in args.pipeline:
        name, _, rest = spec.partition("=")
        embedder, _, gallery = rest.partition(",")
        if not (name and embedder and gallery):
            parser.error(f"--pipeline {spec!r}: expected NAME=EMBEDDER,GALLERY")
        # the cache is keyed by what is scored, not only by the name: a name reused for another embedder or
        # gallery (a rebuilt shipped one) would otherwise read the earlier pipeline's scores
        key = pipeline_key(embedder, gallery)
        train, val = args.cache / f"{name}.{key}.train.npz", args.cache / f"{name}.{key}.val.npz"
        scenes = known_scenes.get(name, args.data / "known_scenes")
        if train.exists():
            scores = dict(np.load(train))
        else:   # the train crops embedded as the gallery was calibrated (its foreground option)
            from vision.brands.gallery import BrandGallery

            foreground = BrandGallery.load(gallery, allow_unbound=True).foreground
            scores = _train_scores(embedder, args.grocery, args.data, args.impostors, args.icon_sets, train, scenes,
                                   foreground)
        if str(scores.get("known_scenes", scenes)) != str(scenes):
            parser.error(f"{train}: cached for the known scenes {scores['known_scenes']}, not {scenes}; remove it "
                         "or give the pipeline another name")
        scores |= dict(np.load(val)) if val.exists() else _val_scores(embedder, gallery, args.grocery, args.data,
                                                                     args.impostors, val)
        pipelines[name] = scores
        print(f"{name}: threshold refitted {float(scores['train_threshold']):.4f}, "
              f"the gallery's {float(scores['val_threshold']):.4f}", file=sys.stderr)
    report = paired_bootstrap(pipelines, resamples=args.resamples)
    for name, p in pipelines.items():   # the calibration as it is, beside its resamples
        t = float(p["val_threshold"])
        report["pipelines"][name]["as_calibrated"] = {"threshold": round(t, 6),
                                                      "accepted_right": int((p["right"] >= t).sum()),
                                                      "flagged": int((p["free"] >= t).sum())}
    report["wall_s"] = round(time.perf_counter() - start, 1)
    if args.out:   # the report is also printed, for a run without --out
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
