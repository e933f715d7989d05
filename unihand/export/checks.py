"""Finite-input checks shared by every exporter: one-line :class:`~unihand.errors.UserError`\\ s."""

from __future__ import annotations

from typing import Any

import numpy as np

from unihand.errors import UserError


def require_finite(source: Any, name: str, value: Any, what: str) -> np.ndarray:
    """``value`` as a float array, or a UserError naming ``source``, the field and where it fails.

    ``what``: the output that would have been written (e.g. ``"motion.glb"``).
    """
    arr = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        if arr.ndim >= 1 and arr.shape[0] > 0:
            frames = np.flatnonzero(bad.reshape(arr.shape[0], -1).any(axis=1))
            where = f"{len(frames)} of {arr.shape[0]} frames, first at frame {frames[0]}"
        else:
            where = "the value"
        raise UserError(f"{source}: field '{name}' contains NaN or infinite values ({where}); {what} not written")
    return arr


def require_motion_finite(motion: Any, source: Any, what: str, fields: tuple[str, ...] | None = None) -> None:
    """Every float field of ``motion`` named in ``fields`` (default: the MANO parameters and
    whichever of joints / vertices / joints_2d are present) must be finite."""
    names = fields or ("global_orient", "hand_pose", "betas", "transl", "joints", "vertices", "joints_2d")
    for name in names:
        value = getattr(motion, name, None)
        if value is None:
            value = getattr(motion, "extra", {}).get(name)
        if value is not None:
            require_finite(source, name, value, what)
