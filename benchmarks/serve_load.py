"""Served vs in-process: throughput and p50/p99 latency of the classifier, the detector and the brand recogniser on a
real tritonserver (vision.serving) at 1, 4 and 16 concurrent clients, beside the same models through
``vision.predictor`` / ``BrandRecognizer`` in this process on the same backend (ONNX Runtime on the same ONNX file
for the two networks; torch for the recogniser, as served). One image per request on both sides; the in-process
side is also run as one stream in batches of 16 (its best case). Results: benchmarks/results/serving.md.

    python -m benchmarks.serve_load --requests 200
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGES = {"grocery_resnet10t": sorted((REPO / "data" / "grocery_sample" / "val").rglob("*.jpg")),
          "logo_yolo11n": sorted((REPO / "data" / "logo_sample" / "images" / "val").glob("*.jpg")),
          "brand_recognizer": sorted((REPO / "data" / "logo_sample" / "images" / "val").glob("*.jpg"))}


def _side_by_side(runs: dict, paths: list[Path], clients: int, requests: int, rounds: int) -> dict:
    """Each of ``runs`` (name -> ``run(path)``) in ``rounds`` interleaved rounds of ``requests / rounds`` calls, so a
    change in the machine's load hits both sides: per side the median images/s over rounds and p50/p99 latency over
    every call."""
    per_round = max(clients, requests // rounds)
    seen: dict[str, list] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            seen[name].append(_load(run, paths, clients, per_round))
    out = {}
    for name, results in seen.items():
        ms = np.concatenate([r["ms"] for r in results])
        out[name] = {"images_s": float(np.median([r["images_s"] for r in results])),
                     "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                     "rounds_images_s": [round(r["images_s"], 1) for r in results]}
    return out


def _load(run, paths: list[Path], clients: int, requests: int) -> dict:
    """``requests`` calls of ``run(path)`` from ``clients`` threads: images/s and each call's latency (ms)."""
    latencies: list[float] = []

    def client(k: int) -> list[float]:
        own = []
        for i in range(k, requests, clients):
            start = time.perf_counter()
            run(paths[i % len(paths)])
            own.append(time.perf_counter() - start)
        return own

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for own in pool.map(client, range(clients)):
            latencies += own
    wall = time.perf_counter() - start
    return {"images_s": requests / wall, "ms": np.array(latencies) * 1000}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200, help="requests per model and concurrency (classifier)")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--models", default=",".join(IMAGES), help=f"which of {', '.join(IMAGES)}")
    ap.add_argument("--instances", type=int, default=1, help="instances of each served step")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved served / in-process rounds per cell")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serving.json")
    args = ap.parse_args(argv)
    import tritonclient.grpc as grpc

    import vision
    from vision.brands import DEFAULT_DETECTOR, DEFAULT_EMBEDDER, DEFAULT_GALLERY
    from vision.brands.recognition import BrandRecognizer
    from vision.serving import TritonServer, build_repository, prepare_runtime
    from vision.serving.runtime import runtime_home

    clients = [int(c) for c in args.clients.split(",")]
    requests = {"grocery_resnet10t": args.requests, "logo_yolo11n": max(16, args.requests // 2),
                "brand_recognizer": max(16, args.requests // 8)}
    runtime = prepare_runtime(log=print)
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        repository = Path(scratch) / "repository"
        chosen = args.models.split(",")
        build_repository([m for m in ("grocery_resnet10t", "logo_yolo11n") if m in chosen], repository,
                         recognizer="brand_recognizer" in chosen, env=runtime.env, instances=args.instances, log=print)
        local = {name: vision.predictor(next((runtime_home() / "onnx").glob(f"{name}.*.onnx")))
                 for name in ("grocery_resnet10t", "logo_yolo11n")}
        recognizer = BrandRecognizer.from_pretrained(DEFAULT_EMBEDDER, DEFAULT_GALLERY, detector=DEFAULT_DETECTOR,
                                                     device="cpu", embedder_backend="torch", detector_backend="torch")
        local["brand_recognizer"] = recognizer
        load_start = time.perf_counter()
        with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0, runtime=runtime) as server:
            load_s = time.perf_counter() - load_start
            encoded = {p: np.array([[p.read_bytes()]], dtype=np.object_) for ps in IMAGES.values() for p in ps}

            import threading

            clients_of = threading.local()  # one gRPC channel per client thread, as a real client keeps one

            def served(model):
                def run(path):
                    client = getattr(clients_of, "client", None)
                    if client is None:
                        client = clients_of.client = grpc.InferenceServerClient(server.grpc_url)
                    tensor = grpc.InferInput("IMAGE", [1, 1], "BYTES")
                    tensor.set_data_from_numpy(encoded[path])
                    json.loads(client.infer(model, [tensor]).as_numpy("RESULT")[0, 0])
                return run

            for model, paths in IMAGES.items():
                if model not in chosen:
                    continue
                n = requests[model]
                served(model)(paths[0])  # warm
                local[model]([str(paths[0])])
                start = time.perf_counter()
                list(local[model]([str(paths[i % len(paths)]) for i in range(n)], batch_size=16))
                batched = n / (time.perf_counter() - start)
                for c in clients:
                    sides = _side_by_side({"served": served(model),
                                           "in_process": lambda path, m=model: local[m]([str(path)])},
                                          paths, c, n, args.rounds)
                    rows.append({"model": model, "clients": c, "requests": n, **sides,
                                 "in_process_batch16_images_s": batched})
                    print(json.dumps(rows[-1]), flush=True)
    result = {"date": time.strftime("%Y-%m-%d"), "host": platform.node(), "python": platform.python_version(),
              "instances": args.instances, "rounds": args.rounds,
              "server_load_s": round(load_s, 1), "wall_s": round(time.perf_counter() - started, 1), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0


def table(result: dict) -> str:
    lines = ["| model | clients | served img/s | served p50 / p99 ms | in-process img/s | in-process p50 / p99 ms | "
             "served / in-process | in-process batch 16 img/s | served / batch 16 |", "|---" * 9 + "|"]
    for r in result["rows"]:
        s, p = r["served"], r["in_process"]
        lines.append(f"| {r['model']} | {r['clients']} | {s['images_s']:.1f} | {s['p50_ms']:.0f} / {s['p99_ms']:.0f} | "
                     f"{p['images_s']:.1f} | {p['p50_ms']:.0f} / {p['p99_ms']:.0f} | "
                     f"{s['images_s'] / p['images_s']:.2f} | {r['in_process_batch16_images_s']:.1f} | "
                     f"{s['images_s'] / r['in_process_batch16_images_s']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
