"""Second-stage check of a candidate pair: ORB keypoints matched with a ratio test, a similarity transform fitted
by RANSAC (each image also tried mirrored), then the normalised cross-correlation (NCC) of the two greyscale images
aligned by it, over the region the inliers span. An edited copy (re-encoded, resized, cropped, rotated, recoloured,
bordered, overlaid) aligns to NCC near 1; a different photo of the same product finds few consistent keypoints or
leaves residual differences (pose, lighting, background) that lower the NCC.

Two shots of one shelf taken a moment apart can still reach an NCC of 0.99 (smooth produce, a small shift). The
``local`` score separates them: the median over a 4x4 grid of tiles of the NCC of the two images' gradient
magnitudes, compared at the resolution of the coarser of the two (the finer one area-downscaled first, so a
downscaled or letterboxed copy is not penalised for the detail it lost). An edited copy is the same pixels under a
similarity transform, so its edges coincide in most tiles (a caption or sticker spoils a few tiles, which the
median ignores); another shot has parallax and its own noise, and its edges drift apart everywhere.

Example::

    verifier = Verifier()
    verifier.score("a.jpg", "b.jpg")        # Check(inliers, ncc, containment, local); ncc -1: no transform found
"""

from __future__ import annotations

import statistics
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, NamedTuple, Sequence

import numpy as np

SIDE = 256          # images are compared with their longer side resized to this many pixels
MIN_MATCHES = 8
TRIM = 0.1           # share of worst-matching pixels left out of the NCC
GRID = 4             # the local score's tiles per side
LOCAL_FROM = 0.8     # the local score is measured only from this NCC up (-1 below: far under any useful verify)
AHEAD = 256          # pairs whose keypoints the other threads compute ahead of the one scoring pairs


class Check(NamedTuple):
    """The verifier's signals for one pair: RANSAC inliers, aligned NCC (-1: no transform found), the share of the
    smaller image the two have in common, and the local edge agreement (-1: not measured)."""

    inliers: int
    ncc: float
    containment: float
    local: float = -1.0


NO_MATCH = Check(0, -1.0, 0.0)


def thumbnail(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """What the check compares of an image decoded with ``draft_size=SIDE``: ``(grey, upsampling)``, the grey image
    with its longer side resized to :data:`SIDE` and how much that enlarged it (1 for images at least that large).
    The dedup scan keeps these for the images it reads (:func:`vision.dedup.scan_images`), so the check decodes
    nothing a second time."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    s = SIDE / max(grey.shape)
    return cv2.resize(grey, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), max(1.0, s)


class Verifier:
    """Scores pairs of image paths; keeps each image's keypoints for the pairs it appears in (``cache`` entries
    at most, oldest dropped first), so keypoints are computed once per image, not once per pair. Safe to call from
    several threads (:meth:`score_pairs` runs a pool of them: OpenCV and faiss release the GIL)."""

    def __init__(self, features: int = 500, ratio: float = 0.8, cache: int = 4096, min_inliers: int = MIN_MATCHES,
                 local_from: float = LOCAL_FROM, thumbnails: Mapping[str, tuple[np.ndarray, float]] | None = None):
        import cv2

        self.cv2 = cv2
        self.thumbnails = thumbnails or {}   # path -> thumbnail() of it, read instead of decoding the file
        self.features, self.ratio, self.cache_size = features, ratio, cache
        # below these the pair cannot be accepted: alignment without the NCC under min_inliers, and no local score
        # under local_from (find_duplicates sets them to its thresholds; the defaults measure every signal)
        self.min_inliers, self.local_from = max(MIN_MATCHES, int(min_inliers)), float(local_from)
        self.cache: dict[tuple[str, bool], tuple] = {}
        self._local = threading.local()   # an ORB detector per thread (OpenCV's detectors are not shared safely)
        self._lock = threading.Lock()
        self._busy: dict[tuple[str, bool], threading.Event] = {}   # keypoints being computed by another thread

    def _features(self, path: str, mirrored: bool):
        """``(keypoints, descriptors, grey image, upsampling, hull)``: the image with its longer side at
        :data:`SIDE`, how much that enlarged it (1 for images at least that large) and the mask of its keypoints'
        convex hull (every pair the image is in needs it), or ``None`` if unreadable."""
        key = (path, mirrored)
        with self._lock:
            if key in self.cache:
                return self.cache[key]
            busy = self._busy.get(key)
            if busy is None:   # this thread computes them; another that needs them meanwhile waits for them
                self._busy[key] = threading.Event()
        if busy is not None:
            busy.wait()
            with self._lock:
                if key in self.cache:
                    return self.cache[key]
            return self._features(path, mirrored)   # dropped from a full cache meanwhile: compute them again
        try:
            return self._compute(key)
        finally:
            with self._lock:
                self._busy.pop(key).set()

    def _prefetch(self, key: tuple[str, bool]) -> None:
        """Compute keypoints ahead of need, unless they are computed or being computed (no waiting for them)."""
        if self._state(key) == "new":
            self._features(*key)

    def _state(self, key: tuple[str, bool]) -> str:
        """``"done"`` (cached), ``"busy"`` (being computed by a thread) or ``"new"``."""
        with self._lock:
            return "done" if key in self.cache else "busy" if key in self._busy else "new"

    def _compute(self, key: tuple[str, bool]):
        from vision.data.io import ImageLoadError, load_image

        path, mirrored = key
        kept = self.thumbnails.get(path)
        if kept is None:
            try:
                kept = thumbnail(load_image(path, draft_size=SIDE))
            except (ImageLoadError, OSError):
                return self._keep(key, None)
        grey, upsampling = kept
        if mirrored:
            grey = np.ascontiguousarray(grey[:, ::-1])
        orb = getattr(self._local, "orb", None)
        if orb is None:
            orb = self._local.orb = self.cv2.ORB_create(nfeatures=self.features)
        kp, des = orb.detectAndCompute(grey, None)
        # (KeyPoint_convert: the coordinates in one C call, not 500 Python objects read while holding the GIL)
        points = self.cv2.KeyPoint_convert(kp).reshape(-1, 2) if kp else np.empty((0, 2), np.float32)
        return self._keep(key, (points, des, grey, upsampling, _hull(grey.shape, points)))

    def _keep(self, key, value):
        with self._lock:
            if key not in self.cache and len(self.cache) >= self.cache_size:
                self.cache.pop(next(iter(self.cache)))
            return self.cache.setdefault(key, value)

    def _matches(self, da: np.ndarray, db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``(in a, in b)`` of the descriptor matches that pass the ratio test: each descriptor of ``a``
        against its two nearest of ``b`` by Hamming distance (faiss' binary flat search: a few times faster than
        OpenCV's brute-force matcher, the same matches)."""
        import faiss

        index = faiss.IndexBinaryFlat(db.shape[1] * 8)
        index.add(db)
        dist, ids = index.search(da, 2)
        good = (ids[:, 1] >= 0) & (dist[:, 0] < self.ratio * dist[:, 1])
        return np.nonzero(good)[0], ids[good, 0]

    def _align(self, a, b) -> Check:
        cv2 = self.cv2
        (pa, da, ga, _, hull_a), (pb, db, gb, _, hull_b) = a, b
        if da is None or db is None or len(da) < MIN_MATCHES or len(db) < MIN_MATCHES:
            return NO_MATCH
        query, train = self._matches(da, db)
        if len(query) < MIN_MATCHES:
            return Check(len(query), -1.0, 0.0)
        src, dst = pa[query], pb[train]
        transform, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=4)
        if transform is None:
            return NO_MATCH
        inliers = inliers.ravel().astype(bool)
        count = int(inliers.sum())
        if count < self.min_inliers:
            return Check(count, -1.0, 0.0)
        warped, valid = _warp(ga, hull_a, gb, hull_b, transform)
        # containment: a copy (even cropped) lies inside the other image; two shots of one shelf only overlap
        scale2 = abs(np.linalg.det(transform[:, :2])) or 1.0
        area_b = np.count_nonzero(hull_b) / scale2
        containment = float(np.count_nonzero(valid) / max(1.0, min(np.count_nonzero(hull_a), area_b)))
        if np.count_nonzero(valid) < 400:
            return Check(count, -1.0, 0.0)
        score = _ncc(ga[valid].astype(np.float32), warped[valid], TRIM)
        local = _local(a, b, transform, (warped, valid)) if score >= self.local_from else -1.0
        return Check(count, score, containment, local)

    def score(self, path_a: str, path_b: str, mirror: bool = True) -> Check:
        """The :class:`Check` of the better of ``b`` against ``a`` and against ``a`` mirrored (by NCC); the mirror
        is tried only when the direct alignment is not confident, and never with ``mirror=False``."""
        b = self._features(path_b, False)
        if b is None:
            return NO_MATCH
        best = NO_MATCH
        for mirrored in (False, True) if mirror else (False,):
            a = self._features(path_a, mirrored)
            if a is not None:
                best = max(best, self._align(a, b), key=lambda r: r.ncc)
            if best.ncc >= 0.9:   # a confident direct match: skip the mirror
                break
        return best

    def score_pairs(self, pairs: Sequence[tuple[str, str]], workers: int = 1,
                    mirror: Sequence[bool] | None = None) -> list[Check]:
        """:meth:`score` of each ``(path_a, path_b)`` in order (``mirror``: per pair, whether its mirrored
        alignment may be tried; default all), with ``workers`` threads in all. Each image's keypoints, mirrored
        ones included, are computed once.

        One thread scores the pairs, in order, while the others compute the keypoints of the pairs ahead of it
        (:data:`AHEAD` pairs at most: both images, and the first one mirrored where the mirror may be tried). The
        pair work holds the GIL much of its time (numpy on arrays of a few thousand pixels: on the 1,103 pairs of
        ``benchmarks/dedup_speed.py``, two threads sharing it ran 1.32x one, two processes 1.63x;
        ``benchmarks/dedup_check.py``), while ORB releases it: so the keypoints are what more threads speed up, and
        they overlap the pair work."""
        if not pairs:
            return []
        jobs = list(zip(pairs, [True] * len(pairs) if mirror is None else list(mirror)))
        if workers <= 1:
            with ThreadPoolExecutor(1, initializer=_one_openmp_thread) as alone:
                return alone.submit(lambda: [self.score(*pair, mirror=m) for pair, m in jobs]).result()
        keypoints = ThreadPoolExecutor(workers - 1, initializer=_one_openmp_thread)
        queued = 0

        def queue_up_to(end: int) -> None:
            nonlocal queued
            for (a, b), m in jobs[queued:end]:
                for key in ((a, False), (b, False)) + (((a, True),) if m else ()):
                    keypoints.submit(self._prefetch, key)
            queued = max(queued, end)

        def keys(end: int, start: int):
            """The keypoint sets the pairs ``start..end`` may need, the last pair's first."""
            for (a, b), m in reversed(jobs[start:end]):
                yield from ((a, True), (b, False), (a, False)) if m else ((b, False), (a, False))

        def score_all() -> list[Check]:
            out = []
            for n, ((a, b), m) in enumerate(jobs):
                if n % (AHEAD // 4) == 0:
                    queue_up_to(n + AHEAD)
                # rather than wait for keypoints another thread is computing, compute those of a later pair
                # (the furthest ahead first: the other threads take them in order)
                spare = None
                while self._state((a, False)) == "busy" or self._state((b, False)) == "busy":
                    if spare is None:
                        spare = (k for k in keys(queued, n + 1) if self._state(k) == "new")
                    key = next(spare, None)
                    if key is None:
                        break
                    self._features(*key)
                out.append(self.score(a, b, mirror=m))
            return out

        try:
            with ThreadPoolExecutor(1, initializer=_one_openmp_thread) as scorer:
                return scorer.submit(score_all).result()
        finally:   # (after an error, what is still queued is dropped rather than computed)
            keypoints.shutdown(wait=True, cancel_futures=True)


def _one_openmp_thread() -> None:
    """faiss' searches on a verifier thread run on that thread alone: a 500 x 500 search is too small to share out,
    and the pool already keeps the cores busy (OpenMP's thread count is per calling thread: the caller's is kept)."""
    import faiss

    faiss.omp_set_num_threads(1)


def _hull(shape, points: np.ndarray) -> np.ndarray:
    import cv2

    mask = np.zeros(shape, np.uint8)
    if len(points) >= 3:
        cv2.fillConvexPoly(mask, cv2.convexHull(points.astype(np.int32)), 1)
    return mask


def _warp(ga, hull_a, gb, hull_b, transform) -> tuple[np.ndarray, np.ndarray]:
    """``b`` resampled into ``a``'s frame (``transform`` maps ``a``'s coordinates to ``b``'s; -1 outside) and the
    mask where both have content: the hull of each one's keypoints (``hull_a``, ``hull_b``: :func:`_hull`), so a
    border or screenshot frame around one copy is left out but the background around a matched product is not."""
    import cv2

    size = (ga.shape[1], ga.shape[0])
    warped = cv2.warpAffine(gb.astype(np.float32), transform, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderValue=-1)
    content_b = cv2.warpAffine(hull_b, transform, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                               borderValue=0)
    return warped, (warped >= 0) & (hull_a > 0) & (content_b > 0)


def _ncc(x: np.ndarray, y: np.ndarray, trim: float = 0.0) -> float:
    """NCC of two samples; ``trim``: the share of worst-matching pixels left out (a text overlay or a status bar
    changes a small area completely)."""
    x = (x - x.mean()) / (x.std() + 1e-6)
    y = (y - y.mean()) / (y.std() + 1e-6)
    if trim:
        d = x - y
        d *= d
        # the pixels up to the (1 - trim) quantile: the order statistic at its index (np.quantile's, rounded down)
        # bounds them, and one partition finds it (np.quantile partitions twice to interpolate to the same set)
        k = int(d.size * (1 - trim) - (1 - trim))
        keep = d <= np.partition(d, k)[k]
        x, y = x[keep], y[keep]
        x = (x - x.mean()) / (x.std() + 1e-6)
        y = (y - y.mean()) / (y.std() + 1e-6)
    return float((x * y).mean())


def _local(a, b, transform, warped_a) -> float:
    """Median over a :data:`GRID` x :data:`GRID` grid of the NCC of gradient magnitudes, in the frame of the image
    with the coarser content (-1 if fewer than 4 tiles have content on both sides). ``warped_a``: ``b`` already
    resampled into ``a``'s frame, reused when that frame is the one to compare in."""
    import cv2

    (pa, _, ga, ua, hull_a), (pb, _, gb, ub, hull_b) = a, b
    s = float(np.sqrt(abs(np.linalg.det(transform[:, :2])))) or 1.0   # b's frame pixels per a's frame pixel
    # the real pixels each image has per pixel of a's frame: 1/ua for a, s/ub for b (ua, ub: upsampling on load)
    if s / ub < 1 / ua:       # b is coarser: compare in b's frame
        ref, h_ref, u, other, p_other, h_other, m, f = (gb, hull_b, ub, ga, pa, hull_a,
                                                        cv2.invertAffineTransform(transform), 1 / s)
    else:
        ref, h_ref, u, other, p_other, h_other, m, f = ga, hull_a, ua, gb, pb, hull_b, transform, s
    if ref is ga and f <= 1.05:
        warped, valid = warped_a
    else:
        if f > 1.05:          # the other image is larger in this frame: area-downscale it first (no aliasing)
            other = cv2.resize(other, None, fx=1 / f, fy=1 / f, interpolation=cv2.INTER_AREA)
            m, h_other = m / f, _hull(other.shape, p_other / f)
        warped, valid = _warp(ref, h_ref, other, h_other, m)
    warped = warped * valid   # 0 outside the content (float32, as warpAffine made it)
    valid = valid.astype(np.uint8)
    if u > 1.05:              # the reference was enlarged on load: compare at its real resolution
        size = (max(8, round(ref.shape[1] / u)), max(8, round(ref.shape[0] / u)))
        ref, warped = (cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (ref.astype(np.float32), warped))
        valid = cv2.resize(valid, size, interpolation=cv2.INTER_NEAREST)
    inner = cv2.erode(valid, np.ones((5, 5), np.uint8)) > 0    # gradients at the content's edge are the edge's
    if inner.sum() < 100:
        return -1.0

    rows, cols = np.nonzero(inner.any(1))[0], np.nonzero(inner.any(0))[0]
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    # gradients over the content's box only, with the pixel around it that a 3x3 Sobel reads (the same values)
    top, left = max(0, y0 - 1), max(0, x0 - 1)
    box = slice(top, min(ref.shape[0], y1 + 1)), slice(left, min(ref.shape[1], x1 + 1))
    inside = slice(y0 - top, y1 - top), slice(x0 - left, x1 - left)

    def edges(x):   # (a uint8 image's Sobel in float32 is the same as its float32 copy's)
        x = x[box]
        gx, gy = cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1)
        # sqrt(gx^2 + gy^2) in numpy: np.hypot is slower, cv2.magnitude's last bit depends on the calling thread
        gx *= gx
        gy *= gy
        gx += gy
        return np.sqrt(gx, out=gx)[inside]

    # per tile, the sums an NCC needs (count, x, y, x^2, y^2, xy over the tile's content), all six at once
    ys = y0 + (y1 - y0) * np.arange(GRID + 1) // GRID
    xs = x0 + (x1 - x0) * np.arange(GRID + 1) // GRID
    terms = np.empty((6, y1 - y0, x1 - x0))
    m, x, y = terms[0], terms[1], terms[2]
    m[:] = inner[y0:y1, x0:x1]
    np.multiply(edges(ref), m, out=x)
    np.multiply(edges(warped), m, out=y)
    np.multiply(x, x, out=terms[3])
    np.multiply(y, y, out=terms[4])
    np.multiply(x, y, out=terms[5])
    n, sx, sy, sxx, syy, sxy = np.add.reduceat(np.add.reduceat(terms, ys[:-1] - y0, axis=1), xs[:-1] - x0, axis=2)
    size = np.outer(np.diff(ys), np.diff(xs))
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = sx / n, sy / n
        dx, dy = np.sqrt(np.maximum(sxx / n - mx * mx, 0)), np.sqrt(np.maximum(syy / n - my * my, 0))
        ncc = (sxy / n - mx * my) / ((dx + 1e-6) * (dy + 1e-6))
    # a tile counts when at least half of it (and 30 pixels) has content on both sides, and both have edges there
    used = (size > 0) & (n >= np.maximum(30, size // 2)) & (dx > 1e-3) & (dy > 1e-3)
    tiles = ncc[used]
    return statistics.median(tiles.tolist()) if len(tiles) >= 4 else -1.0   # (np.median's overhead, 16 values)
