"""Random MANO-shaped model files, for tests and for trying ``--mano-dir`` without the real model.

They have the official files' fields, shapes and on-disk format (a protocol-2 pickle of numpy
arrays with ``J_regressor`` as ``scipy.sparse.csc_matrix``), but random contents: not a hand.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from unihand.hand.joints import MANO_PARENTS

NUM_FACES = 1538


def random_mano_arrays(seed: int = 0) -> dict[str, Any]:
    """Fields of a MANO pickle with random values (float64 values exactly representable in float32)."""
    rng = np.random.default_rng(seed)

    def normal(scale: float, *shape: int) -> np.ndarray:
        return (scale * rng.standard_normal(shape)).astype(np.float32).astype(np.float64)

    def rows_summing_to_one(rows: int, cols: int, nonzero: int) -> np.ndarray:
        out = np.zeros((rows, cols))
        for r in range(rows):
            cols_r = rng.choice(cols, nonzero, replace=False)
            out[r, cols_r] = rng.random(nonzero) + 0.1
        return out / out.sum(1, keepdims=True)

    parents = np.array(MANO_PARENTS, dtype=np.int64)
    parents[0] = 2**32 - 1  # as stored in the official files
    return {
        "v_template": normal(0.05, 778, 3),
        "shapedirs": normal(0.01, 778, 3, 10),
        "posedirs": normal(0.005, 778, 3, 135),
        "J_regressor": scipy.sparse.csc_matrix(rows_summing_to_one(16, 778, 24)),
        "weights": rows_summing_to_one(778, 16, 3),
        "kintree_table": np.stack([parents, np.arange(16)]),
        "f": rng.integers(0, 778, (NUM_FACES, 3)).astype(np.uint32),
        "hands_components": np.linalg.qr(rng.standard_normal((45, 45)))[0].T * 0.5,
        "hands_mean": normal(0.2, 45),
        "J": normal(0.05, 16, 3),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def write_random_mano(directory: str | os.PathLike, seed: int = 0) -> Path:
    """Write random ``MANO_RIGHT.pkl`` and ``MANO_LEFT.pkl`` into ``directory``; returns it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for offset, side in enumerate(("RIGHT", "LEFT")):
        with open(directory / f"MANO_{side}.pkl", "wb") as fh:
            pickle.dump(random_mano_arrays(seed + offset), fh, protocol=2)
    return directory
