"""Real datasets (DexYCB, HOT3D, HO3D) and the registry that builds training data by name.

``build_dataset(name, root, split, **kw)`` returns a map-style dataset whose items have the
layout of the synthetic windows (see :class:`~unihand.data.datasets.common.TrackWindows`);
``build_mixture`` mixes several with sampling weights. ``load_tracks(name, root, split, **kw)``
gives whole sequences for evaluation.
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

from torch.utils.data import ConcatDataset, Dataset, WeightedRandomSampler

from unihand.data.datasets.common import (
    WINDOW,
    FeatureHook,
    SkipReport,
    Track,
    TrackWindows,
    mix,
    usable_tracks,
)
from unihand.errors import UserError

#: Dataset name -> module with ``load_tracks(root, split, **kw)``.
ADAPTERS = {
    "dexycb": "unihand.data.datasets.dexycb",
    "hot3d": "unihand.data.datasets.hot3d",
    "ho3d": "unihand.data.datasets.ho3d",
}
NAMES = ("synthetic", *ADAPTERS)

__all__ = [
    "ADAPTERS", "NAMES", "WINDOW", "FeatureHook", "SkipReport", "Track", "TrackWindows", "build_dataset",
    "build_mixture", "load_tracks", "mix", "usable_tracks",
]


def _adapter(name: str) -> Any:
    if name not in ADAPTERS:
        raise UserError(f"unknown dataset {name!r}; choose from {', '.join(NAMES)}")
    return importlib.import_module(ADAPTERS[name])


def load_tracks(name: str, root: Any, split: str, **kw: Any) -> list[Track]:
    """Whole right-handed tracks of a real dataset (keyword arguments go to its adapter)."""
    if root is None:
        raise UserError(f"dataset {name!r} needs its root folder (data.root / --root)")
    return _adapter(name).load_tracks(root, split, **kw)


def build_dataset(
    name: str, root: Any, split: str, *, frames: int = WINDOW, render_size: int | None = None,
    features: FeatureHook | None = None, seed: int | None = None, length: int | None = None, **kw: Any,
) -> Dataset:
    """Training/validation windows of ``frames`` frames from dataset ``name``.

    ``synthetic`` generates windows on the fly (``seed``, ``length``; ``root`` unused). Real
    datasets load ``split`` from ``root`` (``kw`` such as ``mano_dir``, ``cache_dir`` go to the
    adapter); training splits draw a random valid start per item, others tile each sequence.
    Sequences shorter than ``frames`` are reported and skipped. ``render_size`` S adds the
    letterboxed S x S frames to every item, ``features`` a vision feature-cache lookup.
    """
    if name == "synthetic":
        from unihand.data.windows import SyntheticWindows

        default_seed, default_length = (0, 10000) if split == "train" else (999, 512)
        return SyntheticWindows(default_length if length is None else length,
                                seed=default_seed if seed is None else seed, frames=frames,
                                render=render_size is not None, size=render_size or 224)
    tracks = load_tracks(name, root, split, **kw)
    report = SkipReport(f"{name}/{split}")
    kept = usable_tracks(tracks, report, frames)
    report.finish(kept, f"{len(tracks)} sequences for {frames}-frame windows")
    return TrackWindows(kept, window=frames, random_start=split == "train", render_size=render_size,
                        features=features)


def build_mixture(
    specs: Sequence[dict[str, Any]], split: str, num_samples: int | None = None, **common: Any,
) -> tuple[ConcatDataset, WeightedRandomSampler]:
    """Mix datasets: ``specs`` is ``[{name, root, weight, ...adapter kw}, ...]`` (weight default 1);
    ``common`` keyword arguments go to every :func:`build_dataset` call."""
    datasets, weights = [], []
    for spec in specs:
        spec = dict(spec)
        try:
            name = spec.pop("name")
        except KeyError:
            raise UserError(f"a data.mix entry needs a 'name' ({', '.join(NAMES)}): {spec}") from None
        weights.append(float(spec.pop("weight", 1.0)))
        datasets.append(build_dataset(name, spec.pop("root", None), split, **{**common, **spec}))
    return mix(datasets, weights, num_samples)
