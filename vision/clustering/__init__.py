"""Product clustering: group a catalog's photos by product (not only by copy), and assign new uploads to the
clusters of a saved index without re-clustering.

Images (folders, manifests, paths) or the outputs of ``vision extract`` (``.npy``, ``.parquet``, Ray/Lightning
shard folders) -> features of a zoo model -> exact and near copies merged first (dedup's stages) -> faiss k-NN
graph at the model's similarity threshold -> clusters, with dedup's chaining guard (:mod:`vision.clustering.core`).

Example::

    import vision
    result = vision.cluster("photos/", model="grocery_lite0")           # a ClusterResult
    write_cluster_report(result, "runs/clusters/")   # clusters.csv/.parquet, summary.json, clusters.html
    ClusterIndex.build(result).save("runs/cluster_index")
    rows = ClusterIndex.load("runs/cluster_index").assign(scan_images("uploads/", model="grocery_lite0"))
"""

from __future__ import annotations

from vision.clustering.core import ClusterError, ClusterResult, ClusterSettings, cluster_catalog
from vision.clustering.index import ClusterIndex
from vision.clustering.report import write_cluster_report


def cluster(images=None, model: str | None = None, features=None, features_model: str | None = None,
            settings: ClusterSettings | None = None, index_kind: str = "auto", **scan) -> ClusterResult:
    """Cluster ``images`` (a folder, manifest or paths) by product with the features of ``model`` (a zoo name or
    export) or of ``features`` files (outputs of ``vision extract``; ``images=None`` reads the images they name).
    ``scan``: passed to :func:`vision.dedup.scan_images` (backend, device, batch_size, workers, progress)."""
    from vision.dedup import ModelId, scan_images

    if model is None and features is None:
        raise ClusterError("clustering by product needs feature vectors: give model= (a zoo name) or features= "
                           "(outputs of vision extract)")
    catalog = scan_images(images, model=model, features=features,
                          features_model=ModelId(features_model) if features_model else None, **scan)
    return cluster_catalog(catalog, settings, index_kind)

__all__ = ["ClusterError", "ClusterIndex", "ClusterResult", "ClusterSettings", "cluster", "cluster_catalog",
           "write_cluster_report"]
