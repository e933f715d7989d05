"""Inference fast paths: precomputed RoPE rotations and adaLN modulations, the per-sequence
denoiser preparation of ``denoise_steps``, and the opt-in int8 quantization."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from unihand.config import DiffusionConfig
from unihand.data.io import Conditions
from unihand.diffusion.sampling import denoise_steps, guided_sample, sample_scheduler
from unihand.errors import UserError
from unihand.models.denoiser import Denoiser
from unihand.models.quantize import MixedPrecisionStack, quantize
from unihand.models.rope import apply_rope, rope_angles, rotate
from unihand.models.transformer import Stack, rope_rotation
from unihand.pipeline import UniHandModel

from sampling import sample

K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]], np.float32)


def _open_zero_weights(module: torch.nn.Module) -> None:
    """adaLN gates and vision outputs start at zero: randomise them so every path reaches the output."""
    torch.manual_seed(1)
    for p in module.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)


@pytest.fixture(scope="module")
def shipped() -> UniHandModel:
    return UniHandModel.from_pretrained(None)


@pytest.mark.parametrize("batched_angles", [False, True])
def test_rotation_equals_apply_rope(batched_angles: bool) -> None:
    x = torch.randn(2, 7, 3, 8)  # (B, L, heads, D)
    pos = torch.arange(7.0).expand(2, -1) * torch.tensor([[1.0], [0.5]]) if batched_angles else torch.arange(7.0)
    angles = rope_angles(pos, 8)
    want = apply_rope(x.transpose(1, 2), angles).transpose(1, 2)
    torch.testing.assert_close(rotate(x, rope_rotation(angles)), want)


def test_precomputed_modulations_equal_conditioning() -> None:
    torch.manual_seed(0)
    stack = Stack(16, layers=2, heads=2, ffn=32, adaln=True).eval()
    _open_zero_weights(stack)
    x, cond = torch.randn(3, 5, 16), torch.randn(3, 16)
    angles = rope_angles(torch.arange(5), 8)
    mods = stack.modulations(cond)
    assert mods.shape == (2, 3, 6 * 16)
    torch.testing.assert_close(stack(x, angles=angles, modulations=mods), stack(x, angles=angles, cond=cond))
    shared = stack(x, angles=angles, modulations=mods[:, :1])  # one conditioning vector for the whole batch
    torch.testing.assert_close(shared, stack(x, angles=angles, cond=cond[:1].expand(3, -1)))
    with pytest.raises(ValueError, match="conditioning"):
        stack(x, angles=angles)


@pytest.mark.parametrize("vision", [False, True])
def test_denoise_steps_equal_denoiser_forward(vision: bool) -> None:
    torch.manual_seed(0)
    den = Denoiser(DiffusionConfig(d_model=32, layers=2, heads=2, ffn=64), latent_dim=16, vision=vision).eval()
    _open_zero_weights(den)
    b, n = 2, 8
    tokens = torch.randn(2 * b, n + 1, 3 * 16)  # conditional and unconditional rows
    z = torch.randn(b, n + 1, 16)
    timesteps = torch.tensor([49, 30, 5])
    vis = torch.randn(2 * b, n, 32) if vision else None
    vmask = (torch.rand(2 * b, n) > 0.3) if vision else None
    with torch.no_grad():
        step = denoise_steps(den, tokens, timesteps, vis, vmask)
        for i, t in enumerate(timesteps):
            want = den(z.repeat(2, 1, 1), t.expand(2 * b), tokens, vis, vmask)
            torch.testing.assert_close(step(z, i), want, atol=1e-5, rtol=1e-5)


def test_shipped_checkpoint_sampling_equals_plain_denoiser_loop(shipped: UniHandModel) -> None:
    den = shipped.denoiser
    torch.manual_seed(0)
    n, lat = 16, shipped.vae.latent_dim
    tokens = den.fuse({"kp2d": (torch.randn(1, n, lat), torch.rand(1, n) > 0.2)}, 1, n)
    z_init = torch.randn(1, n + 1, lat)
    got = guided_sample(den, sample_scheduler(shipped.cfg.diffusion), tokens, steps=10, cfg_scale=2.0, z_init=z_init)
    sched = sample_scheduler(shipped.cfg.diffusion)
    sched.set_timesteps(10)
    z, null = z_init, den.null_conditions(1, n)
    with torch.no_grad():
        for t in sched.timesteps:
            pc, pu = den(z, t.expand(1), tokens), den(z, t.expand(1), null)
            z = sched.step(pu + 2.0 * (pc - pu), t, z, eta=0.0).prev_sample
    torch.testing.assert_close(got, z, atol=1e-4, rtol=1e-4)


def test_shipped_decoder_equals_segment_by_segment_reference(shipped: UniHandModel) -> None:
    vae = shipped.vae
    torch.manual_seed(0)
    g, z, first = torch.randn(2, vae.latent_dim), torch.randn(2, 24, vae.latent_dim), torch.randn(2, 109)
    with torch.no_grad():
        got = vae.decode(g, z, first)
        anchor, outs = vae.anchor_in(first), []
        angles = rope_angles(torch.arange(vae.cfg.segment + 2), vae.head)
        for i in range(0, 24, vae.cfg.segment):
            tokens = torch.cat([(anchor + vae.type_emb[0])[:, None], (g + vae.type_emb[1])[:, None],
                                vae.latent_in(z[:, i : i + vae.cfg.segment]) + vae.type_emb[2]], dim=1)
            outs.append(vae.motion_out(vae.decoder(tokens, angles=angles)[:, 2:]))
            anchor = vae.anchor_in(outs[-1][:, -1])
    torch.testing.assert_close(got, torch.cat(outs, dim=1), atol=1e-5, rtol=1e-5)


def test_int8_quantizes_the_stacks_and_keeps_a_float32_last_step(shipped: UniHandModel) -> None:
    q8 = UniHandModel.from_pretrained(None, quantize="int8")
    assert isinstance(q8.denoiser.stack, MixedPrecisionStack)
    assert isinstance(q8.vae.decoder.blocks[0].ffn[0], DynamicLinear)
    assert isinstance(q8.denoiser.stack.fast.blocks[0].attn.q, DynamicLinear)
    assert type(q8.denoiser.stack.exact.blocks[0].attn.q) is torch.nn.Linear
    assert type(q8.denoiser.inp) is torch.nn.Linear  # small projections stay float32
    torch.manual_seed(0)
    tokens, z = torch.randn(2, 9, 3 * 128), torch.randn(1, 9, 128)
    timesteps = torch.tensor([49, 25, 3])
    with torch.no_grad():
        fast, exact = denoise_steps(q8.denoiser, tokens, timesteps), denoise_steps(shipped.denoiser, tokens, timesteps)
        torch.testing.assert_close(fast(z, 2), exact(z, 2), atol=1e-5, rtol=1e-5)  # last step: float32
        first_q, first_f = fast(z, 0), exact(z, 0)
    assert 0 < (first_q - first_f).abs().max() < 0.1 * first_f.abs().max()


def test_int8_generation_stays_close_to_float32(shipped: UniHandModel) -> None:
    from unihand.data.windows import SyntheticWindows

    item = SyntheticWindows(1, seed=1000, frames=32)[0]
    cond = Conditions(kp3d=item["kp3d"].numpy(), kp3d_mask=item["kp3d_mask"].numpy())
    q8 = quantize(UniHandModel.from_pretrained(None))
    a, b = sample(shipped, cond, seed=0, refine=False), sample(q8, cond, seed=0, refine=False)
    dist = np.linalg.norm(a.joints - b.joints, axis=-1).mean()
    assert dist < 5e-3, f"int8 moved the joints by {dist * 1000:.2f} mm on average"


def test_int8_options_are_checked(tmp_path) -> None:
    with pytest.raises(UserError, match="unknown quantization"):
        UniHandModel.from_pretrained(None, quantize="int4")
    with pytest.raises(UserError, match="CPU only"):
        UniHandModel.from_pretrained(None, device="cuda", quantize="int8")
    from unihand.cli import main

    rng = np.random.default_rng(0)
    Conditions(kp2d=rng.uniform(0.3, 0.7, (8, 21, 2)).astype(np.float32), kp2d_mask=np.ones((8, 21), bool),
               K=K, image_size=np.array([640, 480])).save(tmp_path / "cond.npz")
    assert main(["generate", str(tmp_path / "cond.npz"), "-o", str(tmp_path / "out.npz"), "--quantize", "int8"]) == 0
    assert (tmp_path / "out.npz").exists()
    with pytest.raises(UserError, match="inference only"):
        UniHandModel.from_pretrained(None, quantize="int8").save_pretrained(tmp_path / "q")
