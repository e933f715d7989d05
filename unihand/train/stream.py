"""The training data stream's place in the checkpoint, so that a resumed run reads on where it stopped.

Lightning restores the step count but restarts the train loader at its first window, so a resumed
run would train on the epoch's first windows twice. :class:`StreamPosition` writes the next window
(in the single-process order of :class:`~unihand.train.data.ShardSampler`) and the global RNG state
(dropout) into every checkpoint and, on resume, makes the sampler pass over the windows already read.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback

from unihand.train.data import ShardSampler

KEY = "data_stream"


class StreamPosition(Callback):
    """Save and restore the next window of ``sampler`` (global batches of ``batch_size`` x world windows)."""

    def __init__(self, sampler: ShardSampler, batch_size: int) -> None:
        self.sampler, self.batch_size = sampler, int(batch_size)
        self._rng: torch.Tensor | None = None

    def _epoch_windows(self, world: int) -> int:
        """Windows one epoch reads on all ranks together (whole batches only: the loader drops the rest)."""
        return len(self.sampler) // self.batch_size * self.batch_size * world

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        world = int(trainer.world_size)
        per_step = self.batch_size * world
        read = int(trainer.global_step) * per_step
        checkpoint[KEY] = {"next_window": read % max(self._epoch_windows(world), 1), "windows_per_step": per_step,
                           "rng": torch.get_rng_state()}

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(KEY)
        world = int(trainer.world_size)
        if state is None:  # a checkpoint from before the stream was saved: its position follows from the step
            state = {"next_window": int(checkpoint.get("global_step", 0)) * self.batch_size * world
                     % max(self._epoch_windows(world), 1)}
        self.sampler.skip = int(state["next_window"]) // world
        if trainer.global_rank == 0 and state.get("rng") is not None:
            self._rng = state["rng"]  # set at the first step: on_train_start reseeds

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self._rng is not None:
            torch.set_rng_state(self._rng.to(torch.uint8).cpu())
            self._rng = None
