"""Random condition masking for training, so incomplete inputs are the normal case.

Per sample and modality: the modality is kept with probability ``keep[m]``; a kept modality
gets, with probability ``p_frame``, a per-frame pattern (random frames at a random rate, one or
more gaps, or sparse keyframes); with probability ``p_drop_all`` every condition is dropped
(the unconditional branch that classifier-free guidance needs).
"""

from __future__ import annotations

import torch
from torch import Tensor

DEFAULT_KEEP = {"kp2d": 0.8, "kp3d": 0.35, "mano": 0.3}


def frame_pattern(b: int, n: int, gen: torch.Generator) -> Tensor:
    """(B, N) bool: True = frame kept. Mix of random-rate dropout, gaps and keyframes."""
    out = torch.ones(b, n, dtype=torch.bool)
    kind = torch.randint(0, 3, (b,), generator=gen)
    for i in range(b):
        if kind[i] == 0:
            rate = torch.rand((), generator=gen) * 0.9
            out[i] = torch.rand(n, generator=gen) >= rate
        elif kind[i] == 1:
            for _ in range(int(torch.randint(1, 3, (), generator=gen))):
                length = int(torch.randint(4, max(5, 3 * n // 4), (), generator=gen))
                start = int(torch.randint(0, max(1, n - length), (), generator=gen))
                out[i, start : start + length] = False
        else:
            step = int(torch.randint(4, 17, (), generator=gen))
            out[i] = torch.arange(n) % step == int(torch.randint(0, step, (), generator=gen))
    return out


def mask_conditions(
    batch: dict[str, Tensor],
    gen: torch.Generator,
    keep: dict[str, float] | None = None,
    p_frame: float = 0.5,
    p_drop_all: float = 0.1,
) -> dict[str, Tensor]:
    """Return a copy of ``batch`` with ``kp2d_mask`` (B,N,21), ``kp3d_mask`` (B,N,21), ``mano_mask`` (B,N) randomised."""
    keep = DEFAULT_KEEP if keep is None else keep
    out = dict(batch)
    b, n = batch["mano"].shape[:2]
    drop_all = torch.rand(b, generator=gen) < p_drop_all
    for m, p_keep in keep.items():
        base = batch.get(f"{m}_mask")
        if base is None:
            base = torch.ones((b, n, 21) if m != "mano" else (b, n), dtype=torch.bool)
        kept = (torch.rand(b, generator=gen) < p_keep) & ~drop_all
        frames = torch.where(
            (torch.rand(b, generator=gen) < p_frame)[:, None], frame_pattern(b, n, gen), torch.ones(b, n, dtype=torch.bool)
        ) & kept[:, None]
        frames = frames.to(base.device)
        out[f"{m}_mask"] = base.bool() & (frames[..., None] if base.dim() == 3 else frames)
    return out
