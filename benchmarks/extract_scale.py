#!/usr/bin/env python
"""Feature extraction throughput, side by side on one machine: single-process ``FeatureExtractor.extract_folder``,
Ray Data in local mode, Lightning ``trainer.predict`` with 1 and 2 processes; same model, same images; torch
by default, ``--backend onnxruntime`` with a feature export as ``--model``.

    python -m benchmarks.extract_scale --images ../shared/datasets/grocery_store/train --limit 300

``--limit`` takes every k-th image of the sorted folder (all classes, deterministic); the files are read once
before any timing (warm page cache). Images/s count every image from the call (model loading included) to the
last file written (Ray: also without ``ray.init``, which a real cluster pays once). The
per-image cost of each stage (decode, preprocess, model, write; plus the sha256 the sharded engines record) is
measured on the single-process path, stage by stage over the same images. Numbers are CPU-only unless CUDA is
there; a GPU node's model cost is not measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vision.data.io import list_images, load_image
from vision.features import FeatureExtractor

REPO = Path(__file__).resolve().parents[1]


def subset_manifest(folder: Path, limit: int | None, work: Path) -> tuple[Path, int]:
    paths = list_images(folder)
    if limit and limit < len(paths):
        step = len(paths) / limit
        paths = [paths[int(i * step)] for i in range(limit)]
    # entries relative to the manifest (the engines refuse absolute ones from an untrusted manifest), through a
    # link in the work folder to the image folder
    (work / "images").symlink_to(folder.resolve(), target_is_directory=True)
    manifest = work / "images.txt"
    manifest.write_text("".join(f"images/{p.resolve().relative_to(folder.resolve())}\n" for p in paths))
    return manifest, len(paths)


def stage_costs(model: str, manifest: Path, batch_size: int, work: Path, backend: str = "torch") -> dict[str, float]:
    """Milliseconds per image of each stage of the single-process path, run one stage at a time."""
    from vision.fileio import sha256_file
    from vision.scale.inputs import ImageRef, Shard
    from vision.scale.shards import write_shard

    fx = FeatureExtractor.from_pretrained(model, backend=backend)
    paths = [str(manifest.parent / line.strip()) for line in manifest.read_text().splitlines() if line.strip()]
    n = len(paths)
    t = time.perf_counter()
    images = [load_image(p) for p in paths]
    decode = time.perf_counter() - t
    t = time.perf_counter()
    for p in paths:
        sha256_file(p)
    hashing = time.perf_counter() - t
    t = time.perf_counter()
    head, runtime = fx.predictor.head, fx.predictor.runtime
    batches = [head.preprocess(images[i:i + batch_size])[0] for i in range(0, n, batch_size)]
    preprocess = time.perf_counter() - t
    runtime(batches[0])  # warm-up
    t = time.perf_counter()
    vectors = np.concatenate([runtime(b) for b in batches])
    model_s = time.perf_counter() - t
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    shard = Shard(0, tuple(ImageRef(str(i), p) for i, p in enumerate(paths)))
    rows = {str(i): ("0" * 64, v) for i, v in enumerate(vectors)}
    t = time.perf_counter()
    write_shard(work, shard, rows, {}, {"model": model, "model_sha256": "-", "output": "features"},
                vectors.shape[1], "benchmark")
    write = time.perf_counter() - t
    bytes_per_vector = (work / shard.file_name).stat().st_size / n
    return {"decode": decode, "sha256": hashing, "preprocess": preprocess, "model": model_s, "write": write,
            "n": n, "dim": vectors.shape[1], "bytes_per_vector": bytes_per_vector}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=REPO.parent / "shared/datasets/grocery_store/train")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--model", default="grocery_resnet10t")
    ap.add_argument("--backend", default="torch", choices=("torch", "onnxruntime", "auto"),
                    help="every engine's runtime (onnxruntime: give --model a feature export)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--ray-actors", type=int, nargs="+", default=[1, 2],
                    help="model actors per Ray run (on CPU Ray fuses the preprocessing tasks into them)")
    ap.add_argument("--skip-ddp", action="store_true", help="skip the 2-process Lightning run")
    ap.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="extract_scale_"))
    manifest, n = subset_manifest(args.images, args.limit, work)
    print(f"{n} images from {args.images}, model {args.model} ({args.backend}), batch {args.batch_size}, "
          f"{os.cpu_count()} CPU(s), CUDA: {torch.cuda.is_available()}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}",
          flush=True)
    for line in manifest.read_text().splitlines():  # warm the page cache: no engine pays the first cold read
        (work / line).read_bytes()
    rows: list[tuple[str, float, str]] = []

    t = time.perf_counter()
    FeatureExtractor.from_pretrained(args.model, backend=args.backend).extract_folder(
        manifest, work / "single.npy", batch_size=args.batch_size)
    rows.append(("single process (extract_folder)", time.perf_counter() - t, ""))

    import ray

    from vision.scale.ray_extract import extract_with_ray

    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_start = time.perf_counter() - t
    for actors in args.ray_actors:
        t = time.perf_counter()
        extract_with_ray(args.model, manifest, work / f"ray{actors}", backend=args.backend, shard_size=args.shard_size,
                         batch_size=args.batch_size, num_actors=actors, progress=False)
        ray_run = time.perf_counter() - t
        rows.append((f"ray local, {actors} actor(s), without start-up", ray_run, ""))
        rows.append((f"ray local, {actors} actor(s), with start-up", ray_run + ray_start,
                     f"{ray_start:.1f} s ray.init"))
    ray.shutdown()

    if args.backend == "torch":  # the Lightning engine runs torch networks only
        from vision.scale.lightning_extract import extract_with_lightning

        t = time.perf_counter()
        extract_with_lightning(args.model, manifest, work / "lightning1", shard_size=args.shard_size,
                               batch_size=args.batch_size, workers=1, accelerator="cpu")
        rows.append(("lightning predict, 1 process (+1 loader worker)", time.perf_counter() - t, ""))

    if args.backend == "torch" and not args.skip_ddp:  # Lightning's DDP launcher re-runs a script per rank
        t = time.perf_counter()
        subprocess.run([sys.executable, str(REPO / "tools/extract.py"), "--engine", "lightning", "--devices", "2",
                        "--model", args.model, "--backend", "torch", "--images", str(manifest), "--out",
                        str(work / "lightning2"), "--shard-size", str(args.shard_size), "--batch-size",
                        str(args.batch_size)], check=True, capture_output=True,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
        rows.append(("lightning predict, 2 processes (DDP gloo)", time.perf_counter() - t, "incl. process start"))

    from vision.features import load_features
    from vision.scale import read_shards

    def real(i: str) -> str:   # an id as the file it names (the engines' ids are relative to the manifest)
        return os.path.realpath(work / i)

    single_ids, single = load_features(work / "single.npy")
    by_path = {real(i): v for i, v in zip(single_ids, single)}
    lightning = () if args.backend != "torch" else ("lightning1",) if args.skip_ddp else ("lightning1", "lightning2")
    for name in (*(f"ray{a}" for a in args.ray_actors), *lightning):
        ids, vectors, _ = read_shards(work / name)
        ids = [real(i) for i in ids]
        assert sorted(ids) == sorted(by_path), f"{name}: {len(ids)} vectors for {n} images"
        cosine = min(float(v @ by_path[i]) for i, v in zip(ids, vectors))
        assert cosine > 0.9999, f"{name}: vectors differ from the single-process ones (min cosine {cosine})"

    costs = stage_costs(args.model, manifest, args.batch_size, work / "stages", args.backend)
    print(f"\n{'engine':<50}{'wall s':>8}{'images/s':>10}")
    for name, seconds, note in rows:
        print(f"{name:<50}{seconds:>8.1f}{n / seconds:>10.1f}  {note}")
    print(f"\nper-image cost, single-process path ({n} images, {costs['dim']}-d vectors)")
    for stage in ("decode", "sha256", "preprocess", "model", "write"):
        print(f"  {stage:<12}{1000 * costs[stage] / n:>8.2f} ms")
    print(f"  shard bytes per vector: {costs['bytes_per_vector']:.0f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other processes share these CPUs)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"images": n, "backend": args.backend, "model": args.model,
                                        "engines": {r[0]: r[1] for r in rows},
                                        "stage_ms": {k: 1000 * v / n for k, v in costs.items()
                                                     if k in ("decode", "sha256", "preprocess", "model", "write")},
                                        "bytes_per_vector": costs["bytes_per_vector"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
