"""``UniHand``: the model and its ``generate`` in one object, the API before the pipeline split.

Kept for one release as a thin alias: ``UniHand.from_pretrained(...)`` is a
:class:`~unihand.models.unihand_model.UniHandModel` whose ``generate`` runs a
:class:`~unihand.pipeline.UniHandPipeline` and returns its one motion; ``sample`` is one window of
the sampler (:func:`unihand.diffusion.sampling.sample_window`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from unihand.data.io import Conditions, Motion
from unihand.diffusion.sampling import sample_window
from unihand.errors import UserError
from unihand.models.unihand_model import UniHandModel
from unihand.pipeline.pipeline import UniHandPipeline, make_scheduler
from unihand.refine.objective import RefineConfig
from unihand.refine.refiner import Refiner


class UniHand(UniHandModel):
    """:class:`UniHandModel` with the former ``generate`` / ``sample`` methods (see the module doc)."""

    def generate(
        self, conditions: Conditions | None = None, *, num_frames: int | None = None, steps: int | None = None,
        cfg_scale: float | None = None, seed: int = 0, first_frame: np.ndarray | None = None, window: int | None = None,
        overlap: int = 16, frames: np.ndarray | None = None, vision_mask: np.ndarray | None = None,
        progress: bool = False, refine: bool = True, refine_config: RefineConfig | None = None,
        camera_poses: np.ndarray | None = None, camera_scale: float | str = 1.0, scheduler: str = "ddim",
        other_hand: np.ndarray | None = None,
    ) -> Motion:
        """One motion: ``UniHandPipeline(self, scheduler)(conditions, ...)`` with ``seed`` as its generator."""
        if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise UserError(f"seed={seed!r}: expected a whole number from 0 to 2**63 - 1")
        pipe = UniHandPipeline(self, scheduler)
        if refine_config is not None:
            pipe.refiner = Refiner(pipe.hand_model(True), refine_config)
        motion, = pipe(conditions, num_inference_steps=steps, guidance_scale=cfg_scale,
                       generator=torch.Generator(device="cpu").manual_seed(int(seed)), num_frames=num_frames,
                       first_frame=first_frame, window=window, overlap=overlap, frames=frames,
                       vision_mask=vision_mask, refine=refine, camera_poses=camera_poses,
                       camera_scale=camera_scale, other_hand=other_hand, progress=progress)
        return motion

    @torch.no_grad()
    def sample(
        self, batch: dict[str, Tensor], *, num_frames: int, batch_size: int = 1, steps: int | None = None,
        cfg_scale: float | None = None, generator: torch.Generator | None = None, first_frame: Tensor | None = None,
        scheduler: str = "ddim",
    ) -> Tensor:
        """One window: conditions -> MANO (B, N, 61) (:func:`unihand.diffusion.sampling.sample_window`)."""
        return sample_window(self, make_scheduler(self, scheduler), batch, num_frames=num_frames,
                             batch_size=batch_size, steps=steps, cfg_scale=cfg_scale, generator=generator,
                             first_frame=first_frame)
