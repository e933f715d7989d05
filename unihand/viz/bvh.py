"""BVH export of a 21-joint hand skeleton motion (Blender: File > Import > Motion Capture).

Hierarchy: the wrist is the ROOT (6 channels: position + rotation); every other OpenPose joint
that has a child is a JOINT with 3 rotation channels; the five fingertips are ``End Site``\\ s
(as BVH has no channels on leaves), so the hierarchy is the 16 MANO joints + 5 tips, following
:data:`~unihand.hand.joints.OPENPOSE_PARENTS`.

Conventions of the file:

- Y up, metres (Blender imports 1 unit = 1 m at scale 1.0). Points in the OpenCV camera frame
  (x right, y down, z forward) are rotated 180 degrees about x: ``(x, y, z) -> (x, -y, -z)``
  (a proper rotation, so a right hand stays a right hand).
- Rotation channels ``Zrotation Xrotation Yrotation`` in degrees: a joint's local rotation is
  ``Rz @ Rx @ Ry`` and a child's position is ``parent_pos + R_parent_global @ offset``
  (the usual BVH / Blender / CMU convention). Angles are unwrapped over time.
- Rest pose (the OFFSETs): a flat hand built from the motion itself: the palm (wrist to the
  five first finger joints) as measured, each finger straight along its wrist-to-knuckle ray,
  bone lengths the per-sequence mean.

Rotations are computed from the joint positions: the wrist's by a least-squares fit (Kabsch)
of the rest palm to each frame's palm, each finger joint's as the smallest rotation that
turns its rest bone onto the observed bone (twist about a bone is not observable from joint
positions and is set to zero). For MANO-generated joints, whose palm is rigid, the file
reproduces the input joint positions up to bone-length variation within the sequence
(:func:`read_bvh` + :func:`bvh_positions` parse it back for checking).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unihand.data.io import atomic_write
from unihand.hand.joints import OPENPOSE_JOINT_NAMES, OPENPOSE_PARENTS

#: OpenCV camera frame -> BVH Y-up frame (rotation of 180 degrees about x).
CV_TO_YUP = np.diag([1.0, -1.0, -1.0])
ROT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")
_TIPS = (4, 8, 12, 16, 20)
_PALM_CHILDREN = (1, 5, 9, 13, 17)


def _children(j: int) -> list[int]:
    return [c for c, p in enumerate(OPENPOSE_PARENTS) if p == j]


def _unit(v: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(a.shape + (3, 3))


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(a.shape + (3, 3))


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(a.shape + (3, 3))


_AXIS_ROT = {"X": _rot_x, "Y": _rot_y, "Z": _rot_z}


def euler_to_matrix(angles_deg: np.ndarray, order: str = "ZXY") -> np.ndarray:
    """(..., 3) angles in degrees, applied as ``R = R_order[0] @ R_order[1] @ R_order[2]``."""
    a = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    R = _AXIS_ROT[order[0]](a[..., 0])
    for k in (1, 2):
        R = R @ _AXIS_ROT[order[k]](a[..., k])
    return R


def matrix_to_euler_zxy(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) degrees (z, x, y) with ``R = Rz @ Rx @ Ry``."""
    # R = Rz Rx Ry: R[2,1] = sin x; R[2,0] = -cos x sin y; R[2,2] = cos x cos y;
    # R[0,1] = -sin z cos x; R[1,1] = cos z cos x
    x = np.arcsin(np.clip(R[..., 2, 1], -1.0, 1.0))
    cx = np.cos(x)
    regular = cx > 1e-6
    y = np.where(regular, np.arctan2(-R[..., 2, 0], R[..., 2, 2]), 0.0)
    z = np.where(regular, np.arctan2(-R[..., 0, 1], R[..., 1, 1]), np.arctan2(R[..., 1, 0], R[..., 0, 0]))
    return np.rad2deg(np.stack([z, x, y], axis=-1))


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotations (N, 3, 3) minimising ``|R src_k - dst_k|`` over points k; src (K, 3), dst (N, K, 3)."""
    H = np.einsum("kj,nki->nji", src, dst)  # sum_k src_k dst_k^T  -> (N, 3, 3) as [j, i]
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.swapaxes(Vt, -1, -2) @ np.swapaxes(U, -1, -2)))
    D = np.zeros_like(H)
    D[:, 0, 0] = 1
    D[:, 1, 1] = 1
    D[:, 2, 2] = d
    return np.swapaxes(Vt, -1, -2) @ D @ np.swapaxes(U, -1, -2)


def _align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations (N, 3, 3) taking unit vectors a (N, 3) onto unit vectors b (N, 3)."""
    v = np.cross(a, b)
    c = np.einsum("ni,ni->n", a, b)
    s = np.linalg.norm(v, axis=-1)
    R = np.repeat(np.eye(3)[None], len(a), axis=0)
    ok = s > 1e-9
    k = v[ok] / s[ok, None]
    ang = np.arctan2(s[ok], c[ok])
    Kx = np.zeros((ok.sum(), 3, 3))
    Kx[:, 0, 1], Kx[:, 0, 2], Kx[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    Kx[:, 1, 0], Kx[:, 2, 0], Kx[:, 2, 1] = k[:, 2], -k[:, 1], k[:, 0]
    R[ok] = np.eye(3) + np.sin(ang)[:, None, None] * Kx + (1 - np.cos(ang))[:, None, None] * (Kx @ Kx)
    anti = (~ok) & (c < 0)  # opposite vectors: half turn about any perpendicular axis
    if anti.any():
        perp = _unit(np.cross(a[anti], np.where(np.abs(a[anti, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])))
        R[anti] = 2 * np.einsum("ni,nj->nij", perp, perp) - np.eye(3)
    return R


@dataclass
class BVHSkeleton:
    """Rest offsets (21, 3) in the parent's frame (the root's is zero) and the joint names."""

    offsets: np.ndarray
    names: tuple[str, ...] = OPENPOSE_JOINT_NAMES
    parents: tuple[int, ...] = OPENPOSE_PARENTS


def rest_skeleton(points: np.ndarray) -> BVHSkeleton:
    """Flat-hand rest pose from a motion's joints (N, 21, 3) in the BVH frame (see module doc)."""
    rel = points[:, _PALM_CHILDREN] - points[:, :1]  # (N, 5, 3) palm in the world
    # Express each frame's palm in a hand-local frame, then average (the palm is near rigid).
    x = _unit(rel[:, 2])  # toward the middle knuckle
    n = _unit(np.cross(rel[:, 1], rel[:, 4]))  # palm normal (index x little)
    y = _unit(np.cross(n, x))
    frames = np.stack([x, y, np.cross(x, y)], axis=-1)  # (N, 3, 3) columns: hand axes in world
    palm = np.einsum("nji,nkj->nki", frames, rel).mean(axis=0)  # (5, 3) local
    # Place the rest hand upright: local x (toward the fingers) -> +Y, local normal -> +Z.
    to_rest = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).T  # columns: images of x, y, z
    palm = palm @ to_rest.T
    lengths = np.linalg.norm(points[:, 1:] - points[:, list(OPENPOSE_PARENTS[1:])], axis=-1).mean(axis=0)
    offsets = np.zeros((21, 3))
    for k, j in enumerate(_PALM_CHILDREN):
        offsets[j] = palm[k]
        ray = _unit(palm[k])
        c = j
        while _children(c):
            (c2,) = _children(c)
            offsets[c2] = ray * lengths[c2 - 1]
            c = c2
    return BVHSkeleton(offsets)


def joint_rotations(points: np.ndarray, skel: BVHSkeleton) -> np.ndarray:
    """Local rotations (N, 21, 3, 3) that pose ``skel`` like ``points`` (N, 21, 3) (module doc)."""
    n = points.shape[0]
    glob = np.zeros((n, 21, 3, 3))
    local = np.repeat(np.eye(3)[None, None], n, axis=0).repeat(21, axis=1)
    rel = points[:, _PALM_CHILDREN] - points[:, :1]
    glob[:, 0] = _kabsch(skel.offsets[list(_PALM_CHILDREN)], rel)
    local[:, 0] = glob[:, 0]
    for j in range(1, 21):  # parents come before children in OpenPose order
        p = OPENPOSE_PARENTS[j]
        kids = _children(j)
        if not kids:
            continue
        (c,) = kids
        target = np.einsum("nji,nj->ni", glob[:, p], points[:, c] - points[:, j])  # in the parent's frame
        local[:, j] = _align(np.repeat(_unit(skel.offsets[c])[None], n, axis=0), _unit(target))
        glob[:, j] = glob[:, p] @ local[:, j]
    return local


def motion_to_bvh_text(joints: np.ndarray, fps: float = 30.0, *, from_camera: bool = True,
                       precision: int = 6) -> str:
    """BVH text of ``joints`` (N, 21, 3) metres; ``from_camera``: they are in the OpenCV frame."""
    pts = np.asarray(joints, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (21, 3) or pts.shape[0] == 0:
        raise ValueError(f"joints must be (N, 21, 3) with N >= 1, got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("joints contain NaN or infinite values")
    if from_camera:
        pts = pts @ CV_TO_YUP.T
    skel = rest_skeleton(pts)
    local = joint_rotations(pts, skel)
    euler = np.unwrap(np.deg2rad(matrix_to_euler_zxy(local)), axis=0)
    euler = np.rad2deg(euler)
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
    out.write(f"MOTION\nFrames: {pts.shape[0]}\nFrame Time: {1.0 / fps:.8f}\n")
    for t in range(pts.shape[0]):
        vals = list(pts[t, 0])
        for j in order:
            vals.extend(euler[t, j])
        out.write(" ".join(f.format(v) for v in vals) + "\n")
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


def write_bvh(path: str | os.PathLike, joints: np.ndarray, fps: float = 30.0, *, from_camera: bool = True) -> Path:
    """Atomically write the BVH file of ``joints`` (N, 21, 3) metres."""
    text = motion_to_bvh_text(joints, fps, from_camera=from_camera)
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
                R = R @ _AXIS_ROT[axis](np.deg2rad(vals[:, k]))
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
