"""Diversity of batched samples: ``UniHandPipeline(..., num_samples=S)`` against the data.

Average pairwise distance (mean per-joint distance, mm, in the canonical frame, and after
per-frame Procrustes alignment: pose only) between the S samples of one call, averaged over calls:

- unconditional: ``--num`` calls of S samples of 48 frames; the data's figure is the same distance
  between ``--num`` x S held-out synthetic sequences (test stream 1000), taken in pairs;
- 2D keypoints (the synthetic detector's, 50 % of the frames dropped) of ``--num`` test windows:
  how much the samples still disagree where the evidence leaves room; with refinement (default) and
  without.

    .venv/bin/python bench/diversity.py [--samples 8] [--num 16] [--checkpoint DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import combinations

import numpy as np
import torch

from unihand.data.io import Conditions
from unihand.data.synthetic.world import TEST_SEED, SynthConfig, SyntheticWorld
from unihand.eval.metrics import mpjpe, pa_mpjpe
from unihand.pipeline import UniHandPipeline


def pairwise(joints: list[np.ndarray]) -> tuple[float, float]:
    """Mean over pairs of (MPJPE, PA-MPJPE) in mm."""
    pairs = list(combinations(range(len(joints)), 2))
    return (float(np.mean([mpjpe(joints[i], joints[j]) for i, j in pairs])),
            float(np.mean([pa_mpjpe(joints[i], joints[j]) for i, j in pairs])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--num", type=int, default=16)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pipe = UniHandPipeline.from_pretrained(args.checkpoint)
    world = SyntheticWorld(seed=TEST_SEED, config=SynthConfig(frames=48))
    s = args.samples
    out: dict[str, dict[str, float]] = {}
    data = [world.sequence(i).motion.joints.astype(np.float64) for i in range(args.num * s)]
    d = [pairwise(data[k * s:(k + 1) * s]) for k in range(args.num)]
    out["data"] = {"mpjpe": float(np.mean([x[0] for x in d])), "pa_mpjpe": float(np.mean([x[1] for x in d]))}
    t0 = time.perf_counter()
    rows = []
    for k in range(args.num):
        ms = pipe(None, num_samples=s, num_frames=48, generator=torch.Generator().manual_seed(k), refine=False)
        rows.append(pairwise([m.joints.astype(np.float64) for m in ms]))
    out["unconditional"] = {"mpjpe": float(np.mean([x[0] for x in rows])), "pa_mpjpe": float(np.mean([x[1] for x in rows])),
                            "s_per_call": (time.perf_counter() - t0) / args.num}
    for refine in (False, True):
        rows, gt_err = [], []
        t0 = time.perf_counter()
        for k in range(args.num):
            seq = world.sequence(10_000 + k)
            c = seq.conditions
            mask = c.kp2d_mask.copy()
            mask[np.random.default_rng(k).random(c.num_frames) < 0.5] = False
            cond = Conditions(kp2d=c.kp2d, kp2d_mask=mask, kp2d_conf=c.kp2d_conf, K=c.K, image_size=c.image_size,
                              fps=c.fps, is_right=c.is_right)
            ms = pipe(cond, num_samples=s, generator=torch.Generator().manual_seed(k), refine=refine)
            joints = [m.joints.astype(np.float64) for m in ms]
            rows.append(pairwise(joints))
            gt_err.append(np.mean([pa_mpjpe(j, seq.motion.joints.astype(np.float64)) for j in joints]))
        out[f"2d_50pct_{'refined' if refine else 'pure'}"] = {
            "mpjpe": float(np.mean([x[0] for x in rows])), "pa_mpjpe": float(np.mean([x[1] for x in rows])),
            "pa_mpjpe_to_truth": float(np.mean(gt_err)), "s_per_call": (time.perf_counter() - t0) / args.num}
    print(f"| samples of | pairwise MPJPE (mm) | pairwise PA-MPJPE (mm) | s per call of {s} |")
    for k, v in out.items():
        print(f"| {k} | {v['mpjpe']:.1f} | {v['pa_mpjpe']:.1f} | {v.get('s_per_call', float('nan')):.2f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
