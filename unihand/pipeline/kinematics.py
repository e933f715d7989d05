"""The forward-kinematics stage: generated MANO parameters -> a :class:`~unihand.data.io.Motion` with
joints (and vertices with MANO files), the metadata of its conditions and, for a moving camera,
each frame's metric pose."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from unihand.data.io import Conditions, Motion
from unihand.geometry.mirror import mirror_camera_poses


def to_motion(mano: np.ndarray, cond: Conditions, hand: nn.Module, camera_poses: np.ndarray | None = None,
              camera_scale: float = 1.0) -> Motion:
    """``mano`` (N, 61) in the hand's own space -> its motion; ``camera_poses`` (N, 4, 4) in the right-hand
    space the network works in (translations in units of ``camera_scale`` metres) become the motion's
    ``extra["T_cano_from_cam"]`` in metres."""
    motion = Motion.from_mano(mano, is_right=cond.is_right, fps=cond.fps, K=cond.K, image_size=cond.image_size)
    if camera_poses is not None:
        metric = (camera_poses if cond.is_right else mirror_camera_poses(camera_poses)).copy()
        metric[:, :3, 3] *= camera_scale
        motion.extra["T_cano_from_cam"] = metric.astype(np.float32)
    with torch.no_grad():
        out = hand(**{k: torch.from_numpy(getattr(motion, k)) for k in ("global_orient", "hand_pose", "betas", "transl")})
    motion.joints = out.joints.numpy().astype(np.float32)
    if out.vertices is not None:
        motion.vertices = out.vertices.numpy().astype(np.float32)
    return motion
