"""Cheap duplicate signals: the sha256 of a file's bytes (exact copies) and a 64-bit perceptual hash (pHash).

The pHash of an image and of its mirror image are both kept, so a mirrored copy is found by the same Hamming
search (the distance of a pair is the smaller of the two). Hamming search runs on faiss' binary indexes.

Example::

    h = phash(load_image("a.jpg"))                     # (hash, mirrored hash) as two uint64
    pairs = hamming_pairs(hashes, mirrored, max_distance=10)   # (i, j, distance) with i < j
"""

from __future__ import annotations

import numpy as np

HASH_BITS = 64


def phash(image: np.ndarray, hash_size: int = 8) -> tuple[int, int]:
    """imagehash's pHash of an RGB ``uint8`` array and of its left-right mirror, as unsigned 64-bit integers.

    The same bits as ``imagehash.phash`` on the image and on its mirror image, from one resize and one DCT: the
    DCT-II of a mirrored row is the row's DCT with odd coefficients negated (half the cost of hashing twice)."""
    from PIL import Image
    from scipy.fft import dct

    side = hash_size * 4
    grey = np.asarray(Image.fromarray(image).convert("L").resize((side, side), Image.Resampling.LANCZOS), np.float64)
    low = dct(dct(grey, axis=0), axis=1)[:hash_size, :hash_size]
    mirrored = low * np.where(np.arange(hash_size) % 2, -1.0, 1.0)
    return tuple(int.from_bytes(np.packbits((c > np.median(c)).ravel()).tobytes(), "big") for c in (low, mirrored))


def _as_bytes(hashes) -> np.ndarray:
    """uint64 hashes -> (N, 8) uint8 rows, most significant byte first (faiss' binary vector layout)."""
    return np.ascontiguousarray(np.asarray(hashes, dtype=">u8").view(np.uint8).reshape(-1, 8))


def hamming_distance(a, b) -> np.ndarray:
    """Bitwise Hamming distance between uint64 hash arrays (broadcasting)."""
    x = np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))
    return np.unpackbits(x[..., None].view(np.uint8), axis=-1).sum(-1)


def hamming_pairs(hashes, mirrored=None, max_distance: int = 10) -> list[tuple[int, int, int]]:
    """Every pair ``(i, j, distance)``, ``i < j``, whose pHashes differ in at most ``max_distance`` bits, the
    distance being the smaller of direct and mirror-to-direct; a faiss binary range search over all hashes."""
    import faiss

    hashes = np.asarray(hashes, np.uint64)
    if len(hashes) < 2:
        return []
    index = faiss.IndexBinaryFlat(HASH_BITS)
    index.add(_as_bytes(hashes))
    best: dict[tuple[int, int], int] = {}
    for queries in (hashes, None if mirrored is None else np.asarray(mirrored, np.uint64)):
        if queries is None:
            continue
        lims, dist, ids = index.range_search(_as_bytes(queries), max_distance + 1)  # radius is exclusive
        for i in range(len(queries)):
            for d, j in zip(dist[lims[i]:lims[i + 1]], ids[lims[i]:lims[i + 1]]):
                if i != j:
                    key = (min(i, int(j)), max(i, int(j)))
                    best[key] = min(best.get(key, HASH_BITS), int(d))
    return [(i, j, d) for (i, j), d in sorted(best.items())]
