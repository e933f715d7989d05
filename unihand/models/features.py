"""What the networks see: MANO motions and structured conditions as per-frame feature vectors.

- Motion: a (…, 61) MANO vector becomes (…, 109): 6D global orientation, 15 x 6D finger
  rotations, betas, and translation normalised by dataset statistics (a continuous rotation
  representation inside the network, axis-angle in files; docs/design.md §2).
- 2D keypoints: normalised image coordinates are turned into camera rays (x/z, y/z) through the
  intrinsics, so one model serves every camera; per-joint mask as an extra channel.
- 3D keypoints: canonical-frame metres normalised like the translation; per-joint mask channel.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unihand.geometry.rotations import axis_angle_to_rot6d, rot6d_to_axis_angle

MOTION_DIM = 6 + 15 * 6 + 10 + 3
COND_DIMS = {"kp2d": 21 * 3, "kp3d": 21 * 4}


class FeatureCodec(nn.Module):
    """Converts between MANO vectors / conditions and network features; holds the statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("transl_mean", torch.tensor([0.0, 0.0, 0.5]))
        self.register_buffer("transl_std", torch.tensor([0.15, 0.15, 0.15]))

    @torch.no_grad()
    def fit(self, mano: Tensor) -> None:
        """Set translation statistics from a sample of (…, 61) MANO vectors."""
        transl = mano[..., 58:61].reshape(-1, 3)
        self.transl_mean.copy_(transl.mean(0))
        self.transl_std.copy_(transl.std(0).clamp_min(0.02))

    def encode_motion(self, mano: Tensor) -> Tensor:
        """(…, 61) -> (…, 109)."""
        rot = axis_angle_to_rot6d(mano[..., :48].unflatten(-1, (16, 3))).flatten(-2)
        transl = (mano[..., 58:61] - self.transl_mean) / self.transl_std
        return torch.cat([rot, mano[..., 48:58], transl], dim=-1)

    def decode_motion(self, feat: Tensor) -> Tensor:
        """(…, 109) -> (…, 61)."""
        aa = rot6d_to_axis_angle(feat[..., :96].unflatten(-1, (16, 6))).flatten(-2)
        transl = feat[..., 106:109] * self.transl_std + self.transl_mean
        return torch.cat([aa, feat[..., 96:106], transl], dim=-1)

    @staticmethod
    def rays(kp2d: Tensor, K: Tensor, image_size: Tensor) -> Tensor:
        """Normalised 2D keypoints (B, N, 21, 2) -> camera rays (x/z, y/z) via K (B,3,3), (W,H) (B,2)."""
        pix = kp2d * image_size[:, None, None, :].to(kp2d.dtype)
        f = torch.stack([K[:, 0, 0], K[:, 1, 1]], dim=-1)[:, None, None]
        c = torch.stack([K[:, 0, 2], K[:, 1, 2]], dim=-1)[:, None, None]
        return (pix - c) / f

    def encode_kp2d(self, rays: Tensor, joint_mask: Tensor) -> Tensor:
        """Rays (B, N, 21, 2) + per-joint mask (B, N, 21) -> (B, N, 63); masked joints zeroed."""
        m = joint_mask.to(rays.dtype)[..., None]
        return torch.cat([rays * m, m], dim=-1).flatten(-2)

    def encode_kp3d(self, kp3d: Tensor, joint_mask: Tensor) -> Tensor:
        """Canonical joints (B, N, 21, 3) + per-joint mask -> (B, N, 84); masked joints zeroed."""
        m = joint_mask.to(kp3d.dtype)[..., None]
        x = (kp3d - self.transl_mean) / self.transl_std
        return torch.cat([x * m, m], dim=-1).flatten(-2)
