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

from unihand.models.rope import rotate, rotations


class Attention(nn.Module):
    """Multi-head attention; RoPE applied to queries/keys when rotations are given."""

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
        self, x: Tensor, context: Tensor | None = None, rot: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """``rot``: :func:`rope_rotation` of the positions; ``mask``: bool, True = may attend, (B, Lq, Lk)
        or broadcastable."""
        b, lq, d = x.shape
        ctx = x if context is None else context
        q = self.q(x).view(b, lq, self.heads, -1)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, self.heads, -1).unbind(2)
        if rot is not None:
            q, k = rotate(q, rot), rotate(k, rot)
        if mask is not None and mask.dim() == 3:
            mask = mask[:, None]
        p = self.dropout if self.training else 0.0
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
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
            # zero output: a vision slot added to a trained denoiser starts as the identity
            nn.init.zeros_(self.cross_attn.out.weight)
            nn.init.zeros_(self.cross_attn.out.bias)

    def forward(
        self,
        x: Tensor,
        rot: Tensor | None = None,
        mask: Tensor | None = None,
        mod: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """``rot``: :func:`rope_rotation`; ``mod`` (B or 1, 6 d): this block's adaLN vectors."""
        if self.modulation is not None:
            if mod is None:
                raise ValueError("adaptive LayerNorm block needs a conditioning vector")
            sh1, sc1, g1, sh2, sc2, g2 = mod[:, None].chunk(6, dim=-1)
            h = torch.addcmul(sh1, self.norm1(x), 1 + sc1)
            x = torch.addcmul(x, g1, self.drop(self.attn(h, rot=rot, mask=mask)))
        else:
            x = x + self.drop(self.attn(self.norm1(x), rot=rot, mask=mask))
        if self.cross_attn is not None and context is not None:
            x = x + self.drop(self.cross_attn(self.cross_norm(x), context=context, rot=rot, mask=context_mask))
        if self.modulation is not None:
            return torch.addcmul(x, g2, self.drop(self.ffn(torch.addcmul(sh2, self.norm2(x), 1 + sc2))))
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
        self.adaln = adaln

    def modulations(self, cond: Tensor) -> Tensor:
        """adaLN vectors of every block for conditioning vectors (B, d) -> (layers, B, 6 d).

        Computed for many conditioning vectors at once (e.g. all sampling timesteps), each block's
        modulation weights are read once instead of once per forward pass.
        """
        return torch.stack([block.modulation(cond) for block in self.blocks])

    def forward(
        self,
        x: Tensor,
        angles: Tensor | None = None,
        mask: Tensor | None = None,
        cond: Tensor | None = None,
        modulations: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """``angles`` (L, D/2) or (B, L, D/2): RoPE angles of the positions (:func:`rope_angles`).

        adaLN stacks take either ``cond`` (B, d) or precomputed ``modulations`` (layers, B or 1, 6 d).
        """
        rot = None if angles is None else rope_rotation(angles)
        if self.adaln and modulations is None and cond is not None:
            modulations = self.modulations(cond)
        for i, block in enumerate(self.blocks):
            mod = None if modulations is None else modulations[i]
            x = block(x, rot=rot, mask=mask, mod=mod, context=context, context_mask=context_mask)
        return self.norm(x)


def rope_rotation(angles: Tensor) -> Tensor:
    """RoPE angles (L, D/2) or (B, L, D/2) -> rotations broadcastable to (B, L, heads, D/2), computed once per
    stack pass instead of twice per layer (:func:`unihand.models.rope.rotate` applies them)."""
    return rotations(angles).unsqueeze(-2)


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
