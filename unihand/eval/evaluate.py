"""Evaluation of a checkpoint on a benchmark's sequences (``unihand evaluate``, :mod:`unihand.cli.evaluate`).

Protocol. Every track (one hand in one video, right-handed: left hands are mirrored, which
leaves every metric unchanged) is generated whole from the chosen conditions; metrics are
computed on its frames with ground truth, split into runs of consecutive such frames (so
G-MPJPE, GA-MPJPE and AccEr see contiguous motion). DexYCB and HO3D are scored in the camera
frame (their cameras are static, so the canonical frame is the camera frame). HOT3D is scored
in the canonical frame (camera of the first frame); it differs from the world frame by one
rigid transform per sequence, which changes none of PA-MPJPE, G-MPJPE, GA-MPJPE and AccEr.
2D keypoint conditions are the dataset's annotated (DexYCB) or ground-truth projected
(HOT3D, HO3D train) 2D joints, not a detector's; 3D/MANO conditions are the ground truth.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch

from unihand.data.datasets.common import Track, canonical_window
from unihand.data.datasets.ho3d import write_submission
from unihand.data.io import Conditions
from unihand.data.windows import true_runs
from unihand.errors import UserError
from unihand.eval.metrics import aggregate, evaluate_motion
from unihand.geometry.camera import normalize_keypoints
from unihand.geometry.canonical import rigid_inverse
from unihand.geometry.mirror import mirror_image

CONDITIONS = ("vision", "2d", "3d", "mano")
DATASETS = ("dexycb", "hot3d", "ho3d", "synthetic")
DEFAULT_SPLIT = {"dexycb": "test", "hot3d": "test", "ho3d": "evaluation", "synthetic": "test"}
#: Frames handed to the vision path are downscaled so that their longer side is at most this.
MAX_FRAME_SIDE = 512


@dataclass
class Prediction:
    """Predicted joints (T, 21, 3) and optional vertices (T, 778, 3) in the track's canonical frame."""

    joints: np.ndarray
    vertices: np.ndarray | None = None


Predictor = Callable[[Track, Sequence[str]], Prediction]


def parse_conditions(text: str) -> list[str]:
    """``"vision,2d"`` -> ``["vision", "2d"]`` (validated, order kept)."""
    names = [c.strip().lower() for c in text.split(",") if c.strip()]
    bad = [c for c in names if c not in CONDITIONS]
    if not names or bad:
        raise UserError(f"--conditions {text!r}: expected a comma-separated subset of {','.join(CONDITIONS)}")
    return names


def track_conditions(track: Track, conditions: Sequence[str]) -> Conditions:
    """The structured conditions of a whole track (canonical frame of its first frame)."""
    cano = canonical_window(track, 0, track.num_frames)
    valid = track.valid
    cond = Conditions(K=np.asarray(track.K, np.float32), image_size=np.asarray(track.image_size), fps=track.fps)
    if "2d" in conditions:
        cond.kp2d = normalize_keypoints(track.kp2d.astype(np.float64), track.image_size).astype(np.float32)
        cond.kp2d_mask = track.kp2d_mask.copy()
    if "3d" in conditions:
        cond.kp3d = np.where(valid[:, None, None], cano["joints"], 0.0).astype(np.float32)
        cond.kp3d_mask = np.repeat(valid[:, None], 21, axis=1)
    if "mano" in conditions:
        cond.mano = np.where(valid[:, None], cano["mano"], 0.0).astype(np.float32)
        cond.mano_mask = valid.copy()
    return cond


def track_frames(track: Track) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of a track as the right-handed model sees them, downscaled."""
    if track.frames is None:
        raise UserError(f"{track.name}: this dataset layout has no images here (vision needs the video frames)")
    images = track.frames(np.arange(track.num_frames))
    if not track.is_right:
        images = mirror_image(images, "HWC")
    h, w = images.shape[1:3]
    scale = MAX_FRAME_SIDE / max(h, w)
    if scale >= 1.0:
        return images
    size = (round(w * scale), round(h * scale))
    return np.stack([cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in images])


def model_predictor(pipe: Any, *, steps: int | None = None, cfg_scale: float | None = None, seed: int = 0,
                    refine: bool = True) -> Predictor:
    """Predictor running a :class:`unihand.pipeline.UniHandPipeline` on a track (generator seeded with ``seed``)."""

    def predict(track: Track, conditions: Sequence[str]) -> Prediction:
        structured = [c for c in conditions if c != "vision"]
        cond = track_conditions(track, structured)
        extra = {"frames": track_frames(track)} if "vision" in conditions else {}
        if track.T_world_from_cam is not None:  # a moving camera: the 2D term through each frame's camera
            extra["camera_poses"] = rigid_inverse(track.T_world_from_cam[0]) @ track.T_world_from_cam
        motion = pipe(cond if structured else None, num_frames=track.num_frames, num_inference_steps=steps,
                      guidance_scale=cfg_scale, generator=torch.Generator().manual_seed(seed), refine=refine,
                      **extra).motions[0]
        return Prediction(np.asarray(motion.joints, np.float64),
                          None if motion.vertices is None else np.asarray(motion.vertices, np.float64))

    return predict


def valid_runs(valid: np.ndarray) -> list[slice]:
    """Maximal runs of consecutive True frames, as slices."""
    return [slice(a, b) for a, b in true_runs(valid)]


def evaluate_tracks(
    tracks: Sequence[Track], predict: Predictor, conditions: Sequence[str], *, with_vertices: bool = False,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], list[Prediction]]:
    """Run ``predict`` on every track and score it (module doc).

    Returns the metric groups of a run record (``all`` and, with occlusion ratios, the
    occlusion buckets), per-sequence results and the predictions. ``with_vertices`` adds
    F@5/F@15 where both meshes exist.
    """
    results, per_sequence, predictions = [], [], []
    camera: list[str] = []
    for track in tracks:
        pred = predict(track, conditions)
        predictions.append(pred)
        gt = canonical_window(track, 0, track.num_frames)["joints"].astype(np.float64)
        use_mesh = with_vertices and track.vertices is not None and pred.vertices is not None
        for run in valid_runs(track.valid):
            occ = track.occlusion[run]
            res = evaluate_motion(
                pred.joints[run], gt[run], track.fps,
                pred_vertices=pred.vertices[run] if use_mesh else None,
                gt_vertices=track.vertices[run] if use_mesh else None,
                occlusion=occ if np.all(np.isfinite(occ)) else None,
            )
            results.append(res)
            camera.append(_camera_kind(track))
            per_sequence.append({"name": track.name, "frames": [run.start, run.stop], **{
                k: v for k, v in res.items() if not k.startswith("by_")}})
    if not results:
        raise UserError("no frame with ground truth in the evaluated sequences")
    agg = aggregate(results)
    groups: dict[str, dict[str, Any]] = {"all": {k: v for k, v in agg.items() if not k.startswith("by_")}}
    groups.update(agg.get("by_occlusion", {}))
    for kind in ("static camera", "moving camera"):  # Table 3's world-space setting vs a fixed camera
        subset = [r for r, c in zip(results, camera) if c == kind]
        if subset and len(subset) < len(results):
            groups[kind] = {k: v for k, v in aggregate(subset).items() if not k.startswith("by_")}
    return groups, per_sequence, predictions


def _camera_kind(track: Track) -> str:
    """``moving camera`` when the track's camera poses change over time, else ``static camera``."""
    if track.T_world_from_cam is None:
        return "static camera"
    poses = np.asarray(track.T_world_from_cam)
    return "moving camera" if np.abs(poses - poses[:1]).max() > 1e-6 else "static camera"


def synthetic_tracks(count: int, seed: int, render_size: int | None = None) -> list[Track]:
    """``count`` generated test windows as tracks (canonical = world, with the windows' noisy observed
    2D keypoints; ground truth on every frame). Left hands are already mirrored into right ones, frames
    included, so every track is right-handed. ``render_size`` S adds the rendered S x S letterboxed
    frames (the vision condition)."""
    from unihand.data.windows import SyntheticWindows

    data = SyntheticWindows(count, seed=seed, render=render_size is not None, size=render_size or 224)
    tracks = []
    for i in range(count):
        it = {k: v.numpy() for k, v in data[i].items()}
        size = tuple(int(s) for s in it["image_size"])
        n = it["mano"].shape[0]
        frames = it.get("frames")
        tracks.append(Track(
            name=f"synthetic/{seed}/{i}", mano=it["mano"], joints=it["joints"], rest_root=np.zeros((n, 3)),
            valid=np.ones(n, bool), kp2d=it["kp2d"] * np.asarray(size, np.float32),
            kp2d_mask=it["kp2d_mask"].astype(bool), K=it["K"], image_size=size,
            occlusion=np.clip(it["occlusion"].astype(np.float64), 0.0, 1.0),
            is_right=True, T_world_from_cam=it["T_cano_from_cam"].astype(np.float64),
            frames=None if frames is None else (lambda idx, f=frames.transpose(0, 2, 3, 1): f[idx]),
        ))
    return tracks


def write_ho3d_submission(out: Path, label: str, predictions: Sequence[Prediction], expected: int) -> str:
    """pred.json / pred.zip for CodaLab (tracks follow evaluation.txt, whose ``expected`` lines all need a frame)."""
    got = sum(len(p.joints) for p in predictions)
    if got != expected:
        raise UserError(f"the HO3D submission must cover all {expected} lines of evaluation.txt, but {got} frames "
                        "were generated (skipped sequences or --limit)")
    if any(p.vertices is None for p in predictions):
        raise UserError("the HO3D submission needs mesh vertices: run with --mano-dir (the official MANO files)")
    folder = out / "ho3d_submission" / "".join(ch if ch.isalnum() else "_" for ch in label).strip("_").lower()
    pred = write_submission(folder / "pred.json", np.concatenate([p.joints for p in predictions]),
                            np.concatenate([p.vertices for p in predictions]))
    with zipfile.ZipFile(folder / "pred.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(pred, "pred.json")
    return f"HO3D CodaLab submission: {folder / 'pred.zip'} (upload it to obtain the evaluation-split scores)."
