"""Reconstruction loss shared by both stages (paper eq. 6-8)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from unihand.models.features import FeatureCodec

#: Smooth-L1 transition points: features are unitless (6D, normalised), joints in metres (1 cm).
FEATURE_BETA = 0.01
JOINT_BETA = 0.01


def forward_joints(hand: nn.Module, mano: Tensor) -> Tensor:
    """(…, 61) MANO vectors -> (…, 21, 3) joints through the hand model."""
    return hand(
        global_orient=mano[..., 0:3], hand_pose=mano[..., 3:48], betas=mano[..., 48:58], transl=mano[..., 58:61]
    ).joints


def reconstruction_loss(
    codec: FeatureCodec, hand: nn.Module, pred_feat: Tensor, gt_mano: Tensor, w_joint: float,
    gt_joints: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Smooth-L1 on MANO features + ``w_joint`` x smooth-L1 on the joints they produce."""
    gt_feat = codec.encode_motion(gt_mano)
    l_mano = F.smooth_l1_loss(pred_feat, gt_feat, beta=FEATURE_BETA)
    pred_joints = forward_joints(hand, codec.decode_motion(pred_feat))
    target = forward_joints(hand, gt_mano) if gt_joints is None else gt_joints
    l_joint = F.smooth_l1_loss(pred_joints, target, beta=JOINT_BETA)
    return l_mano + w_joint * l_joint, {"mano_rec": l_mano.detach(), "joint_rec": l_joint.detach()}
