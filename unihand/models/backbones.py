"""Vision backbones: full, uncropped frames -> dense tokens (paper §3.3, docs/design.md §4).

Every backbone prepares frames the same way:

1. frames become RGB: grayscale ``(H, W)`` / ``(H, W, 1)`` is replicated to three channels, RGBA drops
   its alpha channel (as PIL's ``Image.convert("RGB")`` does);
2. each frame is resized with its aspect ratio kept so that its longer side equals ``input_size``
   (bilinear, antialiased), placed at the TOP-LEFT of an ``input_size`` square and padded bottom/right,
   never cropped;
3. ImageNet normalisation; the padding is 0 after normalisation (the ImageNet mean colour).

The output is :class:`DenseTokens`: ``tokens (M, h, w, d_v)`` with ``h = w = input_size / patch`` and
no CLS/register tokens, plus ``valid (h, w)``, True for tokens whose patch overlaps the frame and False
for tokens that only see padding. Token ``(y, x)`` covers pixels ``[y*patch, (y+1)*patch)`` of the
resized frame, counted from its top-left corner.

Backbones:

- :class:`Dinov2Backbone`: DINOv2 through ``transformers``, loaded only from a local directory or the
  Hugging Face cache (``local_files_only``), frozen (no gradients, always in eval mode).
- :class:`SmallBackbone`: a small convolutional network (stride 16: 14 x 14 tokens at 224 px) for CPU,
  tests and the synthetic demo; trainable with the rest of the model unless frozen.
- ``untrained=True`` (paper Table 4, "w/o pretrained E_vision"): the same architecture with random
  weights, frozen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from unihand.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Architecture of the released DINOv2 checkpoints (``facebook/dinov2-<size>`` on the Hugging Face hub).
DINOV2_SIZES: dict[str, dict[str, Any]] = {
    "small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16},
    "giant": {"hidden_size": 1536, "num_hidden_layers": 40, "num_attention_heads": 24, "use_swiglu_ffn": True},
}
DINOV2_TYPES = ("dinov2", "dinov2_with_registers")

#: One sequence of frames: a stacked array/tensor or a list of per-frame ``(H, W[, C])`` arrays.
Frames = Union[np.ndarray, Tensor, Sequence[Union[np.ndarray, Tensor]]]


@dataclass
class DenseTokens:
    """Dense tokens of M frames and which of them see the frame rather than padding."""

    tokens: Tensor  # (M, h, w, d_v)
    valid: Tensor  # (h, w) bool


def _as_tensor(frame: np.ndarray | Tensor) -> Tensor:
    return frame if isinstance(frame, Tensor) else torch.from_numpy(np.ascontiguousarray(frame))


def _hwc_to_rgb(frame: Tensor, where: str) -> Tensor:
    """One ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` frame as ``(3, H, W)``."""
    if frame.dim() == 2:
        frame = frame[..., None]
    if frame.dim() != 3 or frame.shape[-1] not in (1, 3, 4):
        raise UserError(
            f"{where} has shape {tuple(frame.shape)}; "
            "expected (H, W) grayscale, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA"
        )
    return frame[..., :3].expand(*frame.shape[:2], 3).permute(2, 0, 1)


def frames_to_tensor(frames: Frames) -> Tensor:
    """Stack a sequence of frames as ``(N, 3, H, W)`` uint8 or float32 in [0, 1] (CPU).

    Accepted: a list of per-frame ``(H, W[, C])`` arrays (C in 1, 3, 4); a stacked ``(N, H, W)``
    grayscale array; a stacked ``(N, H, W, C)`` array; or a channel-first ``(N, C, H, W)`` array (as in
    training windows), recognised when dim 1 is 1, 3 or 4 and the last dim is not. Grayscale becomes
    RGB by replication, RGBA drops its alpha. uint8 is kept; floats must lie in [0, 1].
    """
    if isinstance(frames, (np.ndarray, Tensor)):
        stack = _as_tensor(frames)
        if stack.dim() == 3 and stack.shape[-1] in (1, 3, 4):
            raise UserError(
                f"frames of shape {tuple(stack.shape)} look like one (H, W, C) image; "
                "pass a sequence: a list of frames or an array with a leading frame axis"
            )
        if stack.dim() == 3:
            stack = stack[:, None]
        elif stack.dim() == 4 and (stack.shape[-1] in (1, 3, 4) or stack.shape[1] not in (1, 3, 4)):
            stack = stack.permute(0, 3, 1, 2)
        if stack.dim() != 4 or stack.shape[1] not in (1, 3, 4):
            raise UserError(
                f"frames have shape {tuple(frames.shape)}; expected (N, H, W), (N, H, W, C) or (N, C, H, W) "
                "with C = 1 (grayscale), 3 (RGB) or 4 (RGBA)"
            )
        if stack.shape[0] == 0:
            raise UserError("the sequence has no frames")
        out = stack[:, :3].expand(-1, 3, -1, -1).cpu()
    else:
        rgb = [_hwc_to_rgb(_as_tensor(f), f"frame {i}") for i, f in enumerate(frames)]
        if not rgb:
            raise UserError("the sequence has no frames")
        sizes = [tuple(f.shape[1:]) for f in rgb]
        for i, size in enumerate(sizes):
            if size != sizes[0]:
                raise UserError(
                    f"frame {i} is {size[0]}x{size[1]} (HxW) but frame 0 is {sizes[0][0]}x{sizes[0][1]}; "
                    "all frames of one sequence must have the same size"
                )
        out = torch.stack(rgb).cpu()
    if out.dtype == torch.uint8:
        return out.contiguous()
    if not out.is_floating_point():
        raise UserError(f"frames have dtype {out.dtype}; expected uint8 (0-255) or floats in [0, 1]")
    out = out.to(torch.float32)
    if out.numel() and (out.min() < 0 or out.max() > 1 or not torch.isfinite(out).all()):
        raise UserError("float frames must lie in [0, 1] (uint8 frames may use 0-255)")
    return out.contiguous()


def fitted_size(height: int, width: int, input_size: int) -> tuple[int, int]:
    """Size ``(h, w)`` of a ``height x width`` frame resized so its longer side is ``input_size``."""
    scale = input_size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def letterbox(rgb: Tensor, input_size: int) -> Tensor:
    """Resize ``(n, 3, H, W)`` frames keeping the aspect ratio, ImageNet-normalise, pad bottom/right to a square."""
    h, w = fitted_size(rgb.shape[-2], rgb.shape[-1], input_size)
    x = rgb.float() / 255.0 if rgb.dtype == torch.uint8 else rgb.float()
    if (h, w) != tuple(x.shape[-2:]):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    mean = x.new_tensor(IMAGENET_MEAN)[:, None, None]
    std = x.new_tensor(IMAGENET_STD)[:, None, None]
    return F.pad((x - mean) / std, (0, input_size - w, 0, input_size - h))


def valid_tokens(height: int, width: int, input_size: int, patch_size: int) -> Tensor:
    """``(h, w)`` bool: tokens whose patch overlaps a ``height x width`` frame after :func:`letterbox`."""
    h, w = fitted_size(height, width, input_size)
    grid = input_size // patch_size
    rows = torch.arange(grid) * patch_size < h
    cols = torch.arange(grid) * patch_size < w
    return rows[:, None] & cols[None, :]


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
                self(letterbox(rgb[i : i + batch_size].to(param.device), self.input_size).to(param.dtype))
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


class Dinov2Backbone(VisionBackbone):
    """A frozen ``transformers`` DINOv2 model (with or without registers); returns its patch tokens.

    DINOv2 interpolates its position embeddings to the input grid: 224 px gives 16 x 16 tokens.
    """

    def __init__(self, model: nn.Module, name: str, input_size: int = 224) -> None:
        super().__init__()
        config = model.config
        if config.model_type not in DINOV2_TYPES:
            raise UserError(f"expected a DINOv2 model, got model type '{config.model_type}'")
        self.model = model
        self.name = name
        self.dim = int(config.hidden_size)
        self.patch_size = int(config.patch_size)
        self.input_size = int(input_size)
        self.num_prefix = 1 + int(getattr(config, "num_register_tokens", 0))
        self._check_input_size()
        self.freeze()

    def forward(self, pixels: Tensor) -> Tensor:
        hidden = self.model(pixel_values=pixels).last_hidden_state[:, self.num_prefix :]
        grid = pixels.shape[-1] // self.patch_size
        return hidden.reshape(pixels.shape[0], grid, grid, self.dim)

    def identity(self) -> dict[str, Any]:
        config = {
            k: v for k, v in self.model.config.to_dict().items() if k not in ("transformers_version", "_name_or_path")
        }
        return {"kind": "dinov2", "config": config, "input_size": self.input_size}


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


def _read_dinov2_config(path: Path) -> dict[str, Any]:
    """``config.json`` of a DINOv2 directory, or a UserError saying what the path holds instead."""
    if not path.exists():
        raise UserError(f"--backbone-path {path}: no such directory")
    if not path.is_dir():
        raise UserError(f"--backbone-path {path}: expected a directory holding a DINOv2 config.json and weights")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise UserError(f"--backbone-path {path}: no config.json, so this is not a Hugging Face DINOv2 directory")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"--backbone-path {path}: config.json is not valid JSON ({err})") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in DINOV2_TYPES:
        raise UserError(
            f"--backbone-path {path}: holds a '{model_type}' model, not DINOv2 (config.json model_type must be one of "
            f"{', '.join(DINOV2_TYPES)})"
        )
    return config


def _missing_weights_message(size: str, where: str) -> str:
    repo = f"facebook/dinov2-{size}"
    return (
        f"DINOv2-{size} weights not found ({where}); nothing is downloaded at run time. "
        f"On a machine with internet run `huggingface-cli download {repo} --local-dir PATH` "
        f"(or `hf download {repo} --local-dir PATH`), copy PATH here and pass `--backbone-path PATH`; "
        f"or fill this machine's Hugging Face cache with `huggingface-cli download {repo}` "
        "and leave --backbone-path unset"
    )


def load_dinov2(
    path: str | os.PathLike | None = None,
    *,
    size: str = "small",
    untrained: bool = False,
    input_size: int = 224,
    cache_dir: str | os.PathLike | None = None,
) -> Dinov2Backbone:
    """A frozen DINOv2 from ``path`` or, without one, ``facebook/dinov2-<size>`` in the Hugging Face cache.

    ``size`` only chooses the cache entry (and, when untrained without a path, the architecture); a
    directory's own config decides its architecture. ``untrained=True`` builds the architecture with
    random weights (config from ``path`` if given, else the released ``size``), reading no weights.
    Never downloads.
    """
    if size not in DINOV2_SIZES:
        raise UserError(f"unknown DINOv2 size '{size}'; choose one of {', '.join(DINOV2_SIZES)}")
    from transformers import AutoConfig, AutoModel, Dinov2Config

    name = f"dinov2-{size}"
    if path is None and untrained:
        config = Dinov2Config(image_size=518, **DINOV2_SIZES[size])
        return Dinov2Backbone(AutoModel.from_config(config), name, input_size)
    if path is not None:
        name = f"dinov2:{Path(path).name}"
    else:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            path = snapshot_download(f"facebook/{name}", local_files_only=True, cache_dir=cache_dir)
        except LocalEntryNotFoundError:
            where = f"not in the Hugging Face cache {cache_dir or constants.HF_HUB_CACHE}"
            raise UserError(_missing_weights_message(size, where)) from None
    path = Path(path)
    _read_dinov2_config(path)
    if untrained:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        return Dinov2Backbone(AutoModel.from_config(config), name, input_size)
    try:
        model = AutoModel.from_pretrained(path, local_files_only=True)
    except OSError as err:
        where = f"{path} has a DINOv2 config.json but no readable weights: {err}"
        raise UserError(_missing_weights_message(size, where)) from None
    return Dinov2Backbone(model, name, input_size)


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
    """``kind="dinov2"``: see :func:`load_dinov2`. ``kind="small"``: :class:`SmallBackbone`, trainable,
    or frozen with random weights when ``untrained``."""
    if kind == "dinov2":
        return load_dinov2(path, size=size, untrained=untrained, input_size=input_size, cache_dir=cache_dir)
    if kind == "small":
        if path is not None:
            raise UserError("--backbone-path is for --backbone dinov2; the small backbone is trained with the model")
        backbone = SmallBackbone(dim=small_dim, input_size=input_size)
        return backbone.freeze() if untrained else backbone
    raise UserError(f"unknown backbone '{kind}'; choose 'small' or 'dinov2'")


def add_backbone_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--backbone*`` options shared by every command that reads video."""
    group = parser.add_argument_group("vision backbone")
    group.add_argument("--backbone", choices=("small", "dinov2"), default="small", help="vision backbone")
    group.add_argument("--backbone-size", choices=tuple(DINOV2_SIZES), default="small", help="DINOv2 size")
    group.add_argument("--backbone-path", default=None, help="local DINOv2 directory (config.json + weights)")
    group.add_argument("--backbone-input-size", type=int, default=224, help="square input side in pixels")
    group.add_argument("--untrained-backbone", action="store_true", help="random frozen weights (ablation)")


def backbone_from_args(args: argparse.Namespace) -> VisionBackbone:
    """Build the backbone named by :func:`add_backbone_arguments` options."""
    return build_backbone(
        args.backbone,
        size=args.backbone_size,
        path=args.backbone_path,
        untrained=args.untrained_backbone,
        input_size=args.backbone_input_size,
    )
