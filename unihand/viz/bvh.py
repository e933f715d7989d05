"""BVH export of a hand motion (Blender: File > Import > Motion Capture), from its MANO rotations.

Hierarchy: the wrist is the ROOT (6 channels: position + rotation); every other OpenPose joint
that has a child is a JOINT with 3 rotation channels; the five fingertips are ``End Site``\\ s
(as BVH has no channels on leaves), so the hierarchy is the 16 MANO joints + 5 tips, following
:data:`~unihand.hand.joints.OPENPOSE_PARENTS`. Translation channels are on the root only.

Conventions of the file:

- Y up, metres (Blender imports 1 unit = 1 m at scale 1.0). Points in the canonical OpenCV frame
  (x right, y down, z forward) are rotated 180 degrees about x: ``(x, y, z) -> (x, -y, -z)``
  (:data:`CV_TO_YUP`, a proper rotation, so a right hand stays a right hand).
- Rotation channels ``Zrotation Xrotation Yrotation`` in degrees: a joint's local rotation is
  ``Rz @ Rx @ Ry`` (scipy's intrinsic ``"ZXY"``) and a child's position is
  ``parent_pos + R_parent_global @ offset`` (the usual BVH / Blender / CMU convention). Angles
  are unwrapped over time; at gimbal lock (x = +-90 degrees) y is 0.
- Rest pose (the OFFSETs): the hand model's own rest joints for the sequence's shape (the mean
  ``betas`` row; one row on every frame for refined motions), the flat hand of MANO's zero pose,
  stood upright: fingers along +Y, palm facing +Z, the thumb toward +X for a right hand (-X for
  a left one). It depends on the shape and side only, so every file of one hand shape has the
  same skeleton, whatever the motion.
- Rotations: the model's own MANO rotations, ``global_orient`` and the 15 ``hand_pose`` joints
  through the hand model (:attr:`~unihand.hand.output.HandOutput.rotations`), twist included,
  expressed in the file's frame: with ``A`` the fixed rotation that stands the rest hand upright
  and ``G_m`` MANO joint m's global rotation, a joint's global rotation in the file is
  ``CV_TO_YUP @ G_m @ A.T``. The root position is the model's posed wrist.

For the built-in kinematic hand the file reproduces the motion's joints exactly (to the 1e-6
printing precision); for MANO (``mano_dir``) the 16 joints exactly and the fingertips (mesh
vertices under skinning, not rigid) within a few millimetres. A motion whose joints do not
follow its own MANO parameters through the chosen hand model (joints from another model) gets a
warning. :func:`read_bvh` + :func:`bvh_positions` parse a file back for checking.
"""

from __future__ import annotations

import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from unihand.files import atomic_write
from unihand.hand.joints import MANO_TO_OPENPOSE, OPENPOSE_JOINT_NAMES, OPENPOSE_PARENTS

log = logging.getLogger(__name__)

#: OpenCV camera frame -> BVH Y-up frame (rotation of 180 degrees about x).
CV_TO_YUP = np.diag([1.0, -1.0, -1.0])
ROT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")
#: Joints of the motion further than this (metres) from the BVH skeleton's get a warning.
AGREEMENT_TOL = 1e-3


def _children(j: int) -> list[int]:
    return [c for c, p in enumerate(OPENPOSE_PARENTS) if p == j]


def _unit(v: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def _euler_zxy(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) radians (z, x, y) with ``R = Rz @ Rx @ Ry``; y = 0 at gimbal lock."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gimbal lock", category=UserWarning)
        return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_euler("ZXY").reshape(R.shape[:-1])


@dataclass
class BVHSkeleton:
    """Rest offsets (21, 3) in the parent's frame (the root's is zero), Y-up file frame, the
    rotation ``upright`` (3, 3) taking the hand model's rest frame to the file's rest frame, and
    the joint names."""

    offsets: np.ndarray
    upright: np.ndarray
    names: tuple[str, ...] = OPENPOSE_JOINT_NAMES
    parents: tuple[int, ...] = OPENPOSE_PARENTS


def _hand_model(hand: Any, mano_dir: str | os.PathLike | None, is_right: bool) -> Any:
    if hand is not None:
        return hand
    from unihand.hand import load_hand_model

    return load_hand_model(mano_dir, is_right=is_right)


def rest_skeleton(hand: Any, betas: np.ndarray | None = None) -> BVHSkeleton:
    """The BVH rest skeleton of ``hand`` for shape ``betas`` (10,) (None: the mean shape)."""
    import torch

    b = torch.zeros(10, dtype=torch.float64) if betas is None else torch.as_tensor(np.asarray(betas, np.float64))
    with torch.no_grad():
        rest = hand(betas=b.reshape(10)).joints.double().numpy().reshape(21, 3)
    f = _unit(rest[9] - rest[0])  # toward the middle knuckle
    side = _unit(rest[5] - rest[17])  # little -> index knuckle
    n = np.cross(side, f) * (1.0 if hand.is_right else -1.0)  # out of the palm, either hand
    n = _unit(n - (n @ f) * f)
    upright = np.stack([np.cross(f, n), f, n])  # rows: images of X, Y, Z -> f to +Y, n to +Z
    offsets = np.zeros((21, 3))
    for j in range(1, 21):
        offsets[j] = upright @ (rest[j] - rest[OPENPOSE_PARENTS[j]])
    return BVHSkeleton(offsets, upright)


def _posed(hand: Any, motion: Any, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's global rotations (N, 16, 3, 3) and joints (N, 21, 3) of ``motion`` at one shape."""
    import torch

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(x, np.float64))

    n = motion.num_frames
    with torch.no_grad():
        out = hand(global_orient=t(motion.global_orient), hand_pose=t(motion.hand_pose),
                   betas=t(np.broadcast_to(betas, (n, 10))), transl=t(motion.transl))
    return out.rotations.double().numpy(), out.joints.double().numpy()


def local_rotations(rotations: np.ndarray, skel: BVHSkeleton) -> np.ndarray:
    """BVH local rotations (N, 21, 3, 3) (tips: identity) from MANO global rotations (N, 16, 3, 3)."""
    n = rotations.shape[0]
    glob = np.repeat(np.eye(3)[None, None], n, axis=0).repeat(21, axis=1)
    for j in range(21):
        m = MANO_TO_OPENPOSE[j]
        if m < 16:
            glob[:, j] = CV_TO_YUP @ rotations[:, m] @ skel.upright.T
    local = glob.copy()
    for j in range(1, 21):
        if _children(j):
            local[:, j] = np.swapaxes(glob[:, OPENPOSE_PARENTS[j]], -1, -2) @ glob[:, j]
    return local


def motion_to_bvh_text(
    motion: Any, *, hand: Any = None, mano_dir: str | os.PathLike | None = None, precision: int = 6,
    where: str = "motion",
) -> str:
    """BVH text of a :class:`~unihand.data.io.Motion` through its hand model (module doc).

    ``hand``: the hand model (default: MANO from ``mano_dir``, else the built-in kinematic hand,
    for the motion's side). Non-finite parameters raise :class:`~unihand.errors.UserError`.
    """
    from unihand.errors import UserError

    n = motion.num_frames
    if n == 0:
        raise UserError(f"{where}: the motion has no frames")
    for name in ("global_orient", "hand_pose", "betas", "transl"):
        if not np.all(np.isfinite(getattr(motion, name))):
            raise UserError(f"{where}: field '{name}' contains NaN or infinite values; no BVH written")
    hand = _hand_model(hand, mano_dir, bool(motion.is_right))
    betas = np.asarray(motion.betas, np.float64).mean(0)
    skel = rest_skeleton(hand, betas)
    rotations, joints = _posed(hand, motion, betas)
    if not (np.all(np.isfinite(rotations)) and np.all(np.isfinite(joints))):
        raise UserError(f"{where}: the hand model gives non-finite joints for these parameters; no BVH written")
    if motion.joints is not None:
        gap = float(np.linalg.norm(joints - motion.joints, axis=-1).max())
        if gap > AGREEMENT_TOL:
            log.warning("%s: the BVH skeleton (%s hand) differs from the motion's joints by up to %.1f mm "
                        "(joints from another hand model? give the MANO files the motion was made with)",
                        where, getattr(hand, "kind", "?"), gap * 1e3)
    root = joints[:, 0] @ CV_TO_YUP.T
    euler = np.rad2deg(np.unwrap(_euler_zxy(local_rotations(rotations, skel)), axis=0))
    f = f"{{:.{precision}f}}"
    out = io.StringIO()
    out.write("HIERARCHY\n")

    def write_joint(j: int, depth: int) -> None:
        ind = "  " * depth
        kids = _children(j)
        if j == 0:
            out.write(f"ROOT {skel.names[j]}\n{{\n")
            out.write(f"{ind}  OFFSET 0.0 0.0 0.0\n")
            out.write(f"{ind}  CHANNELS 6 Xposition Yposition Zposition {' '.join(ROT_CHANNELS)}\n")
        else:
            out.write(f"{ind}JOINT {skel.names[j]}\n{ind}{{\n")
            out.write(f"{ind}  OFFSET {' '.join(f.format(v) for v in skel.offsets[j])}\n")
            out.write(f"{ind}  CHANNELS 3 {' '.join(ROT_CHANNELS)}\n")
        for c in kids:
            if _children(c):
                write_joint(c, depth + 1)
            else:  # fingertip
                out.write(f"{ind}  End Site\n{ind}  {{\n")
                out.write(f"{ind}    OFFSET {' '.join(f.format(v) for v in skel.offsets[c])}\n{ind}  }}\n")
        out.write(f"{ind}}}\n")

    write_joint(0, 0)
    order = channel_joints()
    out.write(f"MOTION\nFrames: {n}\nFrame Time: {1.0 / float(motion.fps):.8f}\n")
    values = np.concatenate([root, euler[:, order].reshape(n, -1)], axis=1)
    for row in values:
        out.write(" ".join(f.format(v) for v in row) + "\n")
    return out.getvalue()


def channel_joints() -> list[int]:
    """Joints that carry rotation channels, in the depth-first order the file lists them."""
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for c in _children(j):
            if _children(c):
                visit(c)

    visit(0)
    return order


def write_bvh(
    path: str | os.PathLike, motion: Any, *, hand: Any = None, mano_dir: str | os.PathLike | None = None,
    where: str | None = None,
) -> Path:
    """Atomically write the BVH file of ``motion`` (a :class:`~unihand.data.io.Motion`)."""
    text = motion_to_bvh_text(motion, hand=hand, mano_dir=mano_dir, where=where or str(path))
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text), suffix=".bvh")


# ----------------------------------------------------------------------------------------------
# Reading back (validation): a small generic BVH parser and forward kinematics.


@dataclass
class BVHData:
    names: list[str]  # joints then end sites ("<parent>_end")
    parents: list[int]
    offsets: np.ndarray  # (J, 3)
    channels: list[list[str]]  # per joint (empty for end sites)
    frame_time: float
    motion: np.ndarray  # (N, C)


def read_bvh(path_or_text: str | os.PathLike) -> BVHData:
    """Parse a BVH file (or its text): hierarchy, channels and motion block."""
    text = str(path_or_text)
    if "HIERARCHY" not in text:
        text = Path(path_or_text).read_text()
    tokens = re.findall(r"\S+", text)
    pos = 0

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    if take() != "HIERARCHY":
        raise ValueError("not a BVH file: missing HIERARCHY")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    while True:
        tok = take()
        if tok in ("ROOT", "JOINT"):
            name = take()
        elif tok == "End":
            take()  # "Site"
            name = names[stack[-1]] + "_end"
        elif tok == "}":
            stack.pop()
            if not stack:
                if tokens[pos] == "MOTION":
                    break
            continue
        else:
            raise ValueError(f"unexpected token {tok!r} in BVH hierarchy")
        if take() != "{":
            raise ValueError("malformed BVH: expected '{'")
        names.append(name)
        parents.append(stack[-1] if stack else -1)
        chans: list[str] = []
        if take() != "OFFSET":
            raise ValueError("malformed BVH: expected OFFSET")
        offsets.append([float(take()) for _ in range(3)])
        if tokens[pos] == "CHANNELS":
            take()
            chans = [take() for _ in range(int(take()))]
        channels.append(chans)
        stack.append(len(names) - 1)
    take()  # MOTION
    if take() != "Frames:":
        raise ValueError("malformed BVH: expected 'Frames:'")
    n = int(take())
    if take() != "Frame" or take() != "Time:":
        raise ValueError("malformed BVH: expected 'Frame Time:'")
    ft = float(take())
    nch = sum(len(c) for c in channels)
    vals = np.array([float(v) for v in tokens[pos:]], dtype=np.float64)
    if vals.size != n * nch:
        raise ValueError(f"BVH motion holds {vals.size} values, expected {n} frames x {nch} channels")
    return BVHData(names, parents, np.array(offsets), channels, ft, vals.reshape(n, nch))


def bvh_positions(data: BVHData) -> np.ndarray:
    """Global positions (N, J, 3) of every joint and end site of parsed BVH ``data``."""
    n = data.motion.shape[0]
    J = len(data.names)
    pos = np.zeros((n, J, 3))
    rot = np.zeros((n, J, 3, 3))
    col = 0
    for j in range(J):
        chans = data.channels[j]
        vals = data.motion[:, col : col + len(chans)]
        col += len(chans)
        t = np.tile(data.offsets[j], (n, 1))
        R = np.repeat(np.eye(3)[None], n, axis=0)
        for k, c in enumerate(chans):
            axis = c[0].upper()
            if c.endswith("position"):
                t[:, "XYZ".index(axis)] = vals[:, k] if data.parents[j] < 0 else t[:, "XYZ".index(axis)] + vals[:, k]
            else:
                R = R @ Rotation.from_euler(axis, vals[:, k : k + 1], degrees=True).as_matrix()
        p = data.parents[j]
        if p < 0:
            pos[:, j] = t
            rot[:, j] = R
        else:
            pos[:, j] = pos[:, p] + np.einsum("nij,nj->ni", rot[:, p], t)
            rot[:, j] = rot[:, p] @ R
    return pos


def bvh_joint_positions(data: BVHData) -> np.ndarray:
    """Positions (N, 21, 3) in OpenPose order (BVH frame) of a file written by :func:`write_bvh`."""
    pos = bvh_positions(data)
    index = {name: k for k, name in enumerate(data.names)}
    out = np.zeros((pos.shape[0], 21, 3))
    for j, name in enumerate(OPENPOSE_JOINT_NAMES):
        if name in index:
            out[:, j] = pos[:, index[name]]
        else:  # fingertip end site, named after its parent
            out[:, j] = pos[:, index[OPENPOSE_JOINT_NAMES[OPENPOSE_PARENTS[j]] + "_end"]]
    return out
