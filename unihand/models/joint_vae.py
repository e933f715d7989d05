"""Joint VAE (paper §3.2, Algorithm 1, A.2).

- Motion encoder: per-frame latent tokens z (B, N, d) plus a global token g sampled from
  (mu_g, sigma_g) read off two learnable distribution tokens; KL on g only.
- Condition encoders (2D, 3D keypoints) map a condition sequence to z_c (B, N, d) in the same
  space; the ablation ``condition_encoders=False`` replaces them by per-frame MLPs.
- Autoregressive decoder over segments of ``segment`` frames: input [a_i, g, z_i..z_{i+n-1}],
  a_1 = Linear(x_1) (or a learned "unknown anchor" when the first frame is not known), then
  a_{i+n} = Linear(last decoded frame).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unihand.config import VAEConfig
from unihand.models.features import COND_DIMS, MOTION_DIM, FeatureCodec
from unihand.models.rope import rope_angles
from unihand.models.transformer import Stack, key_padding


class ConditionEncoder(nn.Module):
    """Structured condition features (B, N, C) -> latent tokens z_c (B, N, d)."""

    def __init__(self, in_dim: int, cfg: VAEConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.temporal = cfg.condition_encoders
        if self.temporal:
            self.inp = nn.Linear(in_dim, d)
            self.stack = Stack(d, cfg.layers, cfg.heads, cfg.ffn, cfg.dropout)
            self.head = cfg.d_model // cfg.heads
            self.out = nn.Linear(d, d)
        else:  # paper Table 4 "w/o condition encoders": a per-frame MLP into the latent space
            self.mlp = nn.Sequential(nn.Linear(in_dim, d), nn.GELU(), nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))

    def forward(self, feat: Tensor, frame_mask: Tensor) -> Tensor:
        if not self.temporal:
            return self.mlp(feat)
        n = feat.shape[1]
        angles = rope_angles(torch.arange(n, device=feat.device), self.head)
        h = self.stack(self.inp(feat), angles=angles, mask=key_padding(frame_mask))
        return self.out(h)


class JointVAE(nn.Module):
    """Motion encoder, condition encoders and autoregressive decoder sharing one latent space."""

    modalities = ("kp2d", "kp3d")

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.head = d // cfg.heads
        self.codec = FeatureCodec()
        # motion encoder
        self.motion_in = nn.Linear(MOTION_DIM, d)
        self.dist_tokens = nn.Parameter(torch.randn(2, d) * 0.02)
        self.motion_enc = Stack(d, cfg.layers, cfg.heads, cfg.ffn, cfg.dropout)
        self.to_z = nn.Linear(d, d)
        self.to_mu = nn.Linear(d, d)
        self.to_logvar = nn.Linear(d, d)
        # condition encoders
        self.cond_enc = nn.ModuleDict({m: ConditionEncoder(COND_DIMS[m], cfg) for m in self.modalities})
        # autoregressive decoder
        self.anchor_in = nn.Linear(MOTION_DIM, d)
        self.unknown_anchor = nn.Parameter(torch.randn(d) * 0.02)
        self.type_emb = nn.Parameter(torch.randn(3, d) * 0.02)  # anchor, global, frame
        self.latent_in = nn.Linear(d, d)
        self.decoder = Stack(d, cfg.layers, cfg.heads, cfg.ffn, cfg.dropout)
        self.motion_out = nn.Linear(d, MOTION_DIM)

    @property
    def latent_dim(self) -> int:
        return self.cfg.d_model

    def _angles(self, n: int, device: torch.device) -> Tensor:
        return rope_angles(torch.arange(n, device=device), self.head)

    def encode_motion(self, feat: Tensor, frame_mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Motion features (B, N, 109) -> (z (B, N, d), mu_g (B, d), logvar_g (B, d)).

        ``frame_mask`` (B, N) restricts attention to known frames (a partial MANO condition).
        Distribution tokens sit at position 0, frame i at position i + 1.
        """
        b, n, _ = feat.shape
        x = torch.cat([self.dist_tokens.expand(b, -1, -1), self.motion_in(feat)], dim=1)
        pos = torch.cat([torch.zeros(2, device=feat.device), torch.arange(1, n + 1, device=feat.device)])
        angles = rope_angles(pos, self.head)
        mask = None
        if frame_mask is not None:
            valid = torch.cat([torch.ones(b, 2, dtype=torch.bool, device=feat.device), frame_mask], dim=1)
            mask = key_padding(valid)
        h = self.motion_enc(x, angles=angles, mask=mask)
        return self.to_z(h[:, 2:]), self.to_mu(h[:, 0]), self.to_logvar(h[:, 1]).clamp(-10, 10)

    def encode_condition(self, modality: str, feat: Tensor, frame_mask: Tensor) -> Tensor:
        return self.cond_enc[modality](feat, frame_mask)

    def decode(
        self, g: Tensor, z: Tensor, first_frame: Tensor | None = None, first_known: Tensor | None = None
    ) -> Tensor:
        """Autoregressive decoding of latents (B, d), (B, N, d) -> motion features (B, N, 109).

        ``first_frame`` (B, 109) gives a_1 = Linear(x_1); when None the learned unknown anchor is
        used; ``first_known`` (B,) bool picks per sample. ``N`` must be a multiple of the segment.
        """
        b, n, d = z.shape
        seg = self.cfg.segment
        if n % seg:
            raise ValueError(f"sequence length {n} is not a multiple of the decoder segment {seg}")
        anchor = self.unknown_anchor.expand(b, -1)
        if first_frame is not None:
            known = self.anchor_in(first_frame)
            anchor = known if first_known is None else torch.where(first_known[:, None], known, anchor)
        angles = self._angles(seg + 2, z.device)
        gt = (g + self.type_emb[1])[:, None]
        frames = self.latent_in(z) + self.type_emb[2]  # all segments' frame tokens in one matmul
        outs = []
        for i in range(0, n, seg):
            tokens = torch.cat([(anchor + self.type_emb[0])[:, None], gt, frames[:, i : i + seg]], dim=1)
            out = self.motion_out(self.decoder(tokens, angles=angles)[:, 2:])
            outs.append(out)
            anchor = self.anchor_in(out[:, -1])
        return torch.cat(outs, dim=1)

    @staticmethod
    def sample_g(mu: Tensor, logvar: Tensor) -> Tensor:
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp()

    @staticmethod
    def kl(mu: Tensor, logvar: Tensor) -> Tensor:
        return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()
