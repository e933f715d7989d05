"""Baselines the generation benchmark compares against.

- per-frame: the same trained network without temporal context — every frame is generated on
  its own (its conditions repeated over one decoder segment); frames with no signal get an
  unconditional sample, which is all a per-frame method can do for them.
- linear interpolation: known frames' MANO parameters interpolated over the missing ones
  (rotations by spherical interpolation, the rest linearly; ends held constant).
- per-frame PnP (the real-video baseline): the detector's hand-centred metric 3D
  landmarks (MediaPipe's world landmarks) placed in the camera by ``cv2.solvePnP`` (SQPnP) against
  its own 2D landmarks, frame by frame; optionally Savitzky-Golay smoothed over time.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.signal import savgol_filter
from scipy.spatial.transform import Rotation, Slerp

from unihand.diffusion.sampling import sample_window
from unihand.models.unihand_model import UniHandModel
from unihand.pipeline import make_scheduler


@torch.no_grad()
def per_frame(model: UniHandModel, arrays: dict[str, np.ndarray], seed: int = 0) -> np.ndarray:
    """(N, 61) MANO from frame-independent generation; ``arrays`` as ``pipeline.condition_arrays``."""
    n = next(v.shape[0] for k, v in arrays.items() if k in ("kp2d", "kp3d", "mano"))
    seg = model.segment
    batch: dict[str, torch.Tensor] = {}
    for k, v in arrays.items():
        t = torch.from_numpy(np.asarray(v))
        if k in ("K", "image_size"):
            batch[k] = t[None].expand(n, *t.shape).contiguous()
        else:  # (N, ...) -> (N, seg, ...): each frame alone, repeated over one segment
            batch[k] = t[:, None].expand(n, seg, *t.shape[1:]).contiguous()
    gen = torch.Generator().manual_seed(seed)
    out = sample_window(model, make_scheduler(model), batch, num_frames=seg, batch_size=n, generator=gen)
    return out[:, 0].numpy()


def interpolate(mano: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill frames where ``known`` is False by interpolating the known (N, 61) MANO frames."""
    mano = np.asarray(mano, dtype=np.float64)
    idx = np.flatnonzero(known)
    if idx.size == 0:
        raise ValueError("interpolation needs at least one known frame")
    n = mano.shape[0]
    q = np.clip(np.arange(n), idx[0], idx[-1]).astype(np.float64)
    out = np.empty_like(mano)
    for j in range(16):
        rots = Rotation.from_rotvec(mano[idx, 3 * j : 3 * j + 3])
        if idx.size == 1:
            out[:, 3 * j : 3 * j + 3] = rots.as_rotvec()[0]
        else:
            out[:, 3 * j : 3 * j + 3] = Slerp(idx.astype(np.float64), rots)(q).as_rotvec()
    for c in range(48, 61):
        out[:, c] = np.interp(q, idx, mano[idx, c])
    return out.astype(np.float32)


def pnp_world_landmarks(world: np.ndarray, keypoints: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Per-frame baseline: (N, 21, 3) metric landmarks + (N, 21, 2) pixels -> camera-frame joints (N, 21, 3).

    Frames whose landmarks are missing (NaN) stay NaN.
    """
    import cv2

    out = np.full(world.shape, np.nan)
    K = np.asarray(K, np.float64)
    for i in range(len(world)):
        if not (np.all(np.isfinite(world[i])) and np.all(np.isfinite(keypoints[i]))):
            continue
        obj = world[i].astype(np.float64)
        ok, rvec, tvec = cv2.solvePnP(obj, keypoints[i].astype(np.float64), K, None, flags=cv2.SOLVEPNP_SQPNP)
        if ok:
            out[i] = obj @ cv2.Rodrigues(rvec)[0].T + tvec[:, 0]
    return out


def savgol_smooth(joints: np.ndarray, window: int = 9, order: int = 2) -> np.ndarray:
    """Savitzky-Golay smoothing of (N, ...) joints along time, run by run of finite frames (runs
    shorter than ``window`` are kept as they are)."""
    out = np.array(joints, np.float64)
    ok = np.isfinite(out.reshape(len(out), -1)).all(1)
    edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(int), 0]))
    for a, b in zip(edges[::2], edges[1::2]):
        if b - a >= window:
            out[a:b] = savgol_filter(out[a:b], window, order, axis=0)
    return out
