#!/usr/bin/env python
"""Product clustering on real photos: vision.cluster's defaults against plain threshold components.

    python -m benchmarks.cluster_eval --data $GROCERY --out runs/cluster_eval      # about 3 min on 2 CPU cores
    python -m benchmarks.cluster_eval --scale 1000000 --out runs/cluster_scale      # synthetic vectors, time, memory

Grocery Store **val** photos only (its test split is never read; train is what grocery_lite0 learnt). The fine class
is the product. Two catalogs are clustered apart: the packaged goods (juice, milk, yoghurt ... cartons: products
a shop lists many sellers' photos of) and the whole val split (fruit and vegetables too). Two feature models:
``grocery_lite0`` (fine-tuned on these products' train photos) and ``pip:efficientnet_lite0`` (the ImageNet weights
it started from, never fine-tuned: what to expect on products a model never saw).

Per model and catalog: the tool's defaults (``method=average``, ``dba=3``, the similarity of ``MODEL_DEFAULTS``); plain
connected components of the thresholded k-NN graph at the threshold best on this very catalog (an oracle: the
labels choose it); the default method (DBA + average linkage) at its own best threshold (oracle too); and both
with the threshold chosen by 2-fold cross-validation over products (chosen on half the products, scored on the
other half: what a label-free default is worth on unseen products). Metrics: Shopee-style mean F1 per image (the
image's cluster vs its product's photos), adjusted Rand index, and the cluster-count error
(clusters found / products - 1).
Writes ``result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from vision.clustering import ClusterSettings, cluster_catalog
from vision.clustering.core import MODEL_DEFAULTS, neighbours
from vision.dedup import ModelId, scan_images
from vision.dedup.catalog import select

THRESHOLDS = [round(t, 2) for t in np.arange(0.30, 0.951, 0.02)]
IMAGENET = "pip:efficientnet_lite0"


def shopee_f1(labels: list[str], truth: list) -> float:
    """Mean over images of F1 between the image's predicted cluster and its true group (both include it)."""
    labels, truth = np.asarray(labels), np.asarray(truth)
    out = []
    for i in range(len(labels)):
        p, t = labels == labels[i], truth == truth[i]
        out.append(2 * (p & t).sum() / (p.sum() + t.sum()))
    return float(np.mean(out))


def metrics(labels, truth) -> dict:
    from sklearn.metrics import adjusted_rand_score

    found, true = len(set(labels)), len(set(truth))
    return {"f1": round(shopee_f1(labels, truth), 4), "ari": round(float(adjusted_rand_score(truth, labels)), 4),
            "clusters": found, "products": true, "count_error": round(found / true - 1, 4)}


def imagenet_vectors(paths: list[str], batch: int = 32) -> np.ndarray:
    """Pooled features of timm efficientnet_lite0 with the ImageNet weights of pip:efficientnet_lite0 (no
    fine-tuning), preprocessed as grocery_lite0 (224 px, crop 0.875, mean/std 0.5)."""
    import timm
    import torch
    from PIL import Image
    from safetensors.torch import load_file

    from vision.models.pip_weights import resolve

    net = timm.create_model("efficientnet_lite0", num_classes=0)
    state = {k: v for k, v in load_file(str(resolve("efficientnet_lite0"))).items() if not k.startswith("classifier")}
    net.load_state_dict(state)
    net.eval()
    out = []
    for s in range(0, len(paths), batch):
        xs = []
        for p in paths[s:s + batch]:
            im = Image.open(p).convert("RGB")
            scale = 256 / min(im.size)
            im = im.resize((max(224, round(im.width * scale)), max(224, round(im.height * scale))), Image.BILINEAR)
            left, top = (im.width - 224) // 2, (im.height - 224) // 2
            a = np.asarray(im.crop((left, top, left + 224, top + 224)), np.float32) / 255
            xs.append(torch.from_numpy(((a - 0.5) / 0.5).transpose(2, 0, 1).copy()))
        with torch.no_grad():
            out.append(net(torch.stack(xs)).numpy())
    v = np.concatenate(out).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def catalogs(data: Path, cache: Path) -> dict:
    """model -> (catalog of val photos with its vectors, product label per photo); vectors cached in ``cache``."""
    from vision.fileio import sha256_file
    from vision.models.pip_weights import resolve

    lines = [ln.split(",") for ln in (data / "val.txt").read_text().splitlines() if ln.strip()]
    paths = [str(data / ln[0].strip()) for ln in lines]
    labels = [int(ln[1]) for ln in lines]
    cache.mkdir(parents=True, exist_ok=True)
    base = scan_images(paths, model="grocery_lite0")
    if len(base) != len(paths):
        raise SystemExit(f"{len(paths) - len(base)} val photos unreadable: {base.skipped[:3]}")
    out = {"grocery_lite0": (base, labels)}
    npy = cache / "val_imagenet_lite0.npy"
    if not npy.is_file():
        np.save(npy, imagenet_vectors(paths))
    out[IMAGENET] = (replace(base, vectors=np.load(npy), model=ModelId(IMAGENET, sha256_file(resolve(
        "efficientnet_lite0")))), labels)
    return out


def settings(method: str, t: float) -> ClusterSettings:
    """The tool's settings with ``method`` at ``t``; the plain baseline (``components``) without augmentation."""
    return ClusterSettings(similarity=t, method=method, dba=1 if method == "components" else 3)


def sweep(catalog, truth, method: str) -> dict[float, dict]:
    knn = neighbours(catalog.vectors, 10)
    return {t: metrics(cluster_catalog(catalog, settings(method, t), knn=knn).labels, truth) for t in THRESHOLDS}


def best(table: dict[float, dict]) -> tuple[float, dict]:
    t = max(table, key=lambda t: (table[t]["f1"], -abs(t - 0.6)))
    return t, table[t]


def cross_validated(catalog, truth, method: str) -> dict:
    """2-fold over products (even / odd product ids): threshold chosen on one half, scored on the other; the
    mean of the two folds' metrics."""
    products = sorted(set(truth))
    folds = [set(products[0::2]), set(products[1::2])]
    parts = []
    for a, b in ((0, 1), (1, 0)):
        rows_a = [i for i, t in enumerate(truth) if t in folds[a]]
        rows_b = [i for i, t in enumerate(truth) if t in folds[b]]
        t, _ = best(sweep(select(catalog, rows_a), [truth[i] for i in rows_a], method))
        cat_b = select(catalog, rows_b)
        m = metrics(cluster_catalog(cat_b, settings(method, t)).labels,
                    [truth[i] for i in rows_b])
        parts.append(m | {"threshold": t})
    return {k: round(float(np.mean([p[k] for p in parts])), 4) for k in ("f1", "ari", "count_error")} | \
        {"thresholds": [p["threshold"] for p in parts]}


def evaluate(data: Path, cache: Path) -> dict:
    results = {}
    for model, (catalog, labels) in catalogs(data, cache).items():
        for subset in ("packaged", "all"):
            rows = [i for i, p in enumerate(catalog.ids) if subset == "all" or "/Packages/" in p]
            cat, truth = select(catalog, rows), [labels[i] for i in rows]
            t0 = time.perf_counter()
            default = cluster_catalog(cat)
            seconds = time.perf_counter() - t0
            plain, guarded = sweep(cat, truth, "components"), sweep(cat, truth, "average")
            tp, mp = best(plain)
            tg, mg = best(guarded)
            results[f"{model}/{subset}"] = {
                "images": len(rows), "products": len(set(truth)),
                "defaults": metrics(default.labels, truth) | {"similarity": default.settings.similarity,
                                                              "seconds": round(seconds, 3)},
                "plain_oracle": mp | {"threshold": tp}, "average_oracle": mg | {"threshold": tg},
                "plain_cv": cross_validated(cat, truth, "components"),
                "average_cv": cross_validated(cat, truth, "average"),
                "sweep": {"components": {str(t): m["f1"] for t, m in plain.items()},
                          "average": {str(t): m["f1"] for t, m in guarded.items()}}}
            print(model, subset, json.dumps({k: v for k, v in results[f"{model}/{subset}"].items() if k != "sweep"}),
                  flush=True)
    return results


def scale(n: int, dim: int = 128, per_cluster: int = 5, kind: str = "ivf", seed: int = 0) -> dict:
    """Cluster ``n`` synthetic unit vectors (Gaussian blobs of ``per_cluster`` around random centres) with the
    tool's defaults on a faiss ``kind`` k-NN graph; time per phase and peak memory."""
    from vision.clustering.core import copy_edges, group, knn_edges
    from vision.dedup import Catalog

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // per_cluster + 1, dim)).astype(np.float32)
    truth = np.repeat(np.arange(len(centres)), per_cluster)[:n]
    v = centres[truth] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    s = ClusterSettings(similarity=0.8).resolved(None)
    phases = {}
    t0 = time.perf_counter()
    knn = neighbours(v, s.k, kind)
    phases["knn_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    edges = knn_edges(*knn, s.similarity)
    phases["edges_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    grouping = group(n, edges, s, v)
    phases["group_s"] = round(time.perf_counter() - t0, 1)
    shas = [f"{i:064x}" for i in range(n)]
    z = np.zeros(n, np.uint64)
    cat = Catalog(shas, shas, z, z, z.astype(np.int64), z.astype(np.int64), v, None)
    del copy_edges  # synthetic vectors have no image bytes: no copy stage
    labels = grouping.root
    sub = rng.choice(n, min(n, 20000), replace=False)
    from sklearn.metrics import adjusted_rand_score

    return {"vectors": n, "dim": dim, "index": kind, "edges": len(edges), **phases,
            "total_s": round(sum(phases.values()), 1), "clusters": len(set(labels)),
            "true_clusters": len(centres), "ari_on_20k_sample": round(float(adjusted_rand_score(
                truth[sub], np.asarray(labels)[sub])), 4),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "catalog_rows": len(cat)}


def machine() -> str:
    cores = len(os.sched_getaffinity(0))
    return f"{platform.processor() or platform.machine()}, {cores} cores, no GPU"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("GROCERY", "/work/shared/datasets/grocery_store")))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scale", type=int, nargs="*", help="cluster this many synthetic vectors instead")
    ap.add_argument("--index-kind", default="ivf", choices=("ivf", "hnsw"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.scale:
        result = {"scale": [scale(n, kind=args.index_kind) for n in args.scale]}
        for r in result["scale"]:
            print(json.dumps(r), flush=True)
    else:
        result = {"runs": evaluate(args.data, args.out / "cache"), "model_defaults": MODEL_DEFAULTS}
    result |= {"machine": machine(), "wall_s": round(time.perf_counter() - t0, 1),
               "date": time.strftime("%Y-%m-%d")}
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
