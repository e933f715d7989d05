"""Generation benchmark on a held-out synthetic test set (seed 1000, disjoint from training).

VAE reconstruction; generation from 2D / 3D / 2D+3D; missing frames (0/25/50/75 %) and centred
gaps (8/16/32 frames) with the per-frame, linear-interpolation and no-condition-encoder baselines;
unconditional samples against the data (joint limits, acceleration).

    .venv/bin/python bench/eval_generation.py --checkpoint CKPT [--ablation CKPT_MLP] [--num 48] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable

import numpy as np
import torch

from unihand.data.io import Conditions
from unihand.data.synthetic.world import TEST_SEED, SynthConfig, SyntheticWorld
from unihand.eval.baselines import interpolate, per_frame
from unihand.eval.metrics import acc_err, mpjpe, pa_mpjpe
from unihand.hand import fk_numpy, limit_violation, load_hand_model
from unihand.pipeline import UniHandPipeline, condition_arrays

HAND = load_hand_model(None, is_right=True)


def joints(mano: np.ndarray) -> np.ndarray:
    return fk_numpy(HAND, mano)[0]


def scores(pred: np.ndarray, gt: np.ndarray, fps: float) -> dict[str, float]:
    return {"mpjpe": mpjpe(pred, gt), "pa_mpjpe": pa_mpjpe(pred, gt), "acc_err": acc_err(pred, gt, fps)}


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def only(cond: Conditions, keep: tuple[str, ...], frame_keep: np.ndarray | None = None) -> Conditions:
    """A copy of ``cond`` with only the modalities in ``keep``, frames outside ``frame_keep`` masked."""
    kw = {}
    for m in keep:
        arr = getattr(cond, m)
        mask = getattr(cond, f"{m}_mask")
        mask = np.ones(arr.shape[:2] if m != "mano" else arr.shape[:1], bool) if mask is None else mask.copy()
        if frame_keep is not None:
            mask &= frame_keep if mask.ndim == 1 else frame_keep[:, None]
        kw[m], kw[f"{m}_mask"] = arr, mask
    return Conditions(**kw, K=cond.K, image_size=cond.image_size, fps=cond.fps, is_right=cond.is_right)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--ablation", default=None, help="checkpoint trained with vae.condition_encoders=false")
    ap.add_argument("--num", type=int, default=48)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)  # the small model's matrices are too small for OpenMP to pay off
    pipe = UniHandPipeline.from_pretrained(args.checkpoint)
    model = pipe.model
    ablation = UniHandPipeline.from_pretrained(args.ablation) if args.ablation else None
    one = lambda p, cond, i, **kw: p(cond, generator=torch.Generator().manual_seed(i), **kw).motions[0]  # noqa: E731
    world = SyntheticWorld(TEST_SEED, SynthConfig(left_p=0.0))
    seqs = [world.sequence(i) for i in range(args.num)]
    fps = seqs[0].motion.fps
    out: dict[str, dict] = {}
    t0 = time.time()

    # VAE reconstruction
    rec = {"unknown first frame": [], "known first frame": []}
    for s in seqs:
        mano = torch.from_numpy(s.motion.mano())[None]
        with torch.no_grad():
            lat = model.encode_latent(mano)
            for name, ff in (("unknown first frame", None), ("known first frame", mano[:, 0])):
                pred = model.vae.codec.decode_motion(model.decode_latent(lat, ff))[0].numpy()
                rec[name].append(scores(joints(pred), s.motion.joints, fps))
    out["vae_reconstruction"] = {k: mean_scores(v) for k, v in rec.items()}

    # generation by condition type (the synthetic detector's own masks and noise)
    gen = {}
    for name, keep in (("2D", ("kp2d",)), ("3D", ("kp3d",)), ("2D+3D", ("kp2d", "kp3d"))):
        gen[name] = mean_scores([scores(one(pipe, only(s.conditions, keep), i).joints, s.motion.joints, fps)
                                 for i, s in enumerate(seqs)])
    full3d = []
    for i, s in enumerate(seqs):
        c = Conditions(kp3d=s.motion.joints, kp3d_mask=np.ones((s.num_frames, 21), bool), K=s.conditions.K,
                       image_size=s.conditions.image_size)
        full3d.append(scores(one(pipe, c, i).joints, s.motion.joints, fps))
    gen["3D: every joint of every frame given (exact keypoints)"] = mean_scores(full3d)
    out["generation"] = gen

    # missing frames and gaps
    rng = np.random.default_rng(0)
    settings: list[tuple[str, Callable[[int], np.ndarray]]] = []
    for rate in (0.0, 0.25, 0.5, 0.75):
        def drop(n: int, rate: float = rate) -> np.ndarray:
            keep = np.ones(n, bool)
            keep[rng.choice(n, int(round(rate * n)), replace=False)] = False
            keep[0] |= not keep.any()
            return keep
        settings.append((f"{int(rate * 100)}% frames missing", drop))
    for gap in (8, 16, 32):
        def hole(n: int, gap: int = gap) -> np.ndarray:
            keep = np.ones(n, bool)
            start = (n - gap) // 2
            keep[start : start + gap] = False
            return keep
        settings.append((f"gap of {gap} frames", hole))
    table: dict[str, dict[str, dict[str, float]]] = {}
    for mod in ("2D", "MANO"):
        keep_mods = ("kp2d",) if mod == "2D" else ("mano",)
        for name, pattern in settings:
            if mod == "MANO" and name.startswith("0%"):
                continue
            rows: dict[str, list] = {"UniHand": [], "per-frame": [], "linear interpolation": []}
            if ablation is not None:
                rows["w/o condition encoders"] = []
            for i, s in enumerate(seqs):
                keep = pattern(s.num_frames)
                cond = only(s.conditions, keep_mods, keep)
                gt = s.motion.joints
                rows["UniHand"].append(scores(one(pipe, cond, i).joints, gt, fps))
                arrays = condition_arrays(cond, s.num_frames)
                pf = per_frame(model, arrays, seed=i)
                rows["per-frame"].append(scores(joints(pf), gt, fps))
                known = keep & (cond.frame_mask(keep_mods[0]))
                base = s.conditions.mano if mod == "MANO" else pf
                rows["linear interpolation"].append(scores(joints(interpolate(base, known)), gt, fps))
                if ablation is not None:
                    rows["w/o condition encoders"].append(scores(one(ablation, cond, i).joints, gt, fps))
            table[f"{mod}: {name}"] = {k: mean_scores(v) for k, v in rows.items()}
    out["missing_frames"] = table

    # unconditional samples against the data
    samples = [one(pipe, None, i, num_frames=48) for i in range(args.num)]
    def viol(hp: np.ndarray) -> float:
        return float(limit_violation(torch.from_numpy(hp), tol_deg=5.0).float().mean())
    def accel(j: np.ndarray) -> float:
        return float(np.linalg.norm(j[2:] - 2 * j[1:-1] + j[:-2], axis=-1).mean() * fps**2)
    out["unconditional"] = {
        "frames within joint limits (5° tol.), samples": 1 - float(np.mean([viol(m.hand_pose) for m in samples])),
        "frames within joint limits (5° tol.), data": 1 - float(np.mean([viol(s.motion.hand_pose) for s in seqs])),
        "mean joint acceleration m/s^2, samples": float(np.mean([accel(m.joints) for m in samples])),
        "mean joint acceleration m/s^2, data": float(np.mean([accel(s.motion.joints) for s in seqs])),
    }
    out["meta"] = {"sequences": args.num, "test_seed": TEST_SEED, "seconds": round(time.time() - t0, 1),
                   "checkpoint": args.checkpoint or "shipped", "ablation": args.ablation}
    print_markdown(out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


def print_markdown(out: dict) -> None:
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"
    print("\n### VAE reconstruction (MPJPE / PA-MPJPE mm, AccEr m/s²)\n")
    print("| decoder anchor | MPJPE | PA-MPJPE | AccEr |\n|---|---|---|---|")
    for k, v in out["vae_reconstruction"].items():
        print(f"| {k} | {fmt(v['mpjpe'])} | {fmt(v['pa_mpjpe'])} | {fmt(v['acc_err'])} |")
    print("\n### Generation by condition\n")
    print("| conditions | MPJPE | PA-MPJPE | AccEr |\n|---|---|---|---|")
    for k, v in out["generation"].items():
        print(f"| {k} | {fmt(v['mpjpe'])} | {fmt(v['pa_mpjpe'])} | {fmt(v['acc_err'])} |")
    print("\n### Missing frames and gaps (MPJPE / PA-MPJPE mm / AccEr m/s²)\n")
    methods = list(next(iter(out["missing_frames"].values())))
    print("| setting | " + " | ".join(methods) + " |\n|---|" + "---|" * len(methods))
    for k, v in out["missing_frames"].items():
        cells = [f"{fmt(v[m]['mpjpe'])} / {fmt(v[m]['pa_mpjpe'])} / {fmt(v[m]['acc_err'])}" for m in methods]
        print(f"| {k} | " + " | ".join(cells) + " |")
    print("\n### Unconditional samples\n")
    for k, v in out["unconditional"].items():
        print(f"- {k}: {v:.3f}")
    print(f"\n({out['meta']})")


if __name__ == "__main__":
    main()
