"""DDPM training schedule and sampling with classifier-free guidance (paper A.3).

The schedules are diffusers' (cosine = ``squaredcos_cap_v2``), predicting the clean sample,
with ``clip_sample=False`` since latents are not bounded like images. Sampling defaults to the
paper's DDIM; any diffusers scheduler that takes a clean-sample prediction can replace it
(:data:`SCHEDULERS`: DDIM, DPM-Solver++, Euler), built from the same training schedule.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
# DDIM and DDPM by module: diffusers' DPM-Solver and Euler modules import scipy.stats (a second of start-up),
# so they are imported when asked for.
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor

from unihand.config import DiffusionConfig
from unihand.models.denoiser import MODALITIES, Denoiser
from unihand.models.rope import rope_angles
from unihand.models.transformer import timestep_embedding
from unihand.models.unihand_model import UniHandModel


def _kwargs(cfg: DiffusionConfig) -> dict:
    return dict(
        num_train_timesteps=cfg.train_steps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="sample",
        clip_sample=False,
    )


def train_scheduler(cfg: DiffusionConfig) -> DDPMScheduler:
    """The model's DDPM training schedule."""
    return DDPMScheduler(**_kwargs(cfg))


#: Sampling schedulers by name ("trailing" spacing starts at the last training step, pure noise).
SCHEDULERS = ("ddim", "dpm", "euler")


def sample_scheduler(cfg: DiffusionConfig, kind: str = "ddim") -> SchedulerMixin:
    """A sampling scheduler for the model's training schedule: ``ddim`` (the paper's), ``dpm``
    (DPM-Solver++, second order) or ``euler``."""
    common = dict(num_train_timesteps=cfg.train_steps, beta_schedule="squaredcos_cap_v2", prediction_type="sample",
                  timestep_spacing="trailing")
    if kind == "ddim":
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True)
    if kind == "dpm":
        from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler

        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2)
    if kind == "euler":
        from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler

        return EulerDiscreteScheduler(**common)
    raise ValueError(f"unknown scheduler {kind!r} (choose from {', '.join(SCHEDULERS)})")


def denoise_steps(
    denoiser: Denoiser,
    tokens: Tensor,
    timesteps: Tensor,
    vision: Tensor | None = None,
    vision_mask: Tensor | None = None,
) -> Callable[[Tensor, int], Tensor]:
    """Denoiser passes for fixed conditions over a fixed timestep schedule, step-invariant work done once.

    Returns ``step(z, i)``: the prediction for the batch ``tokens`` (B', N+1, M*L) at ``timesteps[i]``, where
    ``z`` (B, N+1, L) is shared by the ``B' / B`` groups of B rows (CFG: conditional, unconditional). Equal to
    ``denoiser(z.repeat(B' / B, 1, 1), timesteps[i].expand(B'), tokens, vision, vision_mask)``; once per call
    instead of once per step: the condition half of the input projection, the RoPE angles, the vision
    context, and the timestep MLP and adaLN modulations of all steps (each weight read once). A quantized
    denoiser (:class:`MixedPrecisionStack`) runs its int8 stack except at the last step (float32).
    """
    b, n1, _ = tokens.shape
    device, lat = tokens.device, denoiser.latent_dim
    w = denoiser.inp.weight
    x_cond = F.linear(tokens, w[:, lat:], denoiser.inp.bias)
    x_cond[:, 0] += denoiser.global_emb
    angles = rope_angles(torch.arange(n1, device=device), denoiser.head)
    temb = denoiser.t_mlp(timestep_embedding(timesteps.to(device), denoiser.cfg.d_model).to(tokens.dtype))
    modulations = denoiser.stack.modulations(temb)[:, :, None]  # (layers, steps, 1, 6 d)
    context, context_mask = denoiser.vision_context(b, n1, vision, vision_mask)

    stack, last = denoiser.stack, len(timesteps) - 1
    exact = getattr(stack, "exact", stack)

    def step(z: Tensor, i: int) -> Tensor:
        x = (x_cond.unflatten(0, (-1, z.shape[0])) + F.linear(z, w[:, :lat])).flatten(0, 1)
        run = exact if i == last else stack
        h = run(x, angles=angles, modulations=modulations[:, i], context=context, context_mask=context_mask)
        return denoiser.out(h)

    return step


@torch.no_grad()
def guided_sample(
    denoiser: Denoiser,
    scheduler: SchedulerMixin,
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
    scheduler.set_timesteps(steps, device=device)
    if z_init is None:
        z = torch.randn(shape, generator=generator, dtype=dtype).to(device) * scheduler.init_noise_sigma
    else:
        z = z_init
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
    step = denoise_steps(denoiser, tokens, scheduler.timesteps, vision, vision_mask)
    extra = {"eta": 0.0} if isinstance(scheduler, DDIMScheduler) else {}
    for i, t in enumerate(scheduler.timesteps):
        pred = step(scheduler.scale_model_input(z, t), i)  # the identity for DDIM and DPM-Solver
        if guided:
            pc, pu = pred.chunk(2)
            pred = pu + cfg_scale * (pc - pu)
        z = scheduler.step(pred, t, z, **extra).prev_sample
    return z


@torch.no_grad()
def sample_window(
    model: UniHandModel,
    scheduler: SchedulerMixin,
    batch: dict[str, Tensor],
    *,
    num_frames: int,
    batch_size: int = 1,
    steps: int | None = None,
    cfg_scale: float | None = None,
    generator: torch.Generator | None = None,
    first_frame: Tensor | None = None,
) -> Tensor:
    """One window: conditions -> MANO (B, N, 61) with ``scheduler``. An empty ``batch`` samples
    ``batch_size`` motions unconditionally; ``batch["frames"]`` (B, N, 3, H, W) uint8 with
    ``batch["vision_mask"]`` (B, N) adds the vision condition (vision checkpoints only)."""
    dcfg = model.cfg.diffusion
    device = model.denoiser.latent_scale.device
    if any(m in batch for m in MODALITIES):
        tokens = model.condition_tokens(batch)
    else:
        batch_size = batch["frames"].shape[0] if "frames" in batch else batch_size
        tokens = model.denoiser.null_conditions(batch_size, num_frames).to(device)
    vision = vision_mask = None
    if "frames" in batch:
        vision_mask = batch.get("vision_mask")
        vision = model.hand_tokens(batch["frames"], first_frame, vision_mask=vision_mask)
    latent = guided_sample(
        model.denoiser, scheduler, tokens,
        steps=steps or dcfg.sample_steps,
        cfg_scale=dcfg.cfg_scale if cfg_scale is None else cfg_scale,
        generator=generator, vision=vision, vision_mask=vision_mask,
    )
    return model.vae.codec.decode_motion(model.decode_latent(latent, first_frame))
