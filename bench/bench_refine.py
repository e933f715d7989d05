"""Speed of the refinement: one 48-frame window, generation with and without refinement.

32 held-out synthetic windows (seed 1000; 2D keypoints, confidences, masks, true camera poses), the
shipped small model, one torch thread (as ``unihand estimate`` and ``unihand demo`` run), after a
warm-up pass; wall time of one ``UniHandPipeline`` call per window, median (and 90th percentile) over
``--repeats`` passes.

    .venv/bin/python bench/bench_refine.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from unihand.data.io import Conditions
from unihand.data.synthetic.world import TEST_SEED, SyntheticWorld
from unihand.pipeline import UniHandPipeline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pipe = UniHandPipeline.from_pretrained()
    inputs = []
    for s in SyntheticWorld(TEST_SEED).sequences(list(range(args.num))):
        c = s.conditions
        inputs.append((Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask, kp2d_conf=c.kp2d_conf, K=c.K,
                                  image_size=c.image_size, fps=c.fps, is_right=c.is_right),
                       s.motion.extra["T_cano_from_cam"]))
    times: dict[str, list[float]] = {"refine off": [], "refine on": []}
    for rep in range(args.repeats + 1):
        for i, (cond, poses) in enumerate(inputs):
            for mode in times:
                t = time.perf_counter()
                pipe(cond, generator=torch.Generator().manual_seed(i), refine=mode == "refine on", camera_poses=poses)
                if rep:  # the first pass warms up
                    times[mode].append(time.perf_counter() - t)
    out = {k: {"median_s": float(np.median(v)), "p90_s": float(np.percentile(v, 90))} for k, v in times.items()}
    for k, v in out.items():
        print(f"48-frame window, {k}: median {v['median_s']:.3f} s, p90 {v['p90_s']:.3f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
