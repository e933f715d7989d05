"""The surface of a motion: the MANO mesh when MANO files are given, else the capsule hand.

:func:`motion_mesh` picks it for every mesh exporter (GLB, OBJ, the HTML viewer):

- with ``mano_dir`` (the hand model is MANO): the motion's own ``vertices`` when it holds them,
  else MANO forward kinematics of its parameters; faces from the MANO file;
- else the built-in kinematic hand's capsule mesh (:mod:`unihand.hand.capsule_mesh`), posed by
  the motion's MANO parameters (a motion holding MANO ``vertices`` without the MANO files to
  give their faces gets the capsule mesh, with a warning).

Vertices are in the motion's canonical frame (OpenCV axes), metres. :func:`viewer_mesh` gives
the light version the HTML viewer embeds.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from unihand.export.checks import require_finite

log = logging.getLogger(__name__)

#: Byte budget of the mesh frames embedded in an HTML viewer (int16 vertices).
VIEWER_MESH_BYTES = 2_000_000
#: Fewest vertices a decimated viewer mesh keeps (below this it is left out).
VIEWER_MIN_VERTICES = 120


@dataclass
class MeshSequence:
    """``vertices`` (N, V, 3) canonical frame, metres; ``faces`` (F, 3); ``kind`` mano / capsule."""

    vertices: np.ndarray
    faces: np.ndarray
    kind: str

    @property
    def label(self) -> str:
        return {"mano": "MANO mesh", "capsule": "capsule mesh (built-in hand)"}.get(self.kind, self.kind)


def hand_model(motion: Any, mano_dir: str | os.PathLike | None = None, hand: Any = None) -> Any:
    """``hand`` if given, else MANO from ``mano_dir`` or the built-in hand, for the motion's side."""
    if hand is not None:
        return hand
    from unihand.hand import load_hand_model

    return load_hand_model(mano_dir, is_right=bool(motion.is_right))


def _params(motion: Any) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(getattr(motion, k), np.float64) for k in ("global_orient", "hand_pose", "betas", "transl"))


def motion_mesh(motion: Any, *, mano_dir: str | os.PathLike | None = None, hand: Any = None,
                source: Any = "motion", what: str = "mesh", sides: int = 12, rings: int = 3) -> MeshSequence:
    """The mesh of every frame of ``motion`` (module doc); non-finite input or output -> UserError."""
    for name, value in zip(("global_orient", "hand_pose", "betas", "transl"), _params(motion)):
        require_finite(source, name, value, what)
    hand = hand_model(motion, mano_dir, hand)
    if getattr(hand, "kind", "") == "mano":
        if motion.vertices is not None:
            verts = require_finite(source, "vertices", motion.vertices, what)
        else:
            from unihand.hand.model import fk_numpy

            verts = fk_numpy(hand, motion.mano().astype(np.float64))[1]
        faces = np.asarray(hand.faces, np.int64)
        kind = "mano"
    else:
        if motion.vertices is not None:
            log.warning("%s: the motion holds MANO vertices but no MANO files were given for their faces; "
                        "writing the built-in hand's capsule mesh instead (give --mano-dir)", source)
        from unihand.hand.capsule_mesh import posed_capsule_vertices

        verts, mesh = posed_capsule_vertices(hand, *_params(motion), sides=sides, rings=rings)
        faces, kind = mesh.faces, "capsule"
    verts = np.asarray(verts, np.float64)
    if not np.all(np.isfinite(verts)):
        require_finite(source, "vertices (posed by the hand model)", verts, what)
    return MeshSequence(verts, faces, kind)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (N, V, 3) (an unused vertex gets +z)."""
    import scipy.sparse

    v = np.asarray(vertices, np.float64)
    n, nv = v.shape[:2]
    fn = np.cross(v[:, faces[:, 1]] - v[:, faces[:, 0]], v[:, faces[:, 2]] - v[:, faces[:, 0]])  # (N, F, 3)
    nf = faces.shape[0]
    inc = scipy.sparse.csr_matrix((np.ones(3 * nf), (faces.T.reshape(-1), np.tile(np.arange(nf), 3))), shape=(nv, nf))
    vn = (inc @ fn.transpose(1, 0, 2).reshape(nf, -1)).reshape(nv, n, 3).transpose(1, 0, 2)
    length = np.linalg.norm(vn, axis=-1, keepdims=True)
    return np.where(length > 1e-20, vn / np.maximum(length, 1e-20), np.array([0.0, 0.0, 1.0]))


def cluster_decimate(mesh: MeshSequence, reference: np.ndarray, max_vertices: int) -> MeshSequence:
    """Vertex-clustering decimation: vertices of ``reference`` (V, 3) (the rest pose: fingers apart)
    sharing a grid cell merge into their mean (every frame), with the finest grid giving at most
    ``max_vertices``; collapsed and duplicate faces are dropped."""
    import scipy.sparse

    ref = np.asarray(reference, np.float64)
    nv = ref.shape[0]
    if nv <= max_vertices:
        return mesh
    lo = ref.min(0)

    def labels(cell: float) -> np.ndarray:
        keys = np.floor((ref - lo) / cell).astype(np.int64)
        return np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)

    small, big = 1e-6, float(np.ptp(ref, axis=0).max()) + 1e-6
    for _ in range(40):
        mid = 0.5 * (small + big)
        if labels(mid).max() + 1 > max_vertices:
            small = mid
        else:
            big = mid
    lab = labels(big)
    count = np.bincount(lab)
    avg = scipy.sparse.csr_matrix((1.0 / count[lab], (lab, np.arange(nv))), shape=(len(count), nv))
    n = mesh.vertices.shape[0]
    verts = (avg @ mesh.vertices.transpose(1, 0, 2).reshape(nv, -1)).reshape(-1, n, 3).transpose(1, 0, 2)
    f = lab[mesh.faces]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    _, first = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
    return MeshSequence(verts, f[np.sort(first)], mesh.kind)


def viewer_mesh(motion: Any, mesh: MeshSequence | None, *, hand: Any = None, mano_dir: str | os.PathLike | None = None,
                budget: int = VIEWER_MESH_BYTES, source: Any = "motion") -> MeshSequence | None:
    """The light mesh for the HTML viewer: a coarse capsule mesh (6 sides), or the MANO mesh
    decimated to fit ``budget`` bytes of int16 frames; None when even that does not fit."""
    n = motion.num_frames
    fit = budget // max(1, 6 * n)
    if mesh is None:
        mesh = motion_mesh(motion, mano_dir=mano_dir, hand=hand, source=source, what="viewer", sides=6, rings=1)
    elif mesh.kind == "capsule":
        from unihand.hand.capsule_mesh import posed_capsule_vertices

        verts, cm = posed_capsule_vertices(hand_model(motion, mano_dir, hand), *_params(motion), sides=6, rings=1)
        mesh = MeshSequence(verts, cm.faces, "capsule")
    if mesh.vertices.shape[1] <= fit:
        return mesh
    if mesh.kind != "mano" or fit < VIEWER_MIN_VERTICES:
        log.info("%s: %d frames: the viewer shows the skeleton only (mesh over the size budget)", source, n)
        return None
    import torch

    h = hand_model(motion, mano_dir, hand)
    with torch.no_grad():
        rest = h(betas=torch.from_numpy(np.asarray(motion.betas, np.float64).mean(0))).vertices.double().numpy()
    return cluster_decimate(mesh, rest, fit)
