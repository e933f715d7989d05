"""A mesh for the built-in kinematic hand: a capsule along every finger bone plus a palm slab.

The kinematic hand has joints only; exporters that need a surface (GLB, OBJ, the HTML viewer)
get this one. It is built once per hand shape in the model's rest pose and **skinned rigidly**:
each vertex belongs to one MANO joint (a finger capsule to the joint whose rotation turns that
bone, the palm to the wrist) and is posed as ``R_b (v - rest_b) + joint_b`` with the model's own
global rotations ``R`` and joint positions (:attr:`HandOutput.rotations`, ``joints16``). So the
mesh deforms exactly with the motion's MANO parameters, twist about the bones included, and
works for any hand model (the MANO model too: its rest rotations are the identity as well).

- Finger bones: the 15 bones between consecutive finger joints (OpenPose order; the bone from
  the wrist to each first joint is part of the palm). Radius per finger (thumb 10.5 mm, index and
  middle 9.5, ring 9, little 8 on an adult hand), 10 % thinner per phalanx, scaled with the hand's
  length. The last capsule of each finger ends (its cap included) at the fingertip joint.
- Palm: the convex hull of the wrist (widened sideways) and the five first finger joints, 2.2 x
  11 mm thick across the palm.
- Faces wind counter-clockwise seen from outside (outward normals), each part a closed surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from unihand.hand.joints import MANO_TO_OPENPOSE, OPENPOSE_PARENTS

#: Capsule radius (metres) of each finger's first bone (thumb, index, middle, ring, little).
FINGER_RADII = (0.0105, 0.0095, 0.0095, 0.0090, 0.0080)
#: Each further phalanx is this much thinner.
TAPER = 0.9
#: Half thickness of the palm slab and half width of the wrist end (metres, adult hand).
PALM_HALF_THICKNESS = 0.011
WRIST_HALF_WIDTH = 0.022
#: Wrist to middle fingertip of the adult hand the sizes above are for.
REFERENCE_LENGTH = 0.186
_PALM_JOINTS = (1, 5, 9, 13, 17)
_TIPS = (4, 8, 12, 16, 20)


@dataclass
class CapsuleMesh:
    """Rest mesh of one hand shape and how it is skinned.

    ``rest_vertices`` (V, 3) in the model's rest frame, ``faces`` (F, 3), ``bone`` (V,) the MANO
    joint (0-15) each vertex is attached to, ``rest_joints16`` (16, 3) the rest MANO joints.
    """

    rest_vertices: np.ndarray
    faces: np.ndarray
    bone: np.ndarray
    rest_joints16: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.rest_vertices.shape[0])

    def pose(self, rotations: np.ndarray, joints16: np.ndarray) -> np.ndarray:
        """Posed vertices (..., V, 3) from global rotations (..., 16, 3, 3) and joints (..., 16, 3)."""
        R = np.asarray(rotations, np.float64)[..., self.bone, :, :]
        local = self.rest_vertices - self.rest_joints16[self.bone]
        return np.einsum("...vij,vj->...vi", R, local) + np.asarray(joints16, np.float64)[..., self.bone, :]


def _frame(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to unit ``d`` and to each other."""
    helper = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(d, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(d, u)


def _orient_outward(vertices: np.ndarray, faces: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Flip faces whose normal points toward ``inside`` (F, 3): a point inside the solid per face."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    n = np.cross(b - a, c - a)
    flip = np.einsum("fi,fi->f", n, (a + b + c) / 3 - inside) < 0
    out = faces.copy()
    out[flip] = out[flip][:, [0, 2, 1]]
    return out


def capsule(p: np.ndarray, q: np.ndarray, r: float, sides: int = 12, rings: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Closed capsule around the segment p-q (radius r): vertices (2 + 2 * rings * sides, 3), faces."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    axis = q - p
    length = np.linalg.norm(axis)
    d = axis / length if length > 1e-12 else np.array([0.0, 0.0, 1.0])
    u, w = _frame(d)
    alpha = 2 * np.pi * np.arange(sides) / sides
    circle = np.cos(alpha)[:, None] * u + np.sin(alpha)[:, None] * w  # (sides, 3)
    verts = [p - r * d]
    for i in range(1, rings + 1):  # bottom hemisphere, pole side first, equator last (at p)
        th = -np.pi / 2 + i * (np.pi / 2) / rings
        verts.extend(p + r * (np.cos(th) * circle + np.sin(th) * d))
    for i in range(rings):  # top hemisphere, equator first (at q)
        th = i * (np.pi / 2) / rings
        verts.extend(q + r * (np.cos(th) * circle + np.sin(th) * d))
    verts.append(q + r * d)
    V = np.array(verts)
    top = len(verts) - 1
    ring0 = lambda k: 1 + k * sides  # noqa: E731 - first vertex of ring k
    faces = []
    for s in range(sides):
        s2 = (s + 1) % sides
        faces.append((0, ring0(0) + s2, ring0(0) + s))
        for k in range(2 * rings - 1):
            a, b = ring0(k) + s, ring0(k) + s2
            c, e = ring0(k + 1) + s, ring0(k + 1) + s2
            faces.extend([(a, b, e), (a, e, c)])
        last = ring0(2 * rings - 1)
        faces.append((top, last + s, last + s2))
    F = np.array(faces, np.int64)
    # inside point per face: its centroid's closest point on the axis segment
    cen = V[F].mean(1)
    t = np.clip((cen - p) @ d, 0.0, length)
    return V, _orient_outward(V, F, p + t[:, None] * d)


def _palm(rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convex palm slab from the rest joints (21, 3) in OpenPose order."""
    from scipy.spatial import ConvexHull

    wrist = rest[0]
    knuckles = rest[list(_PALM_JOINTS)]
    size = np.linalg.norm(rest[12] - wrist) / REFERENCE_LENGTH
    side = rest[5] - rest[17]
    side /= np.linalg.norm(side)
    fwd = rest[9] - wrist
    normal = np.cross(fwd, side)
    normal /= np.linalg.norm(normal)
    outline = np.concatenate([knuckles, [wrist + WRIST_HALF_WIDTH * size * side, wrist - WRIST_HALF_WIDTH * size * side]])
    pts = np.concatenate([outline + PALM_HALF_THICKNESS * size * normal, outline - PALM_HALF_THICKNESS * size * normal])
    hull = ConvexHull(pts)
    used = np.unique(hull.simplices)
    remap = -np.ones(len(pts), np.int64)
    remap[used] = np.arange(len(used))
    V, F = pts[used], remap[hull.simplices]
    return V, _orient_outward(V, F, np.broadcast_to(V.mean(0), F.shape))


@torch.no_grad()
def build_capsule_mesh(hand: nn.Module, betas: np.ndarray | None = None, sides: int = 12, rings: int = 3) -> CapsuleMesh:
    """The capsule mesh of ``hand`` (any hand model) for one shape ``betas`` (10,) (None: mean)."""
    b = None if betas is None else torch.as_tensor(np.asarray(betas, np.float64).reshape(10))
    out = hand(betas=b) if b is not None else hand(betas=torch.zeros(10, dtype=torch.float64))
    rest = out.joints.double().numpy().reshape(21, 3)
    rest16 = out.joints16.double().numpy().reshape(16, 3)
    size = np.linalg.norm(rest[12] - rest[0]) / REFERENCE_LENGTH
    verts, faces, bone = [], [], []
    n = 0

    def add(V: np.ndarray, F: np.ndarray, joint16: int) -> None:
        nonlocal n
        verts.append(V)
        faces.append(F + n)
        bone.append(np.full(len(V), joint16, np.int64))
        n += len(V)

    V, F = _palm(rest)
    add(V, F, 0)
    for j in range(1, 21):
        p = OPENPOSE_PARENTS[j]
        if p == 0:
            continue
        finger, level = (j - 1) // 4, (j - 1) % 4 - 1  # level 0..2 along the finger
        r = FINGER_RADII[finger] * TAPER**level * size
        a, c = rest[p], rest[j]
        if j in _TIPS:  # the cap ends at the fingertip
            d = c - a
            c = c - r * d / max(np.linalg.norm(d), 1e-12)
        V, F = capsule(a, c, r, sides, rings)
        add(V, F, MANO_TO_OPENPOSE[p])
    return CapsuleMesh(np.concatenate(verts), np.concatenate(faces), np.concatenate(bone), rest16)


@torch.no_grad()
def posed_capsule_vertices(
    hand: nn.Module, global_orient: np.ndarray, hand_pose: np.ndarray, betas: np.ndarray, transl: np.ndarray,
    mesh: CapsuleMesh | None = None, sides: int = 12, rings: int = 3,
) -> tuple[np.ndarray, CapsuleMesh]:
    """Vertices (N, V, 3) of the capsule mesh posed by MANO parameters (N, .), and the mesh.

    Without ``mesh`` it is built for the sequence's mean shape.
    """
    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(x, np.float64))

    if mesh is None:
        mesh = build_capsule_mesh(hand, np.asarray(betas, np.float64).mean(0), sides, rings)
    out = hand(global_orient=t(global_orient), hand_pose=t(hand_pose), betas=t(betas), transl=t(transl))
    return mesh.pose(out.rotations.double().numpy(), out.joints16.double().numpy()), mesh
