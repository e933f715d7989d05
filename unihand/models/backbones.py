"""Vision backbones: full, uncropped frames -> dense tokens (paper §3.3, docs/design.md §4).

Every backbone reads frames as :mod:`unihand.models.image` prepares them and returns
:class:`DenseTokens`: ``tokens (M, h, w, d_v)`` with ``h = w = input_size / patch`` and no CLS/register
tokens, plus ``valid (h, w)``, True for tokens whose patch overlaps the frame and False for tokens that
only see padding.

- :class:`~unihand.models.dinov2.Dinov2Backbone`: DINOv2 from the user's disk (:mod:`unihand.models.dinov2`);
- :class:`SmallBackbone`: a small convolutional network (stride 16: 14 x 14 tokens at 224 px) for CPU,
  tests and the synthetic demo; trainable with the rest of the model unless frozen;
- ``untrained=True`` (paper Table 4): the same architecture with random weights, frozen.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from unihand.errors import UserError
from unihand.models.image import Frames, frames_to_tensor, letterbox_pixels, valid_tokens

@dataclass
class DenseTokens:
    """Dense tokens of M frames and which of them see the frame rather than padding."""

    tokens: Tensor  # (M, h, w, d_v)
    valid: Tensor  # (h, w) bool



class VisionBackbone(nn.Module):
    """Base class: ``forward`` maps normalised ``(M, 3, S, S)`` pixels to ``(M, h, w, d_v)`` tokens."""

    name: str
    dim: int
    patch_size: int
    input_size: int

    def __init__(self) -> None:
        super().__init__()
        self.frozen = False
        self._fingerprint: tuple[tuple[Any, ...], str] | None = None

    @property
    def grid(self) -> int:
        """Tokens per side: ``input_size // patch_size``."""
        return self.input_size // self.patch_size

    def _check_input_size(self) -> None:
        if self.input_size % self.patch_size:
            raise UserError(
                f"backbone input size {self.input_size} is not a multiple of its patch size {self.patch_size}"
            )

    def freeze(self) -> "VisionBackbone":
        """No gradients and eval mode from now on (``train()`` keeps it in eval)."""
        self.frozen = True
        self.requires_grad_(False)
        return self.train(False)

    def train(self, mode: bool = True) -> "VisionBackbone":
        return super().train(mode and not self.frozen)

    def encode(self, frames: Frames, batch_size: int = 16) -> DenseTokens:
        """Dense tokens of one sequence of frames (all the same size), ``batch_size`` frames at a time.

        A frozen backbone runs under ``torch.no_grad``; a trainable one keeps the graph.
        """
        rgb = frames_to_tensor(frames)
        param = next(self.parameters())
        ctx = torch.no_grad() if self.frozen else nullcontext()
        with ctx:
            chunks = [
                self(letterbox_pixels(rgb[i : i + batch_size].to(param.device), self.input_size).to(param.dtype))
                for i in range(0, rgb.shape[0], batch_size)
            ]
        valid = valid_tokens(rgb.shape[-2], rgb.shape[-1], self.input_size, self.patch_size)
        return DenseTokens(torch.cat(chunks), valid.to(param.device))

    def identity(self) -> dict[str, Any]:
        """What, besides the weights, determines the tokens: kind, architecture, input size."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """sha256 of :meth:`identity` and every weight; recomputed only after the weights change."""
        tensors = self.state_dict(keep_vars=True)
        stamp = tuple((k, t.data_ptr(), t._version) for k, t in tensors.items())
        if self._fingerprint is None or self._fingerprint[0] != stamp:
            digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode())
            for key, t in tensors.items():
                digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}".encode())
                digest.update(t.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy().tobytes())
            self._fingerprint = (stamp, digest.hexdigest())
        return self._fingerprint[1]


class _ConvBlock(nn.Module):
    """ConvNeXt-style residual block: depthwise 7x7, norm, pointwise MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.GroupNorm(1, dim)
        self.mlp = nn.Sequential(nn.Conv2d(dim, 4 * dim, 1), nn.GELU(), nn.Conv2d(4 * dim, dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mlp(self.norm(self.dw(x)))


class SmallBackbone(VisionBackbone):
    """Small CNN with stride 16 (14 x 14 tokens at 224 px), d_v = ``dim``; fast on CPU.

    A 4x4/4 patchify stem, two 2x2/2 downsamplings and ``blocks`` ConvNeXt-style blocks at stride 16.
    """

    def __init__(self, dim: int = 160, input_size: int = 224, blocks: int = 2) -> None:
        super().__init__()
        self.name = "small"
        self.dim = dim
        self.patch_size = 16
        self.input_size = int(input_size)
        self.blocks = blocks
        self._check_input_size()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 4, stride=4), nn.GroupNorm(1, 64), nn.GELU(),
            nn.Conv2d(64, 128, 2, stride=2), nn.GroupNorm(1, 128), nn.GELU(),
            nn.Conv2d(128, dim, 2, stride=2), nn.GroupNorm(1, dim), nn.GELU(),
        )
        self.stages = nn.Sequential(*[_ConvBlock(dim) for _ in range(blocks)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, pixels: Tensor) -> Tensor:
        return self.norm(self.stages(self.stem(pixels)).permute(0, 2, 3, 1))

    def identity(self) -> dict[str, Any]:
        return {"kind": "small", "dim": self.dim, "blocks": self.blocks, "input_size": self.input_size}


def build_backbone(
    kind: str = "small",
    *,
    size: str = "small",
    path: str | os.PathLike | None = None,
    untrained: bool = False,
    input_size: int = 224,
    small_dim: int = 160,
    cache_dir: str | os.PathLike | None = None,
) -> VisionBackbone:
    """``kind="dinov2"``: see :func:`unihand.models.dinov2.load_dinov2`. ``kind="small"``: :class:`SmallBackbone`, trainable,
    or frozen with random weights when ``untrained``."""
    if kind == "dinov2":
        from unihand.models.dinov2 import load_dinov2  # transformers only when DINOv2 is asked for

        return load_dinov2(path, size=size, untrained=untrained, input_size=input_size, cache_dir=cache_dir)
    if kind == "small":
        if path is not None:
            raise UserError("--backbone-path is for --backbone dinov2; the small backbone is trained with the model")
        backbone = SmallBackbone(dim=small_dim, input_size=input_size)
        return backbone.freeze() if untrained else backbone
    raise UserError(f"unknown backbone '{kind}'; choose 'small' or 'dinov2'")
