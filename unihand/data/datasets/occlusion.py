"""Per-frame hand occlusion ratio (paper eq. 17); buckets are ``unihand.eval.metrics.BUCKETS``.

``r_occ = (|M_hand| - |M_hand ∩ M_vis|) / |M_hand|`` where ``M_vis`` is the dataset's
visible-hand mask and ``M_hand`` the silhouette of the full MANO mesh projected into
the image. The silhouette of a single mesh is the union of its projected triangles,
so it is rasterised with OpenCV (one convex fill per triangle); no depth test or
GL context is needed for a binary coverage mask (see docs/datasets.md).
"""

from __future__ import annotations

import cv2
import numpy as np

_SUBPIXEL_BITS = 4
_NEAR = 1e-3  # metres: triangles with a vertex closer than this to the camera plane are dropped


def hand_silhouette(vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool mask covered by the mesh ``vertices`` (V, 3), camera frame, seen through ``K``.

    ``image_size`` is (W, H). Pixel (u, v) has its centre at integer coordinates (OpenCV).
    """
    w, h = int(image_size[0]), int(image_size[1])
    mask = np.zeros((h, w), dtype=np.uint8)
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]  # (F, 3, 3)
    tri = tri[(tri[..., 2] > _NEAR).all(axis=1)]
    if len(tri) == 0:
        return mask.astype(bool)
    uv = tri @ np.asarray(K, dtype=np.float64).T
    uv = uv[..., :2] / uv[..., 2:]
    # Keep coordinates inside int32 range after the sub-pixel shift; cv2 clips what lies outside the image.
    uv = np.clip(uv, -4.0 * max(w, h), 5.0 * max(w, h))
    pts = np.round(uv * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    for p in pts:
        cv2.fillConvexPoly(mask, p, 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return mask.astype(bool)


def occlusion_ratio(full_mask: np.ndarray, visible_mask: np.ndarray) -> float:
    """Eq. 17: fraction of the full-hand mask not covered by the visible-hand mask.

    A hand whose full mask is empty (it projects entirely outside the image) counts as fully
    occluded (1.0).
    """
    full = np.asarray(full_mask, dtype=bool)
    n = int(full.sum())
    if n == 0:
        return 1.0
    return float(n - np.count_nonzero(full & np.asarray(visible_mask, dtype=bool))) / n
