#!/usr/bin/env python
"""Near-duplicate detection on real photos: our staged dedup (vision.dedup) against imagededup and imagehash.

    python -m benchmarks.dedup_eval --originals 150 --out runs/dedup_eval          # a few minutes on 2 CPU cores
    python -m benchmarks.dedup_eval --scale --out runs/dedup_scale                  # k-NN graph at 100k / 1M vectors
    # a copy-detection descriptor side by side; its chosen setting stored in its card (vision dedup's defaults)
    python -m benchmarks.dedup_eval --descriptor runs/copydetect_zoo/copydetect_resnet10t.safetensors --store-thresholds

Grocery Store photos (MIT; its held-out test split is never read): originals from the **train** split build the
VALIDATION set (every threshold is chosen there: best pairwise F1 with precision >= 0.98), originals from the **val**
split build the TEST set. Each original gets edited copies (vision.dedup.edits: JPEG q30-60, downscale, 70-90% crop,
mirror, rotation <= 20 deg, colour/brightness/contrast, greyscale, text overlay, border, screenshot letterbox, and
pairs of these), mixed with other photos of the same products (same class folder, different photo: not a
duplicate; a contiguous run of shots per class, as the val split holds them). Pairwise precision / recall / F1 are
over all image pairs; recall per edit type counts an edited copy as found when it is grouped with its original.
Peers, on the same images: imagededup's PHash/DHash/WHash/AHash and its CNN method given our features
(encoding_map), and plain imagehash pHash; our pipeline cut down to its cheap stages (hashes only; no check; the
check on pHash neighbours only, no model) shows our quality at the peers' speed. ``--descriptor`` adds a
copy-detection descriptor alone and as the staged pipeline's embedding (``ship_check`` compares both with the shipped
features on validation); a descriptor trained for this benchmark must exclude the photos ``--write-holdout`` lists.
Writes ``result.json`` and ``result.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from vision.dedup import Thresholds, candidate_pairs, find_duplicates, scan_images
from vision.dedup.edits import EDITS, apply_edit
from vision.dedup.hashing import hamming_distance

PAIR_EDITS = ("crop+jpeg", "mirror+colour", "rotate+downscale", "greyscale+text", "border+jpeg",
              "letterbox+downscale", "crop+mirror", "colour+text")
ALL_EDITS = (*EDITS, *PAIR_EDITS)
MIN_PRECISION = 0.98


# --- data
def split_photos(root: Path, split: str) -> dict[str, list[str]]:
    """The split's photos (paths relative to ``root``) by class folder, each sorted."""
    lines = [line.split(",")[0].strip() for line in (root / f"{split}.txt").read_text().splitlines() if line.strip()]
    by_class = defaultdict(list)
    for rel in lines:
        by_class[str(Path(rel).parent)].append(rel)
    return {c: sorted(files) for c, files in sorted(by_class.items())}


def source_photos(root: Path, split: str, originals: int, negatives: int, rng: random.Random
                  ) -> tuple[list[str], list[str]]:
    """``(originals, negatives)``: the split's photos a benchmark split is built from."""
    by_class = split_photos(root, split)
    # a contiguous run of photos per class, like the val split holds (a few shots taken one after another): the
    # hardest negatives are the neighbouring shots of the same shelf, so validation must contain them too
    per_class = -(-(originals + negatives) // len(by_class))
    pool = []
    for files in by_class.values():
        start = rng.randint(0, max(0, len(files) - per_class))
        pool += files[start:start + per_class]
    rng.shuffle(pool)
    return pool[:originals], pool[originals:originals + negatives]


def holdout(root: Path, originals: int, negatives: int, seed: int, margin: int) -> list[str]:
    """The train-split photos the validation split is built from, with ``margin`` neighbouring shots on each side
    (near-identical frames of one shelf): what a descriptor trained for this benchmark must never see."""
    chosen, others = source_photos(root, "train", originals, negatives, random.Random(seed))
    used, out = set(chosen) | set(others), set()
    for files in split_photos(root, "train").values():
        for n, rel in enumerate(files):
            if rel in used:
                out.update(files[max(0, n - margin):n + margin + 1])
    return sorted(out)


def build_split(root: Path, split: str, out: Path, originals: int, edits_per_original: int, negatives: int,
                seed: int) -> dict:
    """Originals with edited copies, plus other photos of the same classes; ``{"files": [(path, group, edit)]}``
    where ``group`` is the original's number (or -1 for a hard negative: a photo with no copy)."""
    rng = random.Random(seed)
    chosen, others = source_photos(root, split, originals, negatives, rng)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    from PIL import Image

    files = []
    edit_cycle = list(ALL_EDITS)
    rng.shuffle(edit_cycle)
    k = 0
    for g, rel in enumerate(chosen):
        dst = out / f"g{g:04d}_orig{Path(rel).suffix}"
        shutil.copyfile(root / rel, dst)
        files.append((str(dst), g, "original"))
        image = Image.open(root / rel).convert("RGB")
        for _ in range(edits_per_original):
            name = edit_cycle[k % len(edit_cycle)]
            k += 1
            edited = apply_edit(image, name, rng)
            dst = out / f"g{g:04d}_{name}.jpg"
            edited.save(dst, quality=92)
            files.append((str(dst), g, name))
    for n, rel in enumerate(others):
        dst = out / f"neg{n:04d}{Path(rel).suffix}"
        shutil.copyfile(root / rel, dst)
        files.append((str(dst), -1, "negative"))
    return {"split": split, "files": files, "originals": len(chosen), "negatives": len(others)}


# --- metrics
def true_pair_count(groups: list[int]) -> int:
    counts = defaultdict(int)
    for g in groups:
        if g >= 0:
            counts[g] += 1
    return sum(c * (c - 1) // 2 for c in counts.values())


def pair_metrics(pred_pairs: set[tuple[int, int]], truth: list[int]) -> dict:
    tp = sum(1 for i, j in pred_pairs if truth[i] >= 0 and truth[i] == truth[j])
    positives = true_pair_count(truth)
    precision = tp / len(pred_pairs) if pred_pairs else 1.0
    recall = tp / positives if positives else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "predicted_pairs": len(pred_pairs), "true_pairs": positives}


def group_pairs(root: list[int]) -> set[tuple[int, int]]:
    members = defaultdict(list)
    for i, r in enumerate(root):
        members[r].append(i)
    return {(a, b) for m in members.values() for x, a in enumerate(m) for b in m[x + 1:]}


def per_edit_recall(same_group, files) -> dict:
    """Share of each edit type's copies grouped with (or matched to) their original."""
    original = {g: i for i, (_, g, e) in enumerate(files) if e == "original"}
    hits, totals = defaultdict(int), defaultdict(int)
    for i, (_, g, e) in enumerate(files):
        if g >= 0 and e != "original":
            totals[e] += 1
            hits[e] += bool(same_group(i, original[g]))
    return {e: round(hits[e] / totals[e], 3) for e in sorted(totals)}


def pairs_result(setting: dict, val_metrics: dict, pairs: set[tuple[int, int]], test_files) -> dict:
    """A peer's entry: its validation choice, test metrics of its (non-transitive) pairs, recall per edit type."""
    partners = defaultdict(set)
    for i, j in pairs:
        partners[i].add(j)
        partners[j].add(i)
    return {"setting": setting, "validation": val_metrics, "test": pair_metrics(pairs, [g for _, g, _ in test_files]),
            "recall_per_edit": per_edit_recall(lambda a, b: b in partners[a], test_files)}


def choose(candidates: list[tuple[dict, dict]]) -> tuple[dict, dict]:
    """(setting, metrics) with the best F1 among precision >= MIN_PRECISION (best F1 overall if none)."""
    ok = [c for c in candidates if c[1]["precision"] >= MIN_PRECISION]
    return max(ok or candidates, key=lambda c: (c[1]["f1"], c[1]["precision"]))


# --- our method
VERIFY_GRID = [None, *np.round(np.arange(0.95, 0.9951, 0.005), 3)]
LOCAL_GRID = (None, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94)


def sweepable(pairs, phash_max: int = 8, verify_min: float = 0.95, similarity_min: float | None = None):
    """The pairs some setting of the sweep can accept (the others add no edge: leaving them out is faster)."""
    return [p for p in pairs if p.exact or (p.distance is not None and p.distance <= phash_max)
            or (p.ncc or -1) >= verify_min
            or (similarity_min is not None and p.similarity is not None and p.similarity >= similarity_min)]


def ours_sweep(val_catalog, val_pairs, truth) -> tuple[dict, dict]:
    """pHash radius x verification (NCC, inliers, containment, local edge agreement), chosen on validation."""
    trials = []
    pairs = sweepable(val_pairs)
    for phash in (None, 0, 2, 4, 6, 8):
        for verify in VERIFY_GRID:
            for inliers, containment, local in ([(12, 0.0, None)] if verify is None else
                                                [(i, c, m) for i in (12, 20) for c in (0.0, 0.7, 0.8)
                                                 for m in LOCAL_GRID]):
                t = Thresholds(phash_distance=phash, similarity=None, verify=None if verify is None else float(verify),
                               min_inliers=inliers, min_containment=containment, min_local=local)
                r = find_duplicates(val_catalog, t, pairs=pairs)
                trials.append(({"phash_distance": phash, "verify": t.verify, "min_inliers": inliers,
                                "min_containment": containment, "min_local": local},
                               pair_metrics(group_pairs(r.grouping.root), truth)))
    return choose(trials)


def embedding_sweep(catalog, truth, k: int = 10, lowest: float = 0.80) -> tuple[dict, dict]:
    """Our embedding stage alone (no hashes, no verification): how far a model's features go."""
    pairs = candidate_pairs(catalog, Thresholds(phash_distance=None, similarity=min(0.5, lowest), verify=None, k=k))
    trials = []
    for s in np.round(np.arange(lowest, 1.0, 0.0025), 4):
        t = Thresholds(phash_distance=None, similarity=float(s), verify=None, k=k)
        r = find_duplicates(catalog, t, pairs=pairs)
        trials.append(({"similarity": float(s)}, pair_metrics(group_pairs(r.grouping.root), truth)))
    return choose(trials)


# --- our pipeline cut down to its cheap stages (quality at the peers' speed)
def cheap_stage_methods(val_catalog, val_pairs, truth, test_files, model: str, k: int) -> dict[str, dict]:
    """Our stages without the costly parts, each setting chosen on validation and timed end to end on test: the
    hash stages alone (no model, no check), hashes + embedding cosine (no check), and hashes with the check run
    only on close pHash neighbours (no model)."""
    paths = [p for p, _, _ in test_files]
    pairs = sweepable(val_pairs, phash_max=12, verify_min=0.97, similarity_min=0.9)
    no_vectors = [replace(p, similarity=None) for p in pairs]

    def trial(t: Thresholds, setting: dict, given) -> tuple[dict, dict]:
        return setting, pair_metrics(group_pairs(find_duplicates(val_catalog, t, pairs=given).grouping.root), truth)

    out = {}
    setting, val_metrics = choose([trial(Thresholds(phash_distance=d, similarity=None, verify=None, k=k),
                                         {"phash_distance": d}, no_vectors) for d in range(13)])
    out["ours, hash stages only (exact + pHash/mirror, guarded union-find; no model, no check)"] = grouped_result(
        setting, val_metrics, paths, test_files, Thresholds(**setting, similarity=None, verify=None, k=k), None)
    setting, val_metrics = choose([trial(Thresholds(phash_distance=d, similarity=s, verify=None, k=k),
                                         {"phash_distance": d, "similarity": s}, pairs)
                                   for d in (None, 0, 2, 4, 6, 8)
                                   for s in (None, *map(float, np.round(np.arange(0.90, 0.9951, 0.005), 3)))])
    out[f"ours without the check (exact + pHash/mirror + {model} cosine)"] = grouped_result(
        setting, val_metrics, paths, test_files, Thresholds(**setting, verify=None, k=k), model)
    trials = []
    for cd in (6, 10, 14, 18, 22):
        banded = [p if p.exact or (p.distance is not None and p.distance <= cd) else replace(p, ncc=None)
                  for p in no_vectors]
        for d in (None, 0, 2, 4):
            for v in (0.97, 0.98, 0.985, 0.99):
                for local in LOCAL_GRID:
                    for c in (0.0, 0.7):
                        t = Thresholds(phash_distance=d, similarity=None, verify=v, candidate_distance=cd,
                                       min_containment=c, min_local=local, k=k)
                        trials.append(trial(t, {"phash_distance": d, "verify": v, "candidate_distance": cd,
                                                "min_containment": c, "min_local": local}, banded))
    setting, val_metrics = choose(trials)
    out["ours, check on pHash neighbours only (exact + pHash/mirror + check; no model)"] = grouped_result(
        setting, val_metrics, paths, test_files, Thresholds(**setting, similarity=None, k=k), None)
    return out


# --- the copy-detection descriptor (--descriptor)
DESCRIPTOR_FLOOR = 0.5   # least descriptor cosine of a pair measured on validation (candidates to verify)


def staged_sweep(catalog, pairs, truth, k: int) -> tuple[dict, dict]:
    """The staged pipeline on the descriptor's vectors: exact, pHash, descriptor cosine accepted directly above
    ``similarity``, and verification only of the pairs between: within ``candidate_distance`` pHash bits or above
    ``candidate_similarity`` cosine (fewer verified pairs: faster)."""
    trials = []
    verifies, phashes = (0.97, 0.98, 0.985, 0.99), (None, 0, 2, 4)
    similarities = np.round(np.arange(0.70, 0.99, 0.02), 3)
    # candidate_distance 0: only the descriptor picks what to verify (a pHash neighbour with a low cosine is not)
    band_kinds = [(None, 12, 0.0, 22, DESCRIPTOR_FLOOR)] + [
        (v, 12, c, cd, cs) for v in verifies for c in (0.0, 0.7) for cd in (0, 22) for cs in (0.5, 0.7, 0.8)]
    # pairs no setting of the sweep can accept change nothing: leave them out (a faster sweep)
    pairs = [p for p in pairs if p.exact or (p.distance is not None and p.distance <= max(phashes[1:]))
             or (p.similarity or 0) >= similarities[0] or (p.ncc or 0) >= verifies[0]]
    banded = {}
    for verify, inliers, containment, cd, cs in band_kinds:
        if (cd, cs) not in banded:
            banded[cd, cs] = [p if p.exact or (p.distance is not None and p.distance <= cd)
                              or (p.similarity is not None and p.similarity >= cs) else replace(p, ncc=None)
                              for p in pairs]
        for phash in phashes:
            for sim in (None, *similarities):
                t = Thresholds(phash_distance=phash, similarity=None if sim is None else float(sim), verify=verify,
                               min_inliers=inliers, min_containment=containment, candidate_distance=cd,
                               candidate_similarity=cs, k=k)
                r = find_duplicates(catalog, t, pairs=banded[cd, cs])
                trials.append(({"phash_distance": phash, "similarity": t.similarity, "verify": verify,
                                "min_inliers": inliers, "min_containment": containment, "min_local": t.min_local,
                                "candidate_distance": cd, "candidate_similarity": cs},
                               pair_metrics(group_pairs(r.grouping.root), truth)))
    return choose(trials)


# timed runs read and hash images on one thread, as the peers are timed here (imagededup's encode_image one image at
# a time, num_dist_workers=1); benchmarks/dedup_speed.py compares both at their multi-core defaults
TIMED_WORKERS = 1


def grouped_result(setting: dict, val_metrics: dict, paths, files, thresholds: Thresholds, model: str) -> dict:
    """End to end on test at ``thresholds``: read, hash, embed, search, verify, group."""
    truth = [g for _, g, _ in files]
    t0 = time.perf_counter()
    catalog = scan_images(paths, model=model, backend="torch", workers=TIMED_WORKERS)
    result = find_duplicates(catalog, thresholds)
    e2e = time.perf_counter() - t0
    root = result.grouping.root
    return {"setting": setting, "validation": val_metrics, "test": pair_metrics(group_pairs(root), truth),
            "recall_per_edit": per_edit_recall(lambda a, b: root[a] == root[b], files),
            "images_per_s": round(len(paths) / e2e, 1), "end_to_end_s": round(e2e, 1),
            "merges_by_stage": result.summary()["merges_by_stage"], "guarded_edges": len(result.grouping.guarded),
            "false_merges": [{"a": os.path.basename(catalog.ids[e.i]), "b": os.path.basename(catalog.ids[e.j]),
                              "reason": e.reason, "score": e.score} for e in result.grouping.accepted
                             if truth[e.i] < 0 or truth[e.i] != truth[e.j]]}


def descriptor_methods(args, val, test, out: dict) -> None:
    """The descriptor alone and the staged pipeline on its vectors, chosen on validation; with
    ``--store-thresholds`` the staged setting goes into the descriptor's card (``vision dedup`` defaults)."""
    from vision.dedup import store_thresholds

    val_paths, test_paths = [p for p, _, _ in val["files"]], [p for p, _, _ in test["files"]]
    val_truth = [g for _, g, _ in val["files"]]
    val_catalog = scan_images(val_paths, model=args.descriptor, backend="torch")
    name = val_catalog.model.name

    e_setting, e_val = embedding_sweep(val_catalog, val_truth, args.k, lowest=0.3)
    t = Thresholds(phash_distance=None, similarity=e_setting["similarity"], verify=None, k=args.k)
    entry = grouped_result(e_setting, e_val, test_paths, test["files"], t, args.descriptor)
    out["methods"][f"descriptor {name} only (cosine, no hashes, no verification)"] = entry

    t0 = time.perf_counter()
    loose = Thresholds(phash_distance=8, similarity=None, verify=0.5, candidate_distance=22,
                       candidate_similarity=DESCRIPTOR_FLOOR, k=args.k)
    pairs = candidate_pairs(val_catalog, loose, verify_all=True)
    out["descriptor_validation_candidates"] = {"pairs": len(pairs), "seconds": round(time.perf_counter() - t0, 1)}
    setting, val_metrics = staged_sweep(val_catalog, pairs, val_truth, args.k)
    chosen = Thresholds(**setting, k=args.k)
    out["methods"][f"ours with descriptor {name} (exact + pHash + descriptor cosine + verification of the band "
                   "between)"] = grouped_result(setting, val_metrics, test_paths, test["files"], chosen,
                                                args.descriptor)
    def validation_of(prefix: str) -> dict:
        return next(m for n, m in out["methods"].items() if n.startswith(prefix))["validation"]

    ours_val, features_val = validation_of("ours (exact"), validation_of("ours, embedding stage only")
    out["ship_check"] = {
        "descriptor_only_val_f1": e_val["f1"], "shipped_features_only_val_f1": features_val["f1"],
        "staged_with_descriptor_val_f1": val_metrics["f1"], "staged_with_shipped_features_val_f1": ours_val["f1"],
        "descriptor_beats_shipped_features": e_val["f1"] > features_val["f1"] and val_metrics["f1"] >= ours_val["f1"]}
    if args.store_thresholds:
        card = store_thresholds(args.descriptor, chosen, {f"dedup_val_{k}": val_metrics[k]
                                                          for k in ("precision", "recall", "f1")})
        out["stored_thresholds"] = {"model": card.name, "file": card.file, "sha256": card.sha256,
                                    "thresholds": card.config["dedup_thresholds"]}


# --- peers
def dict_pairs(result: dict, index: dict) -> set[tuple[int, int]]:
    pairs = set()
    for a, dups in result.items():
        for b in dups:
            b = b[0] if isinstance(b, tuple) else b
            i, j = index[a], index[b]
            pairs.add((min(i, j), max(i, j)))
    return pairs


def hash_threshold_sweep(hashes: np.ndarray, truth, max_t: int = 24) -> tuple[dict, dict]:
    d = hamming_distance(hashes[:, None], hashes[None])
    iu = np.triu_indices(len(hashes), 1)
    dist = d[iu]
    trials = []
    for t in range(max_t + 1):
        sel = dist <= t
        trials.append(({"max_distance": t}, pair_metrics(set(zip(iu[0][sel].tolist(), iu[1][sel].tolist())), truth)))
    return choose(trials)


def imagededup_hash(method_name: str, val_files, test_files) -> dict:
    from imagededup import methods

    method = getattr(methods, method_name)(verbose=False)

    def encode(files):
        t0 = time.perf_counter()
        enc = {os.path.basename(p): method.encode_image(image_file=p) for p, _, _ in files}
        return enc, time.perf_counter() - t0

    val_enc, _ = encode(val_files)
    val_truth = [g for _, g, _ in val_files]
    as_int = lambda enc: np.array([int(h, 16) for h in enc.values()], dtype=np.uint64)  # noqa: E731
    setting, val_metrics = hash_threshold_sweep(as_int(val_enc), val_truth)
    test_enc, encode_s = encode(test_files)
    t0 = time.perf_counter()
    result = method.find_duplicates(encoding_map=test_enc, max_distance_threshold=setting["max_distance"],
                                    num_dist_workers=1)
    search_s = time.perf_counter() - t0
    index = {os.path.basename(p): i for i, (p, _, _) in enumerate(test_files)}
    pairs = dict_pairs(result, index)
    return pairs_result(setting, val_metrics, pairs, test_files) | {
        "images_per_s": round(len(test_files) / (encode_s + search_s), 1)}


def imagededup_cnn(val_catalog, test_catalog, val_files, test_files) -> dict:
    """imagededup's CNN search given our vectors (its own CNN weights would need a download)."""
    import logging

    from imagededup.methods import CNN

    cnn = CNN.__new__(CNN)  # no __init__: it builds MobileNetV3 with downloaded weights; encodings are ours
    cnn.logger, cnn.verbose = logging.getLogger("imagededup"), 0
    val_truth = [g for _, g, _ in val_files]
    sims = val_catalog.vectors @ val_catalog.vectors.T
    iu = np.triu_indices(len(sims), 1)
    trials = []
    for s in np.round(np.arange(0.80, 1.0, 0.0025), 4):
        sel = sims[iu] >= s
        trials.append(({"min_similarity": float(s)},
                       pair_metrics(set(zip(iu[0][sel].tolist(), iu[1][sel].tolist())), val_truth)))
    setting, val_metrics = choose(trials)
    enc = {os.path.basename(p): v for p, v in zip(test_catalog.ids, test_catalog.vectors)}
    t0 = time.perf_counter()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = cnn.find_duplicates(encoding_map=enc, min_similarity_threshold=setting["min_similarity"],
                                     num_sim_workers=0)
    search_s = time.perf_counter() - t0
    index = {os.path.basename(p): i for i, (p, _, _) in enumerate(test_files)}
    pairs = dict_pairs(result, index)
    return pairs_result(setting, val_metrics, pairs, test_files) | {
        "search_s": round(search_s, 2), "note": "features: ours (grocery_resnet10t), search: imagededup"}


def plain_phash(val_catalog, test_catalog, val_files, test_files) -> dict:
    """imagehash pHash, no mirror hash, no grouping: pairs within a Hamming distance."""
    setting, val_metrics = hash_threshold_sweep(val_catalog.hashes, [g for _, g, _ in val_files])
    d = hamming_distance(test_catalog.hashes[:, None], test_catalog.hashes[None])
    iu = np.triu_indices(len(d), 1)
    sel = d[iu] <= setting["max_distance"]
    return pairs_result(setting, val_metrics, set(zip(iu[0][sel].tolist(), iu[1][sel].tolist())), test_files)


# --- main evaluation
def evaluate(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    root = Path(args.data)
    work = Path(args.out) / "images"
    started = time.perf_counter()
    val = build_split(root, "train", work / "validation", args.originals, args.edits, args.negatives, args.seed)
    test = build_split(root, "val", work / "test", args.originals, args.edits, args.negatives, args.seed + 1)
    build_s = time.perf_counter() - started
    out = {"data": {"validation": {k: v for k, v in val.items() if k != "files"} | {"images": len(val["files"])},
                    "test": {k: v for k, v in test.items() if k != "files"} | {"images": len(test["files"])},
                    "edits": list(ALL_EDITS), "edits_per_original": args.edits},
           "model": args.model, "min_precision": MIN_PRECISION, "methods": {}}
    loose = Thresholds(phash_distance=8, similarity=None, verify=0.5, candidate_distance=22,
                       candidate_similarity=args.candidate_similarity, k=args.k)
    catalogs, pairs = {}, {}
    for name, split in (("validation", val), ("test", test)):
        paths = [p for p, _, _ in split["files"]]
        catalogs[name] = scan_images(paths, model=args.model, backend="torch")
        assert catalogs[name].ids == paths, "every generated image must be readable"
    t0 = time.perf_counter()
    pairs["validation"] = candidate_pairs(catalogs["validation"], loose, verify_all=True)
    out["validation_candidates"] = {"pairs": len(pairs["validation"]), "seconds": round(time.perf_counter() - t0, 1)}
    val_truth = [g for _, g, _ in val["files"]]
    test_truth = [g for _, g, _ in test["files"]]
    setting, val_metrics = ours_sweep(catalogs["validation"], pairs["validation"], val_truth)

    # end to end on test at the chosen setting: read, hash, embed, search, verify, group
    chosen = Thresholds(**setting, similarity=None, candidate_similarity=args.candidate_similarity, k=args.k)
    paths = [p for p, _, _ in test["files"]]
    t0 = time.perf_counter()
    test_catalog = scan_images(paths, model=args.model, backend="torch", workers=TIMED_WORKERS)
    result = find_duplicates(test_catalog, chosen)
    e2e = time.perf_counter() - t0
    root_of = result.grouping.root
    out["methods"]["ours (exact + pHash/mirror + k-NN candidates + verification, guarded union-find)"] = {
        "setting": setting, "validation": val_metrics,
        "test": pair_metrics(group_pairs(root_of), test_truth),
        "recall_per_edit": per_edit_recall(lambda a, b: root_of[a] == root_of[b], test["files"]),
        "images_per_s": round(len(paths) / e2e, 1), "end_to_end_s": round(e2e, 1),
        "merges_by_stage": result.summary()["merges_by_stage"], "guarded_edges": len(result.grouping.guarded),
        "false_merges": [{"a": os.path.basename(test_catalog.ids[e.i]), "b": os.path.basename(test_catalog.ids[e.j]),
                          "reason": e.reason, "score": e.score} for e in result.grouping.accepted
                         if test_truth[e.i] < 0 or test_truth[e.i] != test_truth[e.j]]}

    # the shipped features alone (the embedding stage without hashes or verification)
    e_setting, e_val = embedding_sweep(catalogs["validation"], val_truth, args.k)
    t = Thresholds(phash_distance=None, similarity=e_setting["similarity"], verify=None, k=args.k)
    r = find_duplicates(catalogs["test"], t)
    out["methods"][f"ours, embedding stage only ({args.model} features)"] = {
        "setting": e_setting, "validation": e_val, "test": pair_metrics(group_pairs(r.grouping.root), test_truth),
        "recall_per_edit": per_edit_recall(lambda a, b: r.grouping.root[a] == r.grouping.root[b], test["files"])}

    if not args.no_cheap_stages:
        out["methods"].update(cheap_stage_methods(catalogs["validation"], pairs["validation"], val_truth, test["files"],
                                                  args.model, args.k))
    if args.descriptor:
        descriptor_methods(args, val, test, out)
    out["methods"]["imagehash pHash (plain, pairs within distance)"] = plain_phash(
        catalogs["validation"], catalogs["test"], val["files"], test["files"])
    for m in args.imagededup_hashes:
        out["methods"][f"imagededup {m}"] = imagededup_hash(m, val["files"], test["files"])
    out["methods"]["imagededup CNN (encoding_map = our features)"] = imagededup_cnn(
        catalogs["validation"], catalogs["test"], val["files"], test["files"])
    out["hardware"] = hardware(args.threads)
    out["wall_s"] = round(time.perf_counter() - started, 1)
    out["build_images_s"] = round(build_s, 1)
    return out


def hardware(threads: int) -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "torch_threads": threads, "visible_cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version(), "torch": torch.__version__}


def markdown(result: dict) -> str:
    lines = [f"# Dedup benchmark (Grocery Store photos; thresholds chosen on validation for F1 at precision >= "
             f"{result['min_precision']})", "",
             f"validation: {result['data']['validation']['images']} images (train split), test: "
             f"{result['data']['test']['images']} images (val split); {result['data']['edits_per_original']} edited "
             f"copies per original; hardware: {result['hardware']['cpu']}, {result['hardware']['torch_threads']} "
             f"threads; wall {result['wall_s']} s", "",
             "| method | setting (from validation) | val F1 | test precision | test recall | test F1 | images/s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, m in result["methods"].items():
        lines.append(f"| {name} | {json.dumps(m['setting'])} | {m['validation']['f1']} | {m['test']['precision']} | "
                     f"{m['test']['recall']} | {m['test']['f1']} | {m.get('images_per_s', '')} |")
    edits = sorted({e for m in result["methods"].values() for e in m["recall_per_edit"]})
    names = list(result["methods"])
    lines += ["", "Recall per edit type (test; copy grouped with / matched to its original)", "",
              "| edit | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for e in edits:
        lines.append(f"| {e} | " + " | ".join(str(result["methods"][n]["recall_per_edit"].get(e, "")) for n in names)
                     + " |")
    return "\n".join(lines) + "\n"


# --- scale figures
def scale(args) -> dict:
    """k-NN graph build + grouping time and peak memory on synthetic unit vectors (clusters of near copies)."""
    import faiss

    from vision.dedup.graph import group_edges
    from vision.dedup.search import Pair, edges_at

    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    out = {}
    for n in args.scale_sizes:
        dim = args.scale_dim
        base = rng.standard_normal((n, dim), dtype=np.float32)
        # 10% of vectors are near copies of another one
        copies = rng.choice(n, n // 10, replace=False)
        base[copies] = base[(copies + 1) % n] + 0.15 * rng.standard_normal((len(copies), dim), dtype=np.float32)
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        for kind in args.scale_kinds:
            limit = {"flat": args.flat_limit, "hnsw": args.hnsw_limit}.get(kind)
            if limit is not None and n > limit:
                out[f"{n}/{kind}"] = {"skipped": f"over --{kind}-limit {limit} (exact: O(N^2); HNSW: slow build on "
                                                 "few cores)"}
                continue
            from vision.dedup.search import knn_graph

            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            t0 = time.perf_counter()
            scores, ids = knn_graph(base, args.k, kind)
            knn_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            pairs = [Pair(i, int(j), similarity=float(s)) for i, j, s in
                     zip(np.repeat(np.arange(n), ids.shape[1])[(scores >= 0.9).ravel()],
                         ids[scores >= 0.9], scores[scores >= 0.9]) if j >= 0 and i != j]
            grouping = group_edges(n, edges_at(pairs, Thresholds(phash_distance=None, similarity=0.9, verify=None)))
            group_s = time.perf_counter() - t0
            found = {(min(i, j), max(i, j)) for i, j in zip(copies.tolist(), ((copies + 1) % n).tolist())}
            recall = np.mean([grouping.root[i] == grouping.root[j] for i, j in found])
            out[f"{n}/{kind}"] = {"knn_s": round(knn_s, 1), "group_s": round(group_s, 1),
                                  "peak_rss_gb": round(max(rss0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
                                                       / 2**20, 2),
                                  "copy_recall": round(float(recall), 4), "groups": len(grouping.groups)}
            print(n, kind, out[f"{n}/{kind}"], flush=True)
    return {"scale": out, "dim": args.scale_dim, "k": args.k, "hardware": hardware(args.threads)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/grocery_store"))
    ap.add_argument("--out", default="runs/dedup_eval")
    ap.add_argument("--model", default="grocery_resnet10t")
    ap.add_argument("--descriptor", help="a copy-detection descriptor (zoo name or .safetensors) to add side by side")
    ap.add_argument("--store-thresholds", action="store_true",
                    help="store the setting chosen on validation for --descriptor in its card "
                         "(config.dedup_thresholds)")
    ap.add_argument("--originals", type=int, default=150)
    ap.add_argument("--edits", type=int, default=5, help="edited copies per original")
    ap.add_argument("--negatives", type=int, default=150, help="other photos of the same classes, per split")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--candidate-similarity", type=float, default=0.8)
    ap.add_argument("--no-cheap-stages", action="store_true",
                    help="leave out our pipeline cut down to its cheap stages (hashes only, no check, check on pHash "
                         "neighbours only)")
    ap.add_argument("--imagededup-hashes", nargs="*", default=["PHash", "DHash", "WHash", "AHash"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-holdout", type=Path, help="write the train photos validation is built from (and their "
                    "neighbouring shots) to this manifest and stop: a descriptor trained for this benchmark excludes "
                    "them (configs/embedding/copydetect_holdout.txt)")
    ap.add_argument("--holdout-margin", type=int, default=3, help="neighbouring shots on each side in --write-holdout")
    ap.add_argument("--scale", action="store_true", help="k-NN graph + grouping figures on synthetic vectors")
    ap.add_argument("--scale-sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--scale-kinds", nargs="+", default=["flat", "ivf", "hnsw"])
    ap.add_argument("--scale-dim", type=int, default=128, help="128: PCA-reduced features, as at scale")
    ap.add_argument("--flat-limit", type=int, default=200_000)
    ap.add_argument("--hnsw-limit", type=int, default=200_000)
    args = ap.parse_args(argv)
    if args.write_holdout:
        photos = holdout(Path(args.data), args.originals, args.negatives, args.seed, args.holdout_margin)
        args.write_holdout.write_text(
            f"# benchmarks/dedup_eval.py --write-holdout (originals {args.originals}, negatives {args.negatives}, seed "
            f"{args.seed}, margin {args.holdout_margin}): the Grocery Store train photos its validation split is built "
            "from, with their neighbouring shots; paths relative to the dataset folder\n" + "\n".join(photos) + "\n")
        print(f"{len(photos)} photos -> {args.write_holdout}")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = scale(args) if args.scale else evaluate(args)
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    if not args.scale:
        (out / "result.md").write_text(markdown(result))
        print(markdown(result))
    else:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
