"""Opt-in int8 inference on the CPU: dynamic quantization of the transformer stacks' Linear layers.

Weights are stored as int8 per output channel, activations quantized on the fly per call
(``torch.ao.quantization.quantize_dynamic``, fbgemm kernels; AVX2 is enough). Only the
:class:`~unihand.models.transformer.Stack` layers, where nearly all of the compute and weight
traffic is, are quantized; input/output projections, embeddings and null tokens stay float32.

The denoiser keeps its float32 stack next to the int8 copy (:class:`MixedPrecisionStack`):
sampling runs every DDIM step but the last in int8 and the last, whose prediction is the sample,
in float32. An all-int8 denoiser leaves the per-frame errors about unchanged but adds
frame-to-frame noise (acceleration error about +60% on the shipped small model); the float32 last step
removes it. Inference only: a quantized model cannot be trained or saved as a checkpoint.
"""

from __future__ import annotations

import copy
import warnings
from typing import TypeVar

import torch
from torch import Tensor, nn
from torch.ao.quantization import per_channel_dynamic_qconfig

from unihand.models.denoiser import Denoiser
from unihand.models.transformer import Stack

MODES = ("int8",)
M = TypeVar("M", bound=nn.Module)


class MixedPrecisionStack(nn.Module):
    """A float32 :class:`Stack` (``exact``) with an int8 copy (``fast``) that ``forward`` runs."""

    def __init__(self, stack: Stack) -> None:
        super().__init__()
        self.exact = stack
        self.fast = _int8(copy.deepcopy(stack))

    def modulations(self, cond: Tensor) -> Tensor:
        """adaLN vectors from the float32 weights (see :meth:`Stack.modulations`)."""
        return self.exact.modulations(cond)

    def forward(self, x: Tensor, **kwargs: Tensor | None) -> Tensor:
        return self.fast(x, **kwargs)


def _int8(stack: Stack) -> Stack:
    """Quantize the Linear layers of ``stack`` in place."""
    with warnings.catch_warnings():  # torch.ao's deprecation notices (torchao is its successor); same kernels
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*deprecated.*", category=UserWarning)
        torch.ao.quantization.quantize_dynamic(stack, {nn.Linear: per_channel_dynamic_qconfig}, inplace=True)
    return stack


def quantize(model: M, mode: str = "int8") -> M:
    """Quantize ``model`` in place for CPU inference (eval mode) and return it.

    Denoiser stacks become :class:`MixedPrecisionStack`, every other :class:`Stack` int8.
    """
    if mode not in MODES:
        raise ValueError(f"unknown quantization '{mode}' (choose from {', '.join(MODES)})")
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("int8 quantization runs on the CPU only")
    model.eval()
    denoisers = [m for m in model.modules() if isinstance(m, Denoiser)]
    stacks = [m for m in model.modules() if isinstance(m, Stack) and not any(m is d.stack for d in denoisers)]
    for den in denoisers:
        den.stack = MixedPrecisionStack(den.stack)
    for stack in stacks:
        _int8(stack)
    return model
