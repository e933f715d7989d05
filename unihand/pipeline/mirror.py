"""The mirroring stage: the network is right-hand only, so left hands go in and come out mirrored
(docs/design.md §2: image x -> W-1-x, 3D x -> -x, axis-angle (x, y, z) -> (x, -y, -z))."""

from __future__ import annotations

import numpy as np

from unihand.geometry.mirror import (
    mirror_camera_poses,
    mirror_intrinsics,
    mirror_keypoints_2d_normalized,
    mirror_mano_vector,
    mirror_points,
)


def mirror_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Left-hand condition arrays (:func:`unihand.pipeline.conditions.condition_arrays`) as a right hand's."""
    out = dict(arrays)
    if "kp2d" in out:
        width = int(out["image_size"][0])
        out["kp2d"] = mirror_keypoints_2d_normalized(out["kp2d"], width).astype(np.float32)
        out["K"] = mirror_intrinsics(out["K"], width).astype(np.float32)
    for key in ("kp3d", "kp3d_hand", "other_hand"):
        if key in out:
            out[key] = mirror_points(out[key]).astype(np.float32)
    if "mano" in out:
        out["mano"] = mirror_mano_vector(out["mano"]).astype(np.float32)
    return out


def to_right(
    is_right: bool, arrays: dict[str, np.ndarray], first_frame: np.ndarray | None, camera_poses: np.ndarray | None,
) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray | None]:
    """Conditions, first frame and camera poses in the right-hand space the network works in."""
    if is_right:
        return arrays, first_frame, camera_poses
    return (mirror_arrays(arrays), None if first_frame is None else mirror_mano_vector(first_frame),
            None if camera_poses is None else mirror_camera_poses(camera_poses))


def from_right(is_right: bool, mano: np.ndarray) -> np.ndarray:
    """A generated (N, 61) motion back in its own hand's space."""
    return mano if is_right else mirror_mano_vector(mano)
