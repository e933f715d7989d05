"""The tests' short way to draw one seeded motion: ``sample(model_or_pipeline, cond, seed=0, **pipeline_kwargs)``.

A bare :class:`UniHandModel` gets a :class:`UniHandPipeline` built once per model and scheduler (its
refiner once, as a user's pipeline)."""

from __future__ import annotations

import weakref

import torch

from unihand.data.io import Conditions, Motion
from unihand.models.unihand_model import UniHandModel
from unihand.pipeline import UniHandPipeline

_PIPES: "weakref.WeakKeyDictionary[UniHandModel, dict[str, UniHandPipeline]]" = weakref.WeakKeyDictionary()


def pipeline(model: UniHandModel | UniHandPipeline, scheduler: str = "ddim") -> UniHandPipeline:
    if isinstance(model, UniHandPipeline):
        return model if scheduler == "ddim" else UniHandPipeline(model.model, scheduler, model.hand_model, model.refiner)
    pipes = _PIPES.setdefault(model, {})
    if scheduler not in pipes:
        pipes[scheduler] = UniHandPipeline(model, scheduler)
    return pipes[scheduler]


def sample(model: UniHandModel | UniHandPipeline, cond: Conditions | None = None, seed: int = 0,
           scheduler: str = "ddim", **kwargs) -> Motion:
    """The first motion of ``pipe(cond, generator=seeded(seed), **kwargs)``."""
    return pipeline(model, scheduler)(cond, generator=torch.Generator().manual_seed(seed), **kwargs).motions[0]
