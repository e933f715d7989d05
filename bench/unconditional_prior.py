"""How tightly the refinement holds an unconditional sample (``RefineConfig.unobserved_prior``).

With nothing observed, the refinement has only its priors: staying near the sample, smoothness, joint
limits. ``--num`` unconditional samples of 48 frames (seed 0), pure and refined at each scale of the
prior's sigmas; mean joint acceleration and speed over those of ``--num`` held-out synthetic
sequences (test stream 1000).

    .venv/bin/python bench/unconditional_prior.py [--num 32] [--scales 1,0.1,0.03,0.01] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from unihand.data.synthetic.world import TEST_SEED, SynthConfig, SyntheticWorld
from unihand.pipeline import UniHandPipeline
from unihand.refine.objective import RefineConfig


def accel_speed(joints: np.ndarray, fps: float = 30.0) -> tuple[float, float]:
    """Mean joint acceleration (m/s^2) and speed (m/s)."""
    j = np.asarray(joints, np.float64)
    return (float(np.linalg.norm(j[2:] - 2 * j[1:-1] + j[:-2], axis=-1).mean() * fps**2),
            float(np.linalg.norm(j[1:] - j[:-1], axis=-1).mean() * fps))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num", type=int, default=32)
    ap.add_argument("--scales", default="1,0.1,0.03,0.01")
    ap.add_argument("--checkpoint", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    world = SyntheticWorld(seed=TEST_SEED, config=SynthConfig(frames=48))
    data = np.mean([accel_speed(s.motion.joints) for s in world.sequences(list(range(args.num)))], axis=0)
    pipe = UniHandPipeline.from_pretrained(args.checkpoint)
    print(f"data: acceleration {data[0]:.3f} m/s^2, speed {data[1]:.3f} m/s")
    print("| refinement | acceleration / data | speed / data |\n|---|---|---|")
    rows = [("pure sample", None)] + [(f"unobserved_prior {s}", float(s)) for s in args.scales.split(",")]
    for name, scale in rows:
        if scale is not None:
            pipe.refiner.config = RefineConfig(unobserved_prior=scale)
        out = pipe(None, num_samples=args.num, num_frames=48, generator=torch.Generator().manual_seed(0),
                   refine=scale is not None)
        a, v = np.mean([accel_speed(m.joints) for m in out], axis=0) / data
        print(f"| {name} | {a:.2f} | {v:.2f} |", flush=True)


if __name__ == "__main__":
    main()
