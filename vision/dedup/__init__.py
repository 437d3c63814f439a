"""Catalog deduplication: exact copies (sha256), perceptual-hash candidates (pHash, Hamming radius), embedding
k-NN (faiss, cosine), grouped by union-find with a guard against chaining; incremental queries against a saved
catalog index.

Example::

    from vision.dedup import Thresholds, find_duplicates, scan_images, write_report
    result = find_duplicates(scan_images("photos/", model="grocery_resnet10t"), Thresholds(similarity=0.97))
    write_report(result, "runs/dedup/")      # groups.csv/.parquet, keep.txt, contact_sheet.html
"""

from vision.dedup.catalog import Catalog, DedupError, ModelId, load_feature_files, scan_images, write_model_sidecar
from vision.dedup.graph import Edge, Grouping, group_edges
from vision.dedup.index import CatalogIndex
from vision.dedup.report import write_report
from vision.dedup.search import (
    DedupResult,
    Pair,
    Thresholds,
    calibrate_threshold,
    candidate_pairs,
    find_duplicates,
    store_thresholds,
)

__all__ = ["Catalog", "CatalogIndex", "DedupError", "DedupResult", "Edge", "Grouping", "ModelId", "Pair",
           "Thresholds", "calibrate_threshold", "candidate_pairs", "find_duplicates", "group_edges",
           "load_feature_files", "scan_images", "store_thresholds", "write_model_sidecar", "write_report"]
