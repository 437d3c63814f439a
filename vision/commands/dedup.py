"""``vision dedup``: find duplicate and near-duplicate images in a catalog, or check new uploads against a saved
catalog index.

    # files, folders, globs or manifests ('path, ...' lines): groups.csv/.parquet, keep.txt, contact_sheet.html
    vision dedup --images data/grocery_sample --model grocery_resnet10t --out runs/dedup
    # vectors already extracted by vision extract: .npy, .parquet, or a folder of Ray/Lightning shards; the model
    # comes from the file (or --features-model for older .npy files), so features of two models never mix
    vision dedup --features runs/catalog_vectors --out runs/dedup
    # build a catalog index once ...
    vision dedup --images catalog/ --model grocery_resnet10t --save-index runs/catalog_index
    # ... then check uploads against it without rebuilding (query.csv: id, match, reason, score)
    vision dedup --index runs/catalog_index --query uploads/ --out runs/uploads
    # ... and keep the catalog current: add the uploads that matched nothing (each save is a new version of the
    # index, switched atomically; concurrent --add runs take turns on its lock, so none loses the other's images)
    vision dedup --index runs/catalog_index --query uploads/ --add

Stages: exact copies (sha256 of the bytes), pHash (with its mirror image) within --phash-distance bits, embedding
k-NN (faiss: exact up to 50k images, IVF above; --index-kind to choose) giving candidates; a cosine gate
(--verify-similarity) rejects those too far apart, and only the rest are verified by keypoint alignment (--verify:
least aligned NCC), keypoints computed once per image, on --workers threads; groups by union-find with a chaining
guard. The JSON report and summary.json give each stage's seconds and images/s ("stages") and how many candidate
pairs each stage settled ("pairs_decided_by"). With a features export of the model (vision export --model M
--output-kind features) the embedding runs on ONNX Runtime (--backend auto picks it). A model whose card
holds calibrated thresholds (config.dedup_thresholds, e.g. the copy-detection descriptor) brings them as the
defaults. Unreadable images are counted and listed (unreadable.txt); so are files whose name holds a line break
(keep.txt lists one path per line); no readable image is an error.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict
from pathlib import Path

from vision.commands import add_device, add_images, add_no_progress, add_zoo_dir, command_parser


def save_features(catalog, path: Path) -> None:
    """The catalog's vectors as a features .npy (+ .ids.txt) with the .model.json that names their model."""
    from vision.dedup import DedupError
    from vision.features import NpyWriter

    if catalog.vectors is None:
        raise DedupError("--save-features needs vectors: give --model")
    # the writer commits the sidecar with the pair it describes (sha256 and shape), so a crash cannot mislabel it
    with NpyWriter(path, {"model": catalog.model.name, "model_sha256": catalog.model.sha256}) as writer:
        writer.write(catalog.ids, catalog.vectors)


def thresholds_from(args, base=None):
    from vision.dedup import Thresholds

    t = asdict(base or Thresholds())
    for name in ("phash_distance", "similarity", "verify", "candidate_distance", "candidate_similarity",
                 "min_inliers", "min_containment", "min_local", "verify_similarity", "gate_distance",
                 "mirror_margin", "k", "min_support"):
        value = getattr(args, name)
        if value is not None:
            t[name] = None if value in ("off", -1) else value
    return Thresholds(**t)


def off_or(kind):
    def parse(text: str):
        return "off" if text == "off" else kind(text)
    return parse


def main(argv: list[str] | None = None) -> int:
    ap = command_parser("vision dedup", __doc__)
    src = ap.add_argument_group("input")
    add_images(src, required=False)
    src.add_argument("--model", help="zoo name or export giving the embedding (omit: exact and pHash stages only)")
    src.add_argument("--features", nargs="+", help="outputs of vision extract instead of --model: .npy, .parquet, or "
                     "folders of --engine ray/lightning shards (image paths are read from them)")
    src.add_argument("--features-model",
                     help="the model that wrote --features files that do not name one (.npy without .model.json)")
    src.add_argument("--save-features", type=Path, help="also save the vectors (.npy + .ids.txt + .model.json)")
    src.add_argument("--backend", default="auto")
    add_device(src)
    src.add_argument("--batch-size", type=int, default=64, help="images per batch (embedding stage)")
    src.add_argument("--workers", type=int, default=None, help="threads reading and hashing images, and checking "
                     "keypoints (default: one per CPU core, at most 8)")
    add_zoo_dir(src)
    inc = ap.add_argument_group("incremental")
    inc.add_argument("--save-index", type=Path, help="save the catalog index here (build once, query later)")
    inc.add_argument("--index", type=Path, help="a saved catalog index to check --query images against")
    inc.add_argument("--query", nargs="+", help="new images to check against --index (files, folders, globs "
                                                "and/or manifests, as --images)")
    inc.add_argument("--add", action="store_true", help="with --query: then add the new (unmatched) images to the "
                                                       "index and save it")
    th = ap.add_argument_group("thresholds (default: those calibrated for --model, stored in its card by "
                               "benchmarks/dedup_eval.py; else that benchmark's choice for the shipped features)")
    th.add_argument("--phash-distance", type=off_or(int), help="most pHash bits of 64 that differ ('off')")
    th.add_argument("--similarity", type=off_or(float), help="least cosine accepted without verification ('off')")
    th.add_argument("--verify", type=off_or(float), help="least aligned NCC of a verified candidate ('off')")
    th.add_argument("--candidate-distance", type=int)
    th.add_argument("--candidate-similarity", type=float)
    th.add_argument("--min-inliers", type=int)
    th.add_argument("--min-containment", type=float, help="least share of the smaller image the two have in common")
    th.add_argument("--min-local", type=off_or(float), help="least local edge agreement of a verified candidate "
                                                          "(another shot of the same shelf scores lower; 'off')")
    th.add_argument("--verify-similarity", type=off_or(float), help="least embedding cosine of a candidate for "
                    "the keypoint check (the cheaper cosine gate rejects the rest; 'off': check every candidate)")
    th.add_argument("--gate-distance", type=int, help="pHash pairs within this many bits pass the cosine gate "
                                                       "whatever their cosine")
    th.add_argument("--mirror-margin", type=off_or(int), help="the keypoint check tries a pair's mirrored "
                    "alignment only where the mirror image's pHash is within this many bits of the direct "
                    "distance or closer ('off': always)")
    th.add_argument("--k", type=int, help="neighbours per image in the embedding stage")
    th.add_argument("--min-support", type=float, help="chaining guard: share of cross edges to merge two groups")
    ap.add_argument("--index-kind", default="auto", choices=("auto", "flat", "ivf", "hnsw"))
    ap.add_argument("--out", type=Path, help="report folder")
    add_no_progress(ap)
    args = ap.parse_args(argv)
    if args.index is None and args.images is None and args.features is None:
        ap.error("give --images and/or --features (or --index with --query)")
    if args.index is None and args.query is not None:
        ap.error("--query needs --index (a catalog saved with --save-index)")
    if args.index is not None and args.query is None:
        ap.error("--index needs --query (new images: files, folders, globs or manifests)")
    if args.index is None and args.out is None and args.save_index is None:
        ap.error("give --out (a report folder) and/or --save-index")
    from vision.commands import zoo_dir_scope

    with zoo_dir_scope(args.zoo_dir):  # model names, and the cards holding calibrated thresholds, from --zoo-dir
        try:
            return report(args) if args.index is None else query(args)
        except (FileNotFoundError, ImportError, ValueError) as e:  # DedupError, NoImagesError are ValueErrors
            raise SystemExit(f"error: {e}") from None


def listed(args, items: list[str] | None):
    """The image paths of ``--images``/``--query`` items (None for none), before any model or index loads."""
    from vision.commands import image_inputs

    return image_inputs(items, allow_outside=args.allow_outside_paths) if items is not None else None


def scan_inputs(args, images, model: str | None, features=None, thumbnails: bool = False):
    """The catalog of ``images`` (from :func:`listed`) and/or ``features`` as the dedup and cluster commands read
    it: the common flags (backend, device, batch size, workers, progress) from ``args``; ``thumbnails``: keep what
    the keypoint check compares of each image."""
    from vision.dedup import ModelId, scan_images

    features_model = getattr(args, "features_model", None)
    return scan_images(images, model=model, features=features,
                       features_model=ModelId(features_model) if features_model else None,
                       backend=args.backend, device=args.device, batch_size=args.batch_size,
                       progress=not args.no_progress, workers=args.workers, thumbnails=thumbnails)


def note_unreadable(skipped: list) -> None:
    if skipped:
        print(f"{len(skipped)} unreadable image(s): " + "; ".join(f"{p} ({why})" for p, why in skipped[:5]),
              file=sys.stderr)


def count_reasons(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["reason"]] = counts.get(row["reason"], 0) + 1
    return counts


def report(args) -> int:
    from vision.dedup import CatalogIndex, Thresholds, find_duplicates, write_report

    catalog = scan_inputs(args, listed(args, args.images), args.model, args.features,
                          thumbnails=args.out is not None and args.verify != "off")
    if args.save_features is not None:
        save_features(catalog, args.save_features)
    t = thresholds_from(args, Thresholds.for_catalog(catalog))
    if catalog.calibrated is not None:
        print(f"thresholds calibrated for {catalog.model} (its card), command-line values on top", file=sys.stderr)
    if args.save_index is not None:
        CatalogIndex.build(catalog, t, args.index_kind).save(args.save_index)
        print(f"catalog index: {args.save_index} ({len(catalog)} images)", file=sys.stderr)
    if args.out is not None:
        result = find_duplicates(catalog, t, args.index_kind, workers=args.workers)
        written = write_report(result, args.out)
        print(json.dumps(result.summary() | {"written": written}, indent=1))
    note_unreadable(catalog.skipped)
    return 0


def query(args) -> int:
    from vision.dedup import CatalogIndex, DedupError

    uploads = listed(args, args.query)  # a mistyped path fails before the index and model load
    index = CatalogIndex.load(args.index)
    catalog_model = index.catalog.model
    model = args.model or (catalog_model.name if catalog_model else None)
    if args.model and catalog_model and args.model != catalog_model.name:
        raise DedupError(f"--model {args.model} differs from the model of the catalog index {args.index}: "
                         f"{catalog_model}; query with --model {catalog_model.name}")
    new = scan_inputs(args, uploads, model)
    if args.add:
        from vision.dedup.catalog import select

        # the lock is held from this load to the save: a concurrent --add waits, then sees these images
        with CatalogIndex.update(args.index) as index:
            before = len(index)
            rows = index.query(new, thresholds_from(args, index.thresholds))
            index.add(select(new, [q for q, row in enumerate(rows) if row["match"] is None]))
    else:
        rows = index.query(new, thresholds_from(args, index.thresholds))
        before = len(index)
    summary = {"queries": len(rows), "catalog": before, "by_reason": count_reasons(rows),
               "unreadable": len(new.skipped)}
    if args.add:
        summary["catalog_after_add"] = len(index)
    if args.out is not None:
        from vision.fileio import atomic_write_text

        args.out.mkdir(parents=True, exist_ok=True)
        with open(args.out / "query.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["id", "match", "reason", "score"])
            writer.writeheader()
            writer.writerows(rows)
        from vision.dedup.report import unreadable_lines

        atomic_write_text(args.out / "unreadable.txt", unreadable_lines(new.skipped))
        summary["written"] = str(args.out / "query.csv")
    else:
        for row in rows:
            print(json.dumps(row))
    print(json.dumps(summary, indent=1), file=sys.stderr)
    return 0
