"""Procedural synthetic 4D hand data (docs/design.md §5): MANO motions, cameras, conditions, frames.

``SyntheticWorld(seed).sequence(index)`` makes one deterministic sequence; see
:mod:`unihand.data.synthetic.world` for how, and :mod:`unihand.data.windows` for the PyTorch
datasets built on it. ``unihand synth`` writes sets to disk.

The motions (:mod:`unihand.data.synthetic.motion`, docs/design.md §12) follow published hand
kinematics: reach-to-grasp episodes on objects of random shape and size (bell-shaped transport,
grip aperture peaking at ~2/3 of the reach and scaled to the object, grasp, manipulation,
release) at peak speeds from 0.1 to 1.5 m/s, DIP flexion coupled to ~2/3 of the PIP's, and
postures varying along a few synergies; ``bench/motion_stats.py`` compares them with the
literature.
"""

from unihand.data.synthetic.conditions import ConditionConfig
from unihand.geometry.letterbox import Letterbox, letterbox
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
