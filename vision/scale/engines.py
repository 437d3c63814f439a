"""One call for feature extraction on any engine: ``vision.extract`` (and ``vision extract``) dispatch here to one
process (:class:`vision.features.FeatureExtractor`), Ray Data or a Lightning cluster."""

from __future__ import annotations

from pathlib import Path

from vision.features import ExtractError

ENGINES = ("local", "ray", "lightning")


def extract(model: str | Path, images, out: str | Path, *, engine: str = "local", backend: str = "auto",
            batch_size: int = 32, device: str | None = None, progress: bool = True, **engine_options) -> dict:
    """Feature vectors of ``images`` written to ``out``; the run's summary dict (``vision extract`` is this call).

    ``engine="local"``: one process, ``images`` a folder, manifest or list of paths, ``out`` a ``.npy`` (with its
    ``.ids.txt``) or ``.parquet``. ``engine="ray"`` (:func:`vision.scale.ray_extract.extract_with_ray`: ``shard_size``,
    ``num_actors``, ``address``, ``num_cpus``) and ``engine="lightning"``
    (:func:`vision.scale.lightning_extract.extract_with_lightning`: ``shard_size``, ``workers``, ``devices``,
    ``num_nodes``) write Parquet shards and a ``manifest.json`` into the folder ``out``; a rerun skips finished
    shards. Unreadable images are skipped and listed in the summary."""
    if engine not in ENGINES:
        raise ExtractError(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "local":
        if engine_options:
            raise ExtractError(f"{', '.join(sorted(engine_options))}: options of engine='ray'/'lightning', not "
                               "of the local engine")
        from vision.features import FeatureExtractor

        extractor = FeatureExtractor.from_pretrained(model, backend=backend, device=device)
        return extractor.extract_folder(images, out, batch_size=batch_size, progress=progress)
    if engine == "ray":
        from vision.scale.ray_extract import extract_with_ray

        return extract_with_ray(model, images, out, backend=backend, batch_size=batch_size, progress=progress,
                                **engine_options)
    from vision.scale.lightning_extract import extract_with_lightning

    return extract_with_lightning(model, images, out, backend="torch" if backend == "auto" else backend,
                                  batch_size=batch_size, progress=progress, **engine_options)
