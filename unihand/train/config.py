"""The typed training configuration: the ``data`` and ``train`` sections and the run around them.

Built from YAML plus ``--set`` overrides through :func:`unihand.config.typed`, so an unknown key
(``train.max_step``), a wrong type (``train.lr=fast``) or a value out of range (``train.batch_size=0``)
is a one-line error naming the key before any work starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from unihand.errors import UserError


@dataclass
class DataConfig:
    """Where training windows come from (:func:`unihand.train.data.build_dataset`)."""

    name: str = "synthetic"  # synthetic | dexycb | hot3d | ho3d
    root: str | None = None  # a real dataset's folder
    frames: int = 48
    seed: int = 0
    epoch_size: int = 100000
    val_size: int = 256
    val_seed: int = 999
    val_split: str = "val"
    mix: list | None = None  # [{name, root, weight, ...adapter settings}, ...]
    render_size: int | None = None  # add letterboxed S x S frames to every window
    # settings of the real-dataset adapters (each takes some of them; see docs/datasets.md)
    mano_dir: str | None = None
    cache_dir: str | None = None
    setup: str | None = None
    use_cache: bool | None = None

    def check(self, where: str) -> None:
        from unihand.data.datasets import NAMES

        if self.name not in NAMES:
            raise UserError(f"{where}.name: expected one of {', '.join(NAMES)}, got {self.name!r}")
        for key in ("frames", "epoch_size", "val_size", "render_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise UserError(f"{where}.{key}: expected an integer >= 1, got {value!r}")
        for key in ("seed", "val_seed"):
            if getattr(self, key) < 0:
                raise UserError(f"{where}.{key}: expected an integer >= 0, got {getattr(self, key)!r}")


@dataclass
class TrainConfig:
    """Optimisation, checkpoints and devices (:func:`unihand.train.run.run`)."""

    batch_size: int = 32  # per device
    max_steps: int = 2000
    lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.0
    seed: int = 0
    num_workers: int = 1
    log_every: int = 20
    ckpt_every: int = 250
    val_every: int = 500
    accelerator: str = "auto"
    devices: int | str | list = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    threads: int = 0  # torch CPU threads (0: torch's default)
    keep: dict | None = None  # probability that each condition modality is kept (train.masking)
    feature_cache: str | None = None  # folder caching a frozen backbone's tokens
    vision_lr_mult: float = 1.0
    perceptron_aux: float = 0.0
    frames_per_window: int = 4  # backbone stage: frames drawn per window
    ema: float = 0.0  # decay of an exponential moving average of the weights, exported (0: off)
    min_snr_gamma: float = 0.0  # diffusion: min-SNR-gamma weighting of the latent loss (0: uniform, the paper's)

    def check(self, where: str) -> None:
        from unihand.train.masking import DEFAULT_KEEP

        for key in ("batch_size", "max_steps", "log_every", "ckpt_every", "val_every", "num_nodes",
                    "frames_per_window"):
            if getattr(self, key) < 1:
                raise UserError(f"{where}.{key}: expected an integer >= 1, got {getattr(self, key)!r}")
        for key in ("warmup", "num_workers", "threads", "seed"):
            if getattr(self, key) < 0:
                raise UserError(f"{where}.{key}: expected an integer >= 0, got {getattr(self, key)!r}")
        for key in ("lr",):
            if getattr(self, key) <= 0:
                raise UserError(f"{where}.{key}: expected a number > 0, got {getattr(self, key)!r}")
        for key in ("weight_decay", "vision_lr_mult", "perceptron_aux", "min_snr_gamma"):
            if getattr(self, key) < 0:
                raise UserError(f"{where}.{key}: expected a number >= 0, got {getattr(self, key)!r}")
        if not 0 <= self.ema < 1:
            raise UserError(f"{where}.ema: expected a decay in [0, 1) (0: no moving average), got {self.ema!r}")
        if isinstance(self.devices, int) and (isinstance(self.devices, bool) or self.devices < 1):
            raise UserError(f"{where}.devices: expected an integer >= 1, 'auto' or a list of device ids, got {self.devices!r}")
        if self.keep is not None:
            bad = {m: p for m, p in self.keep.items()
                   if m not in DEFAULT_KEEP or isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1}
            if bad:
                raise UserError(f"{where}.keep: map some of {', '.join(DEFAULT_KEEP)} to probabilities in [0, 1], "
                                f"got {self.keep!r} (YAML needs a space after each colon: \"{{kp2d: 0.5}}\")")


@dataclass
class RunConfig:
    """One training run: the model preset and overrides, data, optimisation, the inputs of later stages."""

    preset: str = "small"
    model: dict = field(default_factory=dict)  # overrides of the preset, checked by unihand.config
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    vae: str | None = None  # diffusion stage: the exported VAE checkpoint
    init: str | None = None  # diffusion stage: an exported model to start from (its VAE when vae is unset)
    backbone: str | None = None  # diffusion stage: a pretrained small backbone (`unihand train backbone` export)

    def check(self, where: str) -> None:
        from unihand.config import model_config

        model_config(self.preset, self.model)  # unknown preset, keys, types: one line naming model.*


def as_dict(cfg: RunConfig) -> dict[str, Any]:
    """The plain nested dict the trainer reads (and writes to ``config.yaml``)."""
    return dataclasses.asdict(cfg)
