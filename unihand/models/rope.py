"""Rotary positional encoding (paper eq. 14) in 1D (time) and 3D (time, height, width).

Pairs of channels (x_{2i}, x_{2i+1}) are rotated by m * theta_i. For 3D, the channels are
split into (d_t, d_h, d_w) groups, each rotated by its own coordinate (paper A.3).
Written by hand: torch has no RoPE op, and the 3D split is specific to the hand perceptron.
"""

from __future__ import annotations

import torch
from torch import Tensor


def rope_angles(positions: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """Rotation angles (..., L, dim/2) for integer or real ``positions`` (..., L)."""
    if dim % 2:
        raise ValueError(f"RoPE needs an even channel count, got {dim}")
    inv_freq = base ** (-torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim)
    return positions.to(torch.float32)[..., None] * inv_freq


def rope_angles_3d(t: Tensor, y: Tensor, x: Tensor, dims: tuple[int, int, int], base: float = 10000.0) -> Tensor:
    """Angles (..., L, sum(dims)/2) for 3D positions: channel groups (d_t, d_h, d_w)."""
    return torch.cat(
        [rope_angles(t, dims[0], base), rope_angles(y, dims[1], base), rope_angles(x, dims[2], base)], dim=-1
    )


def split_3d(head_dim: int) -> tuple[int, int, int]:
    """Even channel split (d_t, d_h, d_w) of one head, time getting the remainder."""
    d_hw = (head_dim // 3) // 2 * 2
    return head_dim - 2 * d_hw, d_hw, d_hw


def rotations(angles: Tensor) -> Tensor:
    """Unit complex numbers e^{i angle} of RoPE angles (same shape), for :func:`rotate`."""
    return torch.polar(torch.ones_like(angles, dtype=torch.float32), angles.float())


def rotate(x: Tensor, rot: Tensor) -> Tensor:
    """Rotate channel pairs of ``x`` (..., D) by ``rot`` (:func:`rotations`) broadcastable to (..., D/2).

    The pair (x_{2i}, x_{2i+1}) is read as the complex number x_{2i} + i x_{2i+1} and multiplied by
    e^{i angle}: eq. 14 in one complex product (no stacking of the rotated halves).
    """
    xc = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)).contiguous())
    return torch.view_as_real(xc * rot).flatten(-2).to(x.dtype)


def apply_rope(x: Tensor, angles: Tensor) -> Tensor:
    """Rotate channel pairs of ``x`` (B, heads, L, D) by ``angles`` broadcastable to (B, 1, L, D/2)."""
    if angles.dim() == 2:
        angles = angles[None, None]
    elif angles.dim() == 3:
        angles = angles[:, None]
    return rotate(x, rotations(angles))
