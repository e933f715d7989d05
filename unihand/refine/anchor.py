"""Rigid re-anchoring of the diffusion sample on the evidence: the refinement's starting point.

Gauss-Newton converges from nearby; a sample whose hand sits tens of pixels beside the detected
one, at a wrong depth, is not nearby. Each frame's hand (its articulation as sampled) is therefore
first placed rigidly: by OpenCV's PnP (iterative, from the sample's own placement) on frames with
enough 2D keypoints, by a Kabsch fit on frames with 3D keypoints, and exactly on frames with given
MANO. Frames with none of these get the rigid correction of their anchored neighbours,
interpolated in time (slerp of the rotation, lerp of the translation; held beyond the ends), so
the starting motion is as continuous as the sample.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp
from torch import nn

from unihand.geometry.alignment import umeyama
from unihand.geometry.rotations import axis_angle_to_rot6d, rot6d_to_axis_angle
from unihand.refine.kinematics import PoseState, pose_joints
from unihand.refine.objective import Observations

#: Fewest confident 2D keypoints a frame needs for a PnP placement.
MIN_PNP_JOINTS = 6
#: A placement whose wrist lies this fraction of its distance from the median of its neighbours', or whose
#: rotation is this far (rad) from most of theirs, is a leap, not a movement (see ``_jumps``).
JUMP_DISTANCE, JUMP_ANGLE = 0.25, np.deg2rad(45.0)
#: Smallest spread (px) of a frame's keypoints that PnP can place a hand on.
MIN_SPREAD_PX = 2.0
#: A placement whose mean error is below this fraction of the hand's size in the image is good: the
#: sample's own is then kept, a PnP one without trying the global (SQPnP) solution too.
GOOD_PNP = 0.05


def spread_given_mano(mano: np.ndarray, given: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(N, 61) sample -> the same with ``given`` on the ``known`` frames and the difference to the sample
    (6D rotations, betas, translation) interpolated linearly over the frames between them (held beyond
    the first and last), so no jump appears at the edges of a gap."""
    idx = np.flatnonzero(known)
    if idx.size == 0:
        return mano
    gen, tgt = _features(np.asarray(mano, np.float64)), _features(np.asarray(given, np.float64))
    offset = tgt[idx] - gen[idx]
    t = np.arange(mano.shape[0])
    spread = np.stack([np.interp(t, idx, offset[:, c]) for c in range(offset.shape[1])], axis=1)
    feat = gen + spread
    rot = rot6d_to_axis_angle(feat[:, :96].reshape(-1, 16, 6)).reshape(-1, 48)
    return np.concatenate([rot, feat[:, 96:]], axis=1).astype(np.float32)


def _features(mano: np.ndarray) -> np.ndarray:
    rot = axis_angle_to_rot6d(mano[:, :48].reshape(-1, 16, 3)).reshape(-1, 96)
    return np.concatenate([rot, mano[:, 48:]], axis=1)


def anchor(hand: nn.Module, state: PoseState, obs: Observations) -> PoseState:
    """``state`` with each frame's rigid placement fitted to its observations (see the module doc)."""
    n = state.rot.shape[0]
    joints, _ = obs.keypoints(pose_joints(hand, state, jacobian=False)[0])  # where the detector sees them
    wrist = joints[:, 0].numpy()
    local = (joints - joints[:, :1]).numpy()  # keypoints about the wrist, in camera axes
    rot = state.rot.numpy().copy()
    new_wrist = wrist.copy()
    done = np.zeros(n, dtype=bool)
    if obs.kp2d is not None:
        _pnp(local, wrist, obs, rot, new_wrist, done, state.rot.numpy())
    if obs.kp3d is not None:
        _kabsch(local, obs, rot, new_wrist, done, state.rot.numpy())
    if obs.mano is not None and obs.mano_mask is not None and bool(obs.mano_mask.any()):
        given = PoseState.from_mano(obs.mano.numpy(), betas=state.betas.numpy())
        m = obs.mano_mask.numpy()
        g_joints, _ = pose_joints(hand, given.frames(torch.from_numpy(m)), jacobian=False)
        rot[m] = given.rot.numpy()[m]
        new_wrist[m] = g_joints[:, 0].numpy()
        done |= m
        done &= ~_jumps(rot, new_wrist, done & ~m)  # given MANO frames are never dropped
    else:
        done &= ~_jumps(rot, new_wrist, done)
    if not done.any():
        return state
    correction = Rotation.from_matrix(rot) * Rotation.from_matrix(state.rot.numpy()).inv()
    shift = new_wrist - wrist
    idx = np.flatnonzero(done)
    t = np.clip(np.arange(n), idx[0], idx[-1]).astype(np.float64)
    if idx.size == 1:
        corr = Rotation.from_quat(np.repeat(correction[idx].as_quat(), n, axis=0))
        shifts = np.repeat(shift[idx], n, axis=0)
    else:
        corr = Slerp(idx.astype(np.float64), correction[idx])(t)
        shifts = np.stack([np.interp(t, idx, shift[idx, c]) for c in range(3)], axis=1)
    new_rot = corr.as_matrix() @ state.rot.numpy()
    # the wrist moves by the shift; the MANO translation follows (the wrist is the rotation's pivot)
    transl = state.transl.numpy() + shifts
    return PoseState(torch.from_numpy(new_rot), state.angles, torch.from_numpy(transl), state.betas)


def _jumps(rot: np.ndarray, wrist: np.ndarray, placed: np.ndarray, radius: int = 3) -> np.ndarray:
    """(N,) placed frames whose placement leaps away from the placements around it (a PnP solution on the
    wrong side of a near-planar hand's two-fold ambiguity, a frame with an outlier keypoint): the wrist
    more than :data:`JUMP_DISTANCE` of its depth from the median of its placed neighbours within
    ``radius`` frames, or the hand turned more than :data:`JUMP_ANGLE` from most of them. Those frames are
    then placed like unplaced ones, from their neighbours."""
    out = np.zeros(len(rot), bool)
    idx = np.flatnonzero(placed)
    if idx.size < 3:
        return out
    rots = Rotation.from_matrix(rot[idx])
    for k, i in enumerate(idx):
        near = np.flatnonzero((np.abs(idx - i) <= radius) & (idx != i))
        if near.size < 2:
            continue
        depth = max(float(np.linalg.norm(wrist[i])), 0.05)
        far = np.linalg.norm(wrist[i] - np.median(wrist[idx[near]], axis=0)) > JUMP_DISTANCE * depth
        turned = np.median((rots[near] * rots[k].inv()).magnitude()) > JUMP_ANGLE
        out[i] = far or turned
    return out


def _pnp(local: np.ndarray, wrist: np.ndarray, obs: Observations, rot: np.ndarray, new_wrist: np.ndarray,
         done: np.ndarray, rot0: np.ndarray) -> None:
    """PnP per frame: the sampled hand (rotation about its wrist + wrist position) onto the 2D keypoints."""
    K = obs.K.numpy()
    kp, w = obs.kp2d.numpy(), obs.kp2d_weight.numpy()
    cam_r, cam_t = (m.numpy() for m in obs.camera(len(local)))
    seen = w > 0
    count = seen.sum(1)
    big = np.where(seen[..., None], kp, -np.inf).max(1)
    small = np.where(seen[..., None], kp, np.inf).min(1)
    size = np.linalg.norm(np.where(count[:, None] > 0, big - small, 0.0), axis=-1)  # hand size in the image (px)
    # where the sample already sits on the keypoints, its placement is kept as it is
    cam = np.einsum("nij,nkj->nki", cam_r, local + wrist[:, None]) + cam_t[:, None]
    px = cam[..., :2] / np.maximum(cam[..., 2:], 1e-3) @ K[:2, :2].T + K[:2, 2]
    err = (np.linalg.norm(px - kp, axis=-1) * seen).sum(1) / np.maximum(count, 1)
    usable = count >= MIN_PNP_JOINTS
    done |= usable & (err < GOOD_PNP * size)
    for i in np.flatnonzero(usable & ~done):
        vis = np.flatnonzero(seen[i])
        # the hand's joints in its own frame (the sampled rotation undone), as PnP's object points
        obj = local[i, vis] @ rot0[i]
        r_cam = cam_r[i] @ rot0[i]
        rvec, _ = cv2.Rodrigues(r_cam)
        tvec = (cam_r[i] @ wrist[i] + cam_t[i]).reshape(3, 1)
        img = kp[i, vis].astype(np.float64)
        best = None
        # from the sample's own placement; where that lands badly, also the global SQPnP solution
        if np.ptp(img, axis=0).max() < MIN_SPREAD_PX:  # degenerate keypoints (all at one point): nothing to place
            continue
        for flags, guess in ((cv2.SOLVEPNP_ITERATIVE, True), (cv2.SOLVEPNP_SQPNP, False)):
            try:
                ok, r, t = cv2.solvePnP(obj, img, K, None, rvec.copy(), tvec.copy(), useExtrinsicGuess=guess, flags=flags)
            except cv2.error:  # a configuration OpenCV refuses (e.g. collinear points): this solver places nothing
                continue
            if ok and np.all(np.isfinite(t)) and t[2, 0] > 0.05:
                e = float(np.linalg.norm(cv2.projectPoints(obj, r, t, K, None)[0][:, 0] - img, axis=-1).mean())
                if best is None or e < best[0]:
                    best = (e, r, t)
            if best is not None and best[0] < GOOD_PNP * size[i]:
                break
        if best is None:
            continue
        _, rvec, tvec = best
        rot[i] = cam_r[i].T @ cv2.Rodrigues(rvec)[0]  # hand frame -> canonical
        new_wrist[i] = cam_r[i].T @ (tvec[:, 0] - cam_t[i])
        done[i] = True


def _kabsch(local: np.ndarray, obs: Observations, rot: np.ndarray, new_wrist: np.ndarray, done: np.ndarray,
            rot0: np.ndarray) -> None:
    """Rigid fit per frame of the sampled hand onto given 3D keypoints (frames without 2D placement)."""
    k3, w = obs.kp3d.numpy(), obs.kp3d_weight.numpy()
    for i in range(len(local)):
        vis = np.flatnonzero(w[i] > 0)
        if vis.size < 3:
            continue
        src = local[i, vis] @ rot0[i]  # hand frame, wrist at the origin
        _, r, tr = umeyama(src, k3[i, vis], scale=False)
        rot[i] = r
        new_wrist[i] = tr
        done[i] = True
