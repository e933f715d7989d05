"""One entry point for both hand models and a numpy convenience for flattened MANO vectors."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from unihand.hand.joints import MANO_SLICES
from unihand.hand.kinematic import KinematicHand
from unihand.hand.mano import ManoHand


def load_hand_model(mano_dir: str | os.PathLike | None = None, is_right: bool = True) -> nn.Module:
    """The MANO model from ``mano_dir`` (official pickles), or the built-in kinematic hand when ``None``.

    Both take ``forward(global_orient=, hand_pose=, betas=, transl=) -> HandOutput`` and expose
    ``.kind`` ("mano" / "kinematic"), ``.faces`` (``None`` without a mesh), ``.is_right`` and
    ``.rest_root(betas)``.
    """
    if mano_dir is None:
        return KinematicHand(is_right=is_right)
    return ManoHand.from_dir(mano_dir, is_right=is_right)


@torch.no_grad()
def fk_numpy(hand: nn.Module, mano: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 61) flattened MANO vectors -> joints (N, 21, 3) and vertices (N, 778, 3) or ``None``.

    Runs in ``mano``'s float dtype (float32 unless float64 is given), ``chunk`` frames at a time.
    """
    mano = np.asarray(mano)
    dtype = torch.float64 if mano.dtype == np.float64 else torch.float32
    params = torch.from_numpy(mano).to(dtype)
    joints, vertices = [], []
    for part in params.split(chunk):
        out = hand(**{k: part[..., s] for k, s in MANO_SLICES.items()})
        joints.append(out.joints)
        if out.vertices is not None:
            vertices.append(out.vertices)
    j = torch.cat(joints).numpy() if joints else np.zeros((0, 21, 3), mano.dtype)
    return j, (torch.cat(vertices).numpy() if vertices else None)
