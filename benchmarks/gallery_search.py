#!/usr/bin/env python
"""Gallery search time, exact (faiss IndexFlatIP) vs approximate (HNSW, IVF), and the approximate indexes' recall.

    python -m benchmarks.gallery_search --sizes 10000 100000 1000000 --out runs/gallery_search.json

Gallery: random unit vectors (dimension of the shipped embedding, 128). Queries: gallery vectors plus noise (cosine
about 0.8 to their source), like a crop of a known brand. Recall@k of an approximate index = the fraction of the
exact top-k it returns; search time is per query in batches of ``--queries`` (``batch``) and one query at a time
(``single``). Every index is built by :func:`vision.retrieval.build_index`, the code ``BrandGallery`` uses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from vision.retrieval import build_index


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def timed_search(index, queries: np.ndarray, k: int, single: int) -> tuple[np.ndarray, float, float]:
    start = time.perf_counter()
    _, ids = index.search(queries, k)
    batch_ms = (time.perf_counter() - start) * 1000 / len(queries)
    start = time.perf_counter()
    for q in queries[:single]:
        index.search(q[None], k)
    single_ms = (time.perf_counter() - start) * 1000 / single
    return ids, batch_ms, single_ms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--single", type=int, default=100, help="queries timed one at a time")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--ef-search", type=int, nargs="+", default=[64])
    ap.add_argument("--hnsw-max-size", type=int, help="skip HNSW for larger galleries (its build takes minutes "
                    "on a few cores)")
    ap.add_argument("--nlist", type=int, help="IVF lists (default: vision.retrieval.ivf_lists, about 4 sqrt(N))")
    ap.add_argument("--nprobe", type=int, nargs="*", default=[16], help="IVF lists scanned per query; none: no IVF")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    rows = []
    for size in args.sizes:
        gallery = unit(rng.standard_normal((size, args.dim), dtype=np.float32))
        sources = rng.integers(0, size, args.queries)
        queries = unit(gallery[sources] + 0.75 / np.sqrt(args.dim) * rng.standard_normal((args.queries, args.dim)))
        start = time.perf_counter()
        exact = build_index(gallery, "flat")
        exact_build = time.perf_counter() - start
        exact_ids, exact_batch, exact_single = timed_search(exact, queries, args.k, args.single)
        row = {"size": size, "dim": args.dim, "threads": args.threads,
               "exact": {"build_s": round(exact_build, 3), "batch_ms_per_query": round(exact_batch, 4),
                         "single_ms_per_query": round(exact_single, 3),
                         "top1_is_source": round(float((exact_ids[:, 0] == sources).mean()), 4)},
               "hnsw": []}

        def agreement(ids: np.ndarray, exact_ids=exact_ids) -> dict:
            overlap = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids, exact_ids)])
            return {"recall@1_vs_exact": round(float((ids[:, 0] == exact_ids[:, 0]).mean()), 4),
                    f"recall@{args.k}_vs_exact": round(float(overlap), 4)}

        if args.hnsw_max_size is None or size <= args.hnsw_max_size:
            start = time.perf_counter()
            hnsw = build_index(gallery, "hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction)
            hnsw_build = time.perf_counter() - start
            for ef in args.ef_search:
                hnsw.hnsw.efSearch = ef
                ids, batch_ms, single_ms = timed_search(hnsw, queries, args.k, args.single)
                row["hnsw"].append({"M": args.hnsw_m, "ef_construction": args.ef_construction, "ef_search": ef,
                                    "build_s": round(hnsw_build, 2), "batch_ms_per_query": round(batch_ms, 4),
                                    "single_ms_per_query": round(single_ms, 3), **agreement(ids)})
        row["ivf"] = []
        if args.nprobe:
            start = time.perf_counter()
            ivf = build_index(gallery, "ivf", nlist=args.nlist, seed=args.seed)
            ivf_build = time.perf_counter() - start
            for nprobe in args.nprobe:
                ivf.nprobe = min(nprobe, ivf.nlist)
                ids, batch_ms, single_ms = timed_search(ivf, queries, args.k, args.single)
                row["ivf"].append({"nlist": ivf.nlist, "nprobe": ivf.nprobe, "build_s": round(ivf_build, 2),
                                   "batch_ms_per_query": round(batch_ms, 4), "single_ms_per_query": round(single_ms, 3),
                                   **agreement(ids)})
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
