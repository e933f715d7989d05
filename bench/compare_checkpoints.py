"""Checkpoints side by side on the validation stream (seed 900, not a test stream): 2D-only and
50 %-of-frames-missing PA-MPJPE of 48-frame windows, pure and refined, and refined with
``sigma_prior_angles`` 0.3 (the one refinement weight a sweep on these windows found worth moving).
For choosing a checkpoint or a weight before the test sets are run.

    .venv/bin/python bench/compare_checkpoints.py --checkpoints shipped,runs/dif_v3/export [--num 32]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from unihand.data.io import Conditions
from unihand.data.synthetic.world import SynthConfig, SyntheticWorld
from unihand.eval.metrics import pa_mpjpe
from unihand.pipeline import UniHandPipeline
from unihand.refine.objective import RefineConfig

VALIDATION_SEED = 900


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoints", default="shipped")
    ap.add_argument("--num", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(1)
    seqs = SyntheticWorld(seed=VALIDATION_SEED, config=SynthConfig(frames=48)).sequences(list(range(args.num)))
    conds = []
    for i, s in enumerate(seqs):
        c = s.conditions
        drop = np.random.default_rng(i).random(c.num_frames) < 0.5
        conds.append({tag: Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask & keep[:, None], kp2d_conf=c.kp2d_conf,
                                      K=c.K, image_size=c.image_size, fps=c.fps, is_right=c.is_right)
                      for tag, keep in (("2D only", np.ones(c.num_frames, bool)), ("50 % missing", ~drop))})
    print("| checkpoint | run | 2D only | 50 % missing |\n|---|---|---|---|")
    for ck in args.checkpoints.split(","):
        pipe = UniHandPipeline.from_pretrained(None if ck == "shipped" else ck)
        for name, refine, cfg in (("pure", False, {}), ("refined", True, {}),
                                  ("refined, sigma_prior_angles 0.3", True, {"sigma_prior_angles": 0.3})):
            pipe.refiner.config = RefineConfig(**cfg)
            err = {tag: float(np.mean([pa_mpjpe(pipe(conds[i][tag], generator=torch.Generator().manual_seed(i),
                                                     refine=refine, camera_poses=s.camera.T_cano_from_cam)[0].joints,
                                                s.motion.joints) for i, s in enumerate(seqs)]))
                   for tag in ("2D only", "50 % missing")}
            print(f"| {ck} | {name} | {err['2D only']:.2f} | {err['50 % missing']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
