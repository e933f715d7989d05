"""Anatomical finger angles <-> MANO ``hand_pose``, and joint limits.

API (torch tensors or numpy arrays in, the same kind out; numpy keeps its float dtype)::

    angles_to_hand_pose(angles (..., 15, 3), is_right=True) -> hand_pose (..., 45)
    hand_pose_to_angles(hand_pose (..., 45), is_right=True) -> angles (..., 15, 3)
    limit_violation(hand_pose (..., 45), tol_deg=1.0, is_right=True) -> bool (...)
    JOINT_LIMITS: np.ndarray (15, 3, 2), radians, [joint, (flexion, abduction, twist), (min, max)]
    JOINT_LIMITS_DEG: the same in degrees
    JOINT_FRAMES: np.ndarray (15, 3, 3), right-hand joint frames (columns: flexion, abduction, twist axes)

Angles are per MANO finger joint (index1-3, middle1-3, little1-3, ring1-3, thumb1-3) as
(flexion, abduction, twist) in radians; all zeros is MANO's flat open hand (flat-hand mean).
Each joint has a local frame built from the bone leaving it in the rest hand
(:mod:`unihand.hand.kinematic`, whose layout is MANO's: fingers along -x, thumb toward +z,
little finger toward -z, palm facing -y):

- twist axis ``a``: the bone, pointing distally;
- curl direction ``c``: the palmar normal (-y) made orthogonal to ``a``; for the thumb it is
  tilted 45 degrees toward the little finger, so thumb flexion curls it across the palm;
- flexion axis ``a x c`` (for the four fingers about +z): positive flexion curls toward the palm;
- abduction axis ``-c`` (dorsal normal): positive abduction moves the bone toward the thumb side
  (+z for the fingers);

and the local rotation is intrinsic flexion, then abduction, then twist
(``R = B Rx(flexion) Ry(abduction) Rz(twist) B^T``, ``B = [a x c, -c, a]``), which is
singular only at 90 degrees of abduction, far outside the limits. Left hands
(``is_right=False``) use the mirrored axes: the pose is mirrored as (x, y, z) -> (x, -y, -z).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import roma
import torch
from scipy.spatial.transform import Rotation

from unihand.hand.kinematic import FINGER_ROOTS, PALM_NORMAL, REST_OFFSETS, TIP_OF_FINGER

Array = TypeVar("Array", torch.Tensor, np.ndarray)

_THUMB_CURL_TILT = np.deg2rad(45.0)

# (flexion, abduction, twist) min/max in degrees for MCP, PIP, DIP of the fingers and CMC, MCP, IP of the thumb.
_FINGER_LIMITS = (
    ((-20, 90), (-20, 20), (-10, 10)),
    ((0, 110), (-5, 5), (-5, 5)),
    ((0, 90), (-5, 5), (-5, 5)),
)
_THUMB_LIMITS = (
    ((-20, 70), (-30, 45), (-45, 20)),
    ((-10, 60), (-15, 15), (-15, 15)),
    ((-15, 80), (-5, 5), (-5, 5)),
)
#: (15, 3, 2) anatomical limits in degrees, MANO joint order.
JOINT_LIMITS_DEG = np.array(_FINGER_LIMITS * 4 + _THUMB_LIMITS, dtype=np.float64)
#: (15, 3, 2) anatomical limits in radians, MANO joint order.
JOINT_LIMITS = np.deg2rad(JOINT_LIMITS_DEG)


def _joint_frames() -> np.ndarray:
    """(15, 3, 3) right-hand joint frames; columns are the flexion, abduction and twist axes."""
    frames = np.zeros((15, 3, 3))
    palmar = np.array(PALM_NORMAL)
    for f, root in enumerate(FINGER_ROOTS):
        children = (root + 1, root + 2, TIP_OF_FINGER[f])
        for j, child in zip(range(root, root + 3), children, strict=True):
            a = REST_OFFSETS[child] / np.linalg.norm(REST_OFFSETS[child])
            c = palmar - palmar.dot(a) * a
            c /= np.linalg.norm(c)
            if f == 4:
                ulnar = np.cross(a, -palmar)
                c = np.cos(_THUMB_CURL_TILT) * c + np.sin(_THUMB_CURL_TILT) * ulnar / np.linalg.norm(ulnar)
            frames[j - 1] = np.stack([np.cross(a, c), -c, a], axis=-1)
    return frames


#: (15, 3, 3) right-hand joint frames ``B``; columns are the flexion, abduction and twist axes.
JOINT_FRAMES = _joint_frames()
_MIRROR = np.array([1.0, -1.0, -1.0])


def _numpy_compatible(fn: Callable[..., torch.Tensor]) -> Callable[..., Any]:
    """Let a torch function take a numpy array (computed in float64, returned in its dtype)."""

    @functools.wraps(fn)
    def wrapper(x: Array, *args: Any, **kwargs: Any) -> Array:
        if isinstance(x, torch.Tensor):
            return fn(x, *args, **kwargs)
        x = np.asarray(x)
        out = fn(torch.from_numpy(x.astype(np.float64)), *args, **kwargs).numpy()
        return out.astype(x.dtype) if out.dtype != np.bool_ and np.issubdtype(x.dtype, np.floating) else out

    return wrapper


def _frames_like(x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(JOINT_FRAMES).to(x)


def angles_to_hand_pose(angles: Array, is_right: bool = True) -> Array:
    """(..., 15, 3) (flexion, abduction, twist) radians -> (..., 45) MANO axis-angle hand_pose.

    torch: roma, differentiable. numpy: scipy in float64, returned in the input's float dtype
    (the synthetic generator's hot path; equal to the torch result to ~1e-15).
    """
    if isinstance(angles, torch.Tensor):
        return _angles_to_hand_pose_torch(angles, is_right)
    angles = np.asarray(angles)
    pose = _angles_to_hand_pose_numpy(angles.astype(np.float64), is_right)
    return pose.astype(angles.dtype) if np.issubdtype(angles.dtype, np.floating) else pose


def _angles_to_hand_pose_torch(angles: torch.Tensor, is_right: bool) -> torch.Tensor:
    frames = _frames_like(angles)
    local = roma.euler_to_rotmat("XYZ", angles)
    pose = roma.rotmat_to_rotvec(frames @ local @ frames.transpose(-1, -2))
    if not is_right:
        pose = pose * pose.new_tensor(_MIRROR)
    return pose.flatten(-2)


def _angles_to_hand_pose_numpy(angles: np.ndarray, is_right: bool) -> np.ndarray:
    """``log(B R B^T) = B log(R)`` (``B`` a rotation), with ``R = Rx Ry Rz`` as a quaternion.

    The product of the three half-angle quaternions is written out: scipy's ``from_euler`` (1.17)
    costs ~1 us per rotation, four times this whole function.
    """
    c, s = np.cos(0.5 * angles), np.sin(0.5 * angles)
    cx, cy, cz = c[..., 0], c[..., 1], c[..., 2]
    sx, sy, sz = s[..., 0], s[..., 1], s[..., 2]
    quat = np.stack([sx * cy * cz + cx * sy * sz, cx * sy * cz - sx * cy * sz,
                     cx * cy * sz + sx * sy * cz, cx * cy * cz - sx * sy * sz], axis=-1)  # xyzw
    local = Rotation.from_quat(quat.reshape(-1, 4)).as_rotvec().reshape(angles.shape)
    pose = (JOINT_FRAMES @ local[..., None])[..., 0]
    if not is_right:
        pose = pose * _MIRROR
    return pose.reshape(angles.shape[:-2] + (45,))


@_numpy_compatible
def hand_pose_to_angles(hand_pose: torch.Tensor, is_right: bool = True) -> torch.Tensor:
    """(..., 45) MANO axis-angle hand_pose -> (..., 15, 3) (flexion, abduction, twist) radians."""
    pose = hand_pose.unflatten(-1, (15, 3))
    if not is_right:
        pose = pose * pose.new_tensor(_MIRROR)
    frames = _frames_like(pose)
    local = frames.transpose(-1, -2) @ roma.rotvec_to_rotmat(pose) @ frames
    return roma.rotmat_to_euler("XYZ", local)


@_numpy_compatible
def limit_violation(hand_pose: torch.Tensor, tol_deg: float = 1.0, is_right: bool = True) -> torch.Tensor:
    """(..., 45) hand_pose -> (...) bool: True where any joint angle is outside :data:`JOINT_LIMITS`
    by more than ``tol_deg`` degrees."""
    angles = hand_pose_to_angles(hand_pose, is_right=is_right)
    limits = torch.from_numpy(JOINT_LIMITS).to(angles)
    tol = np.deg2rad(tol_deg)
    outside = (angles < limits[..., 0] - tol) | (angles > limits[..., 1] + tol)
    return outside.flatten(-2).any(-1)
