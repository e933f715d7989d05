"""Sampling schedulers: DDIM (the paper's) against DPM-Solver++ and Euler, pure sampling.

32 held-out windows (seed 1000, right hands), the synthetic detector's 2D keypoints, the shipped
model, no refinement (the schedulers' own accuracy); the mean joint acceleration of 32 unconditional
samples (the data's: 0.83 m/s^2); median wall time of ``generate`` per window, one torch thread.

    .venv/bin/python bench/bench_schedulers.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

from unihand.data.io import Conditions
from unihand.data.synthetic.world import TEST_SEED, SynthConfig, SyntheticWorld
from unihand.eval.metrics import joint_acceleration, mpjpe, pa_mpjpe
from unihand.pipeline import UniHandPipeline

RUNS = (("ddim", 10), ("dpm", 5), ("dpm", 10), ("euler", 10))


def main() -> None:
    torch.set_num_threads(1)
    base = UniHandPipeline.from_pretrained()
    seqs = SyntheticWorld(TEST_SEED, SynthConfig(left_p=0.0)).sequences(list(range(32)))
    print("| scheduler | steps | 2D PA-MPJPE (mm) | MPJPE (mm) | unconditional accel. (m/s^2) | ms / window |")
    print("|---|---|---|---|---|---|")
    for kind, steps in RUNS:
        pipe = UniHandPipeline(base.model, kind, base.hand_model, base.refiner)
        pa, mp, times = [], [], []
        for s in seqs:
            c = s.conditions
            cond = Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask, kp2d_conf=c.kp2d_conf, K=c.K,
                              image_size=c.image_size, fps=c.fps)
            t = time.perf_counter()
            m = pipe(cond, generator=torch.Generator().manual_seed(s.index), num_inference_steps=steps, refine=False).motions[0]
            times.append(time.perf_counter() - t)
            pa.append(pa_mpjpe(m.joints, s.motion.joints))
            mp.append(mpjpe(m.joints, s.motion.joints))
        acc = [joint_acceleration(pipe(None, num_frames=48, generator=torch.Generator().manual_seed(i), num_inference_steps=steps,
                                       refine=False).motions[0].joints, 30.0).mean() for i in range(32)]
        print(f"| {kind} | {steps} | {np.mean(pa):.2f} | {np.mean(mp):.1f} | {np.mean(acc):.2f} | "
              f"{1000 * np.median(times):.0f} |")


if __name__ == "__main__":
    main()
