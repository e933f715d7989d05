"""Hand perceptron (paper §3.3, eq. 2-3, A.3): one hand token per frame from dense vision tokens.

Queries are the initial-pose token a^1 and N learnable hand tokens H^i (row i-1 of a table of
``max_frames`` entries); keys and values are the dense tokens of ALL frames (N*h*w):

    Q = RoPE(LN(W_Q [a^1; H]), P_1D)    K = RoPE(LN(W_K v), P_3D)    V = LN(W_V v)
    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V                  (multi-head)

Positions (t, y, x): frame i (1-based) is at t = i; hand token H^i sits at t = i, the init token at
t = 0; the key of token (y, x) of frame i is at (i, y, x), y/x counted in patches from the frame's
top-left corner. Each head's channels are split (d_t, d_h, d_w) by :func:`split_3d`; queries carry
time only (y = x = 0, so their spatial channel groups are not rotated), hence an attention score
depends on the key's time relative to the query and on the key's place in the frame.
``rope="1d"`` (ablation) rotates all channels by time alone for queries and keys.

K and V are computed once per sequence and shared by all layers. Beyond eq. 2-3 (not specified by the
paper): ``layers`` blocks, each the cross-attention above (its own W_Q, LN, output projection) with a
residual, a self-attention among the N+1 queries (temporal RoPE; this is how a^1 reaches the hand
tokens and anchors them to one hand) and a GELU feed-forward, both pre-norm with residuals; a final
LayerNorm. The init token's output is dropped. Keys of frames without vision and tokens that only see
padding are masked out; frames without vision get a zero hand token.

``pooling="avg"`` (ablation, Table 4 "w/o hand perceptron"): h^i = Linear(mean of frame i's valid tokens);
a^1 is unused there. Call once per sequence, not once per denoising step.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from unihand.models.rope import apply_rope, rope_angles, rope_angles_3d, split_3d


def _heads(x: Tensor, heads: int) -> Tensor:
    """(B, L, D) -> (B, heads, L, D / heads)."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _merge(x: Tensor) -> Tensor:
    """(B, heads, L, d) -> (B, L, heads * d)."""
    return x.transpose(1, 2).flatten(2)


class CrossAttention(nn.Module):
    """Eq. 2: per-layer queries Q = RoPE(LN(W_Q q)) attending to the shared keys and values."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.w_q = nn.Linear(d_model, d_model)
        self.norm_q = nn.LayerNorm(d_model)
        self.w_o = nn.Linear(d_model, d_model)

    def queries(self, q: Tensor, angles: Tensor) -> Tensor:
        """Q = RoPE(LN(W_Q q)): (B, Lq, d_model) -> (B, heads, Lq, d_head)."""
        return apply_rope(_heads(self.norm_q(self.w_q(q)), self.heads), angles)

    def forward(self, q: Tensor, q_angles: Tensor, k: Tensor, v: Tensor, key_mask: Tensor) -> Tensor:
        """(B, Lq, d_model) attending to K, V (B, heads, Lk, d_head) where ``key_mask`` (B, Lk) is True."""
        out = F.scaled_dot_product_attention(
            self.queries(q, q_angles),
            k,
            v,
            attn_mask=key_mask[:, None, None, :],
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.w_o(_merge(out))


class SelfAttention(nn.Module):
    """Multi-head self-attention among the queries with temporal RoPE."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, angles: Tensor) -> Tensor:
        q, k, v = (_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(
            apply_rope(q, angles), apply_rope(k, angles), v, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(_merge(out))


class PerceptronLayer(nn.Module):
    """Cross-attention to vision (eq. 2-3) + query self-attention + feed-forward, all residual."""

    def __init__(self, d_model: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.cross = CrossAttention(d_model, heads, dropout)
        self.norm_self = nn.LayerNorm(d_model)
        self.self_attn = SelfAttention(d_model, heads, dropout)
        self.norm_ffn = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, q_angles: Tensor, k: Tensor, v: Tensor, self_angles: Tensor, key_mask: Tensor
    ) -> Tensor:
        x = x + self.drop(self.cross(x, q_angles, k, v, key_mask))
        x = x + self.drop(self.self_attn(self.norm_self(x), self_angles))
        return x + self.drop(self.ffn(self.norm_ffn(x)))


class HandPerceptron(nn.Module):
    """Dense tokens ``(B, N, h, w, d_vision)`` + init token ``(B, d_model)`` -> hand tokens ``(B, N, d_model)``."""

    def __init__(
        self,
        d_vision: int,
        d_model: int = 512,
        heads: int = 8,
        layers: int = 2,
        ffn_dim: int | None = None,
        max_frames: int = 1024,
        pooling: Literal["perceptron", "avg"] = "perceptron",
        rope: Literal["3d", "1d"] = "3d",
        dropout: float = 0.0,
        rope_base: float = 10000.0,
    ) -> None:
        super().__init__()
        if pooling not in ("perceptron", "avg"):
            raise ValueError(f"pooling must be 'perceptron' or 'avg', got {pooling!r}")
        if rope not in ("3d", "1d"):
            raise ValueError(f"rope must be '3d' or '1d', got {rope!r}")
        if d_model % heads or (d_model // heads) % 2:
            raise ValueError(f"d_model {d_model} must split into {heads} heads of an even width")
        self.d_model = d_model
        self.heads = heads
        self.max_frames = max_frames
        self.pooling = pooling
        self.rope = rope
        self.rope_base = rope_base
        self.dims_3d = split_3d(d_model // heads)
        if pooling == "avg":
            self.pool = nn.Linear(d_vision, d_model)
            return
        self.hand_tokens = nn.Parameter(torch.randn(max_frames, d_model) * 0.02)
        self.w_k = nn.Linear(d_vision, d_model)
        self.w_v = nn.Linear(d_vision, d_model)
        self.norm_k = nn.LayerNorm(d_model)
        self.norm_v = nn.LayerNorm(d_model)
        self.layers = nn.ModuleList(
            PerceptronLayer(d_model, heads, ffn_dim or 4 * d_model, dropout) for _ in range(layers)
        )
        self.norm_out = nn.LayerNorm(d_model)

    def position_angles(self, positions: Tensor) -> Tensor:
        """RoPE angles (L, d_head/2) of positions (L, 3) as (t, y, x); ``rope="1d"`` reads t only."""
        if self.rope == "1d":
            return rope_angles(positions[:, 0], self.d_model // self.heads, self.rope_base)
        return rope_angles_3d(positions[:, 0], positions[:, 1], positions[:, 2], self.dims_3d, self.rope_base)

    def keys(self, v: Tensor, angles: Tensor) -> Tensor:
        """K = RoPE(LN(W_K v)): (B, Lk, d_vision) -> (B, heads, Lk, d_head)."""
        return apply_rope(_heads(self.norm_k(self.w_k(v)), self.heads), angles)

    def values(self, v: Tensor) -> Tensor:
        """V = LN(W_V v): (B, Lk, d_vision) -> (B, heads, Lk, d_head)."""
        return _heads(self.norm_v(self.w_v(v)), self.heads)

    @staticmethod
    def query_positions(num_frames: int, device: torch.device | None = None) -> Tensor:
        """(N+1, 3): the init token at t = 0, hand token i at t = i, all at y = x = 0."""
        pos = torch.zeros(num_frames + 1, 3, device=device)
        pos[:, 0] = torch.arange(num_frames + 1, device=device)
        return pos

    @staticmethod
    def key_positions(num_frames: int, h: int, w: int, device: torch.device | None = None) -> Tensor:
        """(N*h*w, 3): token (y, x) of frame i (1-based) at (i, y, x), in the order of ``tokens.flatten(1, 3)``."""
        t = torch.arange(1, num_frames + 1, device=device)
        grid = torch.meshgrid(t, torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        return torch.stack(grid, dim=-1).reshape(-1, 3).float()

    def forward(
        self,
        tokens: Tensor,
        init_token: Tensor,
        vision_mask: Tensor | None = None,
        token_valid: Tensor | None = None,
    ) -> Tensor:
        """One hand token per frame, (B, N, d_model).

        ``vision_mask`` (B, N) bool, True = frame has vision; ``token_valid`` broadcastable to (B, N, h, w),
        False for tokens that only see padding (see :class:`~unihand.models.backbones.DenseTokens`).
        """
        b, n, h, w, _ = tokens.shape
        if n > self.max_frames:
            raise ValueError(f"{n} frames exceed the hand perceptron's max_frames={self.max_frames}")
        if vision_mask is None:
            frame_mask = torch.ones(b, n, dtype=torch.bool, device=tokens.device)
        else:
            frame_mask = vision_mask.bool()
        keep = frame_mask[:, :, None, None].expand(b, n, h, w)
        if token_valid is not None:
            keep = keep & token_valid.bool().expand(b, n, h, w)
        if self.pooling == "avg":
            weights = keep[..., None].to(tokens.dtype)
            mean = (tokens * weights).sum((2, 3)) / weights.sum((2, 3)).clamp_min(1.0)
            return self.pool(mean) * frame_mask[..., None].to(tokens.dtype)

        key_mask = keep.reshape(b, n * h * w)
        key_mask = key_mask | ~key_mask.any(dim=1, keepdim=True)  # no vision at all: finite, zeroed below
        q_pos = self.query_positions(n, tokens.device)
        q_angles = self.position_angles(q_pos)
        self_angles = rope_angles(q_pos[:, 0], self.d_model // self.heads, self.rope_base)
        flat = tokens.reshape(b, n * h * w, -1)
        k = self.keys(flat, self.position_angles(self.key_positions(n, h, w, tokens.device)))
        v = self.values(flat)
        x = torch.cat([init_token[:, None], self.hand_tokens[:n].expand(b, n, -1)], dim=1)
        for layer in self.layers:
            x = layer(x, q_angles, k, v, self_angles, key_mask)
        return self.norm_out(x[:, 1:]) * frame_mask[..., None].to(x.dtype)

    def extra_repr(self) -> str:
        return f"pooling={self.pooling}, rope={self.rope}, d_model={self.d_model}, heads={self.heads}"
