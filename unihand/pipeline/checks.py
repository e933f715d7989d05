"""Sampling settings, checked before any work: one-line :class:`~unihand.errors.UserError` s."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from unihand.errors import UserError
from unihand.models.unihand_model import UniHandModel


def check_sampling(model: UniHandModel, steps: int | None, cfg_scale: float | None, seed: int, num_frames: int | None,
                   window: int | None, overlap: int, num_samples: int = 1) -> None:
    """Steps, guidance scale, seed, length, window, overlap and sample count against the checkpoint."""
    train_steps = model.cfg.diffusion.train_steps
    if steps is not None and (not isinstance(steps, (int, np.integer)) or not 1 <= steps <= train_steps):
        raise UserError(f"steps={steps!r}: expected a whole number of DDIM steps from 1 to {train_steps} "
                        "(the checkpoint's training steps)")
    if cfg_scale is not None and not (isinstance(cfg_scale, (int, float, np.number)) and math.isfinite(cfg_scale)):
        raise UserError(f"cfg_scale={cfg_scale!r}: expected a finite number (1: no guidance; the checkpoint's: "
                        f"{model.cfg.diffusion.cfg_scale:g})")
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise UserError(f"seed={seed!r}: expected a whole number from 0 to 2**63 - 1")
    if num_frames is not None and (not isinstance(num_frames, (int, np.integer)) or num_frames < 1):
        raise UserError(f"num_frames={num_frames!r}: expected a positive whole number of frames")
    if not isinstance(num_samples, (int, np.integer)) or not 1 <= num_samples <= 1024:
        raise UserError(f"num_samples={num_samples!r}: expected a whole number from 1 to 1024")
    seg = model.segment
    if window is not None and (not isinstance(window, (int, np.integer)) or window < seg or window % seg):
        raise UserError(f"window={window!r}: expected a multiple of the decoder segment ({seg}) of at least {seg}")
    win = window or model.cfg.frames
    if not isinstance(overlap, (int, np.integer)) or not 0 <= overlap < win:
        raise UserError(f"overlap={overlap!r}: expected a whole number of frames from 0 to {win - 1}")


def check_scale(scale: Any) -> float:
    """A camera scale given as a number: positive and finite (``"fit"`` is handled by the caller)."""
    if isinstance(scale, (int, float, np.number)) and math.isfinite(scale) and scale > 0:
        return float(scale)
    raise UserError(f"camera_scale={scale!r}: expected a positive number (metres per unit) or 'fit'")


def check_other_hand(joints: Any, frames: int) -> np.ndarray:
    """The other hand's joints (N, 21, 3), metres in the canonical frame (NaN frames: unknown), as float32."""
    arr = np.asarray(joints, dtype=np.float32) if not isinstance(joints, np.ndarray) else joints.astype(np.float32)
    if arr.shape != (frames, 21, 3):
        raise UserError(f"other_hand has shape {tuple(arr.shape)}, expected ({frames}, 21, 3): the other hand's joints "
                        "on every frame of these conditions")
    if np.isinf(arr).any() or np.nanmax(np.abs(arr), initial=0.0) > 1e3:
        raise UserError("other_hand holds infinite or huge values (expected metres; NaN marks unknown frames)")
    return arr
