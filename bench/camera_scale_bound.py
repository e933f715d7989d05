"""How well the camera scale can be fitted from the hands at all: the refinement's first
scale fit (:func:`unihand.refine.refiner.path_scale`) run on the *true* hands.

For each rendered video of the camera benchmark, the true wrist positions in each camera (metric) and
the true camera path divided by 2 (a known unit scale) go into that regression (world-frame wrist
accelerations made smallest): the fitted scale over the true one, next to how far the hand and the
camera travel. A ratio far from 1 here is the hand's own movement in the world being taken for the camera's, which no
better hand estimate can fix. ``velocity``: the same regression on velocities instead. Then the
distribution of that ratio over ``--many`` sequences of the same stream.

    .venv/bin/python bench/camera_scale_bound.py [--sequences 8] [--many 300]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_camera import CACHE  # noqa: E402
from camera_data import render_video  # noqa: E402

from unihand.refine.refiner import path_scale  # noqa: E402


def fitted_over_true(wrist_world: np.ndarray, T_cano_from_cam: np.ndarray, order: int) -> float:
    """The regression's scale over the true one for the true wrist path; ``order`` 2: accelerations, 1: velocities."""
    cam_from_cano = np.linalg.inv(T_cano_from_cam)
    R, t = cam_from_cano[:, :3, :3], cam_from_cano[:, :3, 3]
    c = np.einsum("nij,nj->ni", R, wrist_world) + t  # the wrist in each camera, metric
    unit = 2.0
    return path_scale(c, R, t / unit, order=order) / unit


def many(count: int) -> None:
    """The fitted scale over the true one on ``count`` sequences of the same stream (not rendered: the
    regression needs only the true hands and cameras), as a distribution."""
    from camera_data import make_sequence

    ratios = []
    for index in range(count):
        seq = make_sequence(index)
        T = seq.camera.T_cano_from_cam.astype(np.float64)
        if np.linalg.norm(T[:, :3, 3], axis=1).max() < 0.02:  # no travel: no scale to fit
            continue
        ratios.append(fitted_over_true(seq.motion.joints.astype(np.float64)[:, 0], T, 2))
    r = np.abs(np.log(np.array(ratios)))
    q = np.quantile(np.array(ratios), [0.05, 0.5, 0.95])
    print(f"\n{len(ratios)} sequences (of {count}): fitted / true scale 5-50-95th percentiles {q[0]:.2f} / {q[1]:.2f} / "
          f"{q[2]:.2f}; off by more than 10 % on {np.mean(r > np.log(1.1)):.0%}, more than 25 % on "
          f"{np.mean(r > np.log(1.25)):.0%}, more than 50 % on {np.mean(r > np.log(1.5)):.0%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--many", type=int, default=300, help="then the distribution over this many sequences (0: skip)")
    args = ap.parse_args()
    print("| seq | activity | hand travel (cm) | camera travel (cm) | fitted / true scale | velocity |\n|---|---|---|---|---|---|")
    for index in range(args.sequences):
        _, _, seq, _ = render_video(index, CACHE)
        wrist = seq.motion.joints.astype(np.float64)[:, 0]
        T = seq.camera.T_cano_from_cam.astype(np.float64)
        hand = 100 * np.linalg.norm(wrist - wrist[0], axis=1).max()
        cam = 100 * np.linalg.norm(T[:, :3, 3], axis=1).max()
        print(f"| {index} | {seq.activity.split(':')[0]} | {hand:.0f} | {cam:.0f} | "
              f"{fitted_over_true(wrist, T, 2):.2f} | {fitted_over_true(wrist, T, 1):.2f} |", flush=True)
    if args.many:
        many(args.many)


if __name__ == "__main__":
    main()
