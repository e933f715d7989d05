"""Rotation conversions: axis-angle <-> matrix <-> 6D <-> quaternion.

Batched over leading dims and differentiable. Every function takes torch tensors, or numpy
arrays (then it returns numpy arrays of the same dtype, see :func:`accepts_numpy`); the one
exception, :func:`matrix_to_axis_angle_continuous` for time series of data, is numpy only.

Conventions:

- axis-angle (rotation vector) ``(..., 3)``: axis times angle in radians, as MANO files store it.
- matrix ``(..., 3, 3)``: rotates column vectors, ``p' = R @ p``.
- 6D ``(..., 6)`` (Zhou et al. 2019, as HaMeR uses it): the first two *columns* of the matrix,
  concatenated ``[R[:, 0], R[:, 1]]``; back to a matrix by Gram-Schmidt. (pytorch3d uses the
  first two rows instead: not interchangeable.)
- quaternion ``(..., 4)``: **xyzw** (scalar last) as roma and scipy; the ``*_wxyz`` helpers
  convert the scalar-first layout that HOT3D stores (``q_wxyz``).

The conversions themselves are roma's (scipy's for the numpy-only one); only the 6D packing,
the numpy wrapper and the sign continuity in time are ours.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import numpy as np
import roma
import torch
from scipy.spatial.transform import Rotation

Array = TypeVar("Array", torch.Tensor, np.ndarray)
F = TypeVar("F", bound=Callable[..., Any])


def accepts_numpy(fn: F) -> F:
    """Let a torch function take numpy arrays: inputs go to torch, outputs come back as numpy.

    Applies when any positional or keyword argument is an ``np.ndarray``; tensors in the result
    (alone or in a tuple) are then returned as numpy arrays. Dtypes are kept.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not any(isinstance(a, np.ndarray) for a in (*args, *kwargs.values())):
            return fn(*args, **kwargs)
        conv = lambda a: torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a  # noqa: E731
        out = fn(*(conv(a) for a in args), **{k: conv(v) for k, v in kwargs.items()})
        back = lambda t: t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t  # noqa: E731
        return tuple(back(t) for t in out) if isinstance(out, tuple) else back(out)

    return wrapper  # type: ignore[return-value]


@accepts_numpy
def axis_angle_to_matrix(axis_angle: Array) -> Array:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrix (roma, Rodrigues; stable near 0)."""
    return roma.rotvec_to_rotmat(axis_angle)


@accepts_numpy
def matrix_to_axis_angle(matrix: Array) -> Array:
    """(..., 3, 3) rotation matrix -> (..., 3) axis-angle with angle in [0, pi] (roma)."""
    return roma.rotmat_to_rotvec(matrix)


@accepts_numpy
def matrix_to_rot6d(matrix: Array) -> Array:
    """(..., 3, 3) -> (..., 6): first column then second column (hand-written: roma has no 6D packing)."""
    return matrix[..., :, :2].transpose(-1, -2).reshape(*matrix.shape[:-2], 6)


@accepts_numpy
def rot6d_to_matrix(rot6d: Array) -> Array:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt on the two 3-vectors (roma.special_gramschmidt)."""
    columns = rot6d.reshape(*rot6d.shape[:-1], 2, 3).transpose(-1, -2)
    return roma.special_gramschmidt(columns)


@accepts_numpy
def axis_angle_to_rot6d(axis_angle: Array) -> Array:
    """(..., 3) axis-angle -> (..., 6)."""
    return matrix_to_rot6d(axis_angle_to_matrix(axis_angle))


@accepts_numpy
def rot6d_to_axis_angle(rot6d: Array) -> Array:
    """(..., 6) -> (..., 3) axis-angle."""
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d))


@accepts_numpy
def quat_to_matrix(quat_xyzw: Array) -> Array:
    """(..., 4) xyzw quaternion (normalised first) -> (..., 3, 3) (roma)."""
    return roma.unitquat_to_rotmat(roma.quat_normalize(quat_xyzw))


@accepts_numpy
def matrix_to_quat(matrix: Array) -> Array:
    """(..., 3, 3) -> (..., 4) unit quaternion, xyzw (roma; sign not canonicalised)."""
    return roma.rotmat_to_unitquat(matrix)


@accepts_numpy
def axis_angle_to_quat(axis_angle: Array) -> Array:
    """(..., 3) axis-angle -> (..., 4) xyzw unit quaternion (roma)."""
    return roma.rotvec_to_unitquat(axis_angle)


@accepts_numpy
def quat_to_axis_angle(quat_xyzw: Array) -> Array:
    """(..., 4) xyzw quaternion (normalised first) -> (..., 3) axis-angle, angle in [0, pi] (roma)."""
    return roma.unitquat_to_rotvec(roma.quat_normalize(quat_xyzw))


@accepts_numpy
def wxyz_to_xyzw(quat_wxyz: Array) -> Array:
    """Scalar-first (HOT3D ``q_wxyz``) -> scalar-last layout (roma)."""
    return roma.quat_wxyz_to_xyzw(quat_wxyz)


@accepts_numpy
def xyzw_to_wxyz(quat_xyzw: Array) -> Array:
    """Scalar-last -> scalar-first layout (roma)."""
    return roma.quat_xyzw_to_wxyz(quat_xyzw)


@accepts_numpy
def quat_wxyz_to_matrix(quat_wxyz: Array) -> Array:
    """(..., 4) wxyz quaternion -> (..., 3, 3)."""
    return quat_to_matrix(wxyz_to_xyzw(quat_wxyz))


@accepts_numpy
def matrix_to_quat_wxyz(matrix: Array) -> Array:
    """(..., 3, 3) -> (..., 4) wxyz unit quaternion."""
    return xyzw_to_wxyz(matrix_to_quat(matrix))


@accepts_numpy
def compose_axis_angle(rotation: Array, axis_angle: Array) -> Array:
    """Axis-angle of ``rotation @ R(axis_angle)``: rotate an orientation by a (..., 3, 3) matrix."""
    return matrix_to_axis_angle(rotation @ axis_angle_to_matrix(axis_angle))


def matrix_to_axis_angle_continuous(matrix: np.ndarray) -> np.ndarray:
    """(..., N, 3, 3) rotation sequences (time on axis -3) -> (..., N, 3) axis-angle continuous in time.

    Frame 0 has its angle in [0, pi]; each later frame takes the quaternion sign nearest the
    previous frame's, so the angle passes pi smoothly instead of jumping by 2 pi (valid up to
    2 pi). numpy only, float64 (scipy: no torch dispatch on the data generator's hot path).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    rotation = Rotation.from_matrix(matrix.reshape(-1, 3, 3))
    rotvec = rotation.as_rotvec().reshape(matrix.shape[:-1])  # angle in [0, pi]: the quaternion with w >= 0
    quat = rotation.as_quat().reshape(matrix.shape[:-2] + (4,))
    quat *= np.where(quat[..., 3:] < 0, -1.0, 1.0)
    flips = np.sign((quat[..., 1:, :] * quat[..., :-1, :]).sum(-1))
    flips[flips == 0] = 1.0
    sign = np.cumprod(np.concatenate([np.ones_like(flips[..., :1]), flips], axis=-1), axis=-1)
    angle = np.linalg.norm(rotvec, axis=-1)
    # -q: the same rotation, by angle - 2 pi about the same axis
    longer = (sign < 0) & (angle > 0)
    return rotvec * np.where(longer, 1.0 - 2.0 * np.pi / np.where(longer, angle, 1.0), 1.0)[..., None]
