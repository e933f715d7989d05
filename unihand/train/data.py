"""Training data chosen by config, and the statistics each stage fits before training."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset, Sampler


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
    extra = {k: v for k, v in data_cfg.items() if k not in _OWN_KEYS}
    train = split == "train"
    common: dict[str, Any] = {"frames": frames, "render_size": data_cfg.get("render_size"), **extra}
    if train:
        common.update(seed=int(data_cfg.get("seed", 0)), length=int(data_cfg.get("epoch_size", 100000)))
    else:
        common.update(seed=int(data_cfg.get("val_seed", 999)), length=int(data_cfg.get("val_size", 256)))
    real_split = split if train else str(data_cfg.get("val_split", "val"))
    if data_cfg.get("mix"):
        dataset, sampler = build_mixture(data_cfg["mix"], real_split, num_samples=common["length"], **common)
        return dataset, sampler if train else None
    name = data_cfg.get("name", "synthetic")
    return build_one(name, data_cfg.get("root"), real_split, **common), None


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
