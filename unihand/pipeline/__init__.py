"""Conditions -> motions: :class:`UniHandPipeline` and its stages (conditions, mirroring, windows,
refinement, forward kinematics). ``UniHand`` is the former all-in-one API, deprecated (it warns)."""

from unihand.models.unihand_model import UniHandModel, check_device, shipped_checkpoint
from unihand.pipeline.conditions import condition_arrays
from unihand.pipeline.legacy import UniHand
from unihand.pipeline.pipeline import UniHandPipeline, UniHandPipelineOutput, make_scheduler

__all__ = ["UniHand", "UniHandModel", "UniHandPipeline", "UniHandPipelineOutput", "check_device", "condition_arrays",
           "make_scheduler", "shipped_checkpoint"]
