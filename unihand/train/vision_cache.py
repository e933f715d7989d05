"""Training windows with a frozen backbone's dense tokens instead of frames, cached on disk.

With a frozen backbone (DINOv2, or the pretrained small one with ``model.vision.frozen``) the dense
tokens of a training window never change, so ``train.feature_cache: DIR`` renders each window and
runs the backbone once (:meth:`CachedTokenWindows.prepare`, before training) and every epoch after
reads ``tokens (N, h, w, d_v)`` from ``DIR/<key>.safetensors``. The key hashes the dataset's
identity, the window index, the backbone's fingerprint (architecture and every weight) and the
storage dtype, so a changed dataset or backbone never reads stale tokens. Synthetic windows only:
they are a deterministic function of their index (real-data training windows start at random frames;
their frames go through :class:`~unihand.models.feature_cache.FeatureCache` per video instead).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset
from tqdm import tqdm

from unihand.files import atomic_write
from unihand.data.windows import SyntheticWindows
from unihand.errors import UserError
from unihand.models.backbones import VisionBackbone

log = logging.getLogger("unihand")
FORMAT = "unihand-window-tokens-1"


class CachedTokenWindows(Dataset):
    """Items of ``dataset`` without ``frames``, with ``tokens`` (N, h, w, d_v) and ``token_valid`` (h, w)."""

    def __init__(self, dataset: Dataset, backbone: VisionBackbone, root: str | os.PathLike,
                 dtype: torch.dtype = torch.float16) -> None:
        if not isinstance(dataset, SyntheticWindows) or not dataset.render:
            raise UserError("train.feature_cache works with rendered synthetic windows (data.name: synthetic, "
                            "data.render_size set)")
        if not backbone.frozen:
            raise UserError("train.feature_cache needs a frozen backbone (model.vision.frozen: true, or dinov2)")
        self.rendered = dataset
        self.plain = dataset.without_frames()
        self.backbone = backbone
        self.root = Path(root)
        self.dtype = dtype
        ident = json.dumps({"format": FORMAT, "data": dataset.identity(), "dtype": str(dtype)}, sort_keys=True)
        self.prefix = hashlib.sha256(f"{ident}|{backbone.fingerprint()}".encode()).hexdigest()[:24]

    def __len__(self) -> int:
        return len(self.plain)

    def path(self, i: int) -> Path:
        return self.root / f"{self.prefix}-{i:07d}.safetensors"

    def _read(self, i: int) -> dict[str, torch.Tensor] | None:
        path = self.path(i)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("key") != f"{self.prefix}-{i}":
                    return None
                return {"tokens": f.get_tensor("tokens"), "token_valid": f.get_tensor("valid")}
        except (SafetensorError, OSError):
            return None

    @torch.no_grad()
    def prepare(self, batch: int = 8) -> int:
        """Compute every missing entry (render + backbone); returns how many were computed."""
        missing = [i for i in range(len(self)) if self._read(i) is None]
        if not missing:
            return 0
        log.info("feature cache %s: computing %d of %d windows", self.root, len(missing), len(self))
        device = next(self.backbone.parameters()).device
        for s in tqdm(range(0, len(missing), batch), desc="caching vision tokens", unit="batch"):
            idx = missing[s : s + batch]
            for i, item in zip(idx, self.rendered.__getitems__(idx)):
                dense = self.backbone.encode(item["frames"].to(device), batch_size=64)
                tensors = {"tokens": dense.tokens.to(self.dtype).cpu().contiguous(), "valid": dense.valid.cpu()}
                meta = {"format": FORMAT, "key": f"{self.prefix}-{i}"}
                atomic_write(self.path(i), lambda tmp, t=tensors, m=meta: save_file(t, tmp, metadata=m))
        return len(missing)

    def _with_tokens(self, i: int, item: dict[str, Any]) -> dict[str, Any]:
        entry = self._read(i)
        if entry is None:
            raise UserError(f"{self.path(i)}: missing or unreadable feature-cache entry (rerun to recompute)")
        item.update(tokens=entry["tokens"].float(), token_valid=entry["token_valid"])
        return item

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._with_tokens(int(i), self.plain[int(i)])

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        return [self._with_tokens(int(i), it) for i, it in zip(indices, self.plain.__getitems__(indices))]
