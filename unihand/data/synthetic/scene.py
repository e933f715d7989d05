"""Occluding objects of a synthetic scene, shared by the conditions (who hides which joint) and the
renderer (what is drawn where), so the two always agree.

An occluder is a flat superellipse ``|x/a|^n + |y/b|^n <= 1`` facing the camera (n = 2: an
ellipse, n = 4 or 8: rounded boxes; a thin one is a stick or a handle), with a centre that moves in
the canonical frame and a size in metres, so it grows and shrinks with depth like a real object.
It hides the hand in a frame when it lies in front of the hand's centre (its camera-frame depth is
smaller); otherwise it is background clutter drawn behind the hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unihand.data.synthetic.smooth import minimum_jerk
from unihand.hand.joints import OPENPOSE_PARENTS

#: Bone radius in metres (half the finger's thickness) of the bone ending at each OpenPose joint,
#: for a hand with a 9.5 cm wrist-to-middle-MCP palm (scaled by the actual palm length). Shared by
#: the renderer (what is drawn) and the occlusion ratio (what counts as the hand's area).
BONE_RADIUS = np.array(
    [0.0,
     0.017, 0.012, 0.0105, 0.0095,  # thumb: thenar, proximal, distal
     0.013, 0.0095, 0.0085, 0.0078,  # index (metacarpal, phalanges)
     0.013, 0.0098, 0.0088, 0.0080,  # middle
     0.012, 0.0092, 0.0083, 0.0076,  # ring
     0.012, 0.0082, 0.0074, 0.0068],  # little
)
#: (20, 2) bones as (parent, child) OpenPose joints.
BONES = np.array([(OPENPOSE_PARENTS[j], j) for j in range(1, 21)])
#: Palm outline (OpenPose joints): wrist, thumb CMC and MCP, the four finger MCPs.
PALM = np.array([0, 1, 2, 5, 9, 13, 17])


@dataclass
class Occluders:
    """O occluders over N frames, in the canonical frame."""

    centers: np.ndarray  # (O, N, 3) metres, canonical frame
    axes: np.ndarray  # (O, 2) semi-axes (a, b) in metres
    angles: np.ndarray  # (O, N) in-plane rotation of the a-axis, radians
    exponents: np.ndarray  # (O,) superellipse exponent n
    colors: np.ndarray  # (O, 3) uint8 RGB
    patterns: np.ndarray  # (O,) int: 0 plain, 1 stripes, 2 two-tone

    @property
    def count(self) -> int:
        return int(self.centers.shape[0])

    def at_frames(self, frames: np.ndarray) -> "Occluders":
        """The same objects over the given frame indices only."""
        return Occluders(self.centers[:, frames], self.axes, self.angles[:, frames], self.exponents, self.colors,
                         self.patterns)

    def mirrored(self) -> "Occluders":
        """The same objects in the world mirrored by x -> -x (left-hand scenes)."""
        centers = self.centers.copy()
        centers[..., 0] *= -1.0
        return Occluders(centers, self.axes, -self.angles, self.exponents, self.colors, self.patterns)

    @staticmethod
    def empty(num_frames: int) -> "Occluders":
        return Occluders(
            np.zeros((0, num_frames, 3)), np.zeros((0, 2)), np.zeros((0, num_frames)), np.zeros(0),
            np.zeros((0, 3), np.uint8), np.zeros(0, np.int64),
        )


@dataclass
class Occluders2D:
    """Occluders as seen in each frame's image (pixels of the camera the K belongs to).

    The frame axis M is a sequence's N frames, or B sequences' frames flattened (B * N); padded
    slots of a batch (sequences with fewer objects) are never ``front`` and have zero size.
    """

    centers: np.ndarray  # (O, M, 2) pixels
    axes: np.ndarray  # (O, M, 2) semi-axes in pixels
    angles: np.ndarray  # (O, M)
    exponents: np.ndarray  # (O, M)
    depth: np.ndarray  # (O, M) camera-frame depth of the centre (m)
    front: np.ndarray  # (O, M) bool: in front of the hand (hides it)
    valid: np.ndarray  # (O, M) bool: a real object (not padding)


def project_occluders_batch(
    occs: list[Occluders], T_cam_from_cano: np.ndarray, K: np.ndarray, hand_depth: np.ndarray,
) -> Occluders2D:
    """Project the occluders of B sequences into all their frames (frame axis flattened to B * N).

    Args:
        occs: B scenes' occluders (canonical frames).
        T_cam_from_cano: (B, N, 4, 4).
        K: (B, 3, 3) intrinsics in the target pixel frame.
        hand_depth: (B, N) camera-frame depth of the hand centre; an occluder is in front when its
            depth is smaller and it lies in front of the camera (> 5 cm).
    """
    b, n = hand_depth.shape
    o = max([occ.count for occ in occs] + [0])
    centers = np.zeros((o, b, n, 3))
    centers[..., 2] = 1.0
    axes = np.zeros((o, b, 2))
    angles = np.zeros((o, b, n))
    exps = np.full((o, b), 2.0)
    valid = np.zeros((o, b), dtype=bool)
    for k, occ in enumerate(occs):
        c = occ.count
        centers[:c, k], axes[:c, k], angles[:c, k], exps[:c, k], valid[:c, k] = (
            occ.centers, occ.axes, occ.angles, occ.exponents, True)
    R = T_cam_from_cano[..., :3, :3]
    t = T_cam_from_cano[..., :3, 3]
    p = (R[None] @ centers[..., None])[..., 0] + t[None]  # (O, B, N, 3)
    z = np.maximum(p[..., 2], 1e-3)
    f = np.stack([K[:, 0, 0], K[:, 1, 1]], axis=-1)[None, :, None]  # (1, B, 1, 2)
    uv = p[..., :2] / z[..., None] * f + K[None, :, None, :2, 2]
    size = axes[:, :, None, :] * (0.5 * (f[..., 0:1] + f[..., 1:2])) / z[..., None]
    front = (p[..., 2] > 0.05) & (p[..., 2] < hand_depth[None]) & valid[:, :, None]
    m = b * n
    return Occluders2D(
        centers=uv.reshape(o, m, 2), axes=size.reshape(o, m, 2), angles=angles.reshape(o, m),
        exponents=np.repeat(exps, n, axis=1), depth=p[..., 2].reshape(o, m), front=front.reshape(o, m),
        valid=np.repeat(valid, n, axis=1),
    )


def project_occluders(occ: Occluders, T_cam_from_cano: np.ndarray, K: np.ndarray, hand_depth: np.ndarray) -> Occluders2D:
    """One sequence's occluders in each of its N frames (see :func:`project_occluders_batch`)."""
    return project_occluders_batch([occ], T_cam_from_cano[None], K[None], hand_depth[None])


def points_in_occluders(points: np.ndarray, occ2d: Occluders2D, which: np.ndarray | None = None) -> np.ndarray:
    """(M, P, 2) pixel points -> (M, P) bool: covered by any occluder selected by ``which`` (O, M).

    ``which`` defaults to ``occ2d.front`` (the occluders that hide the hand). Only the selected
    (occluder, frame) pairs are evaluated, in float32.
    """
    m, p = points.shape[:2]
    out = np.zeros((m, p), dtype=bool)
    which = occ2d.front if which is None else which
    for o in range(occ2d.centers.shape[0]):
        sel = np.flatnonzero(which[o])
        if len(sel) == 0:
            continue
        d = (points[sel] - occ2d.centers[o, sel, None, :]).astype(np.float32)  # (S, P, 2)
        c = np.cos(occ2d.angles[o, sel]).astype(np.float32)[:, None]
        s = np.sin(occ2d.angles[o, sel]).astype(np.float32)[:, None]
        ax = np.maximum(occ2d.axes[o, sel], 1e-6).astype(np.float32)
        x = (c * d[..., 0] + s * d[..., 1]) / ax[:, 0:1]
        y = (-s * d[..., 0] + c * d[..., 1]) / ax[:, 1:2]
        x2, y2 = x * x, y * y
        e = occ2d.exponents[o, sel][:, None]
        # even exponents by repeated squaring (|x|^2, |x|^4, |x|^8); others through pow
        if np.all(e == 2.0):
            val = x2 + y2
        elif np.all(e == 4.0):
            val = x2 * x2 + y2 * y2
        elif np.all(e == 8.0):
            val = np.square(x2 * x2) + np.square(y2 * y2)
        else:
            val = np.abs(x) ** e.astype(np.float32) + np.abs(y) ** e.astype(np.float32)
        out[sel] |= val <= 1.0
    return out


def occluder_polygons(occ2d: Occluders2D, vertices: int = 36) -> np.ndarray:
    """(O, M, V, 2) pixel outlines of the superellipses, the same sets :func:`points_in_occluders` tests."""
    phi = np.linspace(0.0, 2.0 * np.pi, vertices, endpoint=False)
    e = occ2d.exponents[..., None]
    cphi, sphi = np.cos(phi), np.sin(phi)
    lx = np.sign(cphi) * np.abs(cphi) ** (2.0 / e) * occ2d.axes[..., 0:1]  # (O, N, V)
    ly = np.sign(sphi) * np.abs(sphi) ** (2.0 / e) * occ2d.axes[..., 1:2]
    c, s = np.cos(occ2d.angles)[..., None], np.sin(occ2d.angles)[..., None]
    x = c * lx - s * ly + occ2d.centers[..., 0:1]
    y = s * lx + c * ly + occ2d.centers[..., 1:2]
    return np.stack([x, y], axis=-1)


def sample_occluders(
    rng: np.random.Generator, t: np.ndarray, hand_center: np.ndarray, T_cano_from_cam: np.ndarray,
    *, counts_p: tuple[float, ...] = (0.3, 0.4, 0.2, 0.1), front_p: float = 0.6,
) -> Occluders:
    """Objects placed around the hand's line of sight.

    Args:
        t: (N,) seconds.
        hand_center: (N, 3) canonical hand centre (the palm centre).
        T_cano_from_cam: (N, 4, 4) camera trajectory.
        counts_p: probabilities of 0, 1, 2, 3, ... occluders.
        front_p: probability that an occluder lies between the camera and the hand.
    """
    n = len(t)
    count = int(rng.choice(len(counts_p), p=np.asarray(counts_p) / np.sum(counts_p)))
    if count == 0:
        return Occluders.empty(n)
    centers, axes, angles, exps, colors, patterns = [], [], [], [], [], []
    for _ in range(count):
        k = int(rng.integers(n))  # anchor frame: the occluder sits on the line of sight here
        cam = T_cano_from_cam[k, :3, 3]
        ray = hand_center[k] - cam
        dist = np.linalg.norm(ray)
        ray = ray / max(dist, 1e-6)
        a = rng.uniform(0.015, 0.06)
        b = a * rng.uniform(0.2, 1.0)
        if rng.random() < front_p:
            along = dist * rng.uniform(0.45, 0.85)
        else:
            along = dist + rng.uniform(0.05, 0.4)
        # lateral offset perpendicular to the ray, up to about one hand radius (scaled to depth)
        side = rng.normal(size=3)
        side -= side.dot(ray) * ray
        side /= max(np.linalg.norm(side), 1e-6)
        lateral = rng.uniform(0.0, 1.6) * 0.08 * along / dist
        anchor = cam + ray * along + side * lateral
        # static in the world, or sliding across the view with a minimum-jerk sweep
        if rng.random() < 0.5:
            path = np.zeros((n, 3))
        else:
            sweep = rng.normal(size=3)
            sweep -= sweep.dot(ray) * ray
            sweep *= rng.uniform(0.05, 0.25) / max(np.linalg.norm(sweep), 1e-6)
            t0 = rng.uniform(t[0] - 0.5, t[-1])
            dur = rng.uniform(0.6, 1.5)
            w = minimum_jerk((t - t0) / dur)
            path = (w - w[k])[:, None] * sweep
        centers.append(anchor + path)
        angle0 = rng.uniform(0, np.pi)
        spin = rng.uniform(-0.5, 0.5) if rng.random() < 0.5 else 0.0  # rad/s, slow
        angles.append(angle0 + spin * (t - t[k]))
        axes.append((a, b))
        exps.append(2.0 if rng.random() < 0.5 else (4.0 if rng.random() < 0.5 else 8.0))
        colors.append(rng.integers(0, 256, size=3))
        patterns.append(int(rng.choice(3, p=(0.6, 0.2, 0.2))))
    return Occluders(
        centers=np.stack(centers), axes=np.array(axes), angles=np.stack(angles), exponents=np.array(exps),
        colors=np.array(colors, dtype=np.uint8), patterns=np.array(patterns, dtype=np.int64),
    )
