"""DDPM training schedule and DDIM sampling with classifier-free guidance (paper A.3).

The schedules are diffusers' (cosine = ``squaredcos_cap_v2``), predicting the clean sample,
with ``clip_sample=False`` since latents are not bounded like images.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import Tensor

from unihand.config import DiffusionConfig
from unihand.models.denoiser import Denoiser


def _kwargs(cfg: DiffusionConfig) -> dict:
    return dict(
        num_train_timesteps=cfg.train_steps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="sample",
        clip_sample=False,
    )


def train_scheduler(cfg: DiffusionConfig) -> DDPMScheduler:
    return DDPMScheduler(**_kwargs(cfg))


def sample_scheduler(cfg: DiffusionConfig) -> DDIMScheduler:
    # "trailing" spacing starts sampling at the last training step (pure noise), as it should.
    return DDIMScheduler(**_kwargs(cfg), timestep_spacing="trailing", set_alpha_to_one=True)


@torch.no_grad()
def guided_sample(
    denoiser: Denoiser,
    scheduler: DDIMScheduler,
    cond_tokens: Tensor,
    *,
    steps: int,
    cfg_scale: float,
    generator: torch.Generator | None = None,
    vision: Tensor | None = None,
    vision_mask: Tensor | None = None,
    z_init: Tensor | None = None,
) -> Tensor:
    """Sample clean latents (B, N+1, L) given fused condition tokens (B, N+1, M*L).

    With ``cfg_scale != 1`` the conditional and unconditional passes run as one batch:
    z0 = G(z_t, null) + w (G(z_t, c) - G(z_t, null)).
    """
    b, n1, _ = cond_tokens.shape
    device, dtype = cond_tokens.device, cond_tokens.dtype
    shape = (b, n1, denoiser.latent_dim)
    # noise from a CPU generator, then moved: the same seed gives the same sample on any device
    z = torch.randn(shape, generator=generator, dtype=dtype).to(device) if z_init is None else z_init
    scheduler.set_timesteps(steps, device=device)
    guided = cfg_scale != 1.0
    if guided:
        uncond = denoiser.null_conditions(b, n1 - 1).to(dtype)
        tokens = torch.cat([cond_tokens, uncond], dim=0)
        if vision is not None:
            vm = torch.ones(b, n1 - 1, dtype=torch.bool, device=device) if vision_mask is None else vision_mask
            vision = torch.cat([vision, vision], dim=0)
            vision_mask = torch.cat([vm, torch.zeros_like(vm)], dim=0)
    else:
        tokens = cond_tokens
    for t in scheduler.timesteps:
        tt = t.expand(tokens.shape[0]).to(device)
        inp = torch.cat([z, z], dim=0) if guided else z
        pred = denoiser(inp, tt, tokens, vision, vision_mask)
        if guided:
            pc, pu = pred.chunk(2)
            pred = pu + cfg_scale * (pc - pu)
        z = scheduler.step(pred, t, z, eta=0.0).prev_sample
    return z
