"""UniHand: one diffusion model that estimates and generates 4D hand motion.

    from unihand import UniHandPipeline, Conditions, Motion

    pipe = UniHandPipeline.from_pretrained()          # the shipped small model
    motion = pipe(Conditions.load("conditions.npz")).motions[0]

The names below are imported on first use, so ``import unihand`` stays cheap (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported when the name is first used).
_LAZY = {
    "UniHandPipeline": "unihand.pipeline.pipeline",
    "UniHandPipelineOutput": "unihand.pipeline.pipeline",
    "UniHandModel": "unihand.models.unihand_model",
    "Conditions": "unihand.data.io",
    "Motion": "unihand.data.io",
    "RefineConfig": "unihand.refine.objective",
    "UserError": "unihand.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'unihand' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
