"""``unihand estimate VIDEO``: 3D hand motion from a video (see :mod:`unihand.video.estimate`)."""

from __future__ import annotations

import argparse
import math
import sys

from unihand.cli.flags import CONF_THRESHOLD, DEFAULT_FOV_DEG, SCHEDULER_NAMES
from unihand.errors import UserError
from unihand.video.outputs import OUTPUT_NAMES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "estimate",
        help="estimate 3D hand motion from a video (MediaPipe 2D keypoints + UniHand)",
        description=(
            "Estimate the 3D motion of the hands in a video: MediaPipe finds 2D keypoints and "
            "handedness in every frame, each hand is tracked, and UniHand generates a complete MANO "
            "motion in the camera frame of the first frame read, infilling frames without a "
            "detection. Writes per hand: " + ", ".join(v.format(hand="{hand}") for v in OUTPUT_NAMES.values())
            + "."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("video", help="video file (mp4/H.264, webm, mov, ...) or a folder of images (sorted by name)")
    p.add_argument("-o", "--output", default="outputs/estimate", metavar="OUTDIR", help="output folder")
    p.add_argument("--hands", choices=("left", "right", "both"), default="both",
                   help="which hands to estimate (both: each hand found on at least 2 %% of the frames; left or "
                        "right: MediaPipe tracks one hand, twice as fast, so with both hands in view use both)")
    cam = p.add_mutually_exclusive_group()
    cam.add_argument("--intrinsics", metavar="FX,FY,CX,CY", help="camera intrinsics in pixels of the video")
    cam.add_argument("--fov", type=float, metavar="DEG",
                     help=f"horizontal field of view in degrees (default without either option: "
                          f"{DEFAULT_FOV_DEG:g} degrees across the longer image side)")
    p.add_argument("--camera", default="auto", metavar="auto|static|estimate|POSES",
                   help="camera motion: auto (estimated from the background when it moves, else static), static, "
                        "estimate, or a poses file: .npz with T_cano_from_cam (N,4,4), COLMAP images.txt or Aria "
                        "closed_loop_trajectory.csv (docs/formats.md)")
    p.add_argument("--camera-scale", default=None, metavar="fit|M",
                   help="metres per unit of the camera translations, or fit (fitted to the hands); default: fit for "
                        "estimated poses and COLMAP files, 1 for .npz and Aria files")
    p.add_argument("--depth-model", default=None, metavar="DIR",
                   help="a local metric depth checkpoint (transformers Depth Anything V2 Metric): the "
                        "estimated camera path's metric scale read from the scene instead of fitted to the hands")
    p.add_argument("--checkpoint", metavar="PATH", default=None,
                   help="UniHand checkpoint folder (default: the small model shipped with the package)")
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    p.add_argument("--backbone-path", default=None, metavar="DIR",
                   help="local DINOv2 weights, for a checkpoint trained with the vision condition on DINOv2")
    p.add_argument("--start", metavar="S", default=None, help="first frame: seconds (2.5) or a frame number (75f)")
    p.add_argument("--end", metavar="E", default=None, help="end (exclusive): seconds (10) or a frame number (300f)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of an image folder (default 30)")
    p.add_argument("--steps", type=int, default=None, help="DDIM sampling steps (default: the checkpoint's)")
    p.add_argument("--cfg-scale", type=float, default=None, help="classifier-free guidance scale (default: the checkpoint's)")
    p.add_argument("--scheduler", choices=SCHEDULER_NAMES, default="ddim",
                   help="sampling scheduler (dpm: DPM-Solver++, as accurate as DDIM in 5-10 steps)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--conf-threshold", type=float, default=CONF_THRESHOLD,
                   help="joints below this detector confidence are masked (infilled by the model)")
    p.add_argument("--detect-scale", type=float, default=1.0,
                   help="run the detector on frames resized by this factor (0.5 is faster, ~1 px less precise)")
    p.add_argument("--mano-dir", default=None, help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl: meshes in the overlay")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads for generation (0: torch's default); one thread is fastest for the "
                        "small model on a few cores, more only pay off for the paper-size model")
    p.add_argument("--refine", choices=("on", "off"), default="on",
                   help="refine the generated motion against the detected keypoints (off: the pure diffusion "
                        "sample, for ablations)")
    p.add_argument("--no-render", action="store_true", help="write only the motion files and summaries")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from unihand.video.estimate import estimate_video

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps {args.steps}: expected a positive number of steps")
    if not 0 < args.detect_scale <= 1:
        raise UserError(f"--detect-scale {args.detect_scale}: expected a factor in (0, 1]")
    if not 0 <= args.conf_threshold <= 1:
        raise UserError(f"--conf-threshold {args.conf_threshold}: expected a value in [0, 1]")
    if args.cfg_scale is not None and not math.isfinite(args.cfg_scale):
        raise UserError(f"--cfg-scale {args.cfg_scale}: expected a finite number")
    from unihand.cli.flags import torch_threads
    from unihand.models.unihand_model import check_device

    check_device(args.device)
    if args.threads < 0:
        raise UserError(f"--threads {args.threads}: expected 0 (torch's default) or a positive number")
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    with torch_threads(args.threads):
        res = estimate_video(
            args.video, args.output, hands=args.hands, intrinsics=args.intrinsics, fov=args.fov,
            checkpoint=args.checkpoint, device=args.device, start=args.start, end=args.end, fps=args.fps,
            steps=args.steps, cfg_scale=args.cfg_scale, seed=args.seed, conf_threshold=args.conf_threshold,
            detect_scale=args.detect_scale, render=not args.no_render, refine=args.refine == "on",
            scheduler=args.scheduler, camera=args.camera, camera_scale=args.camera_scale,
            depth_model=args.depth_model,
            progress=False if args.quiet else None,
            mano_dir=args.mano_dir, backbone_path=args.backbone_path, log=say,
        )
    first = next(iter(res.hands.values())).summary.get("camera") if res.hands else None
    if first:
        scale = first.get("scale_m_per_unit")
        print(f"camera: {first['source']}" + (f", {scale:.4g} m per unit ({first['scale_source']})"
                                               if isinstance(scale, float) else ""))
    for side, r in res.hands.items():
        s = r.summary
        rep = s["reprojection_error_px"]["median"]
        rep_text = "n/a" if rep is None else f"{rep:.1f} px"
        print(f"{side} hand: {s['frames']} frames, detected in {s['detections']}, infilled {s['infilled_frames']}, "
              f"median reprojection error {rep_text}")
        for key, path in r.files.items():
            print(f"  {key:<10} {path}")
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in res.timings.items())
    print(f"timings: {stages}")
    return 0
