"""Baselines the generation benchmark compares against (issue 3).

- per-frame: the same trained network without temporal context — every frame is generated on
  its own (its conditions repeated over one decoder segment); frames with no signal get an
  unconditional sample, which is all a per-frame method can do for them.
- linear interpolation: known frames' MANO parameters interpolated over the missing ones
  (rotations by spherical interpolation, the rest linearly; ends held constant).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp

from unihand.pipeline import UniHand


@torch.no_grad()
def per_frame(model: UniHand, arrays: dict[str, np.ndarray], seed: int = 0) -> np.ndarray:
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
    out = model.sample(batch, num_frames=seg, batch_size=n, generator=gen)
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
