"""HO3D v2/v3 (Hampali et al., 2020) for evaluation, and its CodaLab submission format.

Layout (official)::

    <root>/train.txt, <root>/evaluation.txt      one "<sequence>/<frame id>" per line
    <root>/<split>/<sequence>/meta/<frame id>.pkl
    <root>/<split>/<sequence>/rgb/<frame id>.jpg  (v3; .png in v2)

Training annotations hold ``handPose`` (48: global + 45 full axis-angle, flat-hand mean),
``handTrans``, ``handBeta``, ``handJoints3D`` (21, 3) and ``camMat``; evaluation annotations
only ``camMat``, the hand box and the root joint (the ground truth is on the CodaLab server;
``<root>/evaluation_xyz.json`` and ``evaluation_verts.json`` are used when present).
HO3D stores everything in an **OpenGL** camera frame (y up, z backwards): points are brought
to OpenCV by ``diag(1, -1, -1)``, a rotation, so MANO parameters move rigidly with it. Its
21 joints are MANO's 16 followed by the fingertips thumb, index, middle, ring, little; they
are reordered to OpenPose. HO3D hands are right hands. Meta pickles are read by the restricted
unpickler of :mod:`unihand.hand.mano` (numpy arrays only, nothing executed).
"""

from __future__ import annotations

import functools
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unihand.data.datasets.common import (
    SkipReport,
    Track,
    hand_model,
    mano_rows,
    read_images,
    require_dir,
    visible_in_image,
)
from unihand.files import atomic_write
from unihand.errors import UserError
from unihand.geometry.camera import project
from unihand.geometry.canonical import make_transform, transform_mano
from unihand.hand import fk_numpy
from unihand.hand.joints import MANO_TO_OPENPOSE
from unihand.hand.mano import ManoUnpickler

IMAGE_SIZE = (640, 480)
FPS = 30.0
#: OpenGL <-> OpenCV camera frame (its own inverse): flip y and z.
GL_TO_CV = np.diag([1.0, -1.0, -1.0])
#: HO3D joint i in OpenPose order is ``ho3d[HO3D_TO_OPENPOSE[i]]``.
HO3D_TO_OPENPOSE = np.asarray(MANO_TO_OPENPOSE)
#: OpenPose joint i in HO3D order is ``openpose[OPENPOSE_TO_HO3D[i]]``.
OPENPOSE_TO_HO3D = np.argsort(HO3D_TO_OPENPOSE)
SPLITS = {"train": "train", "evaluation": "evaluation", "test": "evaluation"}


def gl_to_cv(points: np.ndarray) -> np.ndarray:
    """Points (..., 3) from HO3D's OpenGL camera frame to OpenCV (and back: the flip is an involution)."""
    return np.asarray(points) * np.diag(GL_TO_CV)


def mano_gl_to_cv(mano: np.ndarray, rest_root: np.ndarray) -> np.ndarray:
    """(T, 61) MANO in the OpenGL frame -> OpenCV frame; ``rest_root`` (T, 3) for the betas."""
    go, tr = transform_mano(mano[:, :3].astype(np.float64), mano[:, 58:].astype(np.float64),
                            make_transform(GL_TO_CV, np.zeros(3)), rest_root.astype(np.float64))
    return np.concatenate([go, mano[:, 3:58], tr], axis=-1).astype(np.float32)


def load_meta(path: Path) -> dict[str, Any]:
    """One annotation pickle as a dict (restricted unpickler); ``ValueError`` when unreadable."""
    try:
        with open(path, "rb") as fh:
            data = ManoUnpickler(fh, path).load()
    except (UserError, pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as err:
        raise ValueError(f"unreadable annotation {path.name} ({err.__class__.__name__}: {err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} does not hold a dict")
    return data


def frame_list(root: Path, split: str) -> list[tuple[str, str]]:
    """(sequence, frame id) pairs of ``<split>.txt`` in file order (the submission order)."""
    path = root / f"{split}.txt"
    if not path.is_file():
        raise UserError(f"HO3D: missing {path} (the list of {split} frames)")
    pairs = []
    for line in path.read_text().split():
        seq, _, fid = line.strip().partition("/")
        if not fid:
            raise UserError(f"HO3D: {path}: line {line!r} is not '<sequence>/<frame id>'")
        pairs.append((seq, fid))
    return pairs


def _image_path(seq_dir: Path, fid: str) -> str:
    jpg = seq_dir / "rgb" / f"{fid}.jpg"
    return str(jpg if jpg.is_file() or not (seq_dir / "rgb" / f"{fid}.png").is_file() else seq_dir / "rgb" / f"{fid}.png")


def _reference(root: Path, split: str, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Server-side ground truth ``<split>_xyz.json`` / ``_verts.json`` (OpenGL, HO3D order) when present."""
    xyz_path, verts_path = root / f"{split}_xyz.json", root / f"{split}_verts.json"
    if not xyz_path.is_file():
        return None, None
    xyz = np.asarray(json.loads(xyz_path.read_text()), np.float64)
    verts = np.asarray(json.loads(verts_path.read_text()), np.float64) if verts_path.is_file() else None
    if xyz.shape != (n, 21, 3) or (verts is not None and verts.shape != (n, 778, 3)):
        raise UserError(f"HO3D: {xyz_path} / {verts_path.name} do not hold {n} frames of 21 joints / 778 vertices")
    return xyz, verts


def load_tracks(root: str | Path, split: str = "evaluation", *, mano_dir: str | Path | None = None) -> list[Track]:
    """Each sequence of ``split`` (train / evaluation) as a :class:`Track` in the OpenCV camera frame.

    Frame order follows ``<split>.txt``. ``mano_dir`` gives exact rest roots (for the frame change
    of MANO) and ground-truth vertices (F-scores); without it the built-in kinematic hand's rest
    root is used and there are no vertices.
    """
    root = Path(root).expanduser()
    require_dir(root, "HO3D root")
    if split not in SPLITS:
        raise UserError(f"HO3D: unknown split {split!r} (train or evaluation)")
    split = SPLITS[split]
    require_dir(root / split, f"HO3D {split} folder")
    pairs = frame_list(root, split)
    ref_xyz, ref_verts = _reference(root, split, len(pairs))
    hand = hand_model(None if mano_dir is None else str(Path(mano_dir).expanduser()), True)
    report = SkipReport("HO3D")
    order: dict[str, list[int]] = {}
    for i, (seq, _) in enumerate(pairs):
        order.setdefault(seq, []).append(i)
    for seq, rows in order.items():
        if rows[-1] - rows[0] + 1 != len(rows):
            raise UserError(f"HO3D: {split}.txt lists sequence {seq} in separate blocks; each sequence's frames "
                            "must be consecutive (as in the official file)")
    tracks = []
    for seq, rows in order.items():
        seq_dir = root / split / seq
        if not (seq_dir / "meta").is_dir():
            report.skip(seq, f"annotation folder {seq_dir / 'meta'} is missing")
            continue
        try:
            metas = [load_meta(seq_dir / "meta" / f"{pairs[i][1]}.pkl") for i in rows]
            tracks.append(_track(seq, seq_dir, [pairs[i][1] for i in rows], metas, hand,
                                 None if ref_xyz is None else ref_xyz[rows],
                                 None if ref_verts is None else ref_verts[rows]))
        except (ValueError, KeyError, TypeError) as err:
            report.skip(seq, f"{err.__class__.__name__}: {err}")
    return report.finish(tracks, f"{root} ({split})")


def _track(seq: str, seq_dir: Path, fids: list[str], metas: list[dict[str, Any]], hand: torch.nn.Module,
           ref_xyz: np.ndarray | None, ref_verts: np.ndarray | None) -> Track:
    n = len(metas)
    K = np.asarray(metas[0]["camMat"], np.float64).reshape(3, 3)
    has_mano = np.array([m.get("handPose") is not None and m.get("handJoints3D") is not None
                         and np.size(m["handJoints3D"]) == 63 for m in metas])
    mano = np.zeros((n, 61), np.float32)
    joints = np.zeros((n, 21, 3))
    for i in np.flatnonzero(has_mano):
        m = metas[i]
        pose = np.asarray(m["handPose"], np.float64).reshape(48)
        mano[i] = mano_rows(pose[:3], pose[3:], np.asarray(m["handBeta"], np.float64).reshape(10),
                            np.asarray(m["handTrans"], np.float64).reshape(3))
        joints[i] = np.asarray(m["handJoints3D"], np.float64).reshape(21, 3)
    if ref_xyz is not None:
        joints, valid = ref_xyz.copy(), np.ones(n, bool)
    else:
        valid = has_mano
    rest_root = hand.rest_root(torch.from_numpy(mano[:, 48:58]).double()).detach().numpy()
    mano = np.where(has_mano[:, None], mano_gl_to_cv(mano, rest_root), 0.0).astype(np.float32)
    joints = gl_to_cv(joints[:, HO3D_TO_OPENPOSE])
    vertices = None
    if ref_verts is not None:
        vertices = gl_to_cv(ref_verts).astype(np.float32)
    elif hand.faces is not None:
        vertices = fk_numpy(hand, mano)[1]
    kp2d = project(joints, K).astype(np.float32)
    return Track(
        name=seq, mano=mano, joints=joints.astype(np.float32), rest_root=rest_root, valid=valid, kp2d=kp2d,
        kp2d_mask=visible_in_image(kp2d, IMAGE_SIZE) & valid[:, None] & (joints[..., 2] > 0),
        K=K, image_size=IMAGE_SIZE, occlusion=np.full(n, np.nan), is_right=True, fps=FPS, vertices=vertices,
        frames=functools.partial(read_images, tuple(_image_path(seq_dir, f) for f in fids)),
    )


def write_submission(path: str | Path, joints: list[np.ndarray] | np.ndarray,
                     vertices: list[np.ndarray] | np.ndarray) -> Path:
    """Write CodaLab's ``pred.json``: ``[xyz_list, verts_list]``, one entry per line of
    ``evaluation.txt`` in that order, in HO3D's OpenGL frame and joint order, metres.

    ``joints`` (N, 21, 3) OpenPose order and ``vertices`` (N, 778, 3), both OpenCV camera frame.
    """
    j = np.asarray(joints, np.float64)
    v = np.asarray(vertices, np.float64)
    if j.ndim != 3 or j.shape[1:] != (21, 3) or v.shape != (len(j), 778, 3):
        raise UserError(f"HO3D submission needs joints (N, 21, 3) and vertices (N, 778, 3); got {j.shape} and {v.shape}")
    xyz = gl_to_cv(j[:, OPENPOSE_TO_HO3D])
    verts = gl_to_cv(v)
    text = json.dumps([xyz.tolist(), verts.tolist()])
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))
