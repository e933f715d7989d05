"""Procrustes / Umeyama alignment of point sets, batched over leading dims.

Finds ``(s, R, t)`` minimising ``sum_i ||s R x_i + t - y_i||^2`` (Umeyama 1991) for source points
``x`` (..., P, 3) and targets ``y`` (..., P, 3), with ``R`` a proper rotation (reflections are
excluded by the determinant fix). Variants: ``scale=False`` (rigid, s = 1) and
``translation=False`` (about the origin, t = 0); both off is rotation-only.

numpy input is computed in float64 and returns float64 (what the metrics use); torch input keeps
its dtype and is differentiable (the rotation comes from ``roma.special_procrustes``, which has a
stable gradient; without a gradient to track, from a plain SVD). When the source has no spread (all points equal) the scale is set to 1.
"""

from __future__ import annotations

import numpy as np
import roma
import torch

from unihand.geometry.rotations import Array

#: Source spread (sum of squared centred norms, m^2) below which the scale is set to 1.
_TINY = 1e-30


def _umeyama_numpy(
    src: np.ndarray, dst: np.ndarray, scale: bool, translation: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(src, dtype=np.float64)
    y = np.asarray(dst, dtype=np.float64)
    mu_x = x.mean(axis=-2, keepdims=True) if translation else np.zeros_like(x[..., :1, :])
    mu_y = y.mean(axis=-2, keepdims=True) if translation else np.zeros_like(y[..., :1, :])
    xc, yc = x - mu_x, y - mu_y
    sigma = np.swapaxes(yc, -1, -2) @ xc  # (..., 3, 3) cross-covariance, dst x src
    U, _, Vt = np.linalg.svd(sigma)
    d = np.sign(np.linalg.det(U @ Vt))  # -1 when the best orthogonal fit is a reflection
    S = np.ones(sigma.shape[:-1])
    S[..., -1] = d
    R = (U * S[..., None, :]) @ Vt
    var = (xc**2).sum(axis=(-1, -2))
    tiny = var <= _TINY
    trace = np.einsum("...ij,...ij->...", R, sigma)  # trace(R^T sigma)
    s = np.where(tiny, 1.0, trace / np.where(tiny, 1.0, var)) if scale else np.ones_like(var)
    t = mu_y[..., 0, :] - s[..., None] * (R @ mu_x[..., 0, :, None])[..., 0]
    return s, R, t


def _umeyama_torch(
    src: torch.Tensor, dst: torch.Tensor, scale: bool, translation: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mu_x = src.mean(dim=-2, keepdim=True) if translation else torch.zeros_like(src[..., :1, :])
    mu_y = dst.mean(dim=-2, keepdim=True) if translation else torch.zeros_like(dst[..., :1, :])
    xc, yc = src - mu_x, dst - mu_y
    sigma = yc.transpose(-1, -2) @ xc
    if torch.is_grad_enabled() and (src.requires_grad or dst.requires_grad):
        R = roma.special_procrustes(sigma)
    else:  # no gradient wanted: a plain SVD, four times faster than roma's eigen-decomposition for 3 x 3
        U, _, Vh = torch.linalg.svd(sigma)
        flip = torch.ones_like(sigma[..., 0])
        flip[..., -1] = torch.sign(torch.linalg.det(U @ Vh))
        R = (U * flip[..., None, :]) @ Vh
    var = (xc**2).sum(dim=(-1, -2))
    ones = torch.ones_like(var)
    tiny = var <= _TINY
    s = torch.where(tiny, ones, (R * sigma).sum(dim=(-1, -2)) / torch.where(tiny, ones, var)) if scale else ones
    t = mu_y[..., 0, :] - s[..., None] * (R @ mu_x[..., 0, :, None])[..., 0]
    return s, R, t


def umeyama(src: Array, dst: Array, *, scale: bool = True, translation: bool = True) -> tuple[Array, Array, Array]:
    """Fit ``dst ≈ s R src + t``; returns ``s`` (...), ``R`` (..., 3, 3), ``t`` (..., 3)."""
    if src.shape != dst.shape or src.ndim < 2 or src.shape[-1] != 3:
        raise ValueError(
            f"umeyama needs two (..., P, 3) point sets of the same shape, got {tuple(src.shape)} and {tuple(dst.shape)}"
        )
    if isinstance(src, torch.Tensor):
        return _umeyama_torch(src, dst, scale, translation)
    return _umeyama_numpy(src, dst, scale, translation)


def apply_similarity(points: Array, s: Array, R: Array, t: Array) -> Array:
    """``s R p + t`` for points (..., P, 3) with ``s`` (...), ``R`` (..., 3, 3), ``t`` (..., 3)."""
    if not isinstance(points, torch.Tensor):
        points = np.asarray(points, dtype=np.float64)
    return s[..., None, None] * (points @ R.swapaxes(-1, -2)) + t[..., None, :]


def procrustes_align(
    pred: Array, target: Array, *, scale: bool = True, translation: bool = True,
) -> tuple[Array, tuple[Array, Array, Array]]:
    """Align ``pred`` (..., P, 3) onto ``target``; returns the aligned points and ``(s, R, t)``."""
    s, R, t = umeyama(pred, target, scale=scale, translation=translation)
    return apply_similarity(pred, s, R, t), (s, R, t)
