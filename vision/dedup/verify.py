"""Second-stage check of a candidate pair: ORB keypoints matched with a ratio test, a similarity transform fitted
by RANSAC (each image also tried mirrored), then the normalised cross-correlation (NCC) of the two greyscale images
aligned by it, over the region the inliers span. An edited copy (re-encoded, resized, cropped, rotated, recoloured,
bordered, overlaid) aligns to NCC near 1; a different photo of the same product finds few consistent keypoints or
leaves residual differences (pose, lighting, background) that lower the NCC.

Example::

    verifier = Verifier()
    verifier.score("a.jpg", "b.jpg")        # (inliers, ncc, containment); ncc -1: no transform found
"""

from __future__ import annotations

import numpy as np

SIDE = 256          # images are compared with their longer side resized to this many pixels
MIN_MATCHES = 8
TRIM = 0.1           # share of worst-matching pixels left out of the NCC


class Verifier:
    """Scores pairs of image paths; keeps each image's keypoints for the pairs it appears in (``cache`` entries
    at most, oldest dropped first)."""

    def __init__(self, features: int = 500, ratio: float = 0.8, cache: int = 4096):
        import cv2

        self.cv2 = cv2
        self.orb = cv2.ORB_create(nfeatures=features)
        self.matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self.ratio, self.cache_size = ratio, cache
        self.cache: dict[tuple[str, bool], tuple] = {}

    def _features(self, path: str, mirrored: bool):
        key = (path, mirrored)
        if key not in self.cache:
            from vision.data.io import ImageLoadError, load_image

            try:
                rgb = load_image(path, draft_size=SIDE)
            except (ImageLoadError, OSError):
                self.cache[key] = None
                return None
            grey = self.cv2.cvtColor(rgb, self.cv2.COLOR_RGB2GRAY)
            s = SIDE / max(grey.shape)
            grey = self.cv2.resize(grey, None, fx=s, fy=s, interpolation=self.cv2.INTER_AREA)
            if mirrored:
                grey = np.ascontiguousarray(grey[:, ::-1])
            kp, des = self.orb.detectAndCompute(grey, None)
            points = np.float32([k.pt for k in kp]).reshape(-1, 2)
            if len(self.cache) >= self.cache_size:
                self.cache.pop(next(iter(self.cache)))
            self.cache[key] = (points, des, grey)
        return self.cache[key]

    def _align(self, a, b) -> tuple[int, float, float]:
        cv2 = self.cv2
        (pa, da, ga), (pb, db, gb) = a, b
        if da is None or db is None or len(da) < MIN_MATCHES or len(db) < MIN_MATCHES:
            return 0, -1.0, 0.0
        good = [m[0] for m in self.matcher.knnMatch(da, db, k=2)
                if len(m) == 2 and m[0].distance < self.ratio * m[1].distance]
        if len(good) < MIN_MATCHES:
            return len(good), -1.0, 0.0
        src = pa[[m.queryIdx for m in good]]
        dst = pb[[m.trainIdx for m in good]]
        transform, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=4)
        if transform is None:
            return 0, -1.0, 0.0
        inliers = inliers.ravel().astype(bool)
        count = int(inliers.sum())
        if count < MIN_MATCHES:
            return count, -1.0, 0.0
        size = (ga.shape[1], ga.shape[0])
        warped = cv2.warpAffine(gb.astype(np.float32), transform, size,
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=-1)
        # compare where both images have content (the hull of each one's keypoints), so a border or screenshot
        # frame around one copy is left out but the background around a matched product is not
        content_b = cv2.warpAffine(_hull(gb.shape, pb), transform, size,
                                   flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0)
        hull_a = _hull(ga.shape, pa)
        valid = (warped >= 0) & (hull_a > 0) & (content_b > 0)
        # containment: a copy (even cropped) lies inside the other image; two shots of one shelf only overlap
        scale2 = abs(np.linalg.det(transform[:, :2])) or 1.0
        area_b = _hull(gb.shape, pb).sum() / scale2
        containment = float(valid.sum() / max(1.0, min(hull_a.sum(), area_b)))
        if valid.sum() < 400:
            return count, -1.0, 0.0
        x, y = ga.astype(np.float32)[valid], warped[valid]
        x = (x - x.mean()) / (x.std() + 1e-6)
        y = (y - y.mean()) / (y.std() + 1e-6)
        # a text overlay or a status bar changes a small area completely: leave out the worst-matching tenth
        keep = (x - y) ** 2 <= np.quantile((x - y) ** 2, 1 - TRIM)
        x, y = x[keep], y[keep]
        x = (x - x.mean()) / (x.std() + 1e-6)
        y = (y - y.mean()) / (y.std() + 1e-6)
        return count, float((x * y).mean()), containment

    def score(self, path_a: str, path_b: str) -> tuple[int, float, float]:
        """``(inliers, ncc, containment)`` of the better of ``b`` against ``a`` and against ``a`` mirrored;
        containment: the share of the smaller image's content that the aligned pair has in common."""
        b = self._features(path_b, False)
        if b is None:
            return 0, -1.0, 0.0
        best = (0, -1.0, 0.0)
        for mirrored in (False, True):
            a = self._features(path_a, mirrored)
            if a is not None:
                best = max(best, self._align(a, b), key=lambda r: r[1])
            if best[1] >= 0.9:   # a confident direct match: skip the mirror
                break
        return best


def _hull(shape, points: np.ndarray) -> np.ndarray:
    import cv2

    mask = np.zeros(shape, np.uint8)
    if len(points) >= 3:
        cv2.fillConvexPoly(mask, cv2.convexHull(points.astype(np.int32)), 1)
    return mask
