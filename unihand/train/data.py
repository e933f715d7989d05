"""Training data chosen by config, and the statistics each stage fits before training."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from unihand.errors import UserError


def build_dataset(data_cfg: dict[str, Any], split: str) -> Dataset:
    """``data.name``: ``synthetic`` (default, generated on the fly) or a real dataset from its root.

    A list under ``data.mix`` ([{name, root, weight}, ...]) mixes datasets.
    """
    name = data_cfg.get("name", "synthetic")
    frames = int(data_cfg.get("frames", 48))
    if name == "synthetic":
        from unihand.data.windows import SyntheticWindows

        if split == "train":
            return SyntheticWindows(seed=int(data_cfg.get("seed", 0)), length=int(data_cfg["epoch_size"]), frames=frames)
        return SyntheticWindows(seed=int(data_cfg.get("val_seed", 999)), length=int(data_cfg["val_size"]), frames=frames)
    try:
        from unihand.data.datasets import build_dataset as build_real
    except ImportError as err:  # pragma: no cover - real adapters are part of the package
        raise UserError(f"dataset '{name}' is not available ({err})") from None
    return build_real(name, data_cfg.get("root"), split, frames=frames)


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
