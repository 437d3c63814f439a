"""``vision cluster``: group a catalog's photos by product (different sellers' shots of one product in one
cluster), or assign new uploads to the clusters of a saved index without re-clustering.

    # files, folders, globs or manifests: clusters.csv/.parquet (id, cluster, score, reason), summary.json,
    # clusters.html (largest and most uncertain clusters, weakest memberships)
    vision cluster --images data/grocery_sample --model grocery_lite0 --out runs/clusters
    # vectors already extracted by vision extract (.npy, .parquet, or a folder of Ray/Lightning shards)
    vision cluster --features runs/catalog_vectors --out runs/clusters
    # save a cluster index once ...
    vision cluster --images catalog/ --model grocery_lite0 --out runs/clusters --save-index runs/cluster_index
    # ... then assign uploads (assign.csv: id, cluster, score, reason, new_cluster); --add keeps them in the index
    vision cluster --index runs/cluster_index --query uploads/ --out runs/uploads [--add]

Exact and near copies (sha256, pHash: vision dedup's stages) are merged first; then a faiss k-NN graph (exact up
to 50k images, IVF above; --index-kind) thresholded at --similarity (default: the value benchmarks/cluster_eval.py
chose for the model on a validation split) is grouped with dedup's chaining guard. --method components is the
plain-threshold baseline. ``cluster`` is a stable id (from the smallest sha256 of its photos).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from vision.commands import add_device, add_images, add_no_progress, add_zoo_dir, command_parser


def settings_from(args, base=None):
    from dataclasses import asdict

    from vision.clustering import ClusterSettings

    d = asdict(base or ClusterSettings())
    for name in ("similarity", "k", "method", "min_support", "phash_distance"):
        value = getattr(args, name)
        if value is not None:
            d[name] = None if value == "off" else value
    return ClusterSettings(**d)


def main(argv: list[str] | None = None) -> int:
    from vision.commands.dedup import off_or

    ap = command_parser("vision cluster", __doc__)
    src = ap.add_argument_group("input")
    add_images(src, required=False)
    src.add_argument("--model", help="zoo name or export giving the features")
    src.add_argument("--features", nargs="+", help="outputs of vision extract instead of --model: .npy, .parquet, or "
                     "folders of --engine ray/lightning shards")
    src.add_argument("--features-model", help="the model that wrote --features files that do not name one")
    src.add_argument("--backend", default="auto")
    add_device(src)
    src.add_argument("--batch-size", type=int, default=64)
    src.add_argument("--workers", type=int, default=None, help="threads reading images (default: cores, at most 8)")
    add_zoo_dir(src)
    inc = ap.add_argument_group("incremental")
    inc.add_argument("--save-index", type=Path, help="save the cluster index here")
    inc.add_argument("--index", type=Path, help="a saved cluster index to assign --query images to")
    inc.add_argument("--query", nargs="+", help="new images (files, folders, globs, manifests)")
    inc.add_argument("--add", action="store_true", help="with --query: add the uploads to the index and save it")
    st = ap.add_argument_group("settings (default: those chosen for --model by benchmarks/cluster_eval.py)")
    st.add_argument("--similarity", type=float, help="least cosine of a k-NN edge")
    st.add_argument("--k", type=int, help="neighbours per image")
    st.add_argument("--method", choices=("guarded", "components"), help="guarded (default) or plain components")
    st.add_argument("--min-support", type=float, help="chaining guard: share of cross edges to merge two clusters")
    st.add_argument("--phash-distance", type=off_or(int), help="near copies merged first: most pHash bits ('off')")
    ap.add_argument("--index-kind", default="auto", choices=("auto", "flat", "ivf", "hnsw"))
    ap.add_argument("--out", type=Path, help="report folder")
    add_no_progress(ap)
    args = ap.parse_args(argv)
    if args.index is None and args.images is None and args.features is None:
        ap.error("give --images and/or --features (or --index with --query)")
    if (args.index is None) != (args.query is None):
        ap.error("--index and --query go together (a cluster index saved with --save-index, and new images)")
    if args.index is None and args.model is None and args.features is None:
        ap.error("clustering by product needs features: give --model NAME or --features FILES")
    if args.index is None and args.out is None and args.save_index is None:
        ap.error("give --out (a report folder) and/or --save-index")
    from vision.commands import zoo_dir_scope

    with zoo_dir_scope(args.zoo_dir):
        try:
            return report(args) if args.index is None else assign(args)
        except (FileNotFoundError, ImportError, ValueError) as e:  # ClusterError, DedupError are ValueErrors
            raise SystemExit(f"error: {e}") from None


def report(args) -> int:
    from vision.clustering import ClusterIndex, cluster_catalog, write_cluster_report
    from vision.commands.dedup import listed, note_unreadable, scan_inputs

    catalog = scan_inputs(args, listed(args, args.images), args.model, args.features)
    result = cluster_catalog(catalog, settings_from(args), args.index_kind)
    summary = result.summary()
    if args.out is not None:
        summary["written"] = write_cluster_report(result, args.out)
    if args.save_index is not None:
        ClusterIndex.build(result, args.index_kind).save(args.save_index)
        summary["index"] = str(args.save_index)
    print(json.dumps(summary, indent=1))
    note_unreadable(catalog.skipped)
    return 0


def assign(args) -> int:
    from vision.clustering import ClusterError, ClusterIndex
    from vision.commands.dedup import count_reasons, listed, scan_inputs

    uploads = listed(args, args.query)  # a mistyped path fails before the index and model load
    index = ClusterIndex.load(args.index)
    model = index.model.name if index.model else None
    if args.model and model and args.model != model:
        raise ClusterError(f"--model {args.model} differs from the model of the cluster index {args.index}: "
                           f"{index.model}; query with --model {model}")
    model = args.model or model
    if model is None:
        raise ClusterError(f"{args.index}: the index names no model; give --model")
    new = scan_inputs(args, uploads, model)
    before = len(index)
    if args.add:
        with ClusterIndex.update(args.index) as index:  # locked from this load to the save
            rows = index.assign(new, add=True)
    else:
        rows = index.assign(new)
    summary = {"queries": len(rows), "catalog": before, "by_reason": count_reasons(rows),
               "new_clusters": len({r["cluster"] for r in rows if r["new_cluster"]}), "unreadable": len(new.skipped)}
    if args.add:
        summary["catalog_after_add"] = len(index)
    if args.out is not None:
        from vision.fileio import atomic_path

        args.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.out / "assign.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["id", "cluster", "score", "reason", "new_cluster"])
            writer.writeheader()
            writer.writerows(rows)
        summary["written"] = str(args.out / "assign.csv")
    else:
        for row in rows:
            print(json.dumps(row))
    print(json.dumps(summary, indent=1), file=sys.stderr)
    return 0
