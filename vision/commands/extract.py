"""``vision extract``: feature vectors (a classifier's pooled features, an embedder's embedding) for a folder or
manifest of images, to .npy (+ .ids.txt) or .parquet.

    vision extract --model grocery_resnet10t --images data/grocery_sample/val --out runs/val_feats.npy
    vision extract --model export/grocery_features.onnx --images data/grocery_sample/val.txt --out f.npy
    vision extract --model brand_resnet10t --images 'crops/*.png' --out crops.parquet --zoo-dir runs/my_zoo

Past one machine (``vision.scale``): ``--engine ray`` (Ray Data, local or ``--address`` of a running cluster) or
``--engine lightning`` (``trainer.predict``, one process per ``--devices``) write Parquet shards of ``--shard-size``
images into the folder ``--out``, plus ``manifest.json``; a rerun skips finished shards. ``--images`` may also be a
Parquet table with a ``path`` column there.

    vision extract --engine ray --model brand_resnet10t --images photos/ --out runs/vectors --num-actors 4
    vision extract --engine lightning --devices 2 --model brand_resnet10t --images photos/ --out runs/vectors

Unreadable files are skipped and listed in a warning; a folder with no readable image is an error (nothing is
written). The ``.npy`` and its ``.ids.txt`` are committed as one pair (``vision.features.load_features`` reads them
back and checks they belong together); exports are checked against their recorded sha256 before they run.
"""

from __future__ import annotations

import json
from pathlib import Path

from vision.commands import add_device, add_images, add_no_progress, add_zoo_dir, command_parser

# (vision.predictors.BACKENDS; spelled out so that --help loads no torch: tests/test_commands.py checks they agree)
BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
ENGINES = ("local", "ray", "lightning")  # vision.scale.engines.ENGINES


def main(argv: list[str] | None = None) -> int:
    ap = command_parser("vision extract", __doc__)
    ap.add_argument("--model", required=True, help="zoo name, .safetensors, .ckpt, features .onnx or TensorRT .plan")
    ap.add_argument("--backend", default="auto", choices=BACKENDS)
    add_images(ap, what="; ray/lightning: one folder, manifest or Parquet table with a 'path' column")
    ap.add_argument("--out", type=Path, required=True,
                    help="local: .npy (with an .ids.txt sidecar) or .parquet; ray/lightning: a folder of shards")
    ap.add_argument("--batch-size", type=int, default=32, help="images per batch")
    add_device(ap, "; local engine only")
    add_zoo_dir(ap)
    ap.add_argument("--engine", default="local", choices=ENGINES)
    ap.add_argument("--shard-size", type=int, default=10_000, help="images per shard (ray, lightning)")
    ap.add_argument("--address", default=None, help="ray: a running cluster ('auto', 'ray://host:10001'); default: "
                                                    "start a local one")
    ap.add_argument("--num-actors", type=int, default=None, help="ray: model actors (default: one per GPU, else 1)")
    ap.add_argument("--num-cpus", type=int, default=None, help="ray: CPUs of a local cluster (default: all)")
    ap.add_argument("--devices", type=int, default=1, help="lightning: processes (GPUs, or CPU processes) per node")
    ap.add_argument("--num-nodes", type=int, default=1, help="lightning: nodes")
    ap.add_argument("--workers", type=int, default=0, help="lightning: image-decoding DataLoader workers per process")
    add_no_progress(ap)
    args = ap.parse_args(argv)
    from vision.commands import image_inputs, zoo_dir_scope

    engine_options = {"ray": dict(shard_size=args.shard_size, num_actors=args.num_actors, address=args.address,
                                  num_cpus=args.num_cpus),
                      "lightning": dict(shard_size=args.shard_size, workers=args.workers, devices=args.devices,
                                        num_nodes=args.num_nodes)}.get(args.engine, {})
    with zoo_dir_scope(args.zoo_dir):  # model names are looked up in --zoo-dir, also by Ray actors and Lightning ranks
        from vision.export import ExportError
        from vision.progress import progress_wanted
        from vision.scale.engines import extract

        try:
            if args.engine == "local":
                images = image_inputs(args.images, allow_outside=args.allow_outside_paths)  # before the model loads
            elif len(args.images) != 1:
                ap.error(f"--engine {args.engine} takes one --images folder, manifest or Parquet table")
            else:
                images = Path(args.images[0])
            summary = extract(args.model, images, args.out, engine=args.engine, backend=args.backend,
                              batch_size=args.batch_size, device=args.device if args.engine == "local" else None,
                              progress=progress_wanted(not args.no_progress), **engine_options)
        except (ValueError, ImportError, FileNotFoundError, ExportError) as e:
            raise SystemExit(f"error: {e}") from None
    if "rank" in summary:
        return 0  # a Lightning rank > 0: rank 0 reports
    if args.engine == "local":
        print(json.dumps({k: v for k, v in summary.items() if k != "skipped"} | {"skipped": len(summary["skipped"])}))
    else:
        print(json.dumps({k: v for k, v in summary.items() if k not in ("shards", "unreadable")}
                         | {"shards": len(summary["shards"]), "unreadable": summary["unreadable"][:20]}))
    return 0
