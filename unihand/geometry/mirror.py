"""Left/right mirroring (docs/design.md §2): the network is right-hand only, so left hands are mirrored
in, run, and mirrored back out.

- images: x -> W - 1 - x (a flip of the width axis);
- 2D keypoints in pixels: u -> W - 1 - u; normalised by W: n -> (W - 1) / W - n (the same flip);
- 3D points: x -> -x;
- axis-angle (global_orient and every hand_pose joint): (x, y, z) -> (x, -y, -z);
- MANO ``transl``: x -> -x; ``betas`` unchanged;
- intrinsics: cx -> W - 1 - cx (and skew negated), so projecting mirrored 3D points with the
  mirrored K gives the mirrored pixels.

Mirroring twice is the identity bitwise. Sign flips are exact in any dtype. The 2D flips compute
and return **float64**: for float32 (or integer) input the first flip is then exact, hence so is
the second, for pixels ``2**-17 <= |u|`` (or u = 0) with W <= 8192, and for normalised values
``2**-17 <= |n| < 2**12`` (or n = 0) — any real keypoint. No scheme can make ``a - x`` an exact
involution on *all* floats of the output's own precision (too many tiny values map near ``a``),
so float64 input round-trips bitwise only when its values fit (e.g. came from float32 or from a
first flip); otherwise it is off by at most one float64 ulp of W (~1e-13 px). A -0.0 comes back
as +0.0 (both flip to the same value).
Torch or numpy in, same kind out.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from unihand.hand.joints import MANO_DIM, MANO_SLICES
from unihand.geometry.rotations import Array

#: Grid that the normalised flip's offset ``(W - 1) / W`` is rounded to (about 1e-12 px off the
#: exact value) so that ``offset - n`` stays exact for float32 ``n`` of either sign.
_NORM_GRID = 2.0**-40

_AXIS_ANGLE_SIGNS = (1.0, -1.0, -1.0)
_MANO_SIGNS = np.ones(MANO_DIM)
_MANO_SIGNS[MANO_SLICES["global_orient"]] = _AXIS_ANGLE_SIGNS
_MANO_SIGNS[MANO_SLICES["hand_pose"]] = np.tile(_AXIS_ANGLE_SIGNS, 15)
_MANO_SIGNS[MANO_SLICES["transl"]] = (-1.0, 1.0, 1.0)


def _times(x: Array, signs: np.ndarray | tuple[float, ...]) -> Array:
    """``x * signs`` on the last axis, keeping dtype (exact: the signs are +-1)."""
    if isinstance(x, torch.Tensor):
        return x * torch.as_tensor(signs, dtype=x.dtype, device=x.device)
    x = np.asarray(x)
    return x * np.asarray(signs, dtype=x.dtype)


def _check_width(width: int) -> int:
    if int(width) != width or width <= 0:
        raise ValueError(f"image width must be a positive integer, got {width}")
    return int(width)


def _flip_u(kp: Array, offset: float) -> Array:
    """float64 copy of ``kp`` (..., 2) with ``u`` replaced by ``offset - u``."""
    if isinstance(kp, torch.Tensor):
        kp64 = kp.to(torch.float64)
        return torch.stack([offset - kp64[..., 0], kp64[..., 1]], dim=-1)
    kp64 = np.asarray(kp, dtype=np.float64)
    return np.stack([offset - kp64[..., 0], kp64[..., 1]], axis=-1)


def mirror_image(image: Array, layout: Literal["HWC", "CHW", "HW"] = "HWC") -> Array:
    """Flip images of layout ``(..., H, W, C)``, ``(..., C, H, W)`` or ``(..., H, W)`` along width.

    numpy input gives a contiguous copy.
    """
    axis = {"HWC": -2, "CHW": -1, "HW": -1}[layout]
    if isinstance(image, torch.Tensor):
        return torch.flip(image, dims=(axis,))
    return np.ascontiguousarray(np.flip(image, axis=axis))


def mirror_keypoints_2d(pixels: Array, width: int) -> Array:
    """2D keypoints in pixels (..., 2): u -> W - 1 - u, v unchanged. Returns float64 (module doc)."""
    return _flip_u(pixels, float(_check_width(width) - 1))


def mirror_keypoints_2d_normalized(normalized: Array, width: int) -> Array:
    """Normalised 2D keypoints (..., 2): n -> (W - 1) / W - n, v unchanged. Returns float64 (module doc)."""
    w = _check_width(width)
    return _flip_u(normalized, round((w - 1) / w / _NORM_GRID) * _NORM_GRID)


def mirror_points(points: Array) -> Array:
    """3D points (..., 3): x -> -x."""
    return _times(points, (-1.0, 1.0, 1.0))


def mirror_axis_angle(axis_angle: Array) -> Array:
    """Axis-angle rotations (..., 3k), k joints: each (x, y, z) -> (x, -y, -z)."""
    if axis_angle.shape[-1] % 3:
        raise ValueError(f"axis-angle array has {axis_angle.shape[-1]} values on its last axis, expected a multiple of 3")
    return _times(axis_angle, np.tile(_AXIS_ANGLE_SIGNS, axis_angle.shape[-1] // 3))


def mirror_mano(global_orient: Array, hand_pose: Array, betas: Array, transl: Array) -> tuple[Array, Array, Array, Array]:
    """Mirror MANO parameters (..., 3), (..., 45), (..., 10), (..., 3); betas are returned as given."""
    return mirror_axis_angle(global_orient), mirror_axis_angle(hand_pose), betas, mirror_points(transl)


def mirror_mano_vector(mano: Array) -> Array:
    """Mirror the flattened (..., 61) MANO vector (layout ``unihand.data.io.MANO_SLICES``)."""
    if mano.shape[-1] != MANO_DIM:
        raise ValueError(f"MANO vector has {mano.shape[-1]} values per frame, expected {MANO_DIM}")
    return _times(mano, _MANO_SIGNS)


def mirror_intrinsics(K: Array, width: int) -> Array:
    """Intrinsics (..., 3, 3) of the mirrored image: cx -> W - 1 - cx, skew -> -skew."""
    w = _check_width(width)
    out = K.clone() if isinstance(K, torch.Tensor) else np.array(K, copy=True)
    out[..., 0, 1] = -K[..., 0, 1]
    out[..., 0, 2] = (w - 1) - K[..., 0, 2]
    return out


def mirror_camera_poses(T: Array) -> Array:
    """Camera poses (..., 4, 4) of the x-mirrored scene (both the canonical frame and each camera mirrored)."""
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    if isinstance(T, torch.Tensor):
        f = torch.as_tensor(flip, dtype=T.dtype, device=T.device)
        return f @ T @ f
    return flip @ np.asarray(T) @ flip
