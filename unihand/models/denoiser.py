"""Latent denoiser (paper §3.3, A.3): predicts the clean latent [g; z] from a noisy one.

Structured-condition latents are fused with the noisy latent at every step by concatenation
per frame (a missing modality or frame takes that modality's learnable null token), the
timestep enters every block through adaptive LayerNorm, time through RoPE, and per-frame vision
hand tokens through a cross-attention block in every layer, with the same temporal RoPE positions as
the latent tokens and a band of ``vision_window`` frames (:meth:`Denoiser.vision_context`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unihand.config import DiffusionConfig
from unihand.models.rope import rope_angles
from unihand.models.transformer import Stack, timestep_embedding

MODALITIES = ("kp2d", "kp3d", "mano")


class Denoiser(nn.Module):
    """G_theta(z_t, t, C) -> z0_hat over N + 1 tokens (global token g first)."""

    def __init__(self, cfg: DiffusionConfig, latent_dim: int, vision: bool = False, vision_window: int = 1) -> None:
        super().__init__()
        if vision_window < 0:
            raise ValueError(f"model.vision.window must be >= 0, got {vision_window}")
        self.vision_window = int(vision_window)
        self.cfg = cfg
        d = cfg.d_model
        self.latent_dim = latent_dim
        self.head = d // cfg.heads
        self.null = nn.ParameterDict({m: nn.Parameter(torch.randn(latent_dim) * 0.02) for m in MODALITIES})
        self.inp = nn.Linear(latent_dim * (1 + len(MODALITIES)), d)
        self.global_emb = nn.Parameter(torch.randn(d) * 0.02)
        self.t_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.stack = Stack(d, cfg.layers, cfg.heads, cfg.ffn, cfg.dropout, adaln=True, cross=vision)
        self.vision_null = nn.Parameter(torch.randn(d) * 0.02) if vision else None
        self.out = nn.Linear(d, latent_dim)
        self.register_buffer("latent_scale", torch.ones(()))

    def fuse(self, conds: dict[str, tuple[Tensor, Tensor]], b: int, n: int) -> Tensor:
        """Condition tokens (B, N + 1, M * latent) with null tokens where a modality/frame is missing.

        ``conds[m] = (z_c (B, N, latent), frame_mask (B, N) bool)``; absent modalities are all-null.
        """
        parts = []
        for m in MODALITIES:
            null = self.null[m].expand(b, n + 1, -1)
            if m in conds:
                zc, mask = conds[m]
                tok = torch.where(mask[..., None], zc, self.null[m].to(zc.dtype))
                parts.append(torch.cat([null[:, :1], tok], dim=1))
            else:
                parts.append(null)
        return torch.cat(parts, dim=-1)

    def null_conditions(self, b: int, n: int) -> Tensor:
        return self.fuse({}, b, n)

    def forward(
        self,
        z_t: Tensor,
        t: Tensor,
        cond_tokens: Tensor,
        vision: Tensor | None = None,
        vision_mask: Tensor | None = None,
    ) -> Tensor:
        """z_t (B, N+1, L), t (B,), fused conditions (B, N+1, M*L), vision (B, N, d), mask (B, N)."""
        b, n1, _ = z_t.shape
        x = self.inp(torch.cat([z_t, cond_tokens], dim=-1))
        x = torch.cat([x[:, :1] + self.global_emb, x[:, 1:]], dim=1)
        temb = self.t_mlp(timestep_embedding(t, self.cfg.d_model))
        angles = rope_angles(torch.arange(n1, device=z_t.device), self.head)
        context, context_mask = self.vision_context(b, n1, vision, vision_mask)
        h = self.stack(x, angles=angles, cond=temb, context=context, context_mask=context_mask)
        return self.out(h)

    def vision_context(
        self, b: int, n1: int, vision: Tensor | None, vision_mask: Tensor | None,
    ) -> tuple[Tensor | None, Tensor | None]:
        """Cross-attention keys aligned with the latent tokens (B, N + 1, d) and their mask (1, N + 1, N + 1).

        Key 0 (the global token's slot) is the null vision token, key i frame i's hand token, or the null
        token where frame i has no vision (as a missing structured condition takes its null token). Keys
        and queries share the latent tokens' temporal RoPE positions; latent token i attends to the hand
        tokens of frames within ``vision_window`` of it, the global token to all.
        """
        if self.vision_null is None:
            return None, None
        keys = self.vision_null.expand(b, n1, -1)
        if vision is not None:
            vm = torch.ones(b, n1 - 1, dtype=torch.bool, device=vision.device) if vision_mask is None else vision_mask
            keys = torch.cat([keys[:, :1], torch.where(vm[..., None], vision, keys[:, 1:])], dim=1)
        pos = torch.arange(n1, device=keys.device)
        band = (pos[:, None] - pos[None, :]).abs() <= self.vision_window
        band[0] = True
        return keys, band[None]
