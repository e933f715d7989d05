"""Transformer layers shared by the joint VAE and the denoiser.

Pre-LayerNorm blocks with temporal RoPE self-attention, GELU feed-forward, an optional
adaptive-LayerNorm modulation from a conditioning vector (DiT-style, for the diffusion
timestep) and an optional cross-attention block (the denoiser's vision slot).
Written on ``F.scaled_dot_product_attention`` because ``nn.TransformerEncoderLayer`` has
no hook for rotary embeddings on queries and keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihand.models.rope import apply_rope


class Attention(nn.Module):
    """Multi-head attention; RoPE applied to queries/keys when angles are given."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, cross: bool = False) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.cross = cross

    def forward(
        self, x: Tensor, context: Tensor | None = None, angles: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """``mask``: bool, True = may attend; (B, Lq, Lk) or broadcastable."""
        b, lq, d = x.shape
        ctx = x if context is None else context
        q = self.q(x).view(b, lq, self.heads, -1).transpose(1, 2)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        if angles is not None:
            q, k = apply_rope(q, angles), apply_rope(k, angles)
        if mask is not None and mask.dim() == 3:
            mask = mask[:, None]
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(b, lq, d))


class Block(nn.Module):
    """Pre-LN transformer block: self-attention (+RoPE), optional cross-attention, FFN.

    With ``adaln=True`` the LayerNorms take shift/scale and the residual branches a gate
    from a per-sample conditioning vector (zero-initialised, so a new block starts as identity).
    """

    def __init__(
        self, d_model: int, heads: int, ffn: int, dropout: float = 0.0, adaln: bool = False, cross: bool = False
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model, elementwise_affine=not adaln)
        self.attn = Attention(d_model, heads, dropout)
        self.norm2 = nn.LayerNorm(d_model, elementwise_affine=not adaln)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, d_model)
        )
        self.drop = nn.Dropout(dropout)
        self.modulation: nn.Sequential | None = None
        if adaln:
            self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(d_model, 6 * d_model))
            nn.init.zeros_(self.modulation[1].weight)
            nn.init.zeros_(self.modulation[1].bias)
        self.cross_norm: nn.LayerNorm | None = None
        self.cross_attn: Attention | None = None
        if cross:
            self.cross_norm = nn.LayerNorm(d_model)
            self.cross_attn = Attention(d_model, heads, dropout, cross=True)

    def forward(
        self,
        x: Tensor,
        angles: Tensor | None = None,
        mask: Tensor | None = None,
        cond: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        if self.modulation is not None:
            if cond is None:
                raise ValueError("adaptive LayerNorm block needs a conditioning vector")
            sh1, sc1, g1, sh2, sc2, g2 = self.modulation(cond)[:, None].chunk(6, dim=-1)
            h = self.norm1(x) * (1 + sc1) + sh1
            x = x + g1 * self.drop(self.attn(h, angles=angles, mask=mask))
        else:
            x = x + self.drop(self.attn(self.norm1(x), angles=angles, mask=mask))
        if self.cross_attn is not None and context is not None:
            x = x + self.drop(self.cross_attn(self.cross_norm(x), context=context, mask=context_mask))
        if self.modulation is not None:
            return x + g2 * self.drop(self.ffn(self.norm2(x) * (1 + sc2) + sh2))
        return x + self.drop(self.ffn(self.norm2(x)))


class Stack(nn.Module):
    """A stack of :class:`Block` with a final LayerNorm."""

    def __init__(
        self, d_model: int, layers: int, heads: int, ffn: int, dropout: float = 0.0,
        adaln: bool = False, cross: bool = False,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(d_model, heads, ffn, dropout, adaln, cross) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor, **kwargs: Tensor | None) -> Tensor:
        for block in self.blocks:
            x = block(x, **kwargs)
        return self.norm(x)


def key_padding(valid: Tensor, queries: int | None = None) -> Tensor:
    """(B, L) bool validity of keys -> (B, Lq, L) attention mask (True = attend)."""
    lq = valid.shape[1] if queries is None else queries
    return valid[:, None, :].expand(-1, lq, -1)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding (B, dim) of (possibly fractional) diffusion timesteps."""
    half = dim // 2
    freqs = torch.exp(-torch.log(torch.tensor(max_period)) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
