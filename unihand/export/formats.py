"""The built-in writers, one per format: ``writer(motion, path, **ctx) -> Path``.

Every writer checks the inputs it uses are finite (a :class:`~unihand.errors.UserError` naming
the source file, the field and the first bad frame) and writes atomically. Context keys, all
optional: ``source`` (the input's name for messages), ``hand`` (the hand model), ``mano_dir``,
``mesh`` (a :class:`~unihand.export.mesh.MeshSequence` already computed), ``infilled`` (N,),
``title``, ``side``, ``first_frame``, ``summary`` (a dict the JSON summary starts from),
``camera_poses`` (T_cano_from_cam (N, 4, 4); default: the motion's ``T_cano_from_cam`` extra).
Unknown keys are ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from unihand.files import atomic_write
from unihand.errors import UserError
from unihand.export.checks import require_finite
from unihand.export.mesh import MeshSequence, hand_model, motion_mesh, viewer_mesh

#: Extra array of a motion holding each frame's camera pose (camera to canonical, OpenCV axes).
CAMERA_POSES_KEY = "T_cano_from_cam"


def _source(path: Path, ctx: dict) -> str:
    return str(ctx.get("source") or path)


def motion_joints(motion: Any, path: Path, ctx: dict) -> np.ndarray:
    """The motion's joints (N, 21, 3), from its hand model when the file holds none; finite."""
    src = _source(path, ctx)
    if motion.joints is not None:
        return require_finite(src, "joints", motion.joints, path.name)
    from unihand.hand.model import fk_numpy

    for name in ("global_orient", "hand_pose", "betas", "transl"):
        require_finite(src, name, getattr(motion, name), path.name)
    joints = fk_numpy(hand_model(motion, ctx.get("mano_dir"), ctx.get("hand")), motion.mano().astype(np.float64))[0]
    return require_finite(src, "joints (from the hand model)", joints, path.name)


def camera_poses(motion: Any, path: Path, ctx: dict) -> np.ndarray | None:
    """Per-frame camera poses (N, 4, 4) from the context or the motion's extras, checked."""
    poses = ctx.get("camera_poses")
    if poses is None:
        poses = getattr(motion, "extra", {}).get(CAMERA_POSES_KEY)
    if poses is None:
        return None
    src = _source(path, ctx)
    T = np.asarray(poses)
    if T.shape != (motion.num_frames, 4, 4):
        raise UserError(f"{src}: field '{CAMERA_POSES_KEY}' has shape {T.shape}, expected "
                        f"({motion.num_frames}, 4, 4); {path.name} not written")
    return require_finite(src, CAMERA_POSES_KEY, T, path.name)


def camera_valid(motion: Any, path: Path, ctx: dict, poses: np.ndarray | None) -> np.ndarray | None:
    """The motion's ``camera_valid`` (N,) (frames whose camera was registered), with its camera poses only."""
    valid = getattr(motion, "extra", {}).get("camera_valid")
    if valid is None or poses is None:
        return None
    valid = np.asarray(valid)
    if valid.shape != (motion.num_frames,):
        raise UserError(f"{_source(path, ctx)}: field 'camera_valid' has shape {valid.shape}, expected "
                        f"({motion.num_frames},); {path.name} not written")
    return valid.astype(bool)


def _mesh(motion: Any, path: Path, ctx: dict) -> MeshSequence:
    mesh = ctx.get("mesh")
    src = _source(path, ctx)
    if mesh is None:
        return motion_mesh(motion, mano_dir=ctx.get("mano_dir"), hand=ctx.get("hand"), source=src, what=path.name)
    require_finite(src, "vertices", mesh.vertices, path.name)
    return mesh


def write_npz(motion: Any, path: Path, **ctx: Any) -> Path:
    """The motion file itself (:meth:`Motion.save`: validated, atomic)."""
    return motion.save(path)


def motion_stats(motion: Any, joints: np.ndarray) -> dict[str, Any]:
    """Numbers describing a motion: frames, duration, wrist path, extent, shape."""
    n = motion.num_frames
    fps = float(motion.fps)
    wrist = joints[:, 0]
    step = np.linalg.norm(np.diff(wrist, axis=0), axis=-1)
    betas = np.asarray(motion.betas, np.float64)
    return {
        "hand": "right" if motion.is_right else "left", "frames": n, "fps": fps, "duration_s": n / fps,
        "wrist_start_m": wrist[0].round(6).tolist(), "wrist_end_m": wrist[-1].round(6).tolist(),
        "wrist_path_length_m": round(float(step.sum()), 6),
        "wrist_mean_speed_m_s": round(float(step.mean() * fps), 6) if n > 1 else 0.0,
        "joints_min_m": joints.reshape(-1, 3).min(0).round(6).tolist(),
        "joints_max_m": joints.reshape(-1, 3).max(0).round(6).tolist(),
        "betas": betas.mean(0).round(6).tolist(), "one_shape": bool(np.allclose(betas, betas[:1], atol=1e-6)),
        "has_vertices": motion.vertices is not None,
        "camera_poses": CAMERA_POSES_KEY in getattr(motion, "extra", {}),
        "extra_fields": sorted(getattr(motion, "extra", {})),
    }


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (Path, os.PathLike)):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_json(motion: Any, path: Path, **ctx: Any) -> Path:
    """A JSON summary: :func:`motion_stats`, or ``ctx['summary']`` with them under ``"motion"``."""
    stats = motion_stats(motion, motion_joints(motion, path, ctx))
    if ctx.get("source"):
        stats["source"] = str(ctx["source"])
    summary = ctx.get("summary")
    out = stats if summary is None else {**summary, "motion": stats}
    text = json.dumps(out, indent=2, default=_json_default, allow_nan=False)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text), suffix=".json")


def write_bvh(motion: Any, path: Path, **ctx: Any) -> Path:
    """BVH from the model's MANO rotations (:mod:`unihand.viz.bvh`)."""
    from unihand.viz import bvh

    motion_joints(motion, path, ctx)  # checks the joints the skeleton is compared with
    hand = hand_model(motion, ctx.get("mano_dir"), ctx.get("hand"))
    return bvh.write_bvh(path, motion, hand=hand, where=_source(path, ctx))


def write_html(motion: Any, path: Path, **ctx: Any) -> Path:
    """The interactive viewer with the (light) mesh and camera frustums (:mod:`unihand.viz.html_viewer`)."""
    from unihand.viz import html_viewer

    joints = motion_joints(motion, path, ctx)
    poses = camera_poses(motion, path, ctx)
    src = _source(path, ctx)
    light = viewer_mesh(motion, ctx.get("mesh"), hand=ctx.get("hand"), mano_dir=ctx.get("mano_dir"), source=src)
    side = ctx.get("side") or ("right hand" if motion.is_right else "left hand")
    layers: dict[str, Any] = {"camera_poses": poses, "K": motion.K, "image_size": motion.image_size,
                              "camera_valid": camera_valid(motion, path, ctx, poses)}
    if light is not None:
        layers.update(mesh_vertices=require_finite(src, "vertices", light.vertices, path.name),
                      mesh_faces=light.faces, mesh_label=light.label)
    return html_viewer.write_viewer(path, joints, float(motion.fps), ctx.get("infilled"),
                                    title=ctx.get("title") or f"UniHand - {Path(src).name}", side=side,
                                    first_frame=int(ctx.get("first_frame", 0)), **layers)


def write_png(motion: Any, path: Path, **ctx: Any) -> Path:
    """The 3D trajectory plot (:func:`unihand.viz.trajectory.plot_trajectory`)."""
    from unihand.viz import trajectory

    joints = motion_joints(motion, path, ctx)
    title = ctx.get("title") or Path(_source(path, ctx)).name
    poses = camera_poses(motion, path, ctx)
    return trajectory.plot_trajectory(path, joints, float(motion.fps), ctx.get("infilled"), title=title,
                                      camera_poses=poses,
                                      camera_valid=camera_valid(motion, path, ctx, poses))


def write_obj(motion: Any, path: Path, **ctx: Any) -> Path:
    """One OBJ per frame in the folder ``path`` (:mod:`unihand.export.obj`)."""
    from unihand.export.obj import write_obj_folder

    mesh = _mesh(motion, path, ctx)
    return write_obj_folder(path, mesh.vertices, mesh.faces, f"unihand {mesh.label}, metres, canonical camera frame")


def write_glb(motion: Any, path: Path, **ctx: Any) -> Path:
    """One animated GLB (:mod:`unihand.export.gltf`)."""
    from unihand.export.gltf import write_glb as glb

    mesh = _mesh(motion, path, ctx)
    return glb(path, mesh.vertices, mesh.faces, float(motion.fps), kind=mesh.kind)
