"""Feature extraction on Ray Data: read + decode + preprocess as CPU tasks, the model as a pool of actors (one GPU
each when the cluster has GPUs), shards assembled and written on the driver.

    images (one block per pending shard) -> read_and_preprocess tasks (CPU, retried by Ray)
        -> EmbedActor pool (map_batches with a callable class; restarted and its tasks retried by Ray)
        -> driver: ShardAssembler writes part-<i>.parquet when all of a shard's images are in

On GPU nodes the two stages run apart (decoding on every CPU, the GPUs only run the network); where actors need
the same resources as the CPU tasks (a CPU-only cluster) Ray fuses the CPU stage into the actors, so there each
actor is one whole pipeline: give ``num_actors`` about the number of CPUs.

The driver only receives vectors (0.5-2 KB an image), so one driver keeps up with many GPU nodes; images are
read by the workers, so their paths must be readable there (a shared file system). Works against a running
cluster (``address="auto"`` or ``ray://...``) or starts a local one.

Example::

    summary = extract_with_ray("brand_resnet10t", "photos/", "runs/vectors", shard_size=10_000, num_actors=4)
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from vision.scale.inputs import DEFAULT_SHARD_SIZE, plan_shards, read_and_preprocess
from vision.scale.model import FeatureModel, vectors_of
from vision.scale.shards import ShardAssembler, pending_shards, write_manifest

log = logging.getLogger(__name__)


def preprocess_batch(batch: dict[str, np.ndarray], spec: FeatureModel) -> dict[str, np.ndarray]:
    """CPU stage: ``id, path`` in; ``id, path, sha256, error, image`` out (one row per input, failures kept)."""
    images, digests, errors = read_and_preprocess([str(p) for p in batch["path"]], spec.head(), spec.input_size)
    return {"id": batch["id"], "path": batch["path"], "sha256": np.array(digests, dtype=object),
            "error": np.array(errors, dtype=object), "image": images}


class EmbedActor:
    """Model stage: one predictor per actor, built once; rows that failed to read pass through without a vector
    computed (a zero row the driver records as unreadable)."""

    def __init__(self, spec: FeatureModel):
        self.spec = spec
        self.predictor = spec.predictor()  # CUDA when Ray gave this actor a GPU, else CPU

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        good = np.array([not e for e in batch["error"]], dtype=bool)
        vectors = np.zeros((len(good), self.spec.dim), np.float32)
        if good.any():
            vectors[good] = vectors_of(self.predictor, batch["image"][good])
        return {"id": batch["id"], "sha256": batch["sha256"], "error": batch["error"], "vector": vectors}


def extract_with_ray(model, source, out_dir, *, backend: str = "auto", shard_size: int = DEFAULT_SHARD_SIZE,
                     batch_size: int = 64, num_actors: int | None = None, address: str | None = None,
                     num_cpus: int | None = None, retries: int | None = None, actor_cls: type = EmbedActor,
                     progress: bool = True) -> dict[str, Any]:
    """Extract vectors of every image in ``source`` (folder, manifest or Parquet table of paths) into Parquet
    shards under ``out_dir``; shards already there are skipped. Returns the manifest plus ``written``/``skipped``.

    ``num_actors``: model actors (default: one per GPU of the cluster, else 1). ``address``: a running cluster;
    without it a local one is started with ``num_cpus``. ``retries``: Ray's task retries, actor restarts and actor
    task retries after a worker dies; ``None`` keeps Ray Data's defaults (retry until done: a lost node or killed
    actor costs time, never images; give a number to stop on a batch that kills its worker every time).
    ``actor_cls``: the model stage (a subclass of :class:`EmbedActor` to add per-batch behaviour).
    """
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    out_dir = Path(out_dir)
    started = time.perf_counter()
    spec = FeatureModel.resolve(model, backend)
    plan = plan_shards(source, shard_size)
    todo = pending_shards(plan, out_dir, spec.identity())
    log.info("%d image(s) in %d shard(s); %d shard(s) to write", plan.images, len(plan.shards), len(todo))
    written: list[str] = []
    if todo:
        with _ray_session(ray, address, num_cpus):
            gpus = int(ray.cluster_resources().get("GPU", 0))
            actors = num_actors or max(gpus, 1)
            context = DataContext.get_current()
            bars, context.enable_progress_bars = context.enable_progress_bars, progress
            ds = (ray.data.from_arrow([_shard_table(s) for s in todo])  # one block per shard
                  .map_batches(preprocess_batch, batch_size=batch_size, batch_format="numpy", fn_kwargs={"spec": spec},
                               num_cpus=1, **({} if retries is None else {"max_retries": retries}))
                  .map_batches(actor_cls, batch_size=batch_size, batch_format="numpy",
                               fn_constructor_kwargs={"spec": spec}, compute=ActorPoolStrategy(size=actors),
                               num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1,
                               **({} if retries is None else {"max_restarts": retries, "max_task_retries": retries})))
            assembler = ShardAssembler(out_dir, todo, spec.identity(), spec.dim, engine="ray")
            try:
                for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                    assembler.add(batch["id"], batch["sha256"], batch["error"], batch["vector"])
            finally:
                context.enable_progress_bars = bars  # Ray's process-wide context: leave it as found
            assembler.finish()
            written = assembler.written
    manifest = write_manifest(out_dir, plan, {"backend": spec.backend})
    return manifest | {"written": written, "skipped": len(plan.shards) - len(written),
                       "seconds": round(time.perf_counter() - started, 2)}


def _shard_table(shard):
    import pyarrow as pa

    return pa.table({"id": [r.id for r in shard.refs], "path": [r.path for r in shard.refs]})


@contextlib.contextmanager
def _ray_session(ray, address: str | None, num_cpus: int | None):
    """Join ``address`` (or the session already open in this process), else start a local Ray; shut down only
    what was started here."""
    if ray.is_initialized():
        yield
        return
    kwargs = {"address": address} if address else {"num_cpus": num_cpus, "include_dashboard": False}
    ray.init(**kwargs, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()
