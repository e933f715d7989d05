"""``UniHand``: the model and its ``generate`` in one object, the API before the pipeline split.

Deprecated, kept for this release only (it warns with a ``FutureWarning`` when made): use
:class:`~unihand.pipeline.UniHandPipeline` (``UniHandPipeline.from_pretrained(...)(conditions).motions[0]``)
and :class:`~unihand.models.unihand_model.UniHandModel` for the networks. ``generate`` runs a pipeline
built once per object and returns its one motion.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from unihand.config import ModelConfig
from unihand.data.io import Conditions, Motion
from unihand.errors import UserError
from unihand.models.unihand_model import UniHandModel
from unihand.pipeline.pipeline import UniHandPipeline
from unihand.refine.objective import RefineConfig
from unihand.refine.refiner import Refiner

DEPRECATION = ("unihand.pipeline.UniHand is deprecated and goes in the next release: use "
               "UniHandPipeline.from_pretrained(...)(conditions).motions[0] (from unihand import UniHandPipeline)")


class UniHand(UniHandModel):
    """Deprecated: :class:`UniHandModel` with the former ``generate`` (see the module doc)."""

    def __init__(self, cfg: ModelConfig, mano_dir: str | None = None) -> None:
        warnings.warn(DEPRECATION, FutureWarning, stacklevel=3)
        super().__init__(cfg, mano_dir)
        self._pipes: dict[str, UniHandPipeline] = {}  # by scheduler, with the default refinement

    def generate(
        self, conditions: Conditions | None = None, *, num_frames: int | None = None, steps: int | None = None,
        cfg_scale: float | None = None, seed: int = 0, first_frame: np.ndarray | None = None, window: int | None = None,
        overlap: int = 16, frames: np.ndarray | None = None, vision_mask: np.ndarray | None = None,
        progress: bool = False, refine: bool = True, refine_config: RefineConfig | None = None,
        camera_poses: np.ndarray | None = None, camera_scale: float | str = 1.0, scheduler: str = "ddim",
        other_hand: np.ndarray | None = None,
    ) -> Motion:
        """One motion: the pipeline's first with ``seed`` as its generator."""
        if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise UserError(f"seed={seed!r}: expected a whole number from 0 to 2**63 - 1")
        if refine_config is not None:
            pipe = UniHandPipeline(self, scheduler)
            pipe.refiner = Refiner(pipe.hand_model(True), refine_config)
        else:
            if scheduler not in self._pipes:
                self._pipes[scheduler] = UniHandPipeline(self, scheduler)
            pipe = self._pipes[scheduler]
        return pipe(
            conditions, num_inference_steps=steps, guidance_scale=cfg_scale,
            generator=torch.Generator(device="cpu").manual_seed(int(seed)), num_frames=num_frames,
            first_frame=first_frame, window=window, overlap=overlap, frames=frames, vision_mask=vision_mask,
            refine=refine, camera_poses=camera_poses, camera_scale=camera_scale, other_hand=other_hand,
            progress=progress).motions[0]
