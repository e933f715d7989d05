"""Conditions -> the arrays the pipeline samples from: per-joint masks, camera defaults, vision frames."""

from __future__ import annotations

import logging

import numpy as np
import torch

from unihand.data.io import Conditions
from unihand.errors import UserError
from unihand.geometry.camera import DEFAULT_FOV_DEG, default_intrinsics
from unihand.geometry.mirror import mirror_image

log = logging.getLogger("unihand")

#: Image size assumed when 2D keypoints come without one (W, H).
DEFAULT_IMAGE_SIZE = (640, 480)


def condition_arrays(cond: Conditions, total: int) -> dict[str, np.ndarray]:
    """Conditions -> float32/bool arrays with per-joint masks (N, 21), camera defaults filled in."""
    cond.validate()  # again: fields may have been set after construction
    cond.mask_non_finite()
    out: dict[str, np.ndarray] = {}
    for m in cond.modalities():
        arr = getattr(cond, m).astype(np.float32)
        if arr.shape[0] != total:
            raise UserError(f"conditions: '{m}' has {arr.shape[0]} frames, other modalities {total}")
        mask = getattr(cond, f"{m}_mask")
        if mask is None:
            mask = np.ones(arr.shape[:2] if m != "mano" else arr.shape[:1], dtype=bool)
        mask = np.asarray(mask, dtype=bool)
        if m != "mano" and mask.ndim == 1:
            mask = np.repeat(mask[:, None], 21, axis=1)
        if m == "mano" and mask.ndim != 1:
            raise UserError(f"conditions: 'mano_mask' must have shape ({total},), got {mask.shape}")
        if m == "kp2d" and cond.kp2d_conf is not None:
            conf = np.asarray(cond.kp2d_conf, np.float32)
            mask = mask & (conf > 0)
            out["kp2d_conf"] = conf
        out[m], out[f"{m}_mask"] = arr, mask
    if "kp2d" in out:
        size = np.asarray(cond.image_size if cond.image_size is not None else DEFAULT_IMAGE_SIZE, dtype=np.float32)
        if cond.K is None:
            log.warning("no intrinsics given: assuming a %.0f° field of view across the longer side", DEFAULT_FOV_DEG)
            K = default_intrinsics(int(size[0]), int(size[1]))
        else:
            K = cond.K
        out["K"], out["image_size"] = np.asarray(K, np.float32), size
    return out


def frame_arrays(frames: np.ndarray, vision_mask: np.ndarray | None, total: int, mirror: bool) -> dict[str, np.ndarray]:
    """Video frames -> ``frames`` (N, 3, H, W) uint8 (mirrored for a left hand) + ``vision_mask`` (N,)."""
    from unihand.models.image import frames_to_tensor

    rgb = frames_to_tensor(frames)  # (N, 3, H, W), validated: one size, RGB
    if rgb.shape[0] != total:
        raise UserError(f"{rgb.shape[0]} video frames but the other conditions have {total} frames")
    if rgb.dtype != torch.uint8:
        rgb = (rgb * 255).round().to(torch.uint8)
    out = rgb.numpy()
    if mirror:
        out = np.ascontiguousarray(mirror_image(out, layout="CHW"))
    mask = np.ones(total, bool) if vision_mask is None else np.asarray(vision_mask, bool).reshape(total)
    return {"frames": out, "vision_mask": mask}
