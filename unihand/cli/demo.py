"""``unihand demo``: the whole video estimation path on a synthetic video with known ground truth.

1. A sequence of the embedded synthetic world (evaluation stream, never seen in training) seen by a
   head-mounted camera (realistic head motion: tens of degrees and centimetres) in a textured room,
   with occluders in front of the hand and detection gaps, is rendered on the fly and written as an
   H.264 video (``demo_input.mp4``).
2. That video goes through the same path as ``unihand estimate`` with its defaults: streaming
   decode, detection with MediaPipe Hands on the rendered frames, tracking, the camera stage
   (``--camera auto``: the camera's motion estimated from the background, its scale fitted to the
   hands), masked conditions, generation with the shipped checkpoint and refinement, all outputs.
   The frames MediaPipe misses are infilled like any lost frame. ``--detector simulated`` (and the
   fallback when MediaPipe cannot be imported) uses the world's simulated detector instead, which
   returns per frame what a detector would (noisy 2D keypoints, per-joint confidence, nothing for
   occluded joints or the world's detection gaps, handedness) without looking at the pixels.
3. Metrics against the known ground truth are printed and saved (``demo_metrics.json``): the hand
   (MPJPE, PA-MPJPE, ...), the detector's 2D keypoint error and the estimated camera path against the
   true one. The ground truth is used for scoring only: no stage of the estimate sees it.

The figures the README states for the default demo are checked by ``tests/test_video_demo.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from unihand.files import atomic_write, current_umask, strict_json
from unihand.video.detect import SimulatedDetector

#: Default sequence: evaluation stream, moving camera, occluders and gaps (see ``--index``).
DEMO_SEED = 1000
DEMO_INDEX = 22
RENDER_SIZE = 512


DETECTORS = ("mediapipe", "simulated")


def make_detector(kind: str, seq, to_pixels, log=print):
    """``(detector, name)``: MediaPipe Hands as ``unihand estimate`` runs it, or the simulated one.

    ``kind="mediapipe"`` falls back to the simulated detector only when MediaPipe (or a module it
    imports) is missing; the fallback is logged and ``name`` says which detector it is.
    """
    from unihand.errors import UserError

    if kind not in DETECTORS:
        raise UserError(f"--detector {kind!r}: choose {' or '.join(DETECTORS)}")
    if kind == "mediapipe":
        from unihand.video.detect import HandDetector
        from unihand.video.estimate import detector_hands

        side = "right" if seq.is_right else "left"

        try:
            return HandDetector(max_hands=detector_hands(side)), "mediapipe"  # as unihand estimate --hands SIDE
        except UserError as err:
            if not isinstance(err.__context__, ImportError):
                raise
            log(f"MediaPipe is not available ({err.__context__}): using the simulated detector")
    return SimulatedDetector(seq.conditions, to_pixels, 0.95 if seq.is_right else 0.05), "simulated"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="estimate hand motion from a synthetic video with known ground truth and print the metrics",
        description="Render a synthetic video (a counting hand seen by a head-mounted camera in a room), run "
        "the whole estimation path on it as unihand estimate does (MediaPipe detection, the camera's motion "
        "estimated from the background, UniHand generation and refinement) and print the errors of the hand "
        "and of the camera against the known ground truth.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-o", "--output", default="outputs/demo", metavar="OUTDIR", help="output folder")
    p.add_argument("--frames", type=int, default=96, help="length of the synthetic video")
    p.add_argument("--index", type=int, default=DEMO_INDEX, help="which sequence of the evaluation stream")
    p.add_argument("--left", action="store_true", help="a left hand (mirrored scene)")
    p.add_argument("--detector", choices=DETECTORS, default="mediapipe",
                   help="2D keypoints from MediaPipe on the rendered frames (the simulated detector if MediaPipe "
                        "is not installed), or from the simulated detector")
    p.add_argument("--static-camera", action="store_true",
                   help="a static camera instead of a head-mounted one (the camera stage still runs and should "
                        "find it static)")
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="checkpoint folder (default: the shipped one)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the checkpoint's)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--refine", choices=("on", "off"), default="on",
                   help="refine the generated motion against the keypoints (off: the pure diffusion sample)")
    p.add_argument("--no-render", action="store_true", help="skip the overlay, plot, viewer and BVH")
    p.set_defaults(func=run)


def make_demo_sequence(frames: int, index: int, left: bool, moving: bool):
    """The synthetic sequence of the demo (deterministic)."""
    from unihand.data.synthetic.conditions import ConditionConfig
    from unihand.data.synthetic.world import SynthConfig, SyntheticWorld

    cfg = SynthConfig(
        frames=frames, left_p=1.0 if left else 0.0, moving_camera_p=1.0 if moving else 0.0, exit_p=0.0,
        head_motion="realistic", background="room",  # a room the camera stage can track, with parallax
        occluder_counts_p=(0.0, 0.5, 0.5), conditions=ConditionConfig(gap_counts_p=(0.0, 0.4, 0.6)),
    )
    return SyntheticWorld(seed=DEMO_SEED, config=cfg).sequence(index)


def run_demo(
    outdir: str | Path = "outputs/demo", *, frames: int = 96, index: int = DEMO_INDEX, left: bool = False,
    moving: bool = True, checkpoint: str | None = None, device: str = "cpu", steps: int | None = None,
    seed: int = 0, render: bool = True, refine: bool = True, detector: str = "mediapipe", model=None, log=print,
) -> dict:
    """Render, estimate, evaluate; returns the metrics dict (also written to ``demo_metrics.json``)."""
    from unihand.errors import UserError
    from unihand.eval.metrics import camera_errors, evaluate_motion
    from unihand.video.conditions import to_camera
    from unihand.video.estimate import estimate_video, load_model
    from unihand.video.outputs import check_output_dir
    from unihand.viz.video import H264Writer

    if frames < 8:
        raise UserError(f"--frames {frames}: the demo needs at least 8 frames")
    t0 = time.perf_counter()
    outdir = check_output_dir(outdir)
    seq = make_demo_sequence(frames, index, left, moving)
    side = "right" if seq.is_right else "left"
    lb = seq.letterbox(RENDER_SIZE)
    rendered = lb.crop(seq.render(RENDER_SIZE))
    K = lb.crop_K(seq.camera.K)
    video = outdir / "demo_input.mp4"
    tmp = outdir / ".demo_input.tmp.mp4"
    try:
        writer = H264Writer(tmp, (rendered.shape[2], rendered.shape[1]), seq.motion.fps, crf=20)
        for f in rendered:
            writer.write(f)
        writer.close()
        os.chmod(tmp, 0o666 & ~current_umask())
        tmp.replace(video)
    finally:
        tmp.unlink(missing_ok=True)
    t_render = time.perf_counter() - t0
    log(f"rendered {frames} frames of synthetic sequence {DEMO_SEED}/{index} ({seq.camera.preset} camera, "
        f"{'head-mounted' if seq.camera.moving else 'static'}, room background, {side} hand, {seq.activity}) "
        f"-> {video}; the ground truth is used for scoring only")

    t = time.perf_counter()
    detect, det_name = make_detector(detector, seq, lb.normalized_to_crop, log)
    t_detector = time.perf_counter() - t
    log(f"detector: {'MediaPipe Hands on the rendered frames' if det_name == 'mediapipe' else 'simulated'}")
    if model is None:
        t = time.perf_counter()
        model = load_model(checkpoint, device)
        t_load = time.perf_counter() - t
    else:
        t_load = 0.0
    try:
        res = estimate_video(
            video, outdir, hands=side, intrinsics=(K[0, 0], K[1, 1], K[0, 2], K[1, 2]), model=model,
            detector=detect, steps=steps, seed=seed, render=render, refine=refine, camera="auto",
            checkpoint=checkpoint, device=device, log=log,
        )
    finally:
        if hasattr(detect, "close"):
            detect.close()
    hand = res.hands[side]
    gt = seq.motion
    detected = hand.track.detected
    metrics = evaluate_motion(hand.motion.joints, gt.joints, gt.fps, occlusion=np.asarray(gt.extra["occlusion"]),
                              missing=~detected)
    # the detector's own 2D error against the true keypoints, on the frames it detected
    true_px = lb.normalized_to_crop(seq.conditions.extra["kp2d_gt"])
    kp_err = np.linalg.norm(hand.track.keypoints[detected] - true_px[detected], axis=-1)
    # depth, the one thing 2D keypoints fix only through the hand's apparent size: the hand's mean distance
    # from each frame's camera (its own estimated camera for the estimate) against the truth
    depth = to_camera(hand.motion.joints, hand.motion.extra["T_cano_from_cam"])[..., 2].mean(-1)
    true_depth = np.asarray(gt.extra["joints_cam"])[..., 2].mean(-1)
    cam = hand.summary["camera"]
    camera = {"source": cam["source"], "scale_m_per_unit": cam.get("scale_m_per_unit"),
              "scale_source": cam.get("scale_source"),
              **camera_errors(hand.motion.extra["T_cano_from_cam"], gt.extra["T_cano_from_cam"])}
    total = time.perf_counter() - t0
    report = {
        "sequence": {"seed": DEMO_SEED, "index": index, "frames": frames, "hand": side, "camera": seq.camera.preset,
                     "moving_camera": bool(seq.camera.moving), "activity": seq.activity,
                     "mean_occlusion": float(np.mean(gt.extra["occlusion"])),
                     "infilled_frames": int((~detected).sum())},
        "detection": {"detector": det_name, "requested": detector, "detected_frames": int(detected.sum()),
                      "frames": int(detected.size),
                      "kp2d_error_px": {"mean": float(kp_err.mean()) if kp_err.size else None,
                                        "median": float(np.median(kp_err)) if kp_err.size else None}},
        "camera": camera,
        "metrics": metrics,
        "depth_error": {"mean_mm": float(1000 * (depth - true_depth).mean()),
                        "mean_percent": float(100 * ((depth - true_depth) / true_depth).mean())},
        "reprojection_error_px": hand.summary["reprojection_error_px"],
        "timings_s": {"render_input": round(t_render, 3), "load_detector": round(t_detector, 3),
                      "load_model": round(t_load, 3),
                      **{k: round(v, 3) for k, v in res.timings.items()}, "total": round(total, 3)},
        "outputs": {k: str(v) for k, v in hand.files.items()} | {"input": str(video)},
    }

    path = atomic_write(outdir / "demo_metrics.json",
                        lambda p: Path(p).write_text(strict_json(report, indent=2, default=_json)), suffix=".json")
    os.chmod(path, 0o666 & ~current_umask())
    return report


def _json(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def run(args: argparse.Namespace) -> int:
    from unihand.cli.flags import torch_threads

    say = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    with torch_threads(args.threads):
        rep = run_demo(
            args.output, frames=args.frames, index=args.index, left=args.left, moving=not args.static_camera,
            checkpoint=args.checkpoint, device=args.device, steps=args.steps, seed=args.seed,
            render=not args.no_render, refine=args.refine == "on", detector=args.detector, log=say,
        )
    m, s, d, c = rep["metrics"], rep["sequence"], rep["detection"], rep["camera"]
    print(f"synthetic {s['hand']} hand, {s['frames']} frames, {s['camera']} camera "
          f"({'head-mounted' if s['moving_camera'] else 'static'}), mean occlusion {100 * s['mean_occlusion']:.0f} %, "
          f"{s['infilled_frames']} frames without detection")
    print(f"detector: {d['detector']}, hand found on {d['detected_frames']}/{d['frames']} frames, "
          f"2D keypoints {_fmt(d['kp2d_error_px']['median'])} px from the truth (median)")
    scale = c["scale_m_per_unit"]
    print(f"camera: {c['source']}" + (f", {scale:.3g} m per unit ({c['scale_source']})" if isinstance(scale, float)
                                      else ""))
    print(f"  rotation error   {c['rotation_mean_deg']:.2f} deg mean, {c['rotation_max_deg']:.2f} max "
          f"(true rotation up to {c['true_rotation_max_deg']:.0f} deg)")
    print(f"  position error   {c['position_mean_cm']:.2f} cm mean, {c['position_max_cm']:.2f} max "
          f"(true travel up to {c['true_travel_cm']:.0f} cm)")
    print("hand, in the first frame's camera (the world frame), against the ground truth:")
    keys = [("mpjpe", "MPJPE (mm)"), ("pa_mpjpe", "PA-MPJPE (mm)"), ("auc_j", "AUC_J"), ("g_mpjpe", "G-MPJPE (mm)"),
            ("ga_mpjpe", "GA-MPJPE (mm)"), ("acc_err", "AccEr (m/s^2)")]
    for k, label in keys:
        if k in m:
            print(f"  {label:<16} {_fmt(m[k])}")
    by_missing = m.get("by_missing")
    if isinstance(by_missing, dict):
        for name, vals in by_missing.items():
            if isinstance(vals, dict) and "mpjpe" in vals:
                print(f"  MPJPE {name:<10} {_fmt(vals['mpjpe'])} mm")
    rp = rep["reprojection_error_px"]["median"]
    print(f"  reprojection     {_fmt(rp)} px (median, detected joints)")
    dep = rep["depth_error"]
    print(f"  depth error      {dep['mean_mm']:+.0f} mm ({dep['mean_percent']:+.0f} %, mean distance from the camera)")
    print(f"outputs in {Path(args.output)}: " + ", ".join(Path(v).name for v in rep["outputs"].values()))
    print(f"total {rep['timings_s']['total']:.1f} s")
    return 0
