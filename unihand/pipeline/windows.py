"""The windowing stage: any length from a model trained on fixed windows (paper B.1).

Sequences are padded to a multiple of the decoder segment by repeating the last frame's
conditions; inputs longer than one window are generated in overlapping windows, each conditioned
on the end of the previous one (as MANO infilling: the overlap is given, its first frame is the
decoder's anchor) and cross-faded into one motion over the overlap (smoothstep weights, rotations
blended in 6D).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from unihand.diffusion.sampling import sample_window
from unihand.geometry.rotations import axis_angle_to_rot6d, rot6d_to_axis_angle
from unihand.models.unihand_model import UniHandModel
from unihand.progress import Progress


#: Condition arrays that hold one value for the whole sequence (every other array has one entry per frame).
PER_SEQUENCE = ("K", "image_size")


def window_starts(total: int, segment: int, window: int, overlap: int) -> tuple[int, int, list[int]]:
    """(padded length, window length, first frame of each window) for ``total`` frames."""
    padded = max(segment, math.ceil(total / segment) * segment)
    if padded <= window:
        return padded, window, [0]
    stride = window - overlap
    return padded, min(window, padded), list(range(0, padded - window, stride)) + [padded - window]


def generate_windows(
    model: UniHandModel, scheduler: SchedulerMixin, arrays: dict[str, np.ndarray], total: int, *,
    num_samples: int = 1, steps: int | None = None, cfg_scale: float | None = None,
    generator: torch.Generator | None = None, first_frame: np.ndarray | None = None, window: int | None = None,
    overlap: int = 16, progress: bool | None = False,
) -> np.ndarray:
    """``num_samples`` motions (B, total, 61) in the right-hand space, one batched pass per window.

    Each window's noise comes from a generator seeded by a draw from ``generator``, so a sample
    depends only on the master seed (the same with one sample or several, for the first sample).
    ``progress``: a bar per window (None: on a terminal, else one summary line; :class:`unihand.progress.Progress`)."""
    padded, win, starts = window_starts(total, model.segment, window or model.cfg.frames, overlap)
    per_frame = {k for k in arrays if k not in PER_SEQUENCE}
    arrays = {k: _pad_last(v, padded) if k in per_frame else v for k, v in arrays.items()}
    device = model.denoiser.latent_scale.device
    gen = generator if generator is not None else torch.Generator(device="cpu").manual_seed(0)
    b = num_samples
    out = np.zeros((b, padded, 61), dtype=np.float32)
    done = 0  # frames [0, done) are final
    bar = Progress(len(starts), "generate", "window", enabled=progress if len(starts) > 1 else False)
    for start in starts:
        length = min(win, padded - start)
        sl = slice(start, start + length)
        chunk = {k: np.broadcast_to(v[sl] if k in per_frame else v, (b,) + (v[sl] if k in per_frame else v).shape)
                 for k, v in arrays.items()}
        anchor = None if first_frame is None or start else np.broadcast_to(first_frame, (b, 61))
        if start > 0:  # condition on the overlap already generated (infilling keeps the windows consistent)
            known = np.arange(start, start + length) < done
            mano = np.array(chunk.get("mano", np.zeros((b, length, 61), np.float32)))
            mask = np.array(chunk.get("mano_mask", np.zeros((b, length), bool)))
            mano[:, known], mask[:, known] = out[:, start:done], True
            chunk["mano"], chunk["mano_mask"] = mano, mask
            anchor = out[:, start]
        elif "mano_mask" in chunk and chunk["mano_mask"][0, 0] and anchor is None:
            anchor = chunk["mano"][:, 0]
        batch = {k: torch.from_numpy(np.array(v)).to(device) for k, v in chunk.items()}
        ff = None if anchor is None else torch.tensor(np.asarray(anchor, np.float32)).to(device)
        noise = torch.Generator(device="cpu").manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        res = sample_window(model, scheduler, batch, num_frames=length, batch_size=b, steps=steps, cfg_scale=cfg_scale,
                            generator=noise, first_frame=ff)
        res = res.float().cpu().numpy()
        ov = max(0, done - start)
        if ov:
            x = np.linspace(0.0, 1.0, ov + 2, dtype=np.float32)[1:-1, None]
            w = x * x * (3 - 2 * x)  # smoothstep: the blend starts and ends with zero slope
            for i in range(b):
                out[i, start:done] = _blend(out[i, start:done], res[i, :ov], w)
        out[:, start + ov: start + length] = res[:, ov:]
        done = start + length
        bar.update()
    bar.close()
    return out[:, :total]


def _pad_last(x: np.ndarray, n: int) -> np.ndarray:
    """Pad along frames by repeating the last frame (paper B.1)."""
    if x.shape[0] >= n:
        return x
    return np.concatenate([x, np.repeat(x[-1:], n - x.shape[0], axis=0)], axis=0)


def _blend(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Cross-fade two (T, 61) MANO sequences (weight ``w`` on b): rotations in 6D, the rest linearly."""
    ra = axis_angle_to_rot6d(a[:, :48].reshape(-1, 16, 3))
    rb = axis_angle_to_rot6d(b[:, :48].reshape(-1, 16, 3))
    rot = rot6d_to_axis_angle((1 - w[:, :, None]) * ra + w[:, :, None] * rb).reshape(-1, 48)
    return np.concatenate([rot, (1 - w) * a[:, 48:] + w * b[:, 48:]], axis=1).astype(np.float32)
