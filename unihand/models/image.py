"""Frames as the vision backbones read them (paper §3.3, docs/design.md §4).

1. frames become RGB: grayscale ``(H, W)`` / ``(H, W, 1)`` is replicated to three channels, RGBA drops
   its alpha channel (as PIL's ``Image.convert("RGB")`` does) (:func:`frames_to_tensor`);
2. each frame is resized with its aspect ratio kept so that its longer side equals ``input_size``
   (bilinear, antialiased), placed at the TOP-LEFT of an ``input_size`` square and padded bottom/right,
   never cropped (:func:`letterbox_pixels`);
3. ImageNet normalisation; the padding is 0 after normalisation (the ImageNet mean colour).

Token ``(y, x)`` of a backbone with patch ``p`` covers pixels ``[y*p, (y+1)*p)`` of the resized frame,
counted from its top-left corner; :func:`valid_tokens` tells which tokens see the frame.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from unihand.errors import UserError
from unihand.geometry.letterbox import letterbox

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: One sequence of frames: a stacked array/tensor or a list of per-frame ``(H, W[, C])`` arrays.
Frames = Union[np.ndarray, Tensor, Sequence[Union[np.ndarray, Tensor]]]



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


def _fitted(height: int, width: int, input_size: int) -> tuple[int, int]:
    """Size ``(h, w)`` of a ``height x width`` frame resized so its longer side is ``input_size``."""
    lb = letterbox((width, height), input_size, mode="corner")
    return lb.active_h, lb.active_w


def letterbox_pixels(rgb: Tensor, input_size: int) -> Tensor:
    """Resize ``(n, 3, H, W)`` frames keeping the aspect ratio, ImageNet-normalise, pad bottom/right to a
    square (:func:`unihand.geometry.letterbox.letterbox`, ``corner`` mode)."""
    h, w = _fitted(rgb.shape[-2], rgb.shape[-1], input_size)
    x = rgb.float() / 255.0 if rgb.dtype == torch.uint8 else rgb.float()
    if (h, w) != tuple(x.shape[-2:]):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    mean = x.new_tensor(IMAGENET_MEAN)[:, None, None]
    std = x.new_tensor(IMAGENET_STD)[:, None, None]
    return F.pad((x - mean) / std, (0, input_size - w, 0, input_size - h))


def valid_tokens(height: int, width: int, input_size: int, patch_size: int) -> Tensor:
    """``(h, w)`` bool: tokens whose patch overlaps a ``height x width`` frame after :func:`letterbox_pixels`."""
    h, w = _fitted(height, width, input_size)
    grid = input_size // patch_size
    rows = torch.arange(grid) * patch_size < h
    cols = torch.arange(grid) * patch_size < w
    return rows[:, None] & cols[None, :]
