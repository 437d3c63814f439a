"""Peak memory of hostile inputs, unchecked next to vision's reader, each in a fresh process (ru_maxrss).

    python -m benchmarks.hostile_inputs --out benchmarks/results/hostile_inputs.json

Cases, each read twice: by the plain library call an unchecked reader would make, and by vision's reader:
- an ``.npz`` gallery whose ``vectors`` member inflates to 1.5 GiB (a 1.5 MB file): ``np.load`` vs
  ``BrandGallery.load``;
- a ``vectors.faiss`` of 10 vectors whose header claims 1M x 512: ``faiss.read_index`` vs ``CatalogIndex.load``
  (the index's ``CURRENT`` digests rewritten to match, as an attacker would, so the header check is what refuses);
- 12 PNGs of 8900 x 8900 pixels (about 250 KB each): every image decoded before batching (what a naive predictor
  does) vs ``vision.predictor(...).stream`` with the default pixel budget per batch.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

_MEASURE = """
import resource, sys, json
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
{setup}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome = "read"
try:
{body}
except Exception as e:
    outcome = type(e).__name__ + ": " + str(e)[:160]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"growth_mib": round((peak - base) / 1024, 1), "peak_mib": round(peak / 1024, 1),
                  "outcome": outcome}}))
"""


def _run(setup: str, body: str) -> dict:
    code = _MEASURE.format(setup=setup, body="\n".join("    " + line for line in body.strip().splitlines()))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={
        "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "VISION_HOME": tempfile.mkdtemp()})
    if out.returncode != 0:
        return {"outcome": f"process died (rc {out.returncode}): {out.stderr.strip()[-200:]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _lying_npy(shape: tuple, dtype: str, payload: bytes) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": shape})
    return header.getvalue() + payload


def gallery_bomb(folder: Path) -> Path:
    from vision.brands.gallery import BrandGallery

    gallery = BrandGallery(128)
    gallery.add("acme", np.eye(128, dtype=np.float32)[:1])
    real = folder / "real.npz"
    gallery.save(real)
    bomb = folder / "bomb.npz"
    rows, chunk = 3 * 2 ** 20, b"\0" * (64 << 20)
    with zipfile.ZipFile(real) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != "vectors.npy":
                dst.writestr(info.filename, src.read(info))
                continue
            # 3M x 128 float32 = 1.5 GiB of zeros, really there once inflated: deflate packs them ~1000:1
            with dst.open("vectors.npy", "w", force_zip64=True) as f:
                f.write(_lying_npy((rows, 128), "<f4", b""))
                for _ in range(rows * 128 * 4 // len(chunk)):
                    f.write(chunk)
    return bomb


def faiss_bomb(folder: Path) -> tuple[Path, Path]:
    """A catalog index of 10 images whose vectors.faiss claims 1M x 512 vectors, digests rewritten to match."""
    import faiss

    from vision.dedup.catalog import Catalog
    from vision.dedup.index import CatalogIndex
    from vision.fileio import sha256_file

    n, d = 10, 512
    vectors = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    catalog = Catalog([f"img{i}.jpg" for i in range(n)], [f"{i:064x}" for i in range(n)],
                      np.arange(n, dtype=np.uint64), np.arange(n, dtype=np.uint64), np.full(n, 100, np.int64),
                      np.full(n, 1000, np.int64), vectors)
    index_dir = folder / "index"
    CatalogIndex.build(catalog).save(index_dir)
    current = json.loads((index_dir / "CURRENT").read_text())
    part = index_dir / current["version"] / "vectors.faiss"
    raw = bytearray(part.read_bytes())
    claimed = 1_000_000
    raw[8:16] = claimed.to_bytes(8, "little")                        # ntotal, after the fourcc and d
    code_size_at = raw.index((n * d).to_bytes(8, "little"), 16)  # the float array's length field
    raw[code_size_at:code_size_at + 8] = (claimed * d).to_bytes(8, "little")
    part.write_bytes(bytes(raw))
    current["parts"]["vectors.faiss"] = {"sha256": sha256_file(part), "size": part.stat().st_size}
    (index_dir / "CURRENT").write_text(json.dumps(current))
    faiss.write_index(faiss.IndexFlatIP(d), str(folder / "unused.faiss"))
    return index_dir, part


def huge_pngs(folder: Path, count: int = 6, side: int = 8900) -> list[Path]:
    from PIL import Image

    paths = []
    image = Image.new("RGB", (side, side), (200, 40, 40))
    for i in range(count):
        path = folder / f"huge_{i}.png"
        image.save(path, optimize=False)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the results here as JSON")
    ap.add_argument("--images", type=int, default=12, help="number of 8900 x 8900 PNGs")
    args = ap.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="hostile-"))
    rows = []
    start = time.perf_counter()

    bomb = gallery_bomb(folder)
    rows.append({"case": f"gallery .npz inflating to 1.5 GiB ({bomb.stat().st_size / 1e6:.1f} MB file)",
                 "unchecked": _run("import numpy as np", f"z = np.load({str(bomb)!r}); v = z['vectors']"),
                 "vision": _run("from vision.brands.gallery import BrandGallery",
                                f"BrandGallery.load({str(bomb)!r})")})

    index_dir, part = faiss_bomb(folder)
    rows.append({"case": f"vectors.faiss claiming 1M x 512 ({part.stat().st_size / 1e3:.0f} KB file)",
                 "unchecked": _run("import faiss", f"faiss.read_index({str(part)!r})"),
                 "vision": _run("from vision.dedup.index import CatalogIndex",
                                f"CatalogIndex.load({str(index_dir)!r})")})

    pngs = huge_pngs(folder, args.images)
    listed = [str(p) for p in pngs]
    rows.append({"case": f"{len(pngs)} PNGs of 8900 x 8900 ({pngs[0].stat().st_size / 1e3:.0f} KB each), "
                         "grocery_resnet10t",
                 "unchecked": _run("import numpy as np; from PIL import Image; Image.MAX_IMAGE_PIXELS = None",
                                   f"batch = [np.asarray(Image.open(p).convert('RGB')) for p in {listed!r}]"),
                 "vision": _run("import vision; p = vision.predictor('grocery_resnet10t', device='cpu')",
                                f"results = list(p.stream({listed!r}, batch_size=32))")})

    report = {"command": "python -m benchmarks.hostile_inputs " + " ".join(argv or sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
              "cpus": __import__("os").cpu_count(), "wall_s": round(time.perf_counter() - start, 1), "rows": rows}
    for row in rows:
        print(f"{row['case']}\n  unchecked: {row['unchecked']}\n  vision:    {row['vision']}", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
