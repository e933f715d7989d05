"""Rigid transforms and the canonical frame (docs/design.md §2): the camera frame of the first frame.

For a moving camera with extrinsics ``T_world_from_cam`` (N, 4, 4) per frame, a point in camera i
maps to canonical as ``p_cano = inv(T_world_from_cam[0]) @ T_world_from_cam[i] @ p_cam_i`` and a
world point as ``p_cano = inv(T_world_from_cam[0]) @ p_world``. A static camera gives identity.

Transforms are 4x4 homogeneous matrices ``(..., 4, 4)`` acting on column vectors. A transform's
leading dims broadcast against the leading dims of what it acts on (as ``camera.project``'s ``K``).
Torch or numpy in, same out; differentiable.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from unihand.errors import UserError
from unihand.geometry.rotations import Array, accepts_numpy, compose_axis_angle

Frame = Literal["world", "camera"]


@accepts_numpy
def make_transform(rotation: Array, translation: Array) -> Array:
    """(..., 3, 3) rotation and (..., 3) translation -> (..., 4, 4) rigid transform."""
    batch = torch.broadcast_shapes(rotation.shape[:-2], translation.shape[:-1])
    T = torch.zeros(*batch, 4, 4, dtype=rotation.dtype, device=rotation.device)
    T[..., :3, :3] = rotation
    T[..., :3, 3] = translation
    T[..., 3, 3] = 1.0
    return T


@accepts_numpy
def rigid_inverse(T: Array) -> Array:
    """Inverse of rigid transforms (..., 4, 4): ``[R^T, -R^T t]`` (exact for rotations, unlike a general inverse)."""
    Rt = T[..., :3, :3].transpose(-1, -2)
    return make_transform(Rt, -(Rt @ T[..., :3, 3:4]).squeeze(-1))


@accepts_numpy
def transform_points(points: Array, T: Array) -> Array:
    """Apply ``T`` (..., 4, 4) to points (..., 3): ``R @ p + t``.

    For per-frame transforms (N, 4, 4) acting on (N, J, 3) points pass ``T[:, None]`` (or use
    :func:`points_to_canonical`).
    """
    return (T[..., :3, :3] @ points.unsqueeze(-1)).squeeze(-1) + T[..., :3, 3]


@accepts_numpy
def transform_mano(global_orient: Array, transl: Array, T: Array, root: Array) -> tuple[Array, Array]:
    """Rigidly move a MANO hand by ``T``: returns the new ``(global_orient, transl)``, both (..., 3).

    MANO rotates about its root joint, so with ``T = (R, t)`` and ``root`` (..., 3) the rest-pose
    wrist position for the hand's ``betas`` (the hand model provides it)::

        new_global_orient = R ∘ global_orient
        new_transl = R @ (root + transl) + t - root

    Every joint and vertex of the hand then moves exactly as ``transform_points(·, T)``.
    """
    R = T[..., :3, :3]
    new_orient = compose_axis_angle(R, global_orient)
    new_transl = (R @ (root + transl).unsqueeze(-1)).squeeze(-1) + T[..., :3, 3] - root
    return new_orient, new_transl


@accepts_numpy
def canonical_from_world(T_world_from_cam: Array) -> Array:
    """(..., N, 4, 4) camera-to-world extrinsics per frame -> (..., 4, 4) world-to-canonical transform."""
    return rigid_inverse(T_world_from_cam[..., 0, :, :])


@accepts_numpy
def canonical_from_camera(T_world_from_cam: Array) -> Array:
    """(..., N, 4, 4) camera-to-world extrinsics -> (..., N, 4, 4) camera-i-to-canonical transforms.

    ``T_cano_from_cam_i = inv(T_world_from_cam[0]) @ T_world_from_cam[i]``; frame 0 gives identity.
    """
    return canonical_from_world(T_world_from_cam).unsqueeze(-3) @ T_world_from_cam


def _to_canonical(T_world_from_cam: Array, source: Frame) -> Array:
    if source == "world":
        return canonical_from_world(T_world_from_cam)
    if source == "camera":
        return canonical_from_camera(T_world_from_cam)
    raise ValueError(f"source must be 'world' or 'camera', got {source!r}")


@accepts_numpy
def points_to_canonical(points: Array, T_world_from_cam: Array, source: Frame = "world") -> Array:
    """Move a sequence's points (N, ..., 3), frame axis first, into the canonical frame.

    ``source="world"``: points are in world coordinates; ``"camera"``: frame i's points are in
    camera i's frame. ``T_world_from_cam`` is (N, 4, 4).
    """
    T = _to_canonical(T_world_from_cam, source)
    if source == "camera":
        T = T.reshape(T.shape[0], *([1] * (points.ndim - 2)), 4, 4)
    return transform_points(points, T)


@accepts_numpy
def mano_to_canonical(
    global_orient: Array, transl: Array, root: Array, T_world_from_cam: Array, source: Frame = "world",
) -> tuple[Array, Array]:
    """Move a sequence's MANO ``global_orient`` and ``transl`` (N, 3) into the canonical frame.

    ``root`` is the rest wrist joint, (N, 3) or (3,); see :func:`transform_mano` and
    :func:`points_to_canonical` for ``source``.
    """
    return transform_mano(global_orient, transl, _to_canonical(T_world_from_cam, source), root)


def check_camera_poses(poses: Array, num_frames: int, where: str = "camera_poses") -> np.ndarray:
    """Validate per-frame camera poses T_cano_from_cam (N, 4, 4): finite, rigid, N frames; float64 copy.

    Raises a one-line :class:`~unihand.errors.UserError` naming ``where`` and what is wrong.
    """
    arr = np.asarray(poses.detach().cpu() if isinstance(poses, torch.Tensor) else poses)
    if arr.shape != (num_frames, 4, 4):
        raise UserError(f"{where}: shape {arr.shape}, expected ({num_frames}, 4, 4) (T_cano_from_cam, one per frame)")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise UserError(f"{where}: expected finite numbers (T_cano_from_cam (N, 4, 4))")
    arr = arr.astype(np.float64)
    rot = arr[:, :3, :3]
    ortho = np.abs(rot @ rot.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))
    bad = np.flatnonzero((ortho > 1e-3) | (np.linalg.det(rot) < 0) | (np.abs(arr[:, 3] - [0, 0, 0, 1]).max(axis=1) > 1e-6))
    if bad.size:
        raise UserError(f"{where}: frame {int(bad[0])} is not a rigid transform (rotation with det +1, last row 0 0 0 1)"
                        f"; {bad.size} such frame(s)")
    return arr
