"""Which form of the learned prior the refinement uses (docs/design.md "Refinement").

Three ways to make a sample consistent with its 2D evidence while keeping the learned motion prior,
each measured here on the same validation windows (synthetic seed 900, 2D only, true camera poses):

- **near the sample** (what UniHand ships): Levenberg-Marquardt on the MANO parameters with a term
  keeping them near the diffusion sample, plus smoothness, joint limits and one shape
  (:class:`unihand.refine.refiner.Refiner`);
- **latent optimisation**: Adam on the joint-VAE latent ``[g; z]`` through the autoregressive decoder,
  the same robust 2D term plus ``|latent - sampled latent|^2``;
- **reconstruction guidance**: every DDIM step's clean-latent estimate moved down the gradient of the
  same 2D term through the decoder (Chung et al.'s DPS on x0), then the usual DDIM update.

Reported: pooled median error of the reprojected joints against the true 2D joints over the
synthetic detector's own (observed frames), PA-MPJPE, MPJPE, CPU seconds per 48-frame window.

    .venv/bin/python bench/prior_forms.py [--num 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from unihand.data.io import Conditions
from unihand.data.synthetic.world import SyntheticWorld
from unihand.eval.metrics import mpjpe, pa_mpjpe
from unihand.geometry.camera import project
from unihand.geometry.mirror import mirror_camera_poses, mirror_mano_vector
from unihand.hand import fk_numpy, load_hand_model
from unihand.pipeline import UniHandModel, condition_arrays, make_scheduler
from unihand.pipeline.mirror import mirror_arrays
from unihand.pipeline.windows import generate_windows
from unihand.refine.objective import RefineConfig, robust
from unihand.refine.refiner import Refiner
from unihand.diffusion.sampling import denoise_steps, sample_scheduler
from unihand.video.conditions import reproject

VALIDATION_SEED = 900
CFG = RefineConfig()


def reprojection_loss(hand, mano: torch.Tensor, arrays: dict, cam_from_cano: torch.Tensor) -> torch.Tensor:
    """The refinement's robust metric 2D term (Geman-McClure), differentiable in ``mano`` (N, 61)."""
    joints = hand(global_orient=mano[:, :3], hand_pose=mano[:, 3:48], betas=mano[:, 48:58], transl=mano[:, 58:]).joints
    cam = torch.einsum("nij,nkj->nki", cam_from_cano[:, :3, :3], joints) + cam_from_cano[:, None, :3, 3]
    K = torch.from_numpy(arrays["K"]).float()
    kp = torch.from_numpy(arrays["kp2d"] * arrays["image_size"]).float()
    w = torch.from_numpy(arrays["kp2d_mask"] * arrays.get("kp2d_conf", 1.0)).float()
    uv = project(cam, K)
    scale = cam[:, :1, 2:3].detach().clamp_min(0.05) / K[0, 0]
    rho, _ = robust(((uv - kp) * scale).pow(2).sum(-1), CFG.robust_2d, "gm")
    return (w * rho).sum() / CFG.sigma_2d**2


def latent_optimisation(model: UniHandModel, latent: torch.Tensor, loss_fn, steps: int = 60, lr: float = 0.05) -> torch.Tensor:
    start = latent.detach()
    z = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        mano = model.vae.codec.decode_motion(model.decode_latent(z))[0]
        loss = loss_fn(mano) + (z - start).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return model.vae.codec.decode_motion(model.decode_latent(z))[0]


def guided(model: UniHandModel, batch: dict, loss_fn, generator: torch.Generator, inner: int = 3) -> torch.Tensor:
    dcfg = model.cfg.diffusion
    tokens = model.condition_tokens(batch)
    sched = sample_scheduler(dcfg)
    sched.set_timesteps(dcfg.sample_steps)
    uncond = model.denoiser.null_conditions(1, tokens.shape[1] - 1)
    step = denoise_steps(model.denoiser, torch.cat([tokens, uncond]), sched.timesteps)
    z = torch.randn((1, tokens.shape[1], model.denoiser.latent_dim), generator=generator)
    decode = lambda x: model.vae.codec.decode_motion(model.decode_latent(x))[0]  # noqa: E731
    lr = 0.1
    for i, t in enumerate(sched.timesteps):
        with torch.no_grad():
            pc, pu = step(z, i).chunk(2)
            x0 = pu + dcfg.cfg_scale * (pc - pu)
        for _ in range(inner):  # gradient steps on the clean-latent estimate, step size by backtracking
            x = x0.detach().requires_grad_(True)
            loss = loss_fn(decode(x))
            grad, = torch.autograd.grad(loss, x)
            with torch.no_grad():
                while lr > 1e-6:
                    cand = x0 - lr * grad / (grad.norm() + 1e-12)
                    if loss_fn(decode(cand)) < loss:
                        x0, lr = cand, lr * 1.5
                        break
                    lr *= 0.5
        z = sched.step(x0.detach(), t, z, eta=0.0).prev_sample
    with torch.no_grad():
        return decode(z)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num", type=int, default=16)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = UniHandModel.from_pretrained()
    rh = load_hand_model(None, is_right=True)
    hands = {True: rh, False: load_hand_model(None, is_right=False)}
    rows: dict[str, dict[str, list]] = {}
    det_all = []
    for s in SyntheticWorld(VALIDATION_SEED).sequences(list(range(args.num))):
        c = s.conditions
        cond = Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask, kp2d_conf=c.kp2d_conf, K=c.K, image_size=c.image_size,
                          fps=c.fps, is_right=c.is_right)
        arrays = condition_arrays(cond, s.num_frames)
        poses = s.motion.extra["T_cano_from_cam"]
        if not s.is_right:
            arrays, poses = mirror_arrays(arrays), mirror_camera_poses(poses)
        cam = torch.from_numpy(np.linalg.inv(poses)).float()
        loss_fn = lambda m: reprojection_loss(rh, m, arrays, cam)  # noqa: E731
        batch = {k: torch.from_numpy(np.asarray(v))[None] for k, v in arrays.items() if k != "kp2d_conf"}
        gen = torch.Generator().manual_seed(s.index)
        t = time.process_time()
        sample_mano = torch.from_numpy(generate_windows(model, make_scheduler(model), arrays, s.num_frames,
                                                        generator=torch.Generator().manual_seed(s.index))[0])
        t_sample = time.process_time() - t
        outs: dict[str, tuple[np.ndarray, float]] = {}
        t = time.process_time()
        outs["near the sample (shipped)"] = (Refiner(rh)(sample_mano.numpy(), arrays, c.fps, poses),
                                             time.process_time() - t + t_sample)
        with torch.no_grad():
            latent = model.encode_latent(sample_mano[None])
        t = time.process_time()
        outs["latent optimisation"] = (latent_optimisation(model, latent, loss_fn).numpy(),
                                       time.process_time() - t + t_sample)
        t = time.process_time()
        outs["reconstruction guidance"] = (guided(model, batch, loss_fn, gen).numpy(), time.process_time() - t)
        outs["pure sample"] = (sample_mano.numpy(), t_sample)
        obs = c.kp2d_mask
        det_all.append(np.linalg.norm(c.kp2d * c.image_size - s.motion.joints_2d, axis=-1)[obs])
        for name, (mano, secs) in outs.items():
            if not s.is_right:
                mano = mirror_mano_vector(mano)
            joints = fk_numpy(hands[s.is_right], mano.astype(np.float32))[0]
            err = np.linalg.norm(reproject(joints, c.K, s.motion.extra["T_cano_from_cam"]) - s.motion.joints_2d, axis=-1)
            r = rows.setdefault(name, {"err": [], "pa": [], "mpjpe": [], "s": []})
            r["err"].append(err[obs])
            r["pa"].append(pa_mpjpe(joints, s.motion.joints))
            r["mpjpe"].append(mpjpe(joints, s.motion.joints))
            r["s"].append(secs)
    det = float(np.median(np.concatenate(det_all)))
    out = {"detector median px": det}
    print(f"detector: {det:.2f} px median against the true 2D joints ({args.num} windows)")
    print(f"{'prior form':<28} {'reproj / detector':>17} {'PA-MPJPE':>9} {'MPJPE':>7} {'CPU s/window':>13}")
    for name, r in rows.items():
        ratio = float(np.median(np.concatenate(r["err"]))) / det
        out[name] = {"ratio": ratio, "pa_mpjpe": float(np.mean(r["pa"])), "mpjpe": float(np.mean(r["mpjpe"])),
                     "cpu_s": float(np.median(r["s"]))}
        print(f"{name:<28} {ratio:>17.3f} {out[name]['pa_mpjpe']:>9.2f} {out[name]['mpjpe']:>7.1f} {out[name]['cpu_s']:>13.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
