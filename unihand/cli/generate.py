"""``unihand generate``: conditions file -> motion file (estimation, lifting, infilling, editing)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from unihand.cli.flags import SCHEDULER_NAMES
from unihand.errors import UserError

#: Longest unconditional sample (an hour at 30 fps is ~110 k frames; beyond it a typo is likelier).
MAX_FRAMES = 100_000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate a motion from a conditions file (or unconditionally)",
        description="Generate a MANO motion from any mix of 2D keypoints, 3D keypoints and MANO parameters "
        "with per-frame masks (a conditions file, see docs/formats.md; unihand synth writes some); without COND, "
        "sample unconditionally.",
    )
    p.add_argument("conditions", nargs="?", help="conditions .npz (kp2d/kp3d/mano + masks, K, image_size, fps, is_right)")
    p.add_argument("-o", "--output", required=True, help="motion .npz to write")
    p.add_argument("--checkpoint", help="UniHand checkpoint directory (default: the shipped small model)")
    p.add_argument("--frames", type=int, default=48, help="length of an unconditional sample (default 48)")
    p.add_argument("--first-frame", help="motion .npz whose first frame is the known initial pose")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the checkpoint's, 10)")
    p.add_argument("--cfg-scale", type=float, default=None, help="classifier-free guidance scale (default 2.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-samples", type=int, default=1, metavar="N",
                   help="N stochastic samples from one batched pass, written as OUTPUT_0.npz ... (default 1)")
    p.add_argument("--scheduler", choices=SCHEDULER_NAMES, default="ddim",
                   help="sampling scheduler (ddim: the paper's; dpm: DPM-Solver++, as accurate in 5-10 steps; euler)")
    p.add_argument("--refine", choices=("on", "off"), default="on",
                   help="refine the sample against every given condition: reprojection, 3D keypoints, given "
                        "MANO, smoothness, joint limits, one hand shape (off: the pure diffusion sample)")
    p.add_argument("--mano-dir", help="folder with MANO_RIGHT.pkl/MANO_LEFT.pkl to also write mesh vertices")
    p.add_argument("--format", "--export", dest="formats", default=None, metavar="LIST",
                   help="also write these formats next to the motion file, named after it (comma-separated: "
                        "json, bvh, html, png, obj, glb, or all; e.g. bvh,html,png,glb), all at once with the .npz")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quantize", choices=["int8"], help="int8 CPU inference (faster for paper-size models; "
                   "the last denoising step stays float32)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from unihand.data.io import Conditions, Motion
    from unihand.files import check_target
    from unihand.cli.flags import check_model_flags, check_positive, check_sampling_flags
    from unihand.pipeline import UniHandPipeline

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.formats:
        from unihand.export import parse_formats

        parse_formats(args.formats)  # an unknown format fails before any work
    check_positive(args, "frames", "num_samples")
    if args.frames > MAX_FRAMES:
        raise UserError(f"--frames {args.frames}: at most {MAX_FRAMES} frames per unconditional sample "
                        f"({MAX_FRAMES / 30 / 60:.0f} minutes at 30 fps)")
    if args.num_samples > 64:
        raise UserError(f"--num-samples {args.num_samples}: at most 64 samples per call")
    check_sampling_flags(args)
    out = Path(args.output)
    outputs = [out] if args.num_samples == 1 else [out.with_name(f"{out.stem}_{k}{out.suffix}")
                                                   for k in range(args.num_samples)]
    for path in outputs:
        check_target(path)
    cond = Conditions.load(args.conditions) if args.conditions else None
    first = None
    if args.first_frame:
        first = Motion.load(args.first_frame).mano()[0]
    pipe = UniHandPipeline.from_pretrained(args.checkpoint, device=args.device, mano_dir=args.mano_dir,
                                           quantize=args.quantize, scheduler=args.scheduler)
    check_model_flags(pipe.model, args)
    t0 = time.perf_counter()
    motions = pipe(cond, num_samples=args.num_samples, num_inference_steps=args.steps, guidance_scale=args.cfg_scale,
                   generator=torch.Generator().manual_seed(args.seed), num_frames=args.frames, first_frame=first,
                   refine=args.refine == "on", progress=None).motions
    took = time.perf_counter() - t0
    for motion, target in zip(motions, outputs):
        if cond is not None and cond.K is not None and cond.image_size is not None:
            from unihand.geometry.camera import project

            motion.joints_2d = project(motion.joints.astype(np.float64), cond.K.astype(np.float64)).astype(np.float32)
        if args.formats:
            from unihand.export import export_motion

            files = export_motion(motion, target.parent, ["npz"] + parse_formats(args.formats), stem=target.stem,
                                  names={"npz": target.name}, source=target, mano_dir=args.mano_dir)
            path = files.pop("npz")
        else:
            files, path = {}, motion.save(target)
        print(f"wrote {path} ({motion.num_frames} frames, {took:.2f} s)")
        for fmt, extra in files.items():
            print(f"wrote {extra} ({fmt})")
    return 0
