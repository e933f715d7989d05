"""Random condition masking for training, so incomplete inputs are the normal case.

Per sample and modality: the modality is kept with probability ``keep[m]``; a kept modality
gets, with probability ``p_frame``, a per-frame pattern (random frames at a random rate, one or
more gaps, or sparse keyframes); with probability ``p_drop_all`` every condition is dropped
(the unconditional branch that classifier-free guidance needs).

Every draw goes through a :class:`BatchRandom`: the random numbers of one step are drawn for the
*global* batch (all ranks' windows) and each rank keeps its own rows, so that a DDP run draws
for each window what a single-process run with the same global batch draws for it.
"""

from __future__ import annotations

import torch
from torch import Tensor

DEFAULT_KEEP = {"kp2d": 0.8, "kp3d": 0.35, "mano": 0.3}


def step_seed(seed: int, index: int, stream: int = 0) -> int:
    """Seed of one step's generator from ``train.seed``, the step number and a stream (0 train, 1 val)."""
    return ((int(seed) & 0xFFFFFFFF) << 32) | ((int(stream) & 1) << 31) | (int(index) & 0x7FFFFFFF)


class BatchRandom:
    """One step's random draws for a global batch of ``world`` x ``b`` rows, cut to this rank's rows.

    Every rank holds the same generator and draws the same global tensors; rank ``r`` keeps rows
    ``r, r + world, r + 2 world, ...``: the rows of the windows it reads (with
    :class:`~unihand.train.data.ShardSampler` the ``i``-th window of rank ``r``'s batch ``k`` is
    window ``i * world + r`` of the single-process batch ``k`` of ``world x b`` windows). Draws are
    therefore a function of the seed, the step and a window's place in the global batch only: ranks
    never share draws, and a run on W devices with batch B draws what a run on one device with batch
    W x B draws.
    Large per-row tensors (:meth:`normal_rows`) come from a per-row generator seeded from the
    global draw, so no rank generates the other ranks' noise.
    """

    def __init__(self, gen: torch.Generator, rank: int = 0, world: int = 1) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world}")
        self.gen, self.rank, self.world = gen, int(rank), int(world)

    @classmethod
    def of(cls, rnd: "BatchRandom | torch.Generator") -> "BatchRandom":
        return rnd if isinstance(rnd, BatchRandom) else cls(rnd)

    def _mine(self, x: Tensor) -> Tensor:
        return x if self.world == 1 else x[self.rank :: self.world]

    def rand(self, b: int, *shape: int) -> Tensor:
        """Uniform [0, 1), (b, *shape): this rank's ``b`` rows."""
        return self._mine(torch.rand(b * self.world, *shape, generator=self.gen))

    def randint(self, low: int, high: int, b: int, *shape: int) -> Tensor:
        return self._mine(torch.randint(low, high, (b * self.world, *shape), generator=self.gen))

    def normal_rows(self, b: int, *shape: int) -> Tensor:
        """Standard normal (b, *shape), each row from its own generator (cost independent of ``world``)."""
        seeds = self.randint(0, 2**62, b)
        return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def _below(u: Tensor, high: Tensor) -> Tensor:
    """Uniform integers in [0, high) from uniforms ``u`` in [0, 1) (``high`` >= 1, broadcast)."""
    return torch.minimum((u * high).long(), high - 1)


def frame_pattern(b: int, n: int, gen: BatchRandom | torch.Generator) -> Tensor:
    """(B, N) bool: True = frame kept. Mix of random-rate dropout, gaps and keyframes.

    Each window draws one of three kinds: every frame kept with a random rate in [0, 0.9); one or two
    gaps of 4 to 3N/4 frames at random starts; keyframes every 4 to 16 frames at a random phase.
    """
    rnd = BatchRandom.of(gen)
    t = torch.arange(n)
    kind = rnd.randint(0, 3, b)[:, None]
    rate = rnd.rand(b) * 0.9
    random_rate = rnd.rand(b, n) >= rate[:, None]
    gaps = rnd.randint(1, 3, b)
    length = rnd.randint(4, max(5, 3 * n // 4), b, 2)
    start = _below(rnd.rand(b, 2), (n - length).clamp_min(1))
    in_gap = (t >= start[..., None]) & (t < (start + length)[..., None])  # (B, 2, N)
    in_gap[:, 1] &= (gaps == 2)[:, None]
    step = rnd.randint(4, 17, b)
    phase = _below(rnd.rand(b), step)
    keyframes = t % step[:, None] == phase[:, None]
    return torch.where(kind == 0, random_rate, torch.where(kind == 1, ~in_gap.any(1), keyframes))


def mask_conditions(
    batch: dict[str, Tensor],
    gen: BatchRandom | torch.Generator,
    keep: dict[str, float] | None = None,
    p_frame: float = 0.5,
    p_drop_all: float = 0.1,
) -> dict[str, Tensor]:
    """Return a copy of ``batch`` with ``kp2d_mask`` (B,N,21), ``kp3d_mask`` (B,N,21), ``mano_mask`` (B,N) randomised."""
    rnd = BatchRandom.of(gen)
    keep = DEFAULT_KEEP if keep is None else keep
    out = dict(batch)
    b, n = batch["mano"].shape[:2]
    drop_all = rnd.rand(b) < p_drop_all
    for m, p_keep in keep.items():
        base = batch.get(f"{m}_mask")
        if base is None:
            base = torch.ones((b, n, 21) if m != "mano" else (b, n), dtype=torch.bool)
        kept = (rnd.rand(b) < p_keep) & ~drop_all
        frames = torch.where(
            (rnd.rand(b) < p_frame)[:, None], frame_pattern(b, n, rnd), torch.ones(b, n, dtype=torch.bool)
        ) & kept[:, None]
        frames = frames.to(base.device)
        out[f"{m}_mask"] = base.bool() & (frames[..., None] if base.dim() == 3 else frames)
    return out
