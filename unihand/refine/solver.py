"""Levenberg-Marquardt over a whole sequence: banded normal equations, a shape stage, bounded chunks.

The only coupling between frames is the smoothness terms' second differences, so the normal
equations are block-banded (blocks of FRAME_DIM = 33 per frame, two blocks off the diagonal) and LAPACK's
banded Cholesky (``scipy.linalg.cholesky_banded``) solves them in time linear in the frames. The
shape is one vector per sequence: it is fitted first, on up to ``shape_frames`` observed frames
spread over the whole sequence, with every frame's pose free and no temporal term (the shape
couples all frames, which a Schur complement over the block-diagonal poses handles); then it is
held while the poses are solved in chunks of ``chunk`` frames. Each chunk after the first starts
``overlap`` frames early, holds the first half of that overlap to the previous chunk's result and
takes over from the second half, so chunk joins are as smooth as the rest and memory is bounded
by one chunk whatever the sequence length.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import scipy.linalg
import torch
from torch import nn

from unihand.refine.kinematics import PoseState
from unihand.refine.objective import Normal, Objective, Observations, RefineConfig, _evidence

_LAMBDA0, _LAMBDA_MAX = 1e-2, 1e8


def _damped(block: torch.Tensor, lam: float) -> torch.Tensor:
    d = torch.diagonal(block, dim1=-2, dim2=-1)
    return block + torch.diag_embed(lam * d + 1e-9)


@functools.lru_cache(maxsize=8)
def _band_index(n: int, p: int, u: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions in LAPACK upper band storage (u + 1, n p) and in the stacked blocks of the
    upper triangle of block-banded blocks (diagonal, first and second off-diagonal)."""
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    dest, src = [], []
    offset = 0
    for d in range(3):
        m = n - d
        if m > 0:
            keep = ((a <= b) if d == 0 else np.ones_like(a, bool)).ravel()
            rows = (u - d * p + a - b).ravel()[keep]
            cols = ((np.arange(m)[:, None] + d) * p + b.ravel()[keep][None])
            ok = rows >= 0
            dest.append((rows[None, ok] * (n * p) + cols[:, ok]).ravel())
            src.append((offset + np.arange(m)[:, None] * p * p + np.flatnonzero(keep)[None, ok]).ravel())
        offset += max(m, 0) * p * p
    return np.concatenate(dest), np.concatenate(src)


def solve_block_diagonal(normal: Normal, lam: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Damped step of frames that do not interact (no temporal terms) plus the border (the shape, if any):
    a Schur complement on the border over batched per-frame Cholesky factors."""
    chol = torch.linalg.cholesky(_damped(normal.diag, lam))
    if normal.border_hess is None:
        return -torch.cholesky_solve(normal.grad[..., None], chol)[..., 0], None
    a_inv_b = torch.cholesky_solve(normal.cross, chol)  # (N, P, B)
    a_inv_g = torch.cholesky_solve(normal.grad[..., None], chol)[..., 0]  # (N, P)
    schur = _damped(normal.border_hess, lam) - torch.einsum("npa,npb->ab", normal.cross, a_inv_b)
    d_border = torch.linalg.solve(schur, -normal.border_grad + torch.einsum("npa,np->a", normal.cross, a_inv_g))
    return -(a_inv_g + a_inv_b @ d_border), d_border


def solve(normal: Normal, lam: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Damped Gauss-Newton step: poses (N, FRAME_DIM) and, with a border, the border variables (B,)."""
    if normal.off is None:
        return solve_block_diagonal(normal, lam)
    n, p = normal.diag.shape[:2]
    u = min(3 * p - 1, n * p - 1)
    blocks = torch.cat([_damped(normal.diag, lam).flatten(), normal.off[0].flatten(), normal.off[1].flatten()])
    dest, src = _band_index(n, p, u)
    ab = np.zeros((u + 1) * n * p)
    ab[dest] = blocks.numpy()[src]
    chol = scipy.linalg.cholesky_banded(ab.reshape(u + 1, n * p), check_finite=False)
    g = -normal.grad.numpy().reshape(-1, 1)
    if normal.border_hess is None:
        return torch.from_numpy(scipy.linalg.cho_solve_banded((chol, False), g, check_finite=False).reshape(n, p)), None
    k = normal.border_hess.shape[0]
    border = normal.cross.numpy().reshape(n * p, k)
    x = scipy.linalg.cho_solve_banded((chol, False), np.hstack([border, g]), check_finite=False)
    schur = _damped(normal.border_hess, lam).numpy() - border.T @ x[:, :k]
    d_border = np.linalg.solve(schur, -normal.border_grad.numpy() - border.T @ x[:, k])
    d_pose = x[:, k] - x[:, :k] @ d_border
    return torch.from_numpy(d_pose.reshape(n, p)), torch.from_numpy(d_border)


BORDER_SIZE = {None: 0, "shape": 10, "scale": 1}


def levenberg_marquardt(objective: Objective, state: PoseState, iterations: int, border: str | None = None,
                        rtol: float | None = None) -> PoseState:
    """Minimise ``objective`` from ``state``; ``border`` "shape" also fits the betas, "scale" the camera scale."""
    n = state.rot.shape[0]
    shape = border == "shape"

    def linearise(st: PoseState) -> tuple[float, Normal]:
        normal = Normal(n, border=BORDER_SIZE[border], banded=objective.temporal)
        return objective.evaluate(st, normal, border), normal

    rtol = objective.cfg.rtol if rtol is None else rtol
    lam, nu = _LAMBDA0, 2.0
    cost, normal = linearise(state)
    for _ in range(iterations):
        while True:
            try:
                d_pose, d_border = solve(normal, lam)
            except (np.linalg.LinAlgError, torch.linalg.LinAlgError):
                d_pose = None
            if d_pose is not None:
                trial = state.step(d_pose).step_border(border, d_border)
                predicted = normal.predicted_decrease(d_pose, d_border)
                # the pose stage takes nearly every step: linearise right away; the shape stage, whose
                # first steps are often refused, prices a step before linearising at it
                new_cost, new_normal = linearise(trial) if not shape else (objective.evaluate(trial), None)
                gain = (cost - new_cost) / predicted if predicted > 0 else -1.0
                if np.isfinite(new_cost) and gain > 0:
                    break
            lam, nu = lam * nu, nu * 2.0  # Nielsen's damping update
            if lam > _LAMBDA_MAX:
                return state
        lam, nu = lam * max(1.0 / 3.0, 1.0 - (2.0 * gain - 1.0) ** 3), 2.0
        done = cost - new_cost <= rtol * cost
        state, cost, normal = trial, new_cost, new_normal
        if done:
            break
        if normal is None:
            cost, normal = linearise(state)
    return state


def graduated(objective: Objective, state: PoseState, iterations: int, border: str | None = None) -> PoseState:
    """Levenberg-Marquardt through the 2D kernel's scales ``cfg.gnc_2d`` (graduated non-convexity): wide
    first, so a keypoint far from the start still pulls (a finger the start has straight while the image
    shows it folded), then tighter, so a wrong keypoint ends up pulling little. The iterations are shared
    out over the stages, the last getting what the others leave."""
    stages = objective.cfg.gnc_2d if objective.obs.kp2d is not None else (1.0,)
    each = max(1, iterations // len(stages))
    for k, widen in enumerate(stages):
        objective.widen_2d = widen
        last = k == len(stages) - 1
        state = levenberg_marquardt(objective, state, iterations - each * k if last else each, border=border)
    return state


def fit_shape(hand: nn.Module, init: PoseState, prior: PoseState, obs: Observations, cfg: RefineConfig) -> PoseState:
    """One shape for the sequence from up to ``cfg.shape_frames`` observed frames, their poses free per
    frame; returns ``init`` with that shape and, on those frames, the poses fitted with it."""
    idx = torch.nonzero(_evidence(obs))[:, 0]
    if idx.numel() == 0:
        return init
    if idx.numel() > cfg.shape_frames:
        idx = idx[torch.linspace(0, idx.numel() - 1, cfg.shape_frames).round().long()]
    objective = Objective(hand, obs.frames(idx), prior.frames(idx), cfg, temporal=False)
    fitted = levenberg_marquardt(objective, init.frames(idx), cfg.shape_iterations, border="shape")
    rot, ang, tr = init.rot.clone(), init.angles.clone(), init.transl.clone()
    rot[idx], ang[idx], tr[idx] = fitted.rot, fitted.angles, fitted.transl
    return replace(init, rot=rot, angles=ang, transl=tr, betas=fitted.betas)


def refine_sequence(hand: nn.Module, init: PoseState, prior: PoseState, obs: Observations, cfg: RefineConfig,
                    shape: bool = True) -> PoseState:
    """One shape (``shape=False``: ``init``'s is kept), then every frame's pose with the shape held, in chunks
    (see the module doc)."""
    n = init.rot.shape[0]
    if shape:
        init = fit_shape(hand, init, prior, obs, cfg)
    hold = cfg.overlap // 2
    if n <= cfg.chunk:
        return graduated(Objective(hand, obs, prior, cfg), init, cfg.iterations, border=_scale(obs))
    result = init
    start = 0
    while True:
        end = min(start + cfg.chunk, n)
        sl = slice(start, end)
        chunk_obs = obs.frames(sl)
        if start > 0:  # hold the first frames to the previous chunk's result
            mano = torch.zeros(end - start, 61, dtype=torch.float64)
            mask = torch.zeros(end - start, dtype=torch.bool)
            if chunk_obs.mano is not None:
                mano, mask = chunk_obs.mano.clone(), chunk_obs.mano_mask.clone()
            mano[:hold] = torch.from_numpy(result.frames(slice(start, start + hold)).to_mano().astype(np.float64))
            mask[:hold] = True
            chunk_obs.mano, chunk_obs.mano_mask = mano, mask
        # the camera scale is fitted on the first chunk and held after it
        start_state = replace(init.frames(sl), log_scale=result.log_scale)
        solved = graduated(Objective(hand, chunk_obs, prior.frames(sl), cfg), start_state, cfg.iterations,
                           border=_scale(obs) if start == 0 else None)
        result = _put(result, solved, start, slice(0 if start == 0 else hold, None))
        if end == n:
            return result
        start = end - cfg.overlap


def _scale(obs: Observations) -> str | None:
    """The border of the pose stage: the camera scale when the camera path is known only up to it."""
    return "scale" if obs.fit_scale and obs.cam_from_cano is not None and obs.kp2d is not None else None


def _put(whole: PoseState, part: PoseState, start: int, keep: slice) -> PoseState:
    rot, ang, tr = whole.rot.clone(), whole.angles.clone(), whole.transl.clone()
    idx = torch.arange(part.rot.shape[0])[keep]
    rot[start + idx], ang[start + idx], tr[start + idx] = part.rot[idx], part.angles[idx], part.transl[idx]
    return replace(whole, rot=rot, angles=ang, transl=tr, log_scale=part.log_scale)

