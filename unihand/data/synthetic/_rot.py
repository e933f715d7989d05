"""Small numpy rotation kernels for the generator's hot path (float64, no torch dispatch).

The generator converts a few thousand rotations per sequence; through torch/roma each call costs
milliseconds of dispatch overhead for microseconds of arithmetic. These are the same formulas
(Rodrigues; Markley's variant of Shepperd's method as in roma) in plain numpy. The public,
differentiable versions live in :mod:`unihand.geometry.rotations`; tests check these agree.
"""

from __future__ import annotations

import numpy as np

from unihand.hand.anatomy import angles_to_hand_pose


def rotvec_to_matrix(v: np.ndarray) -> np.ndarray:
    """Rodrigues formula: (..., 3) rotation vectors -> (..., 3, 3) matrices."""
    v = np.asarray(v, dtype=np.float64)
    theta = np.sqrt((v * v).sum(-1))
    small = theta < 1e-8
    safe = np.where(small, 1.0, theta)
    x, y, z = np.moveaxis(v / safe[..., None], -1, 0)
    s = np.where(small, 0.0, np.sin(theta))
    c = np.where(small, 0.0, 1.0 - np.cos(theta))
    out = np.empty(v.shape[:-1] + (3, 3))
    out[..., 0, 0] = 1.0 - c * (y * y + z * z)
    out[..., 1, 1] = 1.0 - c * (x * x + z * z)
    out[..., 2, 2] = 1.0 - c * (x * x + y * y)
    out[..., 0, 1] = c * x * y - s * z
    out[..., 1, 0] = c * x * y + s * z
    out[..., 0, 2] = c * x * z + s * y
    out[..., 2, 0] = c * x * z - s * y
    out[..., 1, 2] = c * y * z - s * x
    out[..., 2, 1] = c * y * z + s * x
    return out


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 4) unit quaternion xyzw (Markley 2008, as ``roma.rotmat_to_unitquat``)."""
    a = np.swapaxes(R, -1, -2)
    a11, a12, a13 = a[..., 0, 0], a[..., 0, 1], a[..., 0, 2]
    a21, a22, a23 = a[..., 1, 0], a[..., 1, 1], a[..., 1, 2]
    a31, a32, a33 = a[..., 2, 0], a[..., 2, 1], a[..., 2, 2]
    x = np.stack([1 + a11 - a22 - a33, a12 + a21, a13 + a31, a23 - a32,
                  a21 + a12, 1 + a22 - a33 - a11, a23 + a32, a31 - a13,
                  a31 + a13, a32 + a23, 1 + a33 - a11 - a22, a12 - a21,
                  a23 - a32, a31 - a13, a12 - a21, 1 + a11 + a22 + a33], axis=-1).reshape(R.shape[:-2] + (4, 4))
    i = np.argmax(np.diagonal(x, axis1=-2, axis2=-1), axis=-1)
    q = np.take_along_axis(x, i[..., None, None], axis=-2)[..., 0, :]
    return q / np.sqrt((q * q).sum(-1, keepdims=True))


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    """(..., 4) xyzw -> (..., 3) rotation vector, angle ``2 atan2(|v|, w)`` (beyond pi when w < 0)."""
    v, w = q[..., :3], q[..., 3]
    n = np.sqrt((v * v).sum(-1))
    angle = 2.0 * np.arctan2(n, w)
    # angle / n -> 2 / w as n -> 0 (w -> +-1)
    scale = np.where(n > 1e-8, angle / np.maximum(n, 1e-300), 2.0 / np.where(np.abs(w) > 1e-12, w, 1.0))
    return v * scale[..., None]


def matrix_to_rotvec(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) rotation vector with angle in [0, pi]."""
    q = matrix_to_quat(R)
    q = q * np.where(q[..., 3:] < 0, -1.0, 1.0)
    return quat_to_rotvec(q)


def matrix_to_rotvec_continuous(R: np.ndarray) -> np.ndarray:
    """(..., N, 3, 3) sequences (time on axis -3) -> (..., N, 3) rotation vectors continuous in time.

    Frame 0 has its angle in [0, pi]; later quaternions keep the sign closest to the previous
    frame, so the angle passes pi smoothly instead of jumping by 2 pi (valid up to 2 pi).
    """
    q = matrix_to_quat(R)  # (..., N, 4)
    q[..., :1, :] *= np.where(q[..., :1, 3:] < 0, -1.0, 1.0)
    flips = np.sign((q[..., 1:, :] * q[..., :-1, :]).sum(-1))
    flips[flips == 0] = 1.0
    q[..., 1:, :] *= np.cumprod(flips, axis=-1)[..., None]
    return quat_to_rotvec(q)


def euler_xyz_to_matrix(angles: np.ndarray) -> np.ndarray:
    """(..., 3) intrinsic XYZ Euler angles -> ``Rx(a) @ Ry(b) @ Rz(c)`` (..., 3, 3)."""
    ca, cb, cc = np.cos(angles[..., 0]), np.cos(angles[..., 1]), np.cos(angles[..., 2])
    sa, sb, sc = np.sin(angles[..., 0]), np.sin(angles[..., 1]), np.sin(angles[..., 2])
    out = np.empty(angles.shape[:-1] + (3, 3))
    out[..., 0, 0] = cb * cc
    out[..., 0, 1] = -cb * sc
    out[..., 0, 2] = sb
    out[..., 1, 0] = ca * sc + sa * sb * cc
    out[..., 1, 1] = ca * cc - sa * sb * sc
    out[..., 1, 2] = -sa * cb
    out[..., 2, 0] = sa * sc - ca * sb * cc
    out[..., 2, 1] = sa * cc + ca * sb * sc
    out[..., 2, 2] = ca * cb
    return out


def _joint_frames() -> np.ndarray:
    """(15, 3, 3) anatomical joint frames (columns: flexion, abduction, twist axes), read off the
    public :func:`~unihand.hand.anatomy.angles_to_hand_pose`: a 1-radian rotation about one
    anatomical axis has that axis as its rotation vector."""
    probe = np.zeros((3, 15, 3))
    for k in range(3):
        probe[k, :, k] = 1.0
    axes = np.asarray(angles_to_hand_pose(probe), dtype=np.float64).reshape(3, 15, 3)
    return np.stack([axes[0], axes[1], axes[2]], axis=-1)


_FRAMES = _joint_frames()


def _quat_mul(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamilton product of xyzw quaternions (..., 4)."""
    px, py, pz, pw = np.moveaxis(p, -1, 0)
    qx, qy, qz, qw = np.moveaxis(q, -1, 0)
    return np.stack([pw * qx + px * qw + py * qz - pz * qy,
                     pw * qy - px * qz + py * qw + pz * qx,
                     pw * qz + px * qy - py * qx + pz * qw,
                     pw * qw - px * qx - py * qy - pz * qz], axis=-1)


def angles_to_hand_pose_fast(angles: np.ndarray) -> np.ndarray:
    """Right-hand (..., 15, 3) anatomical angles -> (..., 45) ``hand_pose``; same result as
    :func:`unihand.hand.anatomy.angles_to_hand_pose` (``log(B Rx Ry Rz B^T)``), in numpy.

    ``B`` is a rotation, so ``log(B R B^T) = B log(R)``; ``Rx Ry Rz`` is composed as quaternions.
    """
    half = 0.5 * np.asarray(angles, dtype=np.float64)
    c, s = np.cos(half), np.sin(half)
    zero = np.zeros_like(c[..., 0])
    qx = np.stack([s[..., 0], zero, zero, c[..., 0]], axis=-1)
    qy = np.stack([zero, s[..., 1], zero, c[..., 1]], axis=-1)
    qz = np.stack([zero, zero, s[..., 2], c[..., 2]], axis=-1)
    local = quat_to_rotvec(_quat_mul(_quat_mul(qx, qy), qz))  # |angles| < pi: w > 0
    pose = (_FRAMES @ local[..., None])[..., 0]
    return pose.reshape(angles.shape[:-2] + (45,))
