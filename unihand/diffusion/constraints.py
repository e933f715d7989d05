"""Honouring the given conditions after sampling (infilling and editing semantics).

The diffusion model fuses conditions softly, so a generated motion passes near, not through,
what the user gave. Users who give MANO parameters or 3D keypoints for some frames expect those
frames back. Two steps, both smooth by construction:

- MANO frames: the difference between given and generated parameters (6D rotations, betas,
  translation) is taken at the given frames and interpolated linearly in time over the other
  frames (held beyond the first/last given frame), then added: given frames come back exactly and
  no jump appears at the edges of a gap.
- 3D keypoints: a short gradient fit of the pose (global orientation, finger rotations,
  translation, and one shape change per sequence) through the differentiable hand model pulls the joints onto the given keypoints,
  with a penalty on the change and on its acceleration; frames with given MANO stay fixed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from unihand.geometry.rotations import axis_angle_to_rot6d, rot6d_to_axis_angle


def _features(mano: np.ndarray) -> np.ndarray:
    rot = axis_angle_to_rot6d(mano[:, :48].reshape(-1, 16, 3)).reshape(-1, 96)
    return np.concatenate([rot, mano[:, 48:]], axis=1)


def _mano(feat: np.ndarray) -> np.ndarray:
    return np.concatenate([rot6d_to_axis_angle(feat[:, :96].reshape(-1, 16, 6)).reshape(-1, 48), feat[:, 96:]], axis=1)


def keep_given_mano(mano: np.ndarray, given: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(N, 61) generated -> the same with ``given`` on ``known`` frames and the offset spread between them."""
    idx = np.flatnonzero(known)
    if idx.size == 0:
        return mano
    gen, tgt = _features(mano.astype(np.float64)), _features(given.astype(np.float64))
    offset = tgt[idx] - gen[idx]
    t = np.arange(mano.shape[0])
    spread = np.stack([np.interp(t, idx, offset[:, c]) for c in range(offset.shape[1])], axis=1)
    return _mano(gen + spread).astype(np.float32)


def fit_keypoints(
    hand: nn.Module, mano: np.ndarray, kp3d: np.ndarray, joint_mask: np.ndarray, fixed: np.ndarray | None = None,
    iters: int = 200, lr: float = 0.01, w_change: float = 1e-3, w_accel: float = 0.1,
) -> np.ndarray:
    """Fit (N, 61) MANO so its joints meet the visible (N, 21) 3D keypoints (N, 21, 3); ``fixed`` (N,) frames stay."""
    vis = torch.from_numpy(joint_mask.astype(bool))
    if not vis.any():
        return mano
    base = torch.from_numpy(mano.astype(np.float32))
    target = torch.from_numpy(kp3d.astype(np.float32))
    free = torch.ones(base.shape[0], 1) if fixed is None else torch.from_numpy(~fixed.astype(bool))[:, None].float()
    delta = torch.zeros(base.shape[0], 51, requires_grad=True)  # global_orient 3 | hand_pose 45 | transl 3
    shape = torch.zeros(1, 10, requires_grad=True)  # one shape change per sequence (bone lengths)
    opt = torch.optim.Adam([delta, shape], lr=lr)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - i / iters)  # settle instead of jittering
    w = vis.float()[..., None]
    for _ in range(iters):
        d = delta * free
        params = torch.cat([base[:, :48] + d[:, :48], base[:, 48:58] + shape * free, base[:, 58:] + d[:, 48:]], dim=1)
        joints = hand(global_orient=params[:, :3], hand_pose=params[:, 3:48], betas=params[:, 48:58],
                      transl=params[:, 58:]).joints
        fit = ((joints - target).pow(2) * w).sum() / w.sum().clamp_min(1)
        accel = (joints[2:] - 2 * joints[1:-1] + joints[:-2]).pow(2).sum(-1).mean() if len(joints) > 2 else 0.0
        loss = fit + w_change * (d.pow(2).mean() + shape.pow(2).mean()) + w_accel * accel
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    d, b = (delta * free).detach(), (shape * free).detach()
    out = torch.cat([base[:, :48] + d[:, :48], base[:, 48:58] + b, base[:, 58:] + d[:, 48:]], dim=1)
    return out.numpy()
