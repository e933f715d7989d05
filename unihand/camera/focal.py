"""The focal length of a video whose intrinsics are not given, from the camera's own rotation.

A camera that turns moves every background point by the rotation's homography ``K R K^-1``; only the
true focal length makes the tracked points' bearings differ by one rotation. For a grid of horizontal
fields of view (:data:`FOV_GRID`) the tracks' pixels (work size, as the engine tracks them) are turned
into bearings and the best rotation is fitted between pairs of frames a few frames apart (robust
Kabsch, Cauchy re-weighted); the residual it leaves, in pixels, summed over the pairs, is lowest at the
true focal length. The residual is measured in the image (each track carried by the rotation's
homography ``K R K^-1``), where the tracks' own error lives. Translation adds parallax to it; pairs
close in time keep that small, and the pairs that turn the most (the most information on the focal
length) are kept. The minimum is
refined by a parabola through its neighbours. The engine's bundle adjustment then refines it with the
map (:func:`unihand.camera.engine.solve_camera` with ``refine_focal``).

Where the camera hardly turns (:data:`MIN_TURN_DEG`) the focal length cannot be read this way and
None is returned: the default stays, and the log says so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Horizontal fields of view (degrees, across the tracked width) tried.
FOV_GRID = np.arange(30.0, 141.0, 2.0)
#: Frame pairs are this many frames apart.
PAIR_GAP = (4, 8)
#: Pairs kept (those that turn the most) and the least turn (degrees) a pair must show.
MAX_PAIRS = 40
MIN_TURN_DEG = 4.0
#: Shared tracks a pair needs.
MIN_SHARED = 30


def _bearings(p: np.ndarray, f: float, c: np.ndarray) -> np.ndarray:
    b = np.concatenate([(p - c) / f, np.ones((len(p), 1))], axis=1)
    return b / np.linalg.norm(b, axis=1, keepdims=True)


def _rotation_residual(pa: np.ndarray, pb: np.ndarray, f: float, c: np.ndarray) -> tuple[float, float]:
    """(median residual in image pixels, rotation angle in degrees) of the best rotation taking the bearings
    of ``pa`` to those of ``pb`` at focal length ``f`` (pixels) and principal point ``c``: ``pa`` carried by
    the rotation's homography ``K R K^-1`` lands that far from ``pb`` (the tracks' own error is in pixels)."""
    ba, bb = _bearings(pa, f, c), _bearings(pb, f, c)
    w = np.ones(len(ba))
    R = np.eye(3)
    r = np.zeros(len(ba))
    for _ in range(4):  # Cauchy re-weighted Kabsch (scale 1.5 px)
        H = (ba * w[:, None]).T @ bb
        U, _, Vt = np.linalg.svd(H)
        D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
        R = Vt.T @ D @ U.T
        v = ba @ R.T
        front = v[:, 2] > 1e-6
        r = np.full(len(ba), 1e3)
        r[front] = np.linalg.norm(f * v[front, :2] / v[front, 2:] + c - pb[front], axis=1)
        w = 1.0 / (1.0 + (r / 1.5) ** 2)
    angle = math.degrees(math.acos(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0)))
    return float(np.median(r)), angle


def estimate_focal(tracker: Any) -> tuple[float | None, dict[str, Any]]:
    """(focal length in the tracker's work pixels or None, stats) from a filled
    :class:`~unihand.camera.engine.BackgroundTracker` (module doc)."""
    n = tracker.num_frames
    w = tracker.work_shape[1]
    c = np.array([tracker.K[0, 2], tracker.K[1, 2]])
    f0 = float(tracker.K[0, 0])
    pairs = []
    for a in range(0, n, 2):
        for gap in PAIR_GAP:
            b = a + gap
            if b >= n:
                continue
            common, ia, ib = np.intersect1d(tracker.ids[a], tracker.ids[b], assume_unique=True, return_indices=True)
            if len(common) < MIN_SHARED:
                continue
            pa, pb = tracker.pts[a][ia].astype(np.float64), tracker.pts[b][ib].astype(np.float64)
            turn = _rotation_residual(pa, pb, f0, c)[1]
            if turn >= MIN_TURN_DEG:
                pairs.append((turn, pa, pb))
    stats: dict[str, Any] = {"pairs": len(pairs)}
    if len(pairs) < 3:
        stats["why"] = f"the camera hardly turns (fewer than 3 frame pairs turn {MIN_TURN_DEG:g} degrees)"
        return None, stats
    pairs = sorted(pairs, key=lambda p: -p[0])[:MAX_PAIRS]
    focals = (w / 2) / np.tan(np.radians(FOV_GRID) / 2)
    cost = np.array([sum(_rotation_residual(pa, pb, f, c)[0] for _, pa, pb in pairs) for f in focals]) / len(pairs)
    k = int(np.argmin(cost))
    fov = float(FOV_GRID[k])
    if 0 < k < len(FOV_GRID) - 1:  # the parabola's vertex through the minimum and its neighbours
        y0, y1, y2 = cost[k - 1], cost[k], cost[k + 1]
        den = y0 - 2 * y1 + y2
        if den > 0:
            fov += float(np.clip(0.5 * (y0 - y2) / den, -1, 1)) * float(FOV_GRID[1] - FOV_GRID[0])
    stats.update(turn_max_deg=round(float(pairs[0][0]), 2), residual_px=round(float(cost[k]), 3),
                 fov_deg=round(fov, 2), at_ends=bool(k in (0, len(FOV_GRID) - 1)))
    if k in (0, len(FOV_GRID) - 1):
        stats["why"] = "the rotation fit prefers the end of the range tried"
        return None, stats
    return float((w / 2) / math.tan(math.radians(fov) / 2)), stats

