"""Smooth time functions for procedural motion: minimum-jerk keyframes and band-limited noise.

Every function here is C2-continuous in time (continuous position, velocity and
acceleration), which is what makes the synthetic motions look human: reaching and
finger movements follow the minimum-jerk profile (Flash & Hogan, 1985), the transport of a
reach-to-grasp its skewed variant (a longer deceleration, Jeannerod 1984), and idle
drift is a sum of a few low-frequency sinusoids.
"""

from __future__ import annotations

import numpy as np
from scipy.special import beta as beta_fn
from scipy.special import betainc


def minimum_jerk(s: np.ndarray) -> np.ndarray:
    """Minimum-jerk blend ``10 s^3 - 15 s^4 + 6 s^5`` of ``s`` clipped to [0, 1].

    Zero velocity and acceleration at both ends, so consecutive segments join C2.
    """
    s = np.clip(s, 0.0, 1.0)
    return s * s * s * (10.0 + s * (-15.0 + 6.0 * s))


def skewed_minimum_jerk(s: np.ndarray, b: float = 3.0) -> np.ndarray:
    """Bell-shaped step ``I_s(3, b)`` (regularised incomplete beta) of ``s`` clipped to [0, 1].

    Its velocity is proportional to ``s^2 (1 - s)^(b - 1)``: ``b = 3`` is :func:`minimum_jerk`
    (peak velocity at half the movement); a larger ``b`` brings the peak forward to
    ``2 / (b + 1)`` of the movement and lengthens the deceleration. C2 for ``b >= 3``.
    """
    return betainc(3.0, b, np.clip(s, 0.0, 1.0))


def skewed_minimum_jerk_peak(b: float = 3.0) -> float:
    """Peak of :func:`skewed_minimum_jerk`'s derivative: peak speed = this * distance / duration
    (1.875 for minimum jerk)."""
    m = 2.0 / (b + 1.0)
    return float(m * m * (1.0 - m) ** (b - 1.0) / beta_fn(3.0, b))


def keyframe_track(t: np.ndarray, starts: np.ndarray, durations: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Piecewise minimum-jerk track through keyframe values.

    ``values[0]`` holds until ``starts[0]``; transition k moves from ``values[k]`` to
    ``values[k + 1]`` during ``[starts[k], starts[k] + durations[k]]`` and the value then
    holds until the next transition. Transitions must not overlap.

    Args:
        t: (T,) sample times in seconds, or (T, F) with one time column per independent
            track (e.g. per finger, to stagger the fingers of a grasp).
        starts: (K,) transition start times, increasing.
        durations: (K,) transition durations (> 0).
        values: (K + 1, ...) keyframe values; with a 2-D ``t``, (K + 1, F, ...).

    Returns:
        (T, ...) interpolated values (same trailing shape as ``values``).
    """
    values = np.asarray(values, dtype=np.float64)
    k = len(starts)
    # A sum of C2 steps (v[k+1] - v[k]) * mj((t - start_k) / dur_k): equal to the piecewise
    # definition when transitions do not overlap, and C2 everywhere.
    w = minimum_jerk((t[..., None] - starts) / durations)  # (T, K) or (T, F, K)
    if t.ndim == 1:
        deltas = np.diff(values, axis=0).reshape(k, -1)
        out = values[0].reshape(1, -1) + w @ deltas
        return out.reshape((t.shape[0],) + values.shape[1:])
    f = t.shape[1]
    deltas = np.diff(values, axis=0).reshape(k, f, -1)
    out = values[0].reshape(1, f, -1) + np.einsum("tfk,kfd->tfd", w, deltas)
    return out.reshape((t.shape[0],) + values.shape[1:])


def smooth_noise(
    rng: np.random.Generator, t: np.ndarray, shape: tuple[int, ...], amplitude: float | np.ndarray,
    fmin: float = 0.1, fmax: float = 1.0, terms: int = 3,
) -> np.ndarray:
    """Band-limited noise: a sum of ``terms`` sinusoids per channel with random frequency and phase.

    The sum is bounded by ``amplitude`` (per channel, broadcastable to ``shape``) at every time,
    since each term's amplitude is ``amplitude * a_k`` with ``sum a_k = 1``.

    Args:
        t: (T,) seconds.
        shape: channel shape, e.g. (3,) or (15, 3).

    Returns:
        (T, *shape).
    """
    freq = rng.uniform(fmin, fmax, size=(terms,) + shape)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(terms,) + shape)
    weights = rng.uniform(0.2, 1.0, size=(terms,) + shape)
    weights = np.asarray(amplitude) * weights / weights.sum(axis=0)  # sums to the amplitude
    tt = t.reshape((-1, 1) + (1,) * len(shape))
    waves = np.sin((2.0 * np.pi * tt) * freq + phase)  # (T, terms, *shape)
    return (waves * weights).sum(axis=1)
