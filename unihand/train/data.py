"""Training data chosen by config, and the statistics each stage fits before training."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from unihand.errors import UserError


#: data.* keys the trainer reads itself; every other key goes to the dataset adapter (mano_dir, cache_dir, ...).
_OWN_KEYS = {"name", "root", "frames", "seed", "epoch_size", "val_size", "val_seed", "val_split", "mix", "render_size"}


def build_dataset(data_cfg: dict[str, Any], split: str) -> tuple[Dataset, Sampler | None]:
    """Training or validation data from the ``data`` config section.

    ``data.name``: ``synthetic`` (default, generated on the fly from ``seed``), ``dexycb``,
    ``hot3d`` or ``ho3d`` from ``data.root``; ``data.mix: [{name, root, weight, ...}, ...]``
    mixes datasets with sampling weights. Validation uses ``data.val_split`` (default ``val``;
    HOT3D's paper split has none: set ``test``).
    """
    from unihand.data.datasets import build_dataset as build_one, build_mixture

    frames = int(data_cfg.get("frames", 48))
    extra = {k: v for k, v in data_cfg.items() if k not in _OWN_KEYS and v is not None}
    name = data_cfg.get("name", "synthetic")
    if not data_cfg.get("mix"):
        check_adapter_settings(name, extra, "data")
    train = split == "train"
    common: dict[str, Any] = {"frames": frames, "render_size": data_cfg.get("render_size"), **extra}
    if train:
        common.update(seed=int(data_cfg.get("seed", 0)), length=int(data_cfg.get("epoch_size", 100000)))
    else:
        common.update(seed=int(data_cfg.get("val_seed", 999)), length=int(data_cfg.get("val_size", 256)))
    real_split = split if train else str(data_cfg.get("val_split", "val"))
    if data_cfg.get("mix"):
        dataset, sampler = build_mixture(data_cfg["mix"], real_split, num_samples=common["length"], **common)
        if sampler.generator is None:  # its own stream, alike on every rank: DDP ranks shard one sequence of draws
            sampler.generator = torch.Generator().manual_seed(common["seed"])
        return dataset, sampler if train else None
    return build_one(name, data_cfg.get("root"), real_split, **common), None


def check_adapter_settings(name: str, settings: dict[str, Any], where: str) -> None:
    """One line naming the key when dataset ``name``'s adapter does not take one of ``settings``."""
    import inspect

    from unihand.data.datasets import ADAPTERS, _adapter

    takes = set() if name not in ADAPTERS else {
        p.name for p in inspect.signature(_adapter(name).load_tracks).parameters.values()
        if p.kind is p.KEYWORD_ONLY}
    for key in settings:
        if key not in takes:
            raise UserError(f"{where}.{key}: not a setting of the {name} data (it takes: {', '.join(sorted(takes)) or 'none'})")


def process_shard() -> tuple[int, int]:
    """(global rank, world size) of this process in the initialised process group; (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardSampler(Sampler[int]):
    """This process's share of a sequence of items: rank r of a world of W reads items r, r + W, r + 2W, ...

    The sequence is ``0, 1, ..., size - 1`` (the windows in order, as a single process reads them), or
    one epoch of ``base`` (e.g. a mixture's weighted draws, alike on every rank), cut to a multiple of W
    so that every rank reads as many items and none is read twice (no padding). The rank is read when an
    epoch starts (the process group exists by then, however the processes were launched: Lightning's
    ``ddp``, ``torchrun``, SLURM). The shards together are what one process reads, batch by batch:
    with batch B per rank, rank r's i-th window of batch k is window i x W + r of the single-process
    batch k of W x B windows (:class:`~unihand.train.masking.BatchRandom` relies on this).
    """

    def __init__(self, size: int, base: Sampler | None = None, shard: tuple[int, int] | None = None) -> None:
        self.size, self.base, self.shard = int(size), base, shard
        self.skip = 0  # items of this rank's shard to pass over once, at the next epoch start (a resume)

    def _shard(self) -> tuple[int, int]:
        return self.shard or process_shard()

    def __len__(self) -> int:
        total = len(self.base) if self.base is not None else self.size
        return total // self._shard()[1]

    def __iter__(self):
        rank, world = self._shard()
        items = list(self.base) if self.base is not None else range(self.size)
        start, self.skip = rank + self.skip * world, 0
        return iter(items[start : len(items) - len(items) % world : world])


@torch.no_grad()
def fit_statistics(model: Any, dataset: Dataset, stage: str, count: int = 256) -> None:
    """VAE stage: translation statistics of the motion features. Diffusion stage: latent scale."""
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    mano = torch.stack([it["mano"] for it in items])
    if stage == "vae":
        model.vae.codec.fit(mano)
        return
    model.eval()
    model.denoiser.latent_scale.fill_(1.0)
    latent = torch.cat([model.encode_latent(mano[i : i + 64]) for i in range(0, len(mano), 64)])
    model.denoiser.latent_scale.fill_(float(latent.std()))
    model.train()
