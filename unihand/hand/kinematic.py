"""Built-in kinematic hand: MANO's 16-joint tree and parameters, joints only (docs/design.md §3).

Rest layout (right hand, ``hand_pose = 0``, ``global_orient = 0``), the one measured on the
official MANO mean right hand: the wrist is at MANO's rest root joint :data:`REST_ROOT`, the
fingers point along **-x** from the wrist (MANO's wrist sits at x = +0.096 m and its index MCP
at x = +0.008 m), the thumb lies toward +z, the little finger toward -z, and the palm faces
**-y**. Finger flexion is therefore a positive rotation about +z (see :mod:`unihand.hand.anatomy`).

Bones carry anatomical adult lengths (wrist to middle fingertip 0.186 m); the five MCP/CMC joints
sit where MANO's mean hand has them. ``betas`` scale bone lengths through the fixed linear basis
:data:`BETA_BASIS`. The left hand is the exact x-mirror of the right.
"""

from __future__ import annotations

import numpy as np
import roma
import torch
from torch import nn

from unihand.hand.joints import MANO_TO_OPENPOSE
from unihand.hand.output import HandOutput

#: MANO's rest root (wrist) joint of the mean right hand, metres; ``transl`` is relative to it.
REST_ROOT = (0.09567, 0.00638, 0.00619)
#: Rest-frame directions of the right hand (the left hand mirrors x): wrist to fingers, the
#: thumb's side, and the palm normal (pointing out of the palm).
FINGER_DIRECTION = (-1.0, 0.0, 0.0)
THUMB_SIDE = (0.0, 0.0, 1.0)
PALM_NORMAL = (0.0, -1.0, 0.0)

# Per finger in MANO order (index, middle, little, ring, thumb): MCP (thumb: CMC) offset from
# the wrist as in MANO's mean hand, then the direction and length of the three distal bones.
_MCP_OFFSETS = (
    (-0.0881, -0.0052, 0.0207),
    (-0.0947, -0.0015, -0.0034),
    (-0.0688, -0.0099, -0.0432),
    (-0.0817, -0.0040, -0.0267),
    (-0.0241, -0.0155, 0.0258),
)
_BONE_DIRECTIONS = (
    ((-0.999, 0.0, 0.038),) * 3,
    ((-0.985, 0.0, -0.174),) * 3,
    ((-0.821, 0.0, -0.570),) * 3,
    ((-0.971, 0.0, -0.239),) * 3,
    ((-0.625, -0.402, 0.669), (-0.742, -0.088, 0.665), (-0.742, -0.088, 0.665)),
)
#: Proximal, middle and distal (to the fingertip) phalanx lengths; thumb: metacarpal, proximal, distal.
_BONE_LENGTHS = (
    (0.0400, 0.0225, 0.0195),
    (0.0445, 0.0265, 0.0210),
    (0.0330, 0.0180, 0.0190),
    (0.0415, 0.0255, 0.0205),
    (0.0440, 0.0320, 0.0260),
)

#: Index of the fingertip of each MANO finger (index, middle, little, ring, thumb) in the
#: extended 21-joint order [16 MANO joints, tips thumb, index, middle, ring, little].
TIP_OF_FINGER = (17, 18, 20, 19, 16)
#: First joint (MCP / thumb CMC) of each MANO finger; the finger's joints are j, j + 1, j + 2.
FINGER_ROOTS = (1, 4, 7, 10, 13)


def _rest_offsets() -> np.ndarray:
    """(21, 3) offset of each joint from its parent (row 0: the root position), extended order."""
    off = np.zeros((21, 3))
    off[0] = REST_ROOT
    for f, root in enumerate(FINGER_ROOTS):
        off[root] = _MCP_OFFSETS[f]
        for k, child in enumerate((root + 1, root + 2, TIP_OF_FINGER[f])):
            d = np.asarray(_BONE_DIRECTIONS[f][k])
            off[child] = _BONE_LENGTHS[f][k] * d / np.linalg.norm(d)
    return off


#: (21, 3) rest offsets of the right hand (row 0 = :data:`REST_ROOT`), extended joint order.
REST_OFFSETS = _rest_offsets()


def _beta_basis() -> np.ndarray:
    """(21, 10) relative change of each bone's length per unit of each beta (row 0 unused)."""
    meta = np.array(FINGER_ROOTS)  # wrist -> MCP / CMC bones
    prox = meta + 1
    mid = meta + 2
    tips = np.array(TIP_OF_FINGER)
    phalanges = np.concatenate([prox, mid, tips])
    finger = {name: np.array([r, r + 1, r + 2, t]) for name, r, t in
              zip(("index", "middle", "little", "ring", "thumb"), FINGER_ROOTS, TIP_OF_FINGER, strict=True)}
    basis = np.zeros((21, 10))
    basis[1:, 0] = 0.05  # overall size
    basis[phalanges, 1] += 0.03  # long fingers, short palm
    basis[meta, 1] -= 0.03
    basis[finger["thumb"], 2] = 0.04  # thumb length
    basis[finger["index"][1:], 3] = 0.03  # index-to-ring ratio
    basis[finger["ring"][1:], 3] = -0.03
    basis[finger["little"][1:], 4] = 0.04  # little finger length
    basis[prox, 5] = -0.03  # distal-heavy fingers
    basis[tips, 5] = 0.03
    basis[finger["middle"][1:], 6] = 0.03  # middle finger length
    basis[meta[:4], 7] = 0.04  # palm length
    basis[tips, 8] = 0.05  # fingertip length
    basis[mid, 9] = 0.04  # middle phalanges
    return basis


#: (21, 10) linear basis: bone length = rest length * (1 + BETA_BASIS @ betas).
BETA_BASIS = _beta_basis()

# Gather index from [wrist, 15 finger joints (finger-major), 5 tips (MANO finger order)] to OpenPose.
_TIP_SLOT = {tip: 16 + f for f, tip in enumerate(TIP_OF_FINGER)}
_TO_OPENPOSE = tuple(_TIP_SLOT.get(i, i) for i in MANO_TO_OPENPOSE)


class HandModel(nn.Module):
    """What MANO-style hand models share: MANO's parameters in, :class:`HandOutput` out.

    ``forward`` takes tensors with any (broadcastable) leading dims; dtype and device follow the
    first parameter given (the model's :meth:`reference` buffer when none is). Subclasses implement
    ``forward_rotations(rotations, betas, transl)``, the model from local rotation matrices.
    """

    def reference(self) -> torch.Tensor:
        """A buffer whose dtype and device the outputs take when no parameter is given."""
        raise NotImplementedError

    def forward(
        self,
        global_orient: torch.Tensor | None = None,
        hand_pose: torch.Tensor | None = None,
        betas: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> HandOutput:
        """``global_orient`` (..., 3), ``hand_pose`` (..., 45) axis-angle (flat-hand mean), ``betas``
        (..., 10), ``transl`` (..., 3); any may be ``None`` (zeros)."""
        like, lead = batch_spec(global_orient, hand_pose, betas, transl, default=self.reference())
        return self.forward_rotations(pose_rotmats(global_orient, hand_pose, like, lead), betas, transl)

    def forward_rotations(
        self, rotations: torch.Tensor, betas: torch.Tensor | None = None, transl: torch.Tensor | None = None,
    ) -> HandOutput:
        raise NotImplementedError


def rotation_batch(
    rotations: torch.Tensor, betas: torch.Tensor | None, transl: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Size, torch.Tensor]:
    """(0-d tensor of the rotations' dtype and device, broadcast leading shape, rotations (..., 16, 3, 3)
    expanded to it) for ``forward_rotations``."""
    like = torch.zeros((), dtype=rotations.dtype, device=rotations.device)
    lead = torch.broadcast_shapes(rotations.shape[:-3], *(t.shape[:-1] for t in (betas, transl) if t is not None))
    return like, lead, rotations.expand(*lead, 16, 3, 3)


class KinematicHand(HandModel):
    """Joints-only hand with MANO's tree, parameters and rest conventions; see the module doc."""

    kind = "kinematic"
    faces = None

    def __init__(self, is_right: bool = True) -> None:
        super().__init__()
        self.is_right = is_right
        mirror = np.array([1.0 if is_right else -1.0, 1.0, 1.0])
        self.register_buffer("rest_offsets", torch.from_numpy(REST_OFFSETS * mirror), persistent=False)
        self.register_buffer("beta_basis", torch.from_numpy(BETA_BASIS), persistent=False)

    def extra_repr(self) -> str:
        return f"is_right={self.is_right}"

    def rest_root(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """Rest wrist position (..., 3); the wrist is the root, so it does not depend on ``betas``."""
        root = self.rest_offsets[0]
        if betas is None:
            return root
        return root.to(betas).expand(*betas.shape[:-1], 3)

    def offsets(self, betas: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """(..., 21, 3) bone offsets for ``betas`` (``None``: mean shape), in ``like``'s dtype/device."""
        rest = self.rest_offsets.to(like)
        if betas is None:
            return rest
        scale = 1.0 + betas.to(like) @ self.beta_basis.to(like).T  # (..., 21)
        return rest * scale[..., None]

    def reference(self) -> torch.Tensor:
        return self.rest_offsets

    def forward_rotations(
        self, rotations: torch.Tensor, betas: torch.Tensor | None = None, transl: torch.Tensor | None = None,
    ) -> HandOutput:
        """Forward kinematics from local rotation matrices (..., 16, 3, 3) (row 0: global orientation)."""
        like, lead, rot = rotation_batch(rotations, betas, transl)
        off = self.offsets(betas, like).expand(*lead, 21, 3)
        root = off[..., 0, :] if transl is None else off[..., 0, :] + transl.to(like)
        rot_glob, joints16 = forward_kinematics(rot, off[..., :16, :], root)
        last = [r + 2 for r in FINGER_ROOTS]
        tips = joints16[..., last, :] + (rot_glob[..., last, :, :] @ off[..., list(TIP_OF_FINGER), :, None])[..., 0]
        ext = torch.cat([joints16, tips], -2)
        return HandOutput(joints=ext[..., list(_TO_OPENPOSE), :], joints16=joints16, rotations=rot_glob)


def forward_kinematics(
    rot: torch.Tensor, offsets: torch.Tensor, root: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posed MANO skeleton, batched one tree level at a time.

    ``rot`` (..., 16, 3, 3): local joint rotations (row 0: global orientation); ``offsets``
    (..., 16, 3): rest position of each joint minus its parent's (row 0 unused); ``root``
    (..., 3): posed root position. Returns global rotations (..., 16, 3, 3) and joint positions
    (..., 16, 3), MANO order.
    """
    finger_rot = rot[..., 1:, :, :].unflatten(-3, (5, 3))  # (..., finger, level, 3, 3)
    finger_off = offsets[..., 1:, :].unflatten(-2, (5, 3))
    glob = rot[..., :1, :, :]
    pos = root[..., None, :]
    globs, positions = [], []
    for level in range(3):
        pos = pos + (glob @ finger_off[..., level, :, None])[..., 0]
        glob = glob @ finger_rot[..., level, :, :]
        positions.append(pos)
        globs.append(glob)
    rot_glob = torch.cat([rot[..., :1, :, :], torch.stack(globs, -3).flatten(-4, -3)], -3)
    joints = torch.cat([root[..., None, :], torch.stack(positions, -2).flatten(-3, -2)], -2)
    return rot_glob, joints


def batch_spec(*params: torch.Tensor | None, default: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
    """A 0-d tensor with the floating dtype and device of the first given parameter (else of
    ``default``) and the broadcast leading shape of all given parameters."""
    given = [t for t in params if t is not None]
    ref = given[0] if given else default
    dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
    return torch.zeros((), dtype=dtype, device=ref.device), torch.broadcast_shapes(*(t.shape[:-1] for t in given))


def pose_rotmats(
    global_orient: torch.Tensor | None, hand_pose: torch.Tensor | None, like: torch.Tensor, lead: torch.Size
) -> torch.Tensor:
    """(..., 16, 3, 3) local rotation matrices of [global_orient, 15 hand joints] (``None``: identity)."""
    go = like.new_zeros(3) if global_orient is None else global_orient.to(like)
    hp = like.new_zeros(45) if hand_pose is None else hand_pose.to(like)
    rotvecs = torch.cat([go.expand(*lead, 3)[..., None, :], hp.expand(*lead, 45).unflatten(-1, (15, 3))], -2)
    return roma.rotvec_to_rotmat(rotvecs)
