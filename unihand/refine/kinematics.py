"""The refinement's pose state and posed joints with their analytic Jacobians.

A hand pose per frame is held as its global rotation matrix, the 15 finger joints' anatomical
angles (flexion, abduction, twist; :mod:`unihand.hand.anatomy`) and the MANO translation; the
shape (``betas``) is one vector per sequence. The refinement moves the degrees of freedom a hand
has: all three at the finger MCPs and the thumb's CMC and MCP, flexion alone at the hinge joints
(PIP, DIP, thumb IP, whose abduction and twist are limited to a few degrees and invisible in
keypoints; they keep the diffusion sample's values). Local updates are ``R <- exp([d]) R`` for
the global rotation (about camera axes through the wrist) and additive for angles and
translation, so a frame has :data:`FRAME_DIM` = 33 free numbers: ``[d (3) | free angles (27) |
transl (3)]``.

Joint Jacobians are the rigid-chain ones: rotating about a unit axis ``a`` through joint ``q``
moves every joint ``p`` beyond it by ``a x (p - q)``. They come from one forward pass of the hand
model (its posed joints and global joint rotations), for the kinematic hand and MANO alike
(MANO's fingertips are vertices; they are treated as fixed to the last joint of their finger,
exact up to the skinning of the tip). Autograd would give the same numbers at many times the
cost: this is what keeps a 48-frame Gauss-Newton solve within milliseconds per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import roma
import torch
from torch import nn

from unihand.hand.anatomy import JOINT_FRAMES, angles_to_hand_pose, hand_pose_to_angles
from unihand.hand.joints import MANO_PARENTS, MANO_TO_OPENPOSE

def _free_angles() -> np.ndarray:
    """Indices into the flattened (15 x 3) angles that the refinement moves (see the module doc)."""
    full = {0, 3, 6, 9, 12, 13}  # index1, middle1, little1, ring1, thumb1, thumb2 (MANO finger order)
    return np.array([3 * k + c for k in range(15) for c in range(3) if c == 0 or k in full])


#: Flattened angle indices the refinement moves: 27 of 45.
FREE_ANGLES = _free_angles()
#: Free numbers per frame: global rotation update (3), free finger angles (27), translation (3).
FRAME_DIM = 3 + len(FREE_ANGLES) + 3
ROT, ANGLES, TRANSL = slice(0, 3), slice(3, 3 + len(FREE_ANGLES)), slice(FRAME_DIM - 3, FRAME_DIM)
_FREE_JOINT, _FREE_AXIS = torch.from_numpy(FREE_ANGLES // 3), torch.from_numpy(FREE_ANGLES % 3)
# MANO joint each fingertip (extended index 16..20: thumb, index, middle, ring, little) hangs from.
_TIP_PARENT = {16: 15, 17: 3, 18: 6, 19: 12, 20: 9}


def _strict_ancestors() -> np.ndarray:
    """(21, 15) bool: MANO finger joint ``k + 1`` is a strict ancestor of OpenPose joint ``j``."""
    out = np.zeros((21, 15), dtype=bool)
    for j, ext in enumerate(MANO_TO_OPENPOSE):
        m = _TIP_PARENT[ext] if ext >= 16 else MANO_PARENTS[ext]
        while m > 0:
            out[j, m - 1] = True
            m = MANO_PARENTS[m]
    return out


_MOVES = torch.from_numpy(_strict_ancestors())
_PARENT_OF = torch.tensor(MANO_PARENTS[1:])  # parent MANO joint of finger joint k + 1
_MOVES_FREE = _MOVES[:, _FREE_JOINT, None].double()  # (21, F, 1): the free angle moves the joint


@dataclass
class PoseState:
    """Per-frame hand poses (right-hand space), one shape and one camera scale; float64 tensors."""

    rot: torch.Tensor  # (N, 3, 3) global orientation
    angles: torch.Tensor  # (N, 15, 3) flexion, abduction, twist (radians)
    transl: torch.Tensor  # (N, 3)
    betas: torch.Tensor  # (10,)
    log_scale: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))  # camera paths
    @classmethod
    def from_mano(cls, mano: np.ndarray, betas: np.ndarray | None = None) -> "PoseState":
        """From (N, 61) MANO vectors; ``betas`` (10,) defaults to their mean."""
        m = torch.from_numpy(np.asarray(mano, np.float64))
        b = m[:, 48:58].mean(0) if betas is None else torch.as_tensor(betas, dtype=torch.float64)
        return cls(roma.rotvec_to_rotmat(m[:, :3]), hand_pose_to_angles(m[:, 3:48]), m[:, 58:61].clone(), b.clone())

    def to_mano(self) -> np.ndarray:
        """(N, 61) float32 MANO vectors (the one shape on every frame)."""
        n = self.rot.shape[0]
        out = torch.cat([roma.rotmat_to_rotvec(self.rot), angles_to_hand_pose(self.angles),
                         self.betas.expand(n, 10), self.transl], dim=1)
        return out.numpy().astype(np.float32)

    def free_angles(self) -> torch.Tensor:
        """(N, 27) the angles the refinement moves."""
        return self.angles.flatten(1)[:, FREE_ANGLES]

    def step(self, delta: torch.Tensor) -> "PoseState":
        """The state moved by ``delta`` (N, FRAME_DIM)."""
        rot = roma.rotvec_to_rotmat(delta[:, ROT]) @ self.rot
        angles = self.angles.flatten(1).clone()
        angles[:, FREE_ANGLES] += delta[:, ANGLES]
        return replace(self, rot=rot, angles=angles.unflatten(1, (15, 3)), transl=self.transl + delta[:, TRANSL])

    def step_border(self, kind: str | None, delta: torch.Tensor | None) -> "PoseState":
        """The state with its shape (``kind="shape"``) or camera log-scale (``"scale"``) moved by ``delta``."""
        if kind == "shape":
            return replace(self, betas=self.betas + delta)
        if kind == "scale":
            return replace(self, log_scale=self.log_scale + delta[0])
        return self

    def frames(self, idx: torch.Tensor | slice) -> "PoseState":
        return replace(self, rot=self.rot[idx], angles=self.angles[idx], transl=self.transl[idx])


def _euler_parts(angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Local rotations B Rx Ry Rz B^T (N, 15, 3, 3) of the angles, and the three Euler axes in the
    joint frame (N, 15, 3 axes, 3): e_x, Rx e_y, Rx Ry e_z."""
    cf, sf, ca, sa = angles[..., 0].cos(), angles[..., 0].sin(), angles[..., 1].cos(), angles[..., 1].sin()
    ct, st = angles[..., 2].cos(), angles[..., 2].sin()
    zero, one = torch.zeros_like(cf), torch.ones_like(cf)
    # Rx(f) Ry(a) Rz(t), written out
    r = torch.stack([
        torch.stack([ca * ct, -ca * st, sa], -1),
        torch.stack([sf * sa * ct + cf * st, -sf * sa * st + cf * ct, -sf * ca], -1),
        torch.stack([-cf * sa * ct + sf * st, cf * sa * st + sf * ct, cf * ca], -1),
    ], -2)
    frames = torch.from_numpy(JOINT_FRAMES).to(angles)
    local = frames @ r @ frames.transpose(-1, -2)
    axes = torch.stack([torch.stack([one, zero, zero], -1), torch.stack([zero, cf, sf], -1),
                        torch.stack([sa, -sf * ca, cf * ca], -1)], -2)
    return local, axes


def pose_joints(hand: nn.Module, state: PoseState, jacobian: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Joints (N, 21, 3) of ``state`` and, with ``jacobian``, d joints / d frame update (N, 21, 3, FRAME_DIM)."""
    n = state.rot.shape[0]
    local, local_axes = _euler_parts(state.angles)
    out = hand.forward_rotations(torch.cat([state.rot[:, None], local], 1), state.betas, state.transl)
    joints = out.joints
    if not jacobian:
        return joints, None
    eye = torch.eye(3, dtype=joints.dtype)
    # global rotation update about axis e_i through the wrist: d p = e_i x (p - wrist), i.e. -[p - wrist]_x
    rel = joints - out.joints16[:, :1]  # (N, 21, 3)
    x, y, z = rel.unbind(-1)
    zero = torch.zeros_like(x)
    j_rot = torch.stack([torch.stack([zero, z, -y], -1), torch.stack([-z, zero, x], -1),
                         torch.stack([y, -x, zero], -1)], -2)  # (N, 21, 3 coords, 3 axes)
    # free finger angles: their intrinsic Euler axes in camera coordinates, through their joints
    frames = torch.from_numpy(JOINT_FRAMES).to(joints)[_FREE_JOINT]  # columns: flexion, abduction, twist axes
    parent = out.rotations[:, _PARENT_OF[_FREE_JOINT]]  # (N, F, 3, 3)
    axes = (parent @ (frames @ local_axes[:, _FREE_JOINT, _FREE_AXIS, :, None]))[..., 0]  # (N, F, 3)
    arm = (joints[:, :, None, :] - out.joints16[:, None, 1 + _FREE_JOINT]) * _MOVES_FREE  # (N, 21, F, 3)
    (ax, ay, az), (bx, by, bz) = axes[:, None].unbind(-1), arm.unbind(-1)
    # axis x arm, written out (torch.linalg.cross is slow on broadcast inputs); (N, 21, 3, F)
    j_ang = torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], -2)
    return joints, torch.cat([j_rot, j_ang, eye.expand(n, 21, 3, 3)], dim=-1)
