"""Refinement benchmark on held-out synthetic sequences, UniHand with and without refinement.

Sequences: the evaluation stream (seed 1000, disjoint from training), left and right hands, static
and head-mounted cameras (their true poses are given to ``generate``, as a user with a calibrated
rig would), 48 frames; long sequences for the window joins. Every row is measured in this run next to
its baseline:

- 3D keypoints (the true joints) on every frame: MPJPE per sequence (mean and max);
- gaps of 8 / 16 / 32 frames (centred) in 3D keypoints: MPJPE inside the gap against linear
  interpolation of the known keypoints; in MANO parameters: against slerp of the known rotations plus
  lerp of the translation;
- 2D only (the synthetic detector's keypoints, confidences and masks) with 0 and 50 % of the frames
  missing: PA-MPJPE and MPJPE;
- on observed frames: the reprojected joints' error against the true 2D joints, against the synthetic
  detector's own error (pooled medians, px; and the median of the per-sequence ratios);
- bone-length standard deviation over each sequence (mm);
- windowed long sequences (240 frames = 7 windows): the largest joint acceleration within 2 frames of
  a window join over the 95th percentile elsewhere, for the true motion too (a fast movement can fall
  on a join) and over the sequences whose true motion is no faster at the joins (ratio <= 1.5); and
  the same for the acceleration error against the truth (a seam is an error the truth does not have);
- time per 48-frame window (generation + refinement, one torch thread).

    .venv/bin/python bench/eval_refine.py [--num 32] [--long 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from unihand.data.io import Conditions
from unihand.data.synthetic.world import TEST_SEED, SynthConfig, SyntheticSequence, SyntheticWorld
from unihand.eval.baselines import interpolate
from unihand.eval.metrics import bone_lengths, mpjpe, pa_mpjpe, window_join_ratio
from unihand.hand import fk_numpy, load_hand_model
from unihand.pipeline import UniHandPipeline
from unihand.video.conditions import reproject

GAPS = (8, 16, 32)


def base(s: SyntheticSequence) -> dict:
    c = s.conditions
    return dict(K=c.K, image_size=c.image_size, fps=c.fps, is_right=c.is_right)


def two_d(s: SyntheticSequence, keep: np.ndarray | None = None) -> Conditions:
    c = s.conditions
    mask = c.kp2d_mask if keep is None else c.kp2d_mask & keep[:, None]
    return Conditions(kp2d=c.kp2d, kp2d_mask=mask, kp2d_conf=c.kp2d_conf, **base(s))


def gap_mask(n: int, g: int) -> np.ndarray:
    known = np.ones(n, bool)
    a = (n - g) // 2
    known[a : a + g] = False
    return known


def lerp_keypoints(kp: np.ndarray, known: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(known)
    t = np.arange(len(kp))
    flat = kp.reshape(len(kp), -1)
    return np.stack([np.interp(t, idx, flat[idx, c]) for c in range(flat.shape[1])], 1).reshape(kp.shape)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--num", type=int, default=32)
    ap.add_argument("--long", type=int, default=16, help="long sequences for the window joins")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pipe = UniHandPipeline.from_pretrained(args.checkpoint)
    frames = pipe.model.cfg.frames
    hands = {True: load_hand_model(None, is_right=True), False: load_hand_model(None, is_right=False)}
    seqs = SyntheticWorld(TEST_SEED).sequences(list(range(args.num)))
    rows: dict[str, list[float]] = {}
    add = lambda k, v: rows.setdefault(k, []).append(float(v))  # noqa: E731
    pooled: dict[str, list[np.ndarray]] = {"detector": [], "refine on": [], "refine off": []}
    times: list[float] = []
    for s in seqs:
        gt, poses, n = s.motion.joints, s.motion.extra["T_cano_from_cam"], s.num_frames
        gen = lambda cond, refine=True: pipe(cond, generator=torch.Generator().manual_seed(s.index), refine=refine,  # noqa: E731
                                             camera_poses=poses).motions[0]
        # 3D keypoints on every frame
        lift = Conditions(kp3d=gt, kp3d_mask=np.ones((n, 21), bool), **base(s))
        for mode in ("on", "off"):
            add(f"3d every frame, refine {mode}", mpjpe(gen(lift, mode == "on").joints, gt))
        # gaps
        mano = s.motion.mano()
        for g in GAPS:
            known = gap_mask(n, g)
            inside = ~known
            cond = Conditions(kp3d=gt, kp3d_mask=known, **base(s))
            for mode in ("on", "off"):
                add(f"3d gap {g}, refine {mode}", mpjpe(gen(cond, mode == "on").joints[inside], gt[inside]))
            add(f"3d gap {g}, linear interpolation", mpjpe(lerp_keypoints(gt, known)[inside], gt[inside]))
            cond = Conditions(mano=mano, mano_mask=known, **base(s))
            for mode in ("on", "off"):
                add(f"mano gap {g}, refine {mode}", mpjpe(gen(cond, mode == "on").joints[inside], gt[inside]))
            slerp = fk_numpy(hands[s.is_right], interpolate(mano, known))[0]
            add(f"mano gap {g}, slerp + lerp", mpjpe(slerp[inside], gt[inside]))
        # 2D only
        c = s.conditions
        for missing in (0, 50):
            keep = None if missing == 0 else np.random.default_rng([s.index, missing]).random(n) >= missing / 100
            cond = two_d(s, keep)
            for mode in ("on", "off"):
                t0 = time.perf_counter()
                m = gen(cond, mode == "on")
                if missing == 0 and mode == "on":
                    times.append(time.perf_counter() - t0)
                add(f"2d {missing}% missing, refine {mode}: PA-MPJPE", pa_mpjpe(m.joints, gt))
                add(f"2d {missing}% missing, refine {mode}: MPJPE", mpjpe(m.joints, gt))
                if missing == 0:
                    obs = cond.kp2d_mask
                    err = np.linalg.norm(reproject(m.joints, c.K, poses) - s.motion.joints_2d, axis=-1)[obs]
                    pooled[f"refine {mode}"].append(err)
                    add(f"bone-length std (mm), refine {mode}", 1000 * bone_lengths(m.joints).std(0).mean())
        det = np.linalg.norm(c.kp2d * c.image_size - s.motion.joints_2d, axis=-1)[c.kp2d_mask]
        pooled["detector"].append(det)
        if det.size:
            add("reprojection ratio per sequence (refined / detector)",
                np.median(pooled["refine on"][-1]) / np.median(det))
    for k, v in pooled.items():
        add(f"reprojection vs true 2D, median px: {k}", np.median(np.concatenate(v)))
    # windowed long sequences
    long_world = SyntheticWorld(TEST_SEED + 1, SynthConfig(frames=240))
    for s in long_world.sequences(list(range(args.long))):
        poses = s.motion.extra["T_cano_from_cam"]
        gt_ratio = window_join_ratio(s.motion.joints, s.motion.fps, frames, 16)
        add("window joins: max accel / p95 elsewhere, ground truth", gt_ratio)
        for mode in ("on", "off"):
            m = pipe(two_d(s), generator=torch.Generator().manual_seed(s.index), refine=mode == "on", camera_poses=poses).motions[0]
            r = window_join_ratio(m.joints, s.motion.fps, frames, 16)
            add(f"window joins: max accel / p95 elsewhere, refine {mode}", r)
            if gt_ratio <= 1.5:  # the motion itself is no faster at the joins than elsewhere
                add(f"window joins where the true motion's ratio <= 1.5, refine {mode}", r)
            add(f"window joins: max accel error / p95 elsewhere, refine {mode}",
                window_join_ratio(m.joints, s.motion.fps, frames, 16, reference=s.motion.joints))
    out = {k: {"mean": float(np.mean(v)), "max": float(np.max(v)), "n": len(v)} for k, v in rows.items()}
    out["time per 48-frame window (s), refine on"] = {"median": float(np.median(times)), "max": float(np.max(times))}
    width = max(len(k) for k in out)
    for k, v in out.items():
        print(f"{k:<{width}}  " + "  ".join(f"{a} {b:.3f}" if isinstance(b, float) else f"{a} {b}" for a, b in v.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
