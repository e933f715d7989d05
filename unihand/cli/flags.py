"""Checks of the flags several subcommands share, run before any work, naming the flag; and the names and
defaults the help shows."""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterator
from typing import Any

from unihand.errors import UserError

# Names and defaults shown in --help, spelled out here so that building the parser imports no torch
# (--help in well under a second); tests/test_cli_basics.py checks each against the library's own.
SCHEDULER_NAMES = ("ddim", "dpm", "euler")  # unihand.diffusion.sampling.SCHEDULERS
DEFAULT_FOV_DEG = 60.0  # unihand.geometry.camera.DEFAULT_FOV_DEG
CONF_THRESHOLD = 0.5  # unihand.video.conditions.CONF_THRESHOLD
DATASET_NAMES = ("dexycb", "hot3d", "ho3d", "synthetic")  # unihand.eval.evaluate.DATASETS
CAMERA_PRESET_NAMES = ("aria", "gopro", "phone", "phone_portrait", "webcam")  # unihand.data.synthetic.camera
ACTIVITY_NAMES = ("grasp", "gestures", "taps", "counting", "wrist_turn", "single_fingers", "snap")  # motion.ACTIVITIES
TRAIN_SEED = 0  # unihand.data.synthetic.world.TRAIN_SEED


def check_sampling_flags(args: argparse.Namespace) -> None:
    """``--steps``, ``--cfg-scale``, ``--seed`` (those the subcommand has): one line naming the bad one."""
    steps = getattr(args, "steps", None)
    if steps is not None and steps < 1:
        raise UserError(f"--steps {steps}: expected a whole number of denoising steps >= 1 (default: the checkpoint's)")
    cfg = getattr(args, "cfg_scale", None)
    if cfg is not None and not math.isfinite(cfg):
        raise UserError(f"--cfg-scale {cfg}: expected a finite number (1: no guidance)")
    seed = getattr(args, "seed", 0)
    if seed is not None and not 0 <= seed < 2**63:
        raise UserError(f"--seed {seed}: expected a whole number from 0 to 2**63 - 1")


def check_model_flags(model: Any, args: argparse.Namespace) -> None:
    """The flags whose range depends on the loaded checkpoint (``--steps`` up to its training steps)."""
    steps = getattr(args, "steps", None)
    train_steps = model.cfg.diffusion.train_steps
    if steps is not None and steps > train_steps:
        raise UserError(f"--steps {steps}: this checkpoint was trained with {train_steps} diffusion steps; "
                        f"expected 1 to {train_steps}")


def check_positive(args: argparse.Namespace, *names: str) -> None:
    """Integer flags that must be >= 1 when given (``--frames``, ``--num``, ``--limit``...)."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} {value}: expected a whole number >= 1")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (0: leave as is), restoring the previous count after."""
    if n < 0:
        raise UserError(f"--threads {n}: expected a whole number >= 0 (0: torch's default)")
    if n == 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
