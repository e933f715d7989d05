"""The output every hand model returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class HandOutput:
    """Posed hand: ``joints`` (..., 21, 3) in OpenPose order, ``joints16`` (..., 16, 3) in MANO
    order, ``vertices`` (..., 778, 3) for mesh models (``None`` for the kinematic hand); metres.
    ``rotations`` (..., 16, 3, 3): each MANO joint's global rotation (row 0: the global orientation),
    what analytic joint Jacobians need (:mod:`unihand.refine.kinematics`)."""

    joints: torch.Tensor
    joints16: torch.Tensor
    vertices: torch.Tensor | None = None
    rotations: torch.Tensor | None = None
