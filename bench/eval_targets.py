"""The prior's targets on held-out synthetic windows, pure sampling and refined, with their
baselines in the same run; one or more checkpoints side by side.

``--num`` test windows of 48 frames (stream 1000: both hands, static and head-mounted cameras; the
refinement gets the true camera poses, as ``unihand evaluate`` does). mm unless said.

- VAE reconstruction (MPJPE, unknown first frame);
- 2D only: the synthetic detector's keypoints and masks; the same with 50 % of the frames dropped
  (PA-MPJPE and MPJPE);
- a centred 32-frame gap in the 2D keypoints: MPJPE inside the gap, against linear interpolation
  (slerp of the rotations) of the refined estimate's frames on either side of the gap;
- unconditional samples (pure, and refined: with no evidence the refinement applies its smoothness and
  joint-limit priors only): mean joint acceleration over the data's, and the fraction of frames with a
  joint more than 1 degree beyond its limits (the data's: none, by construction);
- CPU seconds per 48-frame window (2D conditions, one thread), pure and refined.

    .venv/bin/python bench/eval_targets.py [--checkpoints shipped,runs/x/export] [--num 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from unihand.data.io import Conditions
from unihand.data.synthetic.world import TEST_SEED, SynthConfig, SyntheticWorld
from unihand.eval.baselines import interpolate
from unihand.eval.metrics import mpjpe, pa_mpjpe
from unihand.geometry.mirror import mirror_mano_vector
from unihand.hand import fk_numpy, limit_violation, load_hand_model
from unihand.pipeline import UniHandPipeline

GAP = 32


def accel(j: np.ndarray, fps: float) -> float:
    return float(np.linalg.norm(j[2:] - 2 * j[1:-1] + j[:-2], axis=-1).mean() * fps**2)


def evaluate(checkpoint: str | None, seqs: list, num_uncond: int) -> dict[str, float]:
    pipe = UniHandPipeline.from_pretrained(checkpoint)
    model = pipe.model
    rows: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        rows.setdefault(key, []).append(value)

    for i, s in enumerate(seqs):
        c, gt = s.conditions, s.motion.joints.astype(np.float64)
        hand = load_hand_model(None, is_right=c.is_right)
        mano = s.motion.mano() if c.is_right else mirror_mano_vector(s.motion.mano())  # the VAE is right-handed
        with torch.no_grad():
            rec = model.vae.codec.decode_motion(model.decode_latent(model.encode_latent(torch.from_numpy(mano)[None])))
        rec = rec[0].numpy() if c.is_right else mirror_mano_vector(rec[0].numpy())
        add("vae_mpjpe", mpjpe(fk_numpy(hand, rec)[0], gt))
        n = c.num_frames
        drop = np.random.default_rng(i).random(n) < 0.5
        known = np.ones(n, bool)
        known[(n - GAP) // 2:(n - GAP) // 2 + GAP] = False
        for tag, keep in (("2d", np.ones(n, bool)), ("2d50", ~drop), ("gap", known)):
            cond = Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask & keep[:, None], kp2d_conf=c.kp2d_conf, K=c.K,
                              image_size=c.image_size, fps=c.fps, is_right=c.is_right)
            for refine in (False, True):
                name = f"{tag}_{'refined' if refine else 'pure'}"
                t0 = time.process_time()
                m, = pipe(cond, generator=torch.Generator().manual_seed(i), refine=refine,
                          camera_poses=s.camera.T_cano_from_cam)
                if tag == "2d":
                    add(f"s_per_window_{name}", time.process_time() - t0)
                j = m.joints.astype(np.float64)
                if tag == "gap":
                    add(f"gap_mpjpe_{name}", mpjpe(j[~known], gt[~known]))
                    if refine:
                        interp = fk_numpy(hand, interpolate(m.mano(), known))[0]
                        add("gap_mpjpe_interpolation", mpjpe(interp[~known], gt[~known]))
                else:
                    add(f"{name}_pa_mpjpe", pa_mpjpe(j, gt))
                    add(f"{name}_mpjpe", mpjpe(j, gt))
    out = {k: float(np.mean(v)) for k, v in rows.items()}
    data_accel = float(np.mean([accel(s.motion.joints.astype(np.float64), 30.0) for s in seqs]))
    for refine in (False, True):
        tag = "refined" if refine else "pure"
        unc = pipe(None, num_samples=num_uncond, num_frames=48, generator=torch.Generator().manual_seed(0),
                   refine=refine)
        out[f"uncond_accel_over_data_{tag}"] = float(np.mean([accel(m.joints.astype(np.float64), 30.0)
                                                              for m in unc])) / data_accel
        # frames with a joint more than 1 degree beyond its limits (the data's: none)
        out[f"uncond_frames_beyond_limits_{tag}"] = float(np.mean([
            limit_violation(torch.from_numpy(m.hand_pose.astype(np.float64))).double().mean().item() for m in unc]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoints", default="shipped")
    ap.add_argument("--num", type=int, default=32)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    world = SyntheticWorld(seed=TEST_SEED, config=SynthConfig(frames=48))
    seqs = [world.sequence(i) for i in range(args.num)]
    results = {}
    for ck in args.checkpoints.split(","):
        results[ck] = evaluate(None if ck == "shipped" else ck, seqs, args.num)
        print(ck, json.dumps({k: round(v, 3) for k, v in results[ck].items()}), flush=True)
    keys = list(next(iter(results.values())))
    print("| | " + " | ".join(results) + " |")
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{r[k]:.3f}" for r in results.values()) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
