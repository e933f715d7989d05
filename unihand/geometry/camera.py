"""Pinhole camera: projection, intrinsics and 2D keypoint normalisation (docs/design.md §2).

Camera frame is OpenCV (x right, y down, z forward), pixels have integer centres (pixel
``(0, 0)`` is the centre of the top-left pixel), so the image spans ``[-0.5, W - 0.5]`` and its
centre is ``((W - 1) / 2, (H - 1) / 2)``. ``image_size`` is always ``(W, H)``.

Points behind the camera (``z <= eps``) are not NaN: :func:`project` divides by
``max(z, eps)`` so its output stays finite and differentiable, and :func:`project_valid`
returns a ``valid`` mask alongside to tell such points (and, with an image size, points that
land outside the image) apart. Torch or numpy in, same out (see ``rotations.accepts_numpy``).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from unihand.errors import UserError
from unihand.geometry.rotations import Array, accepts_numpy

#: Depth below which a point counts as behind (or on) the camera plane, in metres.
DEPTH_EPS = 1e-6


@accepts_numpy
def project(points: Array, K: Array, eps: float = DEPTH_EPS) -> Array:
    """Project camera-frame points ``(..., 3)`` with intrinsics ``(..., 3, 3)`` to pixels ``(..., 2)``.

    ``K``'s leading dims broadcast against ``points``' leading dims (a per-frame ``K`` of shape
    ``(N, 3, 3)`` for points ``(N, J, 3)`` is passed as ``K[:, None]``). The last row of ``K`` is
    assumed to be ``[0, 0, 1]``. Depth is clamped to ``eps`` (see module doc).
    """
    z = points[..., 2:3].clamp_min(eps)
    uv1 = (K @ (points / z).unsqueeze(-1)).squeeze(-1)
    return uv1[..., :2]


@accepts_numpy
def project_valid(
    points: Array, K: Array, image_size: Array | tuple[int, int] | None = None, eps: float = DEPTH_EPS,
) -> tuple[Array, Array]:
    """Like :func:`project`, plus a bool ``valid`` mask ``(...)``.

    ``valid`` is ``z > eps`` and, when ``image_size`` ``(W, H)`` is given, the pixel lies inside the
    image ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
    """
    pixels = project(points, K, eps)
    valid = points[..., 2] > eps
    if image_size is not None:
        size = torch.as_tensor(image_size, dtype=pixels.dtype, device=pixels.device)
        valid = valid & ((pixels >= -0.5) & (pixels <= size - 0.5)).all(dim=-1)
    return pixels, valid


@accepts_numpy
def normalize_keypoints(pixels: Array, image_size: Array | tuple[int, int]) -> Array:
    """Pixels ``(..., 2)`` -> normalised ``pixel / (W, H)`` (docs/design.md §2); ``image_size`` ``(2,)`` or ``(..., 2)``."""
    return pixels / torch.as_tensor(image_size, dtype=pixels.dtype, device=pixels.device)


@accepts_numpy
def denormalize_keypoints(normalized: Array, image_size: Array | tuple[int, int]) -> Array:
    """Normalised keypoints ``(..., 2)`` -> pixels ``normalized * (W, H)``."""
    return normalized * torch.as_tensor(image_size, dtype=normalized.dtype, device=normalized.device)


def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> np.ndarray:
    """``K`` (3, 3) float64 of a centred pinhole camera with *horizontal* field of view ``fov_deg``.

    ``fx = fy = (W / 2) / tan(fov / 2)`` (square pixels, the FoV spans the full image width W),
    principal point at the image centre ``((W - 1) / 2, (H - 1) / 2)`` (integer pixel centres), so
    mirroring a 3D point (x -> -x) maps its pixel u -> W - 1 - u exactly.
    """
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got (W, H) = ({width}, {height})")
    f = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


#: Field of view (degrees) assumed across the image's longer side when no intrinsics are given: the
#: middle of common webcams and phone main cameras.
DEFAULT_FOV_DEG = 60.0


def rescale_pixels(pixels: np.ndarray, s: float) -> np.ndarray:
    """Pixel positions (..., 2) of an image resized by ``s``, pixel centres kept at integers."""
    return (np.asarray(pixels, np.float64) + 0.5) * s - 0.5


def rescale_K(K: np.ndarray, s: float) -> np.ndarray:
    """Intrinsics (3, 3) of an image resized by ``s`` (focal lengths times ``s``, principal point as
    :func:`rescale_pixels`)."""
    K = np.asarray(K, np.float64)
    return np.array([[K[0, 0] * s, 0.0, (K[0, 2] + 0.5) * s - 0.5],
                     [0.0, K[1, 1] * s, (K[1, 2] + 0.5) * s - 0.5], [0.0, 0.0, 1.0]])


def default_intrinsics(width: int, height: int) -> np.ndarray:
    """``K`` (3, 3) with :data:`DEFAULT_FOV_DEG` across the longer side (horizontal for landscape images)."""
    f = (max(width, height) / 2) / math.tan(math.radians(DEFAULT_FOV_DEG) / 2)
    return intrinsics_from_fov(math.degrees(2 * math.atan(width / (2 * f))), width, height)


def check_intrinsics(K: np.ndarray | torch.Tensor, where: str | os.PathLike = "K") -> np.ndarray:
    """Validate a pinhole ``K`` (3, 3): finite, last row ``[0, 0, 1]``, ``fx, fy > 0``; float64 copy.

    Raises a one-line :class:`UserError` prefixed with ``where`` (e.g. the file the K came from).
    """
    arr = np.asarray(K.detach().cpu() if isinstance(K, torch.Tensor) else K, dtype=np.float64)
    if arr.shape != (3, 3):
        raise UserError(f"{where}: intrinsics 'K' has shape {arr.shape}, expected (3, 3)")
    if not np.all(np.isfinite(arr)):
        raise UserError(f"{where}: intrinsics 'K' contains NaN or infinite values")
    if not np.array_equal(arr[2], [0.0, 0.0, 1.0]):
        raise UserError(f"{where}: intrinsics 'K' last row is {arr[2].tolist()}, expected [0, 0, 1]")
    if arr[0, 0] <= 0 or arr[1, 1] <= 0:
        raise UserError(f"{where}: intrinsics 'K' focal lengths fx={arr[0, 0]}, fy={arr[1, 1]} must be positive")
    return arr


def check_image_size(
    image_size: np.ndarray | torch.Tensor | tuple[int, int], where: str | os.PathLike = "image_size",
) -> tuple[int, int]:
    """Validate ``(W, H)``: two positive integers. Returns ``(W, H)`` as Python ints or raises :class:`UserError`."""
    raw = image_size.detach().cpu() if isinstance(image_size, torch.Tensor) else image_size
    arr = np.asarray(raw)
    if arr.shape != (2,):
        raise UserError(f"{where}: 'image_size' has shape {arr.shape}, expected (2,) as (W, H)")
    numeric = np.issubdtype(arr.dtype, np.number) and np.all(np.isfinite(arr))
    if not numeric or np.any(arr != np.round(arr)) or np.any(arr <= 0):
        raise UserError(f"{where}: 'image_size' is {arr.tolist()}, expected two positive integers (W, H)")
    return int(arr[0]), int(arr[1])
