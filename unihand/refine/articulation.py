"""The detector's own articulation as a second start, chosen finger by finger.

A diffusion sample trained on synthetic motion is wrong exactly where a real hand does something
it has rarely seen (a single finger folded while the others stay open); started there, the fit keeps
the sample's straight finger, because a robust 2D term lets a keypoint far from its start pull
little. When the detector also gives a hand-centred 3D hand (MediaPipe's world landmarks), its
articulation is fitted by inverse kinematics (the bone directions, per frame, no 2D), and for every
frame and finger the start takes whichever articulation, the sample's or the detector's, lies
nearer the finger's 2D keypoints once the hand is placed on them. The refinement's prior is this
start, so a finger taken from the detector is not pulled back to the sample's.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from unihand.geometry.alignment import umeyama
from unihand.hand.anatomy import JOINT_FRAMES, JOINT_LIMITS
from unihand.refine.anchor import anchor
from unihand.refine.kinematics import PoseState, _euler_parts, pose_joints
from unihand.refine.objective import PALM, Observations, RefineConfig

#: Rows of the (15, 3) angles of each finger (MANO order: index, middle, little, ring, thumb) and the
#: OpenPose joints it moves.
FINGERS = ((range(0, 3), (5, 6, 7, 8)), (range(3, 6), (9, 10, 11, 12)), (range(6, 9), (17, 18, 19, 20)),
           (range(9, 12), (13, 14, 15, 16)), (range(12, 15), (1, 2, 3, 4)))
#: The keypoint chains along which a detector may place its keypoints elsewhere than the hand model's
#: joints: each finger from its MCP (the thumb from its CMC) to its tip (OpenPose order).
CHAINS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))


def detector_markers(hand: nn.Module, betas: torch.Tensor, kp3d_hand: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(21, 21) the detector's keypoints as points on the hand's skeleton, from its own 3D hands.

    Detectors do not place their finger keypoints where a hand model has its joint centres
    (MediaPipe's PIP lies 25-30 % nearer the knuckle than an anatomical one, its tip further out);
    fitted to such keypoints with its own bone lengths, a hand bends its fingers in depth to shorten
    them. Along each finger, every intermediate keypoint is therefore put at the detector's own
    fraction of the finger's length (median bone lengths over the frames with its 3D), on the hand's
    chain; the MCP (thumb CMC), the tip and the wrist stay the hand's joints.
    """
    rest = hand.forward_rotations(torch.eye(3, dtype=torch.float64).expand(16, 3, 3), betas).joints
    seen = (weight > 0).all(1)
    markers = torch.eye(21, dtype=torch.float64)
    if int(seen.sum()) < 1:
        return markers
    det = kp3d_hand[seen].to(torch.float64)
    for chain in CHAINS:
        ours = torch.cat([torch.zeros(1, dtype=torch.float64),
                          (rest[list(chain[1:])] - rest[list(chain[:-1])]).norm(dim=-1).cumsum(0)])
        theirs = (det[:, list(chain[1:])] - det[:, list(chain[:-1])]).norm(dim=-1).median(0).values.cumsum(0)
        if float(theirs[-1]) <= 0:
            continue
        for k in (1, 2):  # the intermediate keypoints
            arc = float(theirs[k - 1] / theirs[-1] * ours[-1])
            seg = min(int(torch.searchsorted(ours, torch.tensor(arc, dtype=torch.float64))) - 1, 2)
            seg = max(seg, 0)
            lam = (arc - float(ours[seg])) / max(float(ours[seg + 1] - ours[seg]), 1e-9)
            row = torch.zeros(21, dtype=torch.float64)
            row[chain[seg]], row[chain[seg + 1]] = 1 - lam, lam
            markers[chain[k]] = row
    return markers


def inverse_kinematics(hand: nn.Module, state: PoseState, obs: Observations) -> PoseState:
    """``state`` with its finger angles set, frame by frame, so every bone points where the detector's
    does (``obs.kp3d_hand``, rotated onto the state's palm); frames without it keep theirs.

    Closed form, joint by joint down each finger: in a joint's frame ``B`` (flexion, abduction, twist
    axes; the twist axis is the rest bone) a bone rotated by flexion ``f`` then abduction ``a`` points
    along ``(sin a, -sin f cos a, cos f cos a)``, so ``f = atan2(-y, z)`` and ``a = asin(x)`` of the
    wanted direction in ``B``; the hinge joints (PIP, DIP, thumb IP) take the flexion alone, and every
    twist (invisible in a bone's direction) is kept. Angles are clipped to the joint limits."""
    joints, _ = pose_joints(hand, state, jacobian=False)
    src = obs.kp3d_hand - obs.kp3d_hand[:, :1]
    _, R, _ = umeyama(src[:, PALM], (joints - joints[:, :1])[:, PALM], translation=False)
    wanted = src @ R.transpose(1, 2) @ state.rot  # the detector's hand in the state's hand frame (row vectors)
    frames = torch.from_numpy(JOINT_FRAMES).to(wanted)
    limits = torch.from_numpy(JOINT_LIMITS).to(wanted)
    angles = state.angles.clone()
    local, _ = _euler_parts(angles)
    for f, (rows, ops) in enumerate(FINGERS):
        parent = torch.eye(3, dtype=wanted.dtype).expand(wanted.shape[0], 3, 3)
        for level, k in enumerate(rows):
            bone = wanted[:, ops[level + 1]] - wanted[:, ops[level]]
            d = torch.einsum("ji,nj->ni", frames[k], torch.einsum("nji,nj->ni", parent, bone))
            d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-9)
            angles[:, k, 0] = torch.atan2(-d[:, 1], d[:, 2]).clamp(limits[k, 0, 0], limits[k, 0, 1])
            if level == 0 or k == 13:  # MCP / thumb CMC and thumb MCP: two swing angles
                angles[:, k, 1] = torch.asin(d[:, 0].clamp(-1, 1)).clamp(limits[k, 1, 0], limits[k, 1, 1])
            local, _ = _euler_parts(angles)
            parent = parent @ local[:, k]
    seen = (obs.kp3d_hand_weight > 0).all(1)
    return replace(state, angles=torch.where(seen[:, None, None], angles, state.angles))


def finger_errors(hand: nn.Module, state: PoseState, obs: Observations) -> np.ndarray:
    """(N, 5) confidence-weighted mean pixel error of each finger's joints (inf where none is observed)."""
    joints, _ = obs.keypoints(pose_joints(hand, state, jacobian=False)[0])
    rot, t = obs.camera(joints.shape[0])
    cam = torch.einsum("nij,nkj->nki", rot, joints) + t[:, None]
    px = cam[..., :2] / cam[..., 2:].clamp_min(1e-3) @ obs.K[:2, :2].T + obs.K[:2, 2]
    err = (px - obs.kp2d).norm(dim=-1).numpy()
    w = obs.kp2d_weight.numpy()
    out = np.full((joints.shape[0], len(FINGERS)), np.inf)
    for f, (_, ops) in enumerate(FINGERS):
        wf = w[:, ops]
        total = wf.sum(1)
        ok = total > 0
        out[ok, f] = (err[:, ops] * wf).sum(1)[ok] / total[ok]
    return out


def choose_fingers(hand: nn.Module, start: PoseState, obs: Observations, cfg: RefineConfig) -> tuple[PoseState, np.ndarray]:
    """The placed sample ``start`` with, per frame and finger, the detector's articulation where it explains
    the 2D keypoints better; returns the new start and the (N, 5) choice (True: the detector's)."""
    ik = anchor(hand, inverse_kinematics(hand, start, obs), obs)
    seen = (obs.kp3d_hand_weight > 0).all(1).numpy()
    if obs.kp2d is None:
        take = np.repeat(seen[:, None], len(FINGERS), axis=1)
    else:
        take = (finger_errors(hand, ik, obs) < finger_errors(hand, start, obs)) & seen[:, None]
    if not take.any():
        return start, take
    angles = start.angles.clone()
    for f, (rows, _) in enumerate(FINGERS):
        sel = torch.from_numpy(take[:, f])
        angles[sel, rows.start:rows.stop] = ik.angles[sel, rows.start:rows.stop]
    return anchor(hand, replace(start, angles=angles), obs), take
