"""Procedural synthetic 4D hand data (docs/design.md §5): MANO motions, cameras, conditions, frames.

``SyntheticWorld(seed).sequence(index)`` makes one deterministic sequence; see
:mod:`unihand.data.synthetic.world` for how, and :mod:`unihand.data.windows` for the PyTorch
datasets built on it. ``unihand synth`` writes sets to disk.
"""

from unihand.data.synthetic.conditions import ConditionConfig
from unihand.data.synthetic.render import Letterbox, letterbox
from unihand.data.synthetic.world import TEST_SEED, TRAIN_SEED, SynthConfig, SyntheticSequence, SyntheticWorld

__all__ = [
    "TEST_SEED",
    "TRAIN_SEED",
    "ConditionConfig",
    "Letterbox",
    "SynthConfig",
    "SyntheticSequence",
    "SyntheticWorld",
    "letterbox",
]
