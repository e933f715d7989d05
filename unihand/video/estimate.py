"""Video -> 3D hand motion: decode -> detect -> track -> conditions -> generate -> outputs.

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

Intrinsics: ``--intrinsics fx,fy,cx,cy`` or ``--fov DEG`` (horizontal); by default a pinhole
with a :data:`DEFAULT_FOV_DEG` degree field of view across the image's longer side (horizontal
for landscape video), the middle of common webcams and phone main cameras.

Camera (``--camera``, :mod:`unihand.camera.stage`): estimated from the background when it moves
(static otherwise), static, or read from a poses file; known poses can be passed too
(``camera_poses``, T_cano_from_cam (N, 4, 4), as the demo does). Both hands share one camera and
its metric scale. The motion file holds the world (first-camera) frame motion and
``T_cano_from_cam`` (N, 4, 4) in metres (identities for a static camera); reprojection (overlay,
``joints_2d``, the summary's error) goes through each frame's camera; the summary's ``camera``
names the source.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from unihand.data.io import Conditions, Motion
from unihand.errors import UserError
from unihand.export.output_set import recover as recover_outputs
from unihand.geometry.camera import DEFAULT_FOV_DEG, default_intrinsics, intrinsics_from_fov
from unihand.models.unihand_model import UniHandModel
from unihand.pipeline.checks import check_sampling
from unihand.video.decode import VideoInfo, VideoSource, open_video
from unihand.video.detect import Detection
from unihand.video.track import HandTrack, track_hands

#: Horizontal fields of view (degrees) accepted as plausible for a real camera.
FOV_RANGE = (5.0, 160.0)
#: Joints whose confidence is below this are masked (not used as conditions).
CONF_THRESHOLD = 0.5
#: With ``--hands both``, a side detected on fewer frames than this fraction of the clip is skipped.
MIN_DETECTED_FRACTION = 0.02
HAND_CHOICES = {"right": ("right",), "left": ("left",), "both": ("right", "left")}
OUTPUT_NAMES = {
    "motion": "{hand}_motion.npz", "summary": "{hand}_summary.json", "overlay": "{hand}_overlay.mp4",
    "trajectory": "{hand}_trajectory.png", "viewer": "{hand}_viewer.html", "bvh": "{hand}.bvh",
}


class Detector(Protocol):
    """Anything that maps an RGB frame to the hands in it (``HandDetector`` or a stand-in)."""

    def __call__(self, frame: np.ndarray) -> list[Detection]: ...


# ------------------------------------------------------------------------------------------------
# Intrinsics


def resolve_intrinsics(
    width: int, height: int, intrinsics: tuple[float, float, float, float] | str | None = None,
    fov: float | None = None,
) -> tuple[np.ndarray, str]:
    """``K`` (3, 3) float64 and a description of where it came from; absurd values raise UserError."""

    if intrinsics is not None and fov is not None:
        raise UserError("give either --intrinsics or --fov, not both")
    if intrinsics is not None:
        if isinstance(intrinsics, str):
            try:
                vals = [float(v) for v in intrinsics.replace(" ", "").split(",")]
            except ValueError:
                vals = []
            if len(vals) != 4:
                raise UserError(f"--intrinsics {intrinsics!r}: expected four numbers fx,fy,cx,cy (pixels)")
        else:
            vals = [float(v) for v in intrinsics]
        fx, fy, cx, cy = vals
        text = f"--intrinsics {fx:g},{fy:g},{cx:g},{cy:g}"
        if not all(math.isfinite(v) for v in vals) or fx <= 0 or fy <= 0:
            raise UserError(f"{text}: focal lengths must be positive finite numbers")
        hfov = math.degrees(2 * math.atan(width / (2 * fx)))
        if not FOV_RANGE[0] <= hfov <= FOV_RANGE[1]:
            raise UserError(
                f"{text}: fx={fx:g} px gives a {hfov:.1f} degree field of view on a {width} px wide video, "
                f"outside the plausible {FOV_RANGE[0]:g}-{FOV_RANGE[1]:g} degrees (are they for another resolution?)"
            )
        if not 0.5 <= fx / fy <= 2.0:
            raise UserError(f"{text}: fx/fy = {fx / fy:.2f}, expected close to 1 (square-ish pixels)")
        if not (0 <= cx <= width and 0 <= cy <= height):
            raise UserError(f"{text}: principal point ({cx:g}, {cy:g}) lies outside the {width}x{height} image")
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return K, text
    if fov is not None:
        if not (math.isfinite(fov) and FOV_RANGE[0] <= fov <= FOV_RANGE[1]):
            raise UserError(f"--fov {fov:g}: expected a horizontal field of view between "
                            f"{FOV_RANGE[0]:g} and {FOV_RANGE[1]:g} degrees")
        return intrinsics_from_fov(fov, width, height), f"--fov {fov:g} (horizontal)"
    return default_intrinsics(width, height), f"default: {DEFAULT_FOV_DEG:g} degrees across the longer side"


# ------------------------------------------------------------------------------------------------
# Stages


class Timings(dict):
    """Seconds per stage; ``with timings("detect"): ...`` accumulates."""

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self[stage] = self.get(stage, 0.0) + time.perf_counter() - t0


def _progress(total: int | None, desc: str, enabled: bool | None):
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if enabled is None else not enabled
    return tqdm(total=total or None, desc=desc, unit="frame", disable=disable, leave=False, dynamic_ncols=True)


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
    with _progress(source.info.num_frames, "detect", progress) as bar:
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
            bar.update(1)
    return out, (np.stack(kept) if kept else None)


def track_conditions(
    track: HandTrack, K: np.ndarray, image_size: tuple[int, int], fps: float, conf_threshold: float = CONF_THRESHOLD,
) -> Conditions:
    """The track's keypoints as 2D conditions: normalised by (W, H), low-confidence joints masked."""
    w, h = image_size
    mask = track.detected[:, None] & (track.confidence >= conf_threshold)
    kp = np.where(mask[..., None], np.nan_to_num(track.keypoints), 0.0) / np.array([w, h], np.float32)
    return Conditions(
        kp2d=kp.astype(np.float32), kp2d_mask=mask, kp2d_conf=np.where(mask, track.confidence, 0.0).astype(np.float32),
        is_right=track.is_right, fps=float(fps), K=np.asarray(K, np.float32), image_size=np.array([w, h], np.int64),
    )


def to_camera(points: np.ndarray, camera_poses: np.ndarray | None = None) -> np.ndarray:
    """Canonical points (N, P, 3) -> each frame's camera; ``camera_poses``: T_cano_from_cam (N, 4, 4)."""
    pts = np.asarray(points, np.float64)
    if camera_poses is None:
        return pts
    T = np.linalg.inv(np.asarray(camera_poses, np.float64))  # cam_from_cano
    return np.einsum("nij,nkj->nki", T[:, :3, :3], pts) + T[:, None, :3, 3]


def reproject(joints: np.ndarray, K: np.ndarray, camera_poses: np.ndarray | None = None) -> np.ndarray:
    """Canonical joints (N, J, 3) -> pixels (N, J, 2) (static camera unless ``camera_poses`` given)."""
    from unihand.geometry.camera import project

    return np.asarray(project(to_camera(joints, camera_poses), np.asarray(K, np.float64)), np.float32)


def reprojection_stats(joints_2d: np.ndarray, kp: np.ndarray, mask: np.ndarray) -> dict[str, float | None]:
    """Pixel distance between reprojected joints and the detector's keypoints over the used joints."""
    if not mask.any():
        return {"median": None, "mean": None, "p90": None}
    err = np.linalg.norm(joints_2d - np.nan_to_num(kp), axis=-1)[mask]
    return {"median": float(np.median(err)), "mean": float(err.mean()), "p90": float(np.percentile(err, 90))}


def _spans(mask: np.ndarray, offset: int = 0) -> list[list[int]]:
    """[first, last] frame ranges (inclusive, plus ``offset``) where ``mask`` is true."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]]).astype(int)
    d = np.diff(m)
    return [[int(a) + offset, int(b) - 1 + offset] for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1))]


def check_output_dir(outdir: str | os.PathLike, create: bool = True) -> Path:
    """Make sure files can be written in ``outdir`` (UserError if not), creating it if needed;
    ``create=False`` checks its nearest existing parent instead, so a run that fails later leaves nothing."""
    outdir = Path(outdir)
    try:
        if outdir.exists() and not outdir.is_dir():
            raise UserError(f"{outdir}: output path exists and is not a folder")
        probe = outdir
        if create:
            outdir.mkdir(parents=True, exist_ok=True)
        elif not outdir.exists():
            probe = next(p for p in outdir.absolute().parents if p.exists())
            if not probe.is_dir():
                raise UserError(f"{outdir}: cannot write outputs there ({probe} is not a folder)")
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise UserError(f"{outdir}: cannot write outputs there ({err.strerror or err})") from None
    return outdir


def load_model(
    checkpoint: str | os.PathLike | None = None, device: str = "cpu", mano_dir: str | None = None,
    backbone_path: str | None = None,
):
    """``UniHand.from_pretrained`` with one-line errors for a missing device."""
    import torch

    from unihand.pipeline import UniHand

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here (use --device cpu)")
    return UniHand.from_pretrained(checkpoint, device=device, mano_dir=mano_dir, backbone_path=backbone_path)


def vision_input_size(model: Any) -> int | None:
    """The backbone input size of a vision checkpoint (frames are then given to the model), else None."""
    vis = getattr(getattr(model, "cfg", None), "vision", None)
    return int(vis.input_size) if vis is not None and getattr(vis, "enabled", False) else None


# ------------------------------------------------------------------------------------------------
# Orchestration


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


def _generate(
    model: Any, cond: Conditions, steps: int | None, cfg_scale: float | None, seed: int, frames: np.ndarray | None,
    progress: bool | None = None, refine: bool = True, camera_poses: np.ndarray | None = None,
    scheduler: str = "ddim", camera_scale: float | str | None = None,
) -> Motion:
    extra = {} if frames is None else {"frames": frames}  # the pipeline mirrors them for a left hand
    if progress is not False:
        extra["progress"] = True
    if camera_scale is not None:  # translations up to scale ("fit") or in units of camera_scale metres
        extra["camera_scale"] = camera_scale
    return model.generate(cond, steps=steps, cfg_scale=cfg_scale, seed=seed, refine=refine,
                          camera_poses=camera_poses, scheduler=scheduler, **extra)


def estimate_video(
    video: str | os.PathLike,
    outdir: str | os.PathLike | None = None,
    *,
    hands: str = "both",
    intrinsics: tuple[float, float, float, float] | str | None = None,
    fov: float | None = None,
    checkpoint: str | os.PathLike | None = None,
    device: str = "cpu",
    start: str | float | None = None,
    end: str | float | None = None,
    fps: float | None = None,
    steps: int | None = None,
    cfg_scale: float | None = None,
    seed: int = 0,
    conf_threshold: float = CONF_THRESHOLD,
    detect_scale: float = 1.0,
    render: bool = True,
    refine: bool = True,
    scheduler: str = "ddim",
    progress: bool | None = None,
    model: Any = None,
    detector: Detector | None = None,
    camera_poses: np.ndarray | None = None,
    camera: str | os.PathLike | None = None,
    camera_scale: float | str | None = None,
    mano_dir: str | None = None,
    backbone_path: str | None = None,
    log: Any = None,
) -> EstimateResult:
    """Run the whole video path; see the module docstring. ``outdir=None`` writes nothing.

    ``model`` / ``detector`` replace the checkpoint's model / MediaPipe (tests, demo);
    ``render=False`` skips the overlay, plot, viewer and BVH (the motion and summary are written);
    ``refine=False`` keeps the pure diffusion sample (no refinement against the keypoints: ablations).
    ``camera``: ``auto`` (default: estimated when the background moves, else static), ``static``,
    ``estimate`` or a poses file; ``camera_scale``: metres per unit of the poses or ``"fit"``
    (:mod:`unihand.camera.stage`); ``camera_poses`` (N, 4, 4) T_cano_from_cam: known poses (metres
    times ``camera_scale``, default 1), instead of ``camera``.
    """
    from unihand.camera.stage import CameraTap, metric_scale, plan_camera, resolve_camera

    if hands not in HAND_CHOICES:
        raise UserError(f"--hands {hands!r}: choose left, right or both")
    cam_plan = plan_camera(camera, camera_scale, camera_poses)
    timings = Timings()
    say = log or (lambda msg: None)
    with timings("open"):
        source = open_video(video, start=start, end=end, fps=fps)
        info = source.info
        K, k_source = resolve_intrinsics(info.width, info.height, intrinsics, fov)
        if outdir is not None:
            outdir = check_output_dir(outdir, create=False)
            recover_outputs(outdir, _owned_names())  # finish or undo a swap a killed run left
    if model is None:
        with timings("load_model"):
            model = load_model(checkpoint, device, mano_dir, backbone_path)
    if isinstance(model, UniHandModel):  # before any frame is read (tests pass stand-ins)
        check_sampling(model, steps, cfg_scale, seed, None, None, 0)
    if detector is None:
        from unihand.video.detect import HandDetector

        with timings("load_detector"):
            detector = HandDetector(max_hands=2, scale=detect_scale)
    say(f"reading {info.path} ({info.width}x{info.height}, {info.fps:g} fps, frames {info.start}..{info.end})")
    vision = vision_input_size(model)
    if vision:
        say(f"vision checkpoint: the frames (resized to {vision} px) condition the model too")
    tracker = None
    if cam_plan.tracks:  # the camera engine sees every frame during the detection pass
        from unihand.camera.engine import BackgroundTracker

        tracker = BackgroundTracker(K, info.image_size)
    detections, frames = detect_video(source, detector if tracker is None else CameraTap(detector, tracker), timings,
                                      progress, keep_frames=vision)
    if tracker is not None:
        timings["detect"] = timings.get("detect", 0.0) - tracker.seconds
    n = len(detections)
    with timings("track"):
        tracks = track_hands(detections, sides=HAND_CHOICES[hands])
    if not tracks:
        found = track_hands(detections)
        where = f"in the {n} frames of {info.path}"
        if found:
            other = " and ".join(found)
            raise UserError(f"no {hands} hand detected {where} (found a {other} hand: use --hands {next(iter(found))})")
        raise UserError(f"no hand detected {where}")
    if hands == "both" and len(tracks) > 1:
        # a side seen on a handful of frames of a long clip is most likely a false detection: with
        # --hands both it is skipped rather than turned into seconds of invented motion
        least = max(3, math.ceil(MIN_DETECTED_FRACTION * n))
        weak = [s for s, t in tracks.items() if t.num_detected < least]
        for side in weak if len(weak) < len(tracks) else []:
            say(f"{side} hand seen in only {tracks[side].num_detected} of {n} frames: skipped "
                f"(--hands {side} estimates it anyway)")
            del tracks[side]
    cam = resolve_camera(cam_plan, tracker, n, info.fps, say)
    timings["camera"] = cam.seconds
    camera_poses = cam.poses  # None: static
    scale = cam.scale
    scale_source = {"fit": "fitted to the hands"}.get(scale, "given") if isinstance(scale, str) else "given"
    results: dict[str, HandResult] = {}
    # both hands share the camera and its scale: the hand seen most fits it, the others reuse it
    for side, track in sorted(tracks.items(), key=lambda kv: -kv[1].num_detected):
        cond = track_conditions(track, K, info.image_size, info.fps, conf_threshold)
        say(f"{side} hand: detected in {track.num_detected}/{n} frames; generating")
        with timings(f"generate_{side}"):
            motion = _generate(model, cond, steps, cfg_scale, seed, frames, progress, refine, camera_poses, scheduler,
                               None if camera_poses is None or scale == 1.0 else scale)
        motion.is_right = track.is_right
        motion.fps = float(info.fps)
        motion.K = np.asarray(K, np.float32)
        motion.image_size = np.array(info.image_size, np.int64)
        if camera_poses is None:
            metric = np.broadcast_to(np.eye(4, dtype=np.float32), (n, 4, 4)).copy()
        elif "T_cano_from_cam" in motion.extra:  # the model's metric poses (the fitted scale applied)
            metric = np.asarray(motion.extra["T_cano_from_cam"], np.float32)
        else:
            metric = camera_poses.astype(np.float32).copy()
            metric[:, :3, 3] *= 1.0 if isinstance(scale, str) else scale
        if scale == "fit" and camera_poses is not None:
            fitted = metric_scale(camera_poses, metric)
            scale, scale_source = (1.0, "none (no translation)") if fitted is None else (fitted, f"fitted to the {side} hand")
            say(f"camera scale: {scale:.4g} m per unit ({scale_source})")
        motion.extra["T_cano_from_cam"] = metric
        motion.joints_2d = reproject(motion.joints, K, None if camera_poses is None else metric)
        mask = cond.kp2d_mask
        kp_px = np.where(mask[..., None], np.nan_to_num(track.keypoints), 0.0).astype(np.float32)
        motion.extra.update({
            "frame_index": np.arange(info.start, info.start + n, dtype=np.int64),
            "detected": track.detected.copy(), "kp2d_px": kp_px, "kp2d_mask": mask.copy(),
            "kp2d_conf": cond.kp2d_conf.copy(),
        })
        reproj = reprojection_stats(motion.joints_2d, track.keypoints, mask)
        summary = {
            "video": str(info.path), "hand": side, "frames": n, "frame_range": [info.start, info.start + n],
            "fps": info.fps, "image_size": list(info.image_size), "K": np.asarray(K).tolist(), "intrinsics": k_source,
            "detections": track.num_detected, "detection_rate": track.num_detected / n,
            "infilled_frames": int(n - track.num_detected), "infilled_ranges": _spans(~track.detected, info.start),
            "masked_joints": int((track.detected[:, None] & ~mask).sum()), "tracklets": len(track.tracklets),
            "reprojection_error_px": reproj,
            "reprojection_note": ("static camera" if camera_poses is None else "through each frame's camera"),
            "camera": {**cam.summary(), "scale_m_per_unit": None if camera_poses is None else scale,
                       "scale_source": None if camera_poses is None else scale_source},
            "model": {"checkpoint": str(checkpoint) if checkpoint else "shipped", "device": str(device),
                      "steps": steps, "cfg_scale": cfg_scale, "seed": seed, "refine": refine, "scheduler": scheduler,
                      "conditions": ["kp2d"] + (["vision"] if vision else [])},
            "canonical_frame": f"camera of frame {info.start}",
        }
        results[side] = HandResult(side, motion, cond, track, summary)
    results = {side: results[side] for side in tracks}  # the tracker's order
    if camera_poses is not None:  # the metric poses, shared by both hands
        camera_poses = next(iter(results.values())).motion.extra["T_cano_from_cam"]
    mesh = {}
    if render and outdir is not None and any(r.motion.vertices is not None for r in results.values()):
        from unihand.hand import load_hand_model

        mdir = getattr(model, "mano_dir", None) or mano_dir
        for side, r in results.items():
            if r.motion.vertices is not None and mdir is not None:
                faces = np.asarray(load_hand_model(mdir, is_right=side == "right").faces, np.int64)
                cam = to_camera(r.motion.vertices, camera_poses)
                mesh[side] = (reproject(r.motion.vertices, K, camera_poses), cam[..., 2].astype(np.float32), faces)
    if outdir is not None:
        check_output_dir(outdir)
        _write_outputs(outdir, source, results, timings, render, progress, say, mesh,
                       mano_dir=getattr(model, "mano_dir", None) or mano_dir)
    for r in results.values():
        r.summary["timings_s"] = _hand_timings(timings, r.side)
    return EstimateResult(info, np.asarray(K), results, dict(timings), outdir)


def _hand_timings(timings: Timings, side: str) -> dict[str, float]:
    """Shared stages plus this hand's own (``generate_right`` -> ``generate``)."""
    out = {}
    for k, v in timings.items():
        for s in ("right", "left"):
            if k.endswith(f"_{s}"):
                if s == side:
                    out[k[: -len(s) - 1]] = round(v, 4)
                break
        else:
            out[k] = round(v, 4)
    return out


def _write_outputs(
    outdir: Path, source: VideoSource, results: dict[str, HandResult], timings: Timings, render: bool,
    progress: bool | None, say: Any, mesh: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
    mano_dir: str | None = None,
) -> None:
    """Write this run's whole output set and swap it in for the previous one as one unit.

    Every file goes through the exporter registry (:mod:`unihand.export`) into a staging folder;
    :class:`~unihand.export.output_set.OutputSet` then replaces every file of an earlier run that
    matches :data:`OUTPUT_NAMES` (either hand) by the new set, so an output this run does not make
    (the overlay after ``--no-render``, a hand not found this time) does not survive from an older
    run, a failure leaves the earlier set untouched and a kill mid-swap is finished by the next run
    (the module doc of ``output_set`` says why a journal rather than a folder rename).
    """
    from unihand.export.output_set import OutputSet
    from unihand.export.registry import REGISTRY
    from unihand.viz.overlay import OverlayTrack, render_overlays

    names = {side: {k: v.format(hand=side) for k, v in OUTPUT_NAMES.items()} for side in results}
    formats = {"trajectory": "png", "viewer": "html", "bvh": "bvh"}
    info = source.info
    try:
        with OutputSet(outdir, _owned_names()) as out:
            for side, r in results.items():
                with timings(f"write_motion_{side}"):
                    REGISTRY["npz"].writer(r.motion, out.path(names[side]["motion"]))
            if render:
                for side, r in results.items():
                    m = r.motion
                    ctx: dict[str, Any] = {"source": f"{side} hand of {info.path.name}", "infilled": r.infilled,
                                           "side": f"{side} hand", "first_frame": info.start, "mano_dir": mano_dir}
                    if mesh and side in mesh and m.vertices is not None:
                        from unihand.export.mesh import MeshSequence

                        ctx["mesh"] = MeshSequence(np.asarray(m.vertices, np.float64), mesh[side][2], "mano")
                    for key, fmt in formats.items():
                        title = (f"{side} hand - {info.path.name}" if fmt == "png"
                                 else f"UniHand - {side} hand - {info.path.name}")
                        with timings(f"render_{key}_{side}"):
                            REGISTRY[fmt].writer(m, out.path(names[side][key]), **ctx, title=title)
                say("rendering the overlay video(s)")
                with timings("render_overlay"), _progress(len(next(iter(results.values())).track.detected),
                                                          "overlay", progress) as bar:
                    tracks = {
                        out.path(names[side]["overlay"]): OverlayTrack(
                            joints_2d=r.motion.joints_2d, detected_kp=r.track.keypoints,
                            kp_mask=r.conditions.kp2d_mask, infilled=r.infilled, label=side,
                            **(dict(zip(("vertices_2d", "vertex_depth", "faces"), mesh[side])) if mesh and side in mesh else {}),
                        )
                        for side, r in results.items()
                    }
                    render_overlays(source, tracks, info.fps, frame_offset=info.start, progress=lambda: bar.update(1))
            for side, r in results.items():
                r.summary["timings_s"] = _hand_timings(timings, side)
                r.summary["outputs"] = {k: v for k, v in names[side].items()
                                        if out.path(v).exists() or k == "summary"}
                REGISTRY["json"].writer(r.motion, out.path(names[side]["summary"]), summary=r.summary)
    except OSError as err:
        raise UserError(f"{outdir}: writing outputs failed ({err.strerror or err})") from None
    for side, r in results.items():
        r.files.update({key: out.files[name] for key, name in names[side].items() if name in out.files})


def _owned_names() -> set[str]:
    """Every output name ``estimate`` may write into a folder (both hands): the set it replaces."""
    return {v.format(hand=side) for v in OUTPUT_NAMES.values() for side in HAND_CHOICES["both"]}
