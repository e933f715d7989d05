"""Training recipe ablation: diffusion-stage variants trained for the same number of steps
(the same CPU time: the variants cost the same per step), scored on held-out synthetic windows.

Each variant trains the small denoiser from scratch on the synthetic stream with the shipped joint VAE
frozen (``unihand train diffusion --config diffusion_small --set vae=<shipped>``), then is scored with
pure sampling (no refinement: the recipe is what is compared) on ``--num`` test windows (seed 1000):
PA-MPJPE and MPJPE from the synthetic detector's 2D keypoints, the same with 50 % of the frames
dropped, and the mean joint acceleration of unconditional samples over the data's.

    .venv/bin/python bench/recipe_ablation.py [--steps 1000] [--variants baseline,ema,min_snr] [--num 32]
    .venv/bin/python bench/recipe_ablation.py --sampling CKPT     # DDIM step count and spacing

Variants: ``baseline`` (the shipped recipe: x0 target, uniform weighting, linear decay),
``ema`` (``train.ema=0.995``), ``min_snr`` (``train.min_snr_gamma=5``), ``ema_min_snr`` (both),
``lr_half`` (``train.lr=3.5e-4``), ``batch64`` (``train.batch_size=64``, half the steps).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

VARIANTS: dict[str, list[str]] = {
    "baseline": [],
    "ema": ["train.ema=0.995"],
    "min_snr": ["train.min_snr_gamma=5"],
    "ema_min_snr": ["train.ema=0.995", "train.min_snr_gamma=5"],
    "lr_half": ["train.lr=3.5e-4"],
    "batch64": ["train.batch_size=64"],
}


def train(name: str, steps: int, out: Path) -> float:
    """Train one variant (resumes if interrupted); CPU seconds of the training process."""
    from unihand.models.unihand_model import shipped_checkpoint

    sets = VARIANTS[name]
    n = steps // 2 if name == "batch64" else steps
    args = ["train", "diffusion", "--config", "diffusion_small", "--out", str(out / name),
            "--set", f"vae={shipped_checkpoint()}", "--set", f"train.max_steps={n}",
            "--set", f"train.ckpt_every={max(50, n // 8)}", "--set", f"train.val_every={n}"]
    for s in sets:
        args += ["--set", s]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "unihand", *args], check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def score(checkpoint: Path, num: int, steps: int | None = None, spacing: str = "trailing") -> dict[str, float]:
    """Pure-sampling scores on held-out windows (see the module doc), DDIM with ``steps`` (None: the
    checkpoint's) spaced ``spacing`` over the training schedule."""
    from diffusers import DDIMScheduler

    from unihand.data.io import Conditions
    from unihand.data.synthetic.world import TEST_SEED, SynthConfig, SyntheticWorld
    from unihand.eval.metrics import mpjpe, pa_mpjpe
    from unihand.pipeline import UniHandPipeline

    pipe = UniHandPipeline.from_pretrained(checkpoint)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing=spacing)
    world = SyntheticWorld(seed=TEST_SEED, config=SynthConfig(frames=48))
    rows: dict[str, list[float]] = {k: [] for k in ("pa", "mp", "pa50", "mp50")}
    for i in range(num):
        seq = world.sequence(i)
        c, gt = seq.conditions, seq.motion.joints.astype(np.float64)
        for tag, drop in (("", None), ("50", np.random.default_rng(i).random(c.num_frames) < 0.5)):
            mask = c.kp2d_mask.copy()
            if drop is not None:
                mask[drop] = False
            cond = Conditions(kp2d=c.kp2d, kp2d_mask=mask, kp2d_conf=c.kp2d_conf, K=c.K, image_size=c.image_size,
                              fps=c.fps, is_right=c.is_right)
            m, = pipe(cond, num_inference_steps=steps, generator=torch.Generator().manual_seed(i), refine=False)
            rows["pa" + tag].append(pa_mpjpe(m.joints, gt))
            rows["mp" + tag].append(mpjpe(m.joints, gt))
    unc = pipe(None, num_samples=num, num_frames=48, num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
               refine=False)
    acc = lambda j: float(np.linalg.norm(j[2:] - 2 * j[1:-1] + j[:-2], axis=-1).mean() * 30.0**2)  # noqa: E731
    data_acc = float(np.mean([acc(world.sequence(i).motion.joints.astype(np.float64)) for i in range(num)]))
    out = {k: float(np.mean(v)) for k, v in rows.items()}
    out["uncond_acc"] = float(np.mean([acc(m.joints.astype(np.float64)) for m in unc]))
    out["uncond_acc_over_data"] = out["uncond_acc"] / data_acc
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--variants", default="baseline,ema,min_snr")
    ap.add_argument("--num", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path("runs/recipe_ablation"))
    ap.add_argument("--sampling", type=Path, default=None, metavar="CKPT",
                    help="instead: score one checkpoint with DDIM at 5/10/20/50 steps (trailing) and 10 (leading)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.sampling is not None:
        print("| DDIM steps | spacing | 2D PA-MPJPE | 2D MPJPE | 50 % missing PA / MP | uncond. accel / data |")
        for steps, spacing in ((5, "trailing"), (10, "trailing"), (20, "trailing"), (50, "trailing"), (10, "leading")):
            r = score(args.sampling, args.num, steps, spacing)
            print(f"| {steps} | {spacing} | {r['pa']:.2f} | {r['mp']:.1f} | {r['pa50']:.2f} / {r['mp50']:.1f} "
                  f"| {r['uncond_acc_over_data']:.2f} |", flush=True)
        return
    results = {}
    path = args.out / "results.json"
    if path.exists():
        results = json.loads(path.read_text())
    for name in args.variants.split(","):
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r} (choose from {', '.join(VARIANTS)})")
        if name in results:
            continue
        t0 = time.perf_counter()
        cpu = train(name, args.steps, args.out)
        row = {"train_cpu_s": cpu, "train_wall_s": time.perf_counter() - t0, **score(args.out / name / "export", args.num)}
        results[name] = row
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        print(name, json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)
    print("| variant | train CPU (s) | 2D PA-MPJPE | 2D MPJPE | 50 % missing PA / MP | uncond. accel / data |")
    for name, r in results.items():
        print(f"| {name} | {r['train_cpu_s']:.0f} | {r['pa']:.2f} | {r['mp']:.1f} | {r['pa50']:.2f} / {r['mp50']:.1f} "
              f"| {r['uncond_acc_over_data']:.2f} |")


if __name__ == "__main__":
    main()
