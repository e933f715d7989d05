"""The camera stage of ``unihand estimate`` (``--camera``, ``--camera-scale``).

``--camera`` choices:

- ``auto`` (default): the camera is estimated from the background (:mod:`unihand.camera.engine`);
  a background that does not move gives a static camera. The log says which;
- ``static``: the identity for every frame (the camera is not looked at);
- ``estimate``: estimated even when it barely moves;
- a poses file (:mod:`unihand.camera.poses`): ``.npz`` with ``T_cano_from_cam``, COLMAP
  ``images.txt`` or an Aria ``closed_loop_trajectory.csv``.

``--depth-model DIR``: a metric depth checkpoint that gives an estimated path its scale from the
scene (:mod:`unihand.camera.depth`) instead of the hands; where it cannot (no map, too few points)
the scale is fitted to the hands, and the log says so.

``--camera-scale``: metres per unit of the poses' translations, or ``fit`` (fitted to the hands in
the refinement: bone lengths and hand size are metric). Default: ``fit`` for estimated poses
(monocular video gives them up to scale; one unit is the median depth of the background seen in
the first frame) and COLMAP files, 1 for ``.npz`` and Aria files (metric). Both hands share the
camera and its scale: the hand detected on the most frames fits the scale, the others use it.

The engine's front end runs inside the detection pass (:class:`CameraTap` wraps the detector), so
the video is decoded once and no frame is kept, but for the dozen a depth model may read.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unihand.camera.depth import DepthFrames, DepthModel, DepthModelArg, check_depth_checkpoint
from unihand.camera.engine import BackgroundTracker, CameraEstimate, frame_ranges, solve_camera
from unihand.errors import UserError

CAMERA_CHOICES = ("auto", "static", "estimate")


def parse_scale(scale: float | str | None) -> float | str | None:
    """``--camera-scale``: None (the source's default), ``"fit"`` or a positive number."""
    if scale is None or (isinstance(scale, str) and scale.strip().lower() == "fit"):
        return None if scale is None else "fit"
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise UserError(f"--camera-scale {scale!r}: expected 'fit' or a positive number (metres per unit)") from None
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"--camera-scale {scale!r}: expected 'fit' or a positive number (metres per unit)")
    return value


@dataclass
class CameraPlan:
    """What the camera stage will do, decided (and checked) before any frame is read."""

    mode: str  # auto | static | estimate | file | given
    scale: float | str | None  # the user's --camera-scale (None: the source's default)
    path: Path | None = None
    fmt: str | None = None
    given: np.ndarray | None = None  # poses passed in (API)

    @property
    def tracks(self) -> bool:
        """Whether the engine's front end must see the frames."""
        return self.mode in ("auto", "estimate")


def plan_camera(camera: str | os.PathLike | None = None, camera_scale: float | str | None = None,
                camera_poses: np.ndarray | None = None, depth_model: DepthModelArg = None) -> CameraPlan:
    """Check ``--camera`` / ``--camera-scale`` / ``--depth-model`` (one-line UserError); a poses file is read
    once here (format, numbers, rigidity) so a bad one fails before the video is."""
    scale = parse_scale(camera_scale)
    if depth_model is not None:
        if camera_poses is not None or str(camera if camera is not None else "auto") not in ("auto", "estimate"):
            raise UserError("--depth-model scales an estimated camera path: use it with --camera auto or estimate")
        if scale is not None:
            raise UserError("give either --camera-scale or --depth-model, not both")
        if not callable(depth_model):
            check_depth_checkpoint(depth_model)
    if camera_poses is not None:
        if camera not in (None, "auto"):
            raise UserError("give either camera poses (camera_poses=...) or --camera, not both")
        return CameraPlan("given", scale, given=np.asarray(camera_poses))
    camera = "auto" if camera is None else str(camera)
    if camera in CAMERA_CHOICES:
        if camera == "static" and scale is not None:
            raise UserError("--camera-scale has no effect with --camera static")
        return CameraPlan(camera, scale)
    from unihand.camera.poses import poses_format, read_poses

    path = Path(camera)
    if not path.suffix:
        raise UserError(f"--camera {camera!r}: choose {', '.join(CAMERA_CHOICES)} or a poses file "
                        f"(.npz, COLMAP images.txt, Aria closed_loop_trajectory.csv)")
    fmt = poses_format(path)
    read_poses(path)  # checked now, counted against the frames later
    return CameraPlan("file", scale, path=path, fmt=fmt)


class CameraTap:
    """A detector that also feeds each frame and its hands to a :class:`BackgroundTracker`; with
    ``depth_every``, every that many frames is kept, with its tracks, for a metric depth model."""

    def __init__(self, detector: Any, tracker: BackgroundTracker, depth_every: int | None = None) -> None:
        self.detector = detector
        self.tracker = tracker
        if depth_every:
            tracker.depth = DepthFrames(int(depth_every))

    def __call__(self, frame: np.ndarray) -> list:
        dets = self.detector(frame)
        tr = self.tracker
        tr.add(frame, [d.keypoints for d in dets])
        f = tr.num_frames - 1
        if tr.depth is not None and tr.depth.wants(f) and len(tr.ids[-1]):
            tr.depth.keep(f, frame, tr.ids[-1], tr.to_full(tr.pts[-1]))
        return dets

    def __getattr__(self, name: str) -> Any:  # close(), ... of the wrapped detector
        return getattr(self.detector, name)


@dataclass
class CameraResult:
    """The camera every hand of the clip is estimated with."""

    poses: np.ndarray | None  # (N, 4, 4) T_cano_from_cam for the model; None: static
    scale: float | str  # camera_scale for the model ("fit" or metres per unit)
    source: str  # what the summary and the log call it
    moving: bool
    info: dict[str, Any] = field(default_factory=dict)
    estimate: CameraEstimate | None = None
    seconds: float = 0.0
    scale_source: str = "given"  # where a numeric scale comes from
    #: (N,) bool per frame: the pose is registered (estimated from the frame, or given), not interpolated,
    #: carried across a break or held (``camera_valid`` in the motion file); None: every frame
    valid: np.ndarray | None = None
    #: (3, 3) intrinsics of the video's pixels with the focal length estimated from the video, and where it
    #: comes from; None: the given (or default) intrinsics stand
    K: np.ndarray | None = None
    k_source: str | None = None

    def camera_valid(self, n: int) -> np.ndarray:
        """(N,) bool ``camera_valid`` of the clip's ``n`` frames."""
        return np.ones(n, bool) if self.valid is None else np.asarray(self.valid, bool).copy()

    @property
    def depth_seconds(self) -> float:
        """Time of the depth model's reads (not in :attr:`seconds`)."""
        depth = self.estimate.stats.get("depth") if self.estimate is not None else None
        return float(depth["seconds"]) if depth else 0.0

    def summary(self) -> dict[str, Any]:
        out = {"source": self.source, "moving": self.moving, **self.info}
        return out


def resolve_camera(plan: CameraPlan, tracker: BackgroundTracker | None, num_frames: int, fps: float,
                   say: Any = None, depth_model: DepthModel | None = None,
                   focal_unknown: bool = False) -> CameraResult:
    """The clip's camera from the plan (and the tracked frames; ``depth_model`` reads the frames the tracker
    kept for the scale); logs what it found and any warning. ``focal_unknown``: neither ``--fov`` nor
    ``--intrinsics`` was given: a turning camera's focal length is estimated from the video
    (:mod:`unihand.camera.focal`) and the poses solved with it (:attr:`CameraResult.K`)."""
    say = say or (lambda msg: None)
    t0 = time.perf_counter()
    focal: dict[str, Any] = {}
    if plan.mode == "static":
        res = CameraResult(None, 1.0, "static (--camera static)", False)
    elif plan.mode == "given":
        from unihand.geometry.canonical import check_camera_poses

        poses = check_camera_poses(plan.given, num_frames)
        res = CameraResult(poses, 1.0 if plan.scale is None else plan.scale, "given camera poses", True)
    elif plan.mode == "file":
        from unihand.camera.poses import DEFAULT_SCALE, read_poses

        poses, fmt = read_poses(plan.path, num_frames, fps)
        name = {"npz": "T_cano_from_cam", "colmap": "COLMAP images.txt", "aria": "Aria closed-loop trajectory"}[fmt]
        scale = DEFAULT_SCALE[fmt] if plan.scale is None else plan.scale
        res = CameraResult(poses, scale, f"poses file {plan.path.name} ({name})", True,
                           {"file": str(plan.path), "format": fmt})
    else:
        assert tracker is not None
        K_work = None
        if focal_unknown and not tracker.decided_static and tracker.num_frames:
            from unihand.camera.focal import estimate_focal

            f_work, focal = estimate_focal(tracker)
            if f_work is not None:
                K_work = tracker.K.copy()
                K_work[0, 0] = K_work[1, 1] = f_work
                # with a map, the bundle adjustment refines it (the parallax the rotation fit cannot explain)
                first = solve_camera(tracker, "estimate", K=K_work, refine_focal=True)
                f_ba = first.stats.get("focal_refined_work_px")
                if f_ba is not None and 0.8 < f_ba / f_work < 1.25:
                    K_work[0, 0] = K_work[1, 1] = f_ba
                    focal["fov_rotation_deg"] = focal["fov_deg"]
                    focal["fov_deg"] = round(math.degrees(2 * math.atan(tracker.work_shape[1] / 2 / f_ba)), 2)
                    focal["refined"] = "bundle adjustment of the map"
        est = solve_camera(tracker, "estimate" if plan.mode == "estimate" else "auto", depth_model, K=K_work)
        if est.why is not None and plan.mode == "estimate":
            raise UserError(f"--camera estimate: {est.why}; use --camera static, or give the poses "
                            f"(--camera POSES.npz)")
        for w in est.warnings:  # one line: the frames not registered and what was done for them
            say(f"warning: {w}")
        valid = est.valid
        info: dict[str, Any] = {"method": est.method, "mode": plan.mode, "engine": _engine_name(est),
                                "rotation_max_deg": round(float(est.rotation_deg().max()), 3),
                                "registered_frames": int(valid.sum()), "stats": est.stats}
        if not valid.all():
            info["unregistered_frames"] = {code: frame_ranges(np.flatnonzero(est.status == code))
                                           for code in ("rotation", "interpolated", "unlinked", "held")
                                           if (est.status == code).any()}
        if est.low_texture_frames.size:
            info["low_texture_frames"] = frame_ranges(est.low_texture_frames)
        if not est.moving:
            why = ("too little to track: " + est.why if est.why is not None
                   else f"the background does not move: {est.stats.get('background_motion_px', 0):.2f} px")
            res = CameraResult(None, 1.0, f"static ({why})", False, info, est, valid=valid)
        else:
            scale = "fit" if plan.scale is None else plan.scale
            info["unit"] = est.unit
            depth = est.stats.get("depth")
            scale_source = "given"
            if depth is not None and plan.scale is None:
                if est.metric_scale is not None:
                    scale, scale_source = est.metric_scale, f"metric depth model {depth['model']}"
                    say(f"camera: scale from the metric depth model {depth['model']}: {scale:.4g} m per unit "
                        f"({depth['frames_used']} frames, spread {100 * depth['spread']:.0f} %)")
                elif est.method == "estimated":
                    say(f"camera: the metric depth model {depth['model']} gave no scale (too few mapped points "
                        f"in the frames kept for it): fitting it to the hands")
            res = CameraResult(est.T_cano_from_cam, scale, f"{est.method} from the video ({info['engine']})", True,
                               info, est, scale_source=scale_source, valid=valid)
    if focal_unknown and plan.tracks:
        _focal_result(res, tracker, focal, say)
    # the depth model's reads are timed apart
    res.seconds = time.perf_counter() - t0 + (tracker.seconds if tracker is not None else 0.0) - res.depth_seconds
    if res.moving:
        rot = res.poses[:, :3, :3]
        ang = np.degrees(np.arccos(np.clip((np.trace(rot, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)))
        scale_text = ("scale fitted to the hands" if res.scale == "fit" else f"{res.scale:.4g} m per unit")
        reg = "" if res.valid is None else f", {int(res.valid.sum())}/{len(res.valid)} frames registered"
        say(f"camera: moving, {res.source}; rotation up to {ang.max():.1f} deg from the first frame, {scale_text}{reg}")
    else:
        say(f"camera: {res.source}")
    return res


def _focal_result(res: CameraResult, tracker: BackgroundTracker, focal: dict[str, Any], say: Any) -> None:
    """The estimated focal length into ``res`` (K, its source, the summary) and the log line saying where the
    focal length comes from."""
    from unihand.geometry.camera import DEFAULT_FOV_DEG, rescale_K

    if res.moving and "fov_deg" in focal and "why" not in focal:
        K = rescale_K(tracker.K, 1.0 / tracker.scale)  # the video's pixels
        f = float(focal["fov_deg"])
        fx = (tracker.image_size[0] / 2) / math.tan(math.radians(f) / 2)
        K[0, 0] = K[1, 1] = fx
        res.K = K
        how = "the camera's rotation" + (", refined by the bundle adjustment" if "refined" in focal else "")
        res.k_source = f"estimated from {how}: {f:.1f} degrees horizontal ({focal['pairs']} frame pairs)"
        res.info["focal"] = {"source": f"estimated from {how}", "fx_px": round(fx, 2), **focal}
        say(f"camera: focal length estimated from the video: {fx:.0f} px, {f:.1f} degrees horizontal "
            f"(--fov or --intrinsics set it)")
        return
    why = focal.get("why") or ("a still camera does not show it" if not res.moving else "not estimated")
    res.info["focal"] = {"source": f"default ({DEFAULT_FOV_DEG:g} degrees across the longer side)", "why": why, **focal}
    say(f"camera: focal length not estimated ({why}): the default {DEFAULT_FOV_DEG:g} degrees across the "
        f"longer side is used; --fov or --intrinsics set it")


def _engine_name(est: CameraEstimate) -> str:
    ba = est.stats.get("bundle_adjustment")
    if est.method == "estimated":
        return "OpenCV tracking and PnP, " + ("pycolmap bundle adjustment" if ba == "pycolmap" else "no bundle adjustment")
    return "OpenCV tracking"


def metric_scale(unit_poses: np.ndarray, metric_poses: np.ndarray) -> float | None:
    """The scale the refinement gave unit-scale poses: |metric translations| / |unit translations|."""
    a = np.linalg.norm(np.asarray(unit_poses, np.float64)[:, :3, 3], axis=1).sum()
    b = np.linalg.norm(np.asarray(metric_poses, np.float64)[:, :3, 3], axis=1).sum()
    return float(b / a) if a > 1e-9 else None
