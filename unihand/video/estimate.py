"""Video -> 3D hand motion, a chain of stages: decode + detect (and the camera's front end) -> track ->
camera -> per hand: conditions -> pipeline -> reprojection -> outputs (:mod:`unihand.video.outputs`).

Memory stays bounded for any video length: frames are decoded and detected one at a time and
dropped (only the 21 keypoints per hand and frame are kept); the model generates long
sequences in overlapping windows; the overlay re-decodes the video in a second streaming pass.
A checkpoint trained with the vision condition also gets the frames, kept resized to its
backbone's input size (longer side 224 px: ~100 KB a frame, ~60 MB for the 621-frame sample).

Conditions are what the detector saw, nothing guessed: frames without a detection and joints
whose confidence is below ``conf_threshold`` are masked, and the model generates (infills)
them. Left hands are mirrored by the pipeline (docs/design.md §2) and come back as left hands. Each
hand's motion spans the whole clip read (frames before its first and after its last detection
are generated too, and counted as infilled). With ``hands="both"`` a side detected on fewer than
2 % of the frames is skipped as a likely false detection (asking for that side estimates it).

Outputs per hand in OUTDIR (``{hand}`` = ``right`` / ``left``):

- ``{hand}_motion.npz``: the Motion (docs/design.md §7) in the canonical frame (camera of the first
  frame read), with ``joints_2d`` (the 3D joints reprojected) and, as extra arrays,
  ``frame_index`` (N,), ``detected`` (N,), ``kp2d_px`` (N, 21, 2), ``kp2d_mask`` (N, 21) and
  ``kp2d_conf`` (N, 21): the detector's keypoints the motion was estimated from;
- ``{hand}_summary.json``: frames, detections, infilled frames, reprojection error, timings;
- ``{hand}_overlay.mp4``, ``{hand}_trajectory.png``, ``{hand}_viewer.html``, ``{hand}.bvh``.

The outputs are one set: written into a staging folder inside OUTDIR, then swapped in for the
previous run's as a unit (:mod:`unihand.export.output_set`): a failure leaves the earlier set as
it was, a kill mid-swap is completed or undone by the next run, and files of an earlier run that
this one does not make (the overlay after ``--no-render``, the other hand) are removed. The BVH,
viewer and plot come from the exporter registry (:mod:`unihand.export`); the viewer shows the
MANO mesh (with MANO files) or the built-in hand's capsule mesh.

Intrinsics (:mod:`unihand.video.intrinsics`): ``--intrinsics fx,fy,cx,cy`` or ``--fov DEG``
(horizontal); by default a pinhole with 60 degrees across the image's longer side.

Camera (``--camera``, :mod:`unihand.camera.stage`): estimated from the background when it moves
(static otherwise), static, or read from a poses file; known poses can be passed too
(``camera_poses``, T_cano_from_cam (N, 4, 4), as the camera benchmark does). Both hands share one camera and
its metric scale. The motion file holds the world (first-camera) frame motion and
``T_cano_from_cam`` (N, 4, 4) in metres (identities for a static camera); reprojection (overlay,
``joints_2d``, the summary's error) goes through each frame's camera; the summary's ``camera``
names the source. ``camera_valid`` (N,) bool in the motion file marks the frames whose camera pose
was registered from the video (False: interpolated, carried across a break in the tracks or held;
the log names them in one warning line).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from unihand.camera.depth import DepthModel, DepthModelArg
from unihand.camera.stage import CameraResult, CameraTap, metric_scale, plan_camera, resolve_camera
from unihand.data.io import Conditions, Motion
from unihand.data.windows import true_runs
from unihand.errors import UserError
from unihand.export.output_set import recover as recover_outputs
from unihand.pipeline.checks import check_sampling
from unihand.refine.refiner import usable_hand3d
from unihand.pipeline.pipeline import UniHandPipeline
from unihand.progress import Progress
from unihand.video.conditions import CONF_THRESHOLD, reproject, reprojection_stats, to_camera, track_conditions
from unihand.video.decode import VideoInfo, VideoSource, open_video
from unihand.video.detect import Detection
from unihand.video.intrinsics import resolve_intrinsics
from unihand.video.outputs import HAND_CHOICES, check_output_dir, hand_timings, owned_names, write_outputs
from unihand.video.track import HandTrack, track_hands

#: With ``--hands both``, a side detected on fewer frames than this fraction of the clip is skipped.
MIN_DETECTED_FRACTION = 0.02


def detector_hands(hands: str) -> int:
    """Hands MediaPipe looks for: one for ``--hands left|right`` (while it tracks one hand it skips the palm
    detector, half the time per frame), two for ``both``."""
    return 2 if hands == "both" else 1


class Detector(Protocol):
    """Anything that maps an RGB frame to the hands in it (``HandDetector`` or a stand-in)."""

    def __call__(self, frame: np.ndarray) -> list[Detection]: ...


@dataclass
class EstimateSettings:
    """What ``unihand estimate`` is asked to do (its flags); checked before any frame is read."""

    hands: str = "both"  # right | left | both
    intrinsics: tuple[float, float, float, float] | str | None = None  # fx, fy, cx, cy (pixels)
    fov: float | None = None  # horizontal field of view (degrees)
    checkpoint: str | os.PathLike | None = None  # None: the shipped model
    device: str = "cpu"
    start: str | float | None = None  # first frame or time read
    end: str | float | None = None
    fps: float | None = None  # resample the video to this rate
    steps: int | None = None  # denoising steps (None: the checkpoint's)
    cfg_scale: float | None = None
    seed: int = 0
    conf_threshold: float = CONF_THRESHOLD  # joints below it are masked
    detect_scale: float = 1.0  # MediaPipe's input scale
    render: bool = True  # False: the motions and summaries only
    refine: bool = True  # False: the pure diffusion sample (ablations)
    scheduler: str = "ddim"
    progress: bool | None = None  # None: bars when stderr is a terminal, else one summary line per stage
    camera: str | os.PathLike | None = None  # auto | static | estimate | a poses file
    camera_scale: float | str | None = None  # metres per unit of the poses, or "fit"
    depth_model: DepthModelArg = None  # a metric depth checkpoint directory (or DepthModel): the camera scale from the scene
    mano_dir: str | None = None
    backbone_path: str | None = None


class Timings(dict):
    """Seconds per stage; ``with timings("detect"): ...`` accumulates."""

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self[stage] = self.get(stage, 0.0) + time.perf_counter() - t0


def detect_video(
    source: VideoSource, detector: Detector, timings: Timings | None = None, progress: bool | None = None,
    keep_frames: int | None = None,
) -> tuple[list[list[Detection]], np.ndarray | None]:
    """Hands in every selected frame, streaming (decoding and detection timed separately).

    ``keep_frames``: also keep every frame resized so its longer side is this many pixels (the
    vision backbone's input size; ~150 KB a frame at 224) for a vision checkpoint, else None.
    """
    import cv2

    timings = timings if timings is not None else Timings()
    out: list[list[Detection]] = []
    kept: list[np.ndarray] = []
    frames = source.frames()
    with Progress(source.info.num_frames, "detect", "frame", progress) as bar:
        while True:
            with timings("decode"):
                item = next(frames, None)
            if item is None:
                break
            with timings("detect"):
                out.append(detector(item[1]))
            if keep_frames:
                with timings("keep_frames"):
                    h, w = item[1].shape[:2]
                    s = keep_frames / max(h, w)
                    size = (max(1, round(w * s)), max(1, round(h * s)))
                    kept.append(cv2.resize(item[1], size, interpolation=cv2.INTER_AREA) if s < 1 else item[1])
            bar.update()
    return out, (np.stack(kept) if kept else None)


def load_model(
    checkpoint: str | os.PathLike | None = None, device: str = "cpu", mano_dir: str | None = None,
    backbone_path: str | None = None, scheduler: str = "ddim",
) -> UniHandPipeline:
    """The checkpoint's :class:`~unihand.pipeline.UniHandPipeline` (one-line errors for a missing device)."""
    return UniHandPipeline.from_pretrained(checkpoint, device=device, mano_dir=mano_dir, backbone_path=backbone_path,
                                           scheduler=scheduler)


def _mano_dir(pipe: Any) -> str | None:
    """The MANO folder the pipeline's model was loaded with (None: the built-in hand, or a stand-in)."""
    return getattr(getattr(pipe, "model", None), "mano_dir", None)


def vision_input_size(pipe: Any) -> int | None:
    """The backbone input size of a vision checkpoint (frames are then given to the pipeline), else None."""
    vis = getattr(getattr(getattr(pipe, "model", None), "cfg", None), "vision", None)
    return int(vis.input_size) if vis is not None and getattr(vis, "enabled", False) else None


@dataclass
class HandResult:
    """One hand's estimate and where its files went."""

    side: str
    motion: Motion
    conditions: Conditions
    track: HandTrack
    summary: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def infilled(self) -> np.ndarray:
        return ~self.track.detected


@dataclass
class EstimateResult:
    info: VideoInfo
    K: np.ndarray
    hands: dict[str, HandResult]
    timings: dict[str, float]
    outdir: Path | None


@dataclass
class _Run:
    """What the stages share: the settings, the video, its camera and the timings."""

    s: EstimateSettings
    source: VideoSource
    K: np.ndarray
    k_source: str
    model: Any
    timings: Timings
    say: Callable[[str], None]
    detections: list[list[Detection]] = field(default_factory=list)
    frames: np.ndarray | None = None  # kept frames of a vision checkpoint
    camera: CameraResult | None = None
    depth_model: DepthModel | None = None  # the loaded --depth-model

    @property
    def info(self) -> VideoInfo:
        return self.source.info


def estimate_video(
    video: str | os.PathLike, outdir: str | os.PathLike | None = None, settings: EstimateSettings | None = None, *,
    model: Any = None, detector: Detector | None = None, camera_poses: np.ndarray | None = None,
    log: Callable[[str], None] | None = None, **options: Any,
) -> EstimateResult:
    """Run the whole video path (see the module doc); ``outdir=None`` writes nothing.

    ``settings`` (or the same names as keyword ``options``): :class:`EstimateSettings`.
    ``model`` / ``detector`` replace the checkpoint's pipeline / MediaPipe (tests, demo): a
    :class:`~unihand.pipeline.UniHandPipeline` (or anything called like one);
    ``camera_poses`` (N, 4, 4) T_cano_from_cam: known poses (metres times ``camera_scale``, default 1),
    instead of ``camera``.
    """
    unknown = set(options) - {f.name for f in fields(EstimateSettings)}
    if unknown:
        raise TypeError(f"estimate_video() got unknown option(s): {', '.join(sorted(unknown))}")
    s = EstimateSettings(**options) if settings is None else settings
    if s.hands not in HAND_CHOICES:
        raise UserError(f"--hands {s.hands!r}: choose left, right or both")
    cam_plan = plan_camera(s.camera, s.camera_scale, camera_poses, s.depth_model)
    timings = Timings()
    say = log or (lambda msg: None)
    with timings("open"):
        source = open_video(video, start=s.start, end=s.end, fps=s.fps)
        K, k_source = resolve_intrinsics(source.info.width, source.info.height, s.intrinsics, s.fov)
        if outdir is not None:
            outdir = check_output_dir(outdir, create=False)
            recover_outputs(outdir, owned_names())  # finish or undo a swap a killed run left
    if model is None:
        with timings("load_model"):
            model = load_model(s.checkpoint, s.device, s.mano_dir, s.backbone_path, s.scheduler)
    elif isinstance(model, UniHandPipeline):  # the settings' scheduler, the same networks and refiner
        model = UniHandPipeline(model.model, s.scheduler, model.hand_model, model.refiner)
    if isinstance(model, UniHandPipeline):  # before any frame is read (tests pass stand-ins)
        check_sampling(model.model, s.steps, s.cfg_scale, s.seed, None, None, 0)
    run = _Run(s, source, K, k_source, model, timings, say)
    tracker = _detect_stage(run, detector, cam_plan)
    tracks = _track_stage(run)
    run.camera = resolve_camera(cam_plan, tracker, len(run.detections), run.info.fps, say, run.depth_model,
                                focal_unknown=s.intrinsics is None and s.fov is None)
    if run.camera.K is not None:  # the focal length estimated from the video
        run.K, run.k_source = run.camera.K, run.camera.k_source
    timings["camera"] = run.camera.seconds
    if run.depth_model is not None:
        timings["depth_model"] = run.camera.depth_seconds
    results = _hand_stage(run, tracks)
    if outdir is not None:
        mesh = _mesh_layers(run, results) if s.render else {}
        check_output_dir(outdir)
        write_outputs(outdir, source, results, timings, render=s.render, say=say,
                      progress_bar=lambda total, desc: Progress(total, desc, "frame", s.progress), mesh=mesh,
                      mano_dir=_mano_dir(model) or s.mano_dir)
    for r in results.values():
        r.summary["timings_s"] = hand_timings(timings, r.side)
    return EstimateResult(run.info, np.asarray(K), results, dict(timings), outdir)


def _detect_stage(run: _Run, detector: Detector | None, cam_plan: Any) -> Any:
    """Decode and detect every frame (the camera engine's front end in the same pass); returns the tracker."""
    s, info = run.s, run.info
    if detector is None:
        from unihand.video.detect import HandDetector

        with run.timings("load_detector"):
            detector = HandDetector(max_hands=detector_hands(s.hands), scale=s.detect_scale)
    run.say(f"reading {info.path} ({info.width}x{info.height}, {info.fps:g} fps, frames {info.start}..{info.end})")
    vision = vision_input_size(run.model)
    if vision:
        run.say(f"vision checkpoint: the frames (resized to {vision} px) condition the model too")
    tracker = None
    if cam_plan.tracks:  # the camera engine sees every frame during the detection pass
        from unihand.camera.depth import depth_schedule, load_depth_model
        from unihand.camera.engine import BackgroundTracker

        tracker = BackgroundTracker(run.K, info.image_size, probe=cam_plan.mode == "auto")
        if s.depth_model is not None:
            with run.timings("load_depth_model"):
                run.depth_model = load_depth_model(s.depth_model, s.device)
        tap = CameraTap(detector, tracker, None if run.depth_model is None else depth_schedule(info.num_frames))
    run.detections, run.frames = detect_video(run.source, detector if tracker is None else tap,
                                              run.timings, s.progress, keep_frames=vision)
    if tracker is not None:
        run.timings["detect"] = run.timings.get("detect", 0.0) - tracker.seconds
    return tracker


def _track_stage(run: _Run) -> dict[str, HandTrack]:
    """The hands' tracks; a side seen on a handful of frames of a long clip is dropped with ``--hands both``."""
    hands, n = run.s.hands, len(run.detections)
    with run.timings("track"):
        tracks = track_hands(run.detections, sides=HAND_CHOICES[hands])
    if not tracks:
        found = track_hands(run.detections)
        where = f"in the {n} frames of {run.info.path}"
        if found:
            other = " and ".join(found)
            raise UserError(f"no {hands} hand detected {where} (found a {other} hand: use --hands {next(iter(found))})")
        raise UserError(f"no hand detected {where}")
    if hands == "both" and len(tracks) > 1:
        # a likely false detection: skipped rather than turned into seconds of invented motion
        least = max(3, math.ceil(MIN_DETECTED_FRACTION * n))
        weak = [side for side, t in tracks.items() if t.num_detected < least]
        for side in weak if len(weak) < len(tracks) else []:
            run.say(f"{side} hand seen in only {tracks[side].num_detected} of {n} frames: skipped "
                    f"(--hands {side} estimates it anyway)")
            del tracks[side]
    return tracks


def _hand_stage(run: _Run, tracks: dict[str, HandTrack]) -> dict[str, HandResult]:
    """Each hand: conditions -> pipeline -> reprojection and summary. Both hands share the camera and its
    scale (the hand seen most fits it, the other reuses it) and one scene: where a hand is infilled it is
    kept off the other hand and within reach of it (the second hand against the first; then the first,
    if it has infilled frames, again against the second)."""
    cam = run.camera
    shared = {"scale": cam.scale, "source": "fitted to the hands" if cam.scale == "fit" else cam.scale_source}
    order = sorted(tracks, key=lambda side: -tracks[side].num_detected)
    results: dict[str, HandResult] = {}
    for side in order:
        other = next(iter(results.values())).motion.joints if results else None
        results[side] = _estimate_hand(run, side, tracks[side], shared, other)
    if len(order) == 2 and not tracks[order[0]].detected.all():
        results[order[0]] = _estimate_hand(run, order[0], tracks[order[0]], shared, results[order[1]].motion.joints)
    return {side: results[side] for side in tracks}  # the tracker's order


def _estimate_hand(run: _Run, side: str, track: HandTrack, shared: dict[str, Any],
                   other: np.ndarray | None) -> HandResult:
    """One hand's motion, kept off ``other`` (the other hand's joints) where it is infilled; a camera scale
    still to be fitted is fitted to this hand and left in ``shared`` for the other."""
    s, info = run.s, run.info
    n = len(run.detections)
    poses, scale = run.camera.poses, shared["scale"]  # poses None: static
    cond = track_conditions(track, run.K, info.image_size, info.fps, s.conf_threshold)
    run.say(f"{side} hand: detected in {track.num_detected}/{n} frames; generating"
            + ("" if other is None else " (kept off the other hand where infilled)"))
    with run.timings(f"generate_{side}"):
        motion = _generate(run, cond, poses, None if poses is None or scale == 1.0 else scale, other)
    motion.is_right, motion.fps = track.is_right, float(info.fps)
    motion.K, motion.image_size = np.asarray(run.K, np.float32), np.array(info.image_size, np.int64)
    if poses is None:
        metric = np.broadcast_to(np.eye(4, dtype=np.float32), (n, 4, 4)).copy()
    elif "T_cano_from_cam" in motion.extra:  # the model's metric poses (the fitted scale applied)
        metric = np.asarray(motion.extra["T_cano_from_cam"], np.float32)
    else:
        metric = poses.astype(np.float32).copy()
        metric[:, :3, 3] *= 1.0 if isinstance(scale, str) else scale
    if scale == "fit" and poses is not None:
        fitted = metric_scale(poses, metric)
        shared["scale"], shared["source"] = ((1.0, "none (no translation)") if fitted is None
                                             else (fitted, f"fitted to the {side} hand"))
        hint = ("" if fitted is None else "; a hand that travels with the head biases it: --depth-model or "
                "--camera-scale give it from elsewhere")
        run.say(f"camera scale: {shared['scale']:.4g} m per unit ({shared['source']}{hint})")
    motion.extra["T_cano_from_cam"] = metric
    motion.extra["camera_valid"] = run.camera.camera_valid(n)  # False: a pose not registered from the video
    motion.joints_2d = reproject(motion.joints, run.K, None if poses is None else metric)
    mask = cond.kp2d_mask
    motion.extra.update({
        "frame_index": np.arange(info.start, info.start + n, dtype=np.int64), "detected": track.detected.copy(),
        "kp2d_px": np.where(mask[..., None], np.nan_to_num(track.keypoints), 0.0).astype(np.float32),
        "kp2d_mask": mask.copy(), "kp2d_conf": cond.kp2d_conf.copy(),
    })
    moving = poses is not None
    summary = _summary(run, side, track, mask, motion, shared["scale"] if moving else None,
                       shared["source"] if moving else None)
    summary["detector_3d"] = _detector_3d(track, info.start)
    return HandResult(side, motion, cond, track, summary)


def _generate(run: _Run, cond: Conditions, poses: np.ndarray | None, camera_scale: float | str | None,
              other: np.ndarray | None = None) -> Motion:
    import torch

    s = run.s
    extra: dict[str, Any] = {} if run.frames is None else {"frames": run.frames}  # mirrored for a left hand
    if camera_scale is not None:  # translations up to scale ("fit") or in units of camera_scale metres
        extra["camera_scale"] = camera_scale
    if other is not None:
        extra["other_hand"] = other
    out = run.model(cond, num_inference_steps=s.steps, guidance_scale=s.cfg_scale,
                    generator=torch.Generator().manual_seed(s.seed), refine=s.refine, camera_poses=poses,
                    progress=s.progress, **extra)
    return out.motions[0]


def _summary(run: _Run, side: str, track: HandTrack, mask: np.ndarray, motion: Motion, scale: float | None,
             scale_source: str | None) -> dict[str, Any]:
    s, info, n = run.s, run.info, len(run.detections)
    return {
        "video": str(info.path), "hand": side, "frames": n, "frame_range": [info.start, info.start + n],
        "fps": info.fps, "image_size": list(info.image_size), "K": np.asarray(run.K).tolist(), "intrinsics": run.k_source,
        "detections": track.num_detected, "detection_rate": track.num_detected / n,
        "infilled_frames": int(n - track.num_detected),
        "infilled_ranges": [[a + info.start, b - 1 + info.start] for a, b in true_runs(~track.detected)],
        "masked_joints": int((track.detected[:, None] & ~mask).sum()), "tracklets": len(track.tracklets),
        "reprojection_error_px": reprojection_stats(motion.joints_2d, track.keypoints, mask),
        "reprojection_note": "static camera" if run.camera.poses is None else "through each frame's camera",
        "camera": {**run.camera.summary(), "scale_m_per_unit": scale, "scale_source": scale_source},
        "model": {"checkpoint": str(s.checkpoint) if s.checkpoint else "shipped", "device": str(s.device),
                  "steps": s.steps, "cfg_scale": s.cfg_scale, "seed": s.seed, "refine": s.refine,
                  "scheduler": s.scheduler,
                  "conditions": ["kp2d"] + (["vision"] if vision_input_size(run.model) else [])},
        "canonical_frame": f"camera of frame {info.start}",
    }


def _detector_3d(track: HandTrack, start: int) -> dict[str, Any] | None:
    """How much of the detector's own 3D hand the refinement used: frames with it, and the detected frames
    without it (ignored by its term: missing, NaN or degenerate), as frame ranges of the video."""
    if track.world is None:
        return None
    usable = usable_hand3d(track.world)
    used = track.detected & usable
    return {"frames": int(used.sum()),
            "ignored_ranges": [[a + start, b - 1 + start] for a, b in true_runs(track.detected & ~usable)]}


def _mesh_layers(run: _Run, results: dict[str, HandResult]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per hand with MANO vertices: (reprojected vertices, their depth, faces) for the overlay."""
    mdir = _mano_dir(run.model) or run.s.mano_dir
    if mdir is None or not any(r.motion.vertices is not None for r in results.values()):
        return {}
    from unihand.hand import load_hand_model

    poses = None if run.camera.poses is None else next(iter(results.values())).motion.extra["T_cano_from_cam"]
    mesh = {}
    for side, r in results.items():
        if r.motion.vertices is not None:
            faces = np.asarray(load_hand_model(mdir, is_right=side == "right").faces, np.int64)
            depth = to_camera(r.motion.vertices, poses)[..., 2].astype(np.float32)
            mesh[side] = (reproject(r.motion.vertices, run.K, poses), depth, faces)
    return mesh
