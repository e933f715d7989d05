"""On-disk cache of dense vision tokens: each video goes through the backbone once (docs/design.md §4).

An entry is ``<root>/<key>.safetensors`` holding ``tokens (N, h, w, d_v)`` and ``valid (h, w)``. The key
hashes the frames' content (after RGB conversion, before resizing, so a list of frames and the same
frames stacked share an entry), the backbone's fingerprint (its identity: kind, architecture, input
size; and every weight) and the storage dtype. A changed frame or backbone gives a new key; entries
are written atomically and checked against their metadata when read, and an unreadable or mismatched
entry is recomputed and overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from unihand.files import atomic_write
from unihand.models.backbones import DenseTokens, VisionBackbone
from unihand.models.image import Frames, frames_to_tensor

FORMAT = "unihand-dense-tokens-1"


def frames_digest(rgb: torch.Tensor) -> str:
    """sha256 of ``(N, 3, H, W)`` frames from :func:`frames_to_tensor`: shape, dtype and bytes."""
    digest = hashlib.sha256(f"{tuple(rgb.shape)}|{rgb.dtype}".encode())
    digest.update(rgb.contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class FeatureCache:
    """Dense tokens per (video, backbone) under ``root``, stored as ``dtype`` (float32 keeps them exact)."""

    def __init__(self, root: str | os.PathLike, dtype: torch.dtype = torch.float32) -> None:
        self.root = Path(root)
        self.dtype = dtype

    def key(self, rgb: torch.Tensor, backbone: VisionBackbone) -> str:
        """Entry name for frames already passed through :func:`frames_to_tensor`."""
        parts = f"{FORMAT}|{frames_digest(rgb)}|{backbone.fingerprint()}|{self.dtype}"
        return hashlib.sha256(parts.encode()).hexdigest()[:40]

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def _load(self, path: Path, metadata: dict[str, str]) -> DenseTokens | None:
        """The entry at ``path`` if it exists, is readable and its metadata matches; else None."""
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                if f.metadata() != metadata:
                    return None
                return DenseTokens(f.get_tensor("tokens"), f.get_tensor("valid"))
        except (SafetensorError, OSError, KeyError):
            return None

    def get_or_compute(self, frames: Frames, backbone: VisionBackbone, batch_size: int = 16) -> DenseTokens:
        """Cached dense tokens of ``frames``, running ``backbone.encode`` only when no valid entry exists.

        Both paths return the same numbers (tokens go through the storage dtype), on the backbone's
        device and in its dtype, without gradients.
        """
        rgb = frames_to_tensor(frames)
        key = self.key(rgb, backbone)
        path = self.path(key)
        param = next(backbone.parameters())
        metadata = {
            "format": FORMAT,
            "key": key,
            "backbone": json.dumps(backbone.identity(), sort_keys=True),
            "num_frames": str(rgb.shape[0]),
        }
        entry = self._load(path, metadata)
        if entry is None:
            with torch.no_grad():
                dense = backbone.encode(rgb, batch_size=batch_size)
            tensors = {
                "tokens": dense.tokens.to(self.dtype).cpu().contiguous(),
                "valid": dense.valid.cpu().contiguous(),
            }
            atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
            entry = DenseTokens(tensors["tokens"], tensors["valid"])
        return DenseTokens(entry.tokens.to(param.device, param.dtype), entry.valid.to(param.device))
