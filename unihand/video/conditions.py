"""A hand track as conditions, and the estimate seen from the camera: reprojection and its error."""

from __future__ import annotations

import numpy as np

from unihand.data.io import Conditions
from unihand.geometry.camera import project
from unihand.video.track import HandTrack

#: Joints whose confidence is below this are masked (not used as conditions).
CONF_THRESHOLD = 0.5


def track_conditions(
    track: HandTrack, K: np.ndarray, image_size: tuple[int, int], fps: float, conf_threshold: float = CONF_THRESHOLD,
) -> Conditions:
    """The track's keypoints as 2D conditions: normalised by (W, H), low-confidence joints masked; with the
    detector's own 3D hand (MediaPipe's world landmarks) as ``kp3d_hand`` on the frames that have it."""
    w, h = image_size
    mask = track.detected[:, None] & (track.confidence >= conf_threshold)
    kp = np.where(mask[..., None], np.nan_to_num(track.keypoints), 0.0) / np.array([w, h], np.float32)
    hand3d = None
    if track.world is not None:
        has = track.detected & np.isfinite(track.world).all(axis=(1, 2))
        hand3d = np.where(has[:, None, None], np.nan_to_num(track.world), np.nan).astype(np.float32)
    return Conditions(
        kp2d=kp.astype(np.float32), kp2d_mask=mask, kp2d_conf=np.where(mask, track.confidence, 0.0).astype(np.float32),
        kp3d_hand=hand3d, is_right=track.is_right, fps=float(fps), K=np.asarray(K, np.float32),
        image_size=np.array([w, h], np.int64),
    )


def to_camera(points: np.ndarray, camera_poses: np.ndarray | None = None) -> np.ndarray:
    """Canonical points (N, P, 3) -> each frame's camera; ``camera_poses``: T_cano_from_cam (N, 4, 4)."""
    pts = np.asarray(points, np.float64)
    if camera_poses is None:
        return pts
    T = np.linalg.inv(np.asarray(camera_poses, np.float64))  # cam_from_cano
    return np.einsum("nij,nkj->nki", T[:, :3, :3], pts) + T[:, None, :3, 3]


def reproject(joints: np.ndarray, K: np.ndarray, camera_poses: np.ndarray | None = None) -> np.ndarray:
    """Canonical joints (N, J, 3) -> pixels (N, J, 2) (static camera unless ``camera_poses`` given)."""
    return np.asarray(project(to_camera(joints, camera_poses), np.asarray(K, np.float64)), np.float32)


def reprojection_stats(joints_2d: np.ndarray, kp: np.ndarray, mask: np.ndarray) -> dict[str, float | None]:
    """Pixel distance between reprojected joints and the detector's keypoints over the used joints."""
    if not mask.any():
        return {"median": None, "mean": None, "p90": None}
    err = np.linalg.norm(joints_2d - np.nan_to_num(kp), axis=-1)[mask]
    return {"median": float(np.median(err)), "mean": float(err.mean()), "p90": float(np.percentile(err, 90))}
