"""Structured conditions of a synthetic sequence, as a detector and a tracker would deliver them.

- ``kp2d`` (N, 21, 2): each frame's joints projected with *that frame's* camera, normalised by
  (W, H), with detector-like errors: Gaussian pixel noise proportional to the hand's size in the
  image (0.5-2 % of its bounding-box diagonal, more at fingertips and self-occluded joints),
  temporally correlated jitter (AR(1)), and occasional outliers (a joint snapped to another
  joint, or thrown 15-50 % of the hand's size away). ``kp2d_conf`` is lower for self-occluded
  joints and outliers.
- ``kp2d_mask`` (N, 21) is False for joints hidden by an occluder in front of the hand, joints
  outside the image, and whole missing frames: random gaps (runs of 1-12 frames) and frames
  where the "detector" loses the hand (fewer than 6 joints visible or > 85 % occluded). "Outside
  the image" means a normalised coordinate outside [0, 1] (or a joint behind the camera), for
  the true joint or for its noisy observation. Masked entries are zero with confidence 0.
- ``kp3d`` (N, 21, 3): canonical joints with 0-4 mm Gaussian noise, per-frame gaps of its own.
- ``kp3d_hand`` (N, 21, 3): what a detector's own 3D hand looks like (MediaPipe's world landmarks):
  the joints in camera axes about the palm's centre, with errors a 2D-trained network makes: one
  size error per sequence (+-10 %), a slowly varying tilt of the whole hand (5 degrees), each
  bone's direction off by a slowly varying 12 degrees (the errors add up along a finger), 3 mm per
  joint: PA-MPJPE about 12 mm. Given on the frames where the 2D detector found the hand
  (``kp3d_hand_mask`` (N,); :func:`detector_hand3d`).
- ``mano`` (N, 61): the ground truth in the canonical frame, every frame present.

Ground-truth occlusion ratio ``occlusion`` (N,), the paper's eq. 17 ``(|M_hand| - |M_hand ∩
M_vis|) / |M_hand|``, is computed on points covering the hand's silhouette (5 per finger bone
weighted by the bone's projected area, 9 spread over the palm polygon weighted by its area, and
the joints themselves) rather than on rendered pixels, so it is identical with and without
rendering: the fraction of the hand's in-image area covered by occluders in front of it (1.0
when no part is in the image). Self-occlusion does not count, as in DexYCB's visible-hand masks.
On frames with an occluder in front it agrees with a pixel count of the drawn hand and
occluders to about 0.02 on average, 0.07 at the 90th percentile, with no bias
(``tests/test_synthetic.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from unihand.data.synthetic.scene import BONE_RADIUS, BONES, PALM, Occluders2D, points_in_occluders
from unihand.hand.joints import OPENPOSE_PARENTS

#: Joint-wise multiplier of the detector noise: wrist 1.2, fingertips 1.5, others 1.
_NOISE_SCALE = np.ones(21)
_NOISE_SCALE[0] = 1.2
_NOISE_SCALE[[4, 8, 12, 16, 20]] = 1.5
_SAMPLES = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
_JOINT_RADIUS = np.concatenate([[BONE_RADIUS[5]], BONE_RADIUS[1:]])
# Bones sampled along their length: all but the metacarpals, which lie inside the palm polygon.
_SAMPLED_BONES = np.array([i for i, (_, c) in enumerate(BONES) if c not in (5, 9, 13, 17)])
# Palm points as convex weights over the palm outline joints.
_PALM_W = np.array(
    [[0.5, 0, 0, 0.25, 0.25, 0, 0], [0.5, 0, 0, 0, 0, 0.25, 0.25], [0.2, 0.2, 0, 0.2, 0.2, 0.2, 0],
     [0.1, 0, 0.2, 0.3, 0.2, 0.1, 0.1], [0.2, 0, 0, 0.1, 0.3, 0.3, 0.1], [0.6, 0.2, 0, 0, 0.2, 0, 0],
     [0.6, 0, 0, 0, 0, 0.2, 0.2], [0, 0, 0, 0.3, 0.4, 0.3, 0], [0.3, 0.1, 0.1, 0.1, 0.1, 0.2, 0.1]],
)


@dataclass
class ConditionConfig:
    """Noise and corruption levels of the synthetic conditions (ranges are sampled per sequence)."""

    noise_rel: tuple[float, float] = (0.005, 0.02)  # pixel noise sigma / hand bbox diagonal
    jitter_rho: tuple[float, float] = (0.2, 0.8)  # AR(1) temporal correlation of the noise
    outlier_p: tuple[float, float] = (0.0, 0.03)  # per joint and frame
    gap_counts_p: tuple[float, ...] = (0.5, 0.3, 0.15, 0.05)  # P(0, 1, 2, 3 gaps)
    gap_length: tuple[int, int] = (1, 12)
    lost_min_joints: int = 6  # fewer visible joints: the detector loses the frame
    lost_occlusion: float = 0.85
    kp3d_noise_m: tuple[float, float] = (0.0, 0.004)
    kp3d_gap_counts_p: tuple[float, ...] = (0.7, 0.2, 0.1)


def hand_samples(px: np.ndarray, depth: np.ndarray, focal: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points covering the hand's silhouette and their area weights.

    Args:
        px: (M, 21, 2) joint pixels; depth: (M, 21) camera depth; focal: (M,) mean focal length
            (px); scale: (M,) hand size factor (palm length / 9.5 cm).

    Returns:
        points (M, P, 2) and weights (M, P) in pixels^2 (P = 16 * 5 + 9 + 21).
    """
    bones = BONES[_SAMPLED_BONES]
    a, b = px[:, bones[:, 0]], px[:, bones[:, 1]]  # (M, 16, 2)
    pts = a[:, :, None] + (b - a)[:, :, None] * _SAMPLES[None, None, :, None]  # (M, 16, 5, 2)
    z = np.maximum(0.5 * (depth[:, bones[:, 0]] + depth[:, bones[:, 1]]), 0.05)
    r = BONE_RADIUS[bones[:, 1]][None] * (scale * focal)[:, None] / z  # (M, 16)
    length = np.linalg.norm(b - a, axis=-1)
    w_bone = np.repeat((2 * r * length + np.pi * r * r / 2) / len(_SAMPLES), len(_SAMPLES), axis=1)
    palm = px[:, PALM]  # (M, 7, 2)
    x, y = palm[..., 0], palm[..., 1]
    area = 0.5 * np.abs((x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1))  # shoelace
    palm_pts = np.einsum("kj,njd->nkd", _PALM_W, palm)
    # 0.8: the finger bases and the thenar capsule already cover part of the polygon
    w_palm = np.repeat((0.8 * area / len(_PALM_W))[:, None], len(_PALM_W), axis=1)
    # the joints themselves (a quarter disc each; the wrist as a metacarpal), so that a covered
    # joint always counts
    r_joint = _JOINT_RADIUS[None] * (scale * focal)[:, None] / np.maximum(depth, 0.05)
    points = np.concatenate([pts.reshape(len(px), -1, 2), palm_pts, px], axis=1)
    return points, np.concatenate([w_bone, w_palm, np.pi * r_joint**2 / 4], axis=1)


def occlusion_ratio(points: np.ndarray, weights: np.ndarray, occ2d: Occluders2D, image_size: np.ndarray) -> np.ndarray:
    """(M,) eq. 17 on silhouette samples: covered in-image area / in-image area (1.0 if none in image).

    ``image_size``: (2,) or per frame (M, 2) as (W, H).
    """
    size = np.broadcast_to(np.asarray(image_size, dtype=np.float64), (len(points), 2))[:, None, :]
    inside = ((points >= 0.0) & (points <= size)).all(-1)
    covered = points_in_occluders(points, occ2d)
    total = (weights * inside).sum(axis=1)
    hidden = (weights * (inside & covered)).sum(axis=1)
    return np.where(total > 0, hidden / np.maximum(total, 1e-9), 1.0)


_TOUCHING = (BONES[None, :, 0] == np.arange(21)[:, None]) | (BONES[None, :, 1] == np.arange(21)[:, None])  # (21, 20)


def self_occlusion(px: np.ndarray, depth: np.ndarray, focal: np.ndarray, scale: np.ndarray, margin: float = 0.01) -> np.ndarray:
    """(M, 21) bool: a joint lies under another bone's projected capsule that is nearer by > ``margin`` m.

    Bones touching the joint are ignored. An approximation (capsules, no mesh, float32) used for
    noise and confidence, not for masks: detectors still see self-occluded joints, only worse.
    """
    px = px.astype(np.float32)
    depth = depth.astype(np.float32)
    ax, ay = px[:, None, BONES[:, 0], 0], px[:, None, BONES[:, 0], 1]  # (M, 1, 20)
    abx = px[:, None, BONES[:, 1], 0] - ax
    aby = px[:, None, BONES[:, 1], 1] - ay
    dx = px[:, :, None, 0] - ax  # (M, 21, 20)
    dy = px[:, :, None, 1] - ay
    s = np.clip((dx * abx + dy * aby) / np.maximum(abx * abx + aby * aby, np.float32(1e-9)), 0.0, 1.0)
    dx -= s * abx
    dy -= s * aby
    za = depth[:, None, BONES[:, 0]]
    zbone = np.maximum(za + s * (depth[:, None, BONES[:, 1]] - za), np.float32(0.05))
    r = (BONE_RADIUS[BONES[:, 1]] * (scale * focal)[:, None, None]).astype(np.float32)  # radius * depth
    covers = ((dx * dx + dy * dy) * (zbone * zbone) < r * r) & (zbone < depth[:, :, None] - np.float32(margin))
    return (covers & ~_TOUCHING).any(axis=-1)


def _gaps(rng: np.random.Generator, n: int, counts_p: tuple[float, ...], length: tuple[int, int]) -> np.ndarray:
    """(N,) bool: frames inside random runs of missing frames."""
    missing = np.zeros(n, dtype=bool)
    count = int(rng.choice(len(counts_p), p=np.asarray(counts_p) / np.sum(counts_p)))
    for _ in range(count):
        ln = int(rng.integers(length[0], length[1] + 1))
        s = int(rng.integers(0, max(1, n - ln + 1)))
        missing[s:s + ln] = True
    return missing


def _frames_of(occ2d: Occluders2D, keep: np.ndarray) -> Occluders2D:
    """The occluders of the frames ``keep`` (M,) bool only."""
    return Occluders2D(occ2d.centers[:, keep], occ2d.axes[:, keep], occ2d.angles[:, keep], occ2d.exponents[:, keep],
                       occ2d.depth[:, keep], occ2d.front[:, keep], occ2d.valid[:, keep])


def make_conditions(
    rngs: list[np.random.Generator], joints_cam: np.ndarray, joints_cano: np.ndarray, K: np.ndarray,
    image_size: np.ndarray, occ2d: Occluders2D, cfg: ConditionConfig,
) -> dict[str, np.ndarray]:
    """The condition arrays of B sequences at once (float32 / bool), see the module doc.

    Sequence b draws all its randomness from ``rngs[b]`` (in a fixed order and amount), so its
    conditions do not depend on the other sequences of the batch.

    Args:
        joints_cam: (B, N, 21, 3) per-frame camera-frame joints; joints_cano: (B, N, 21, 3) canonical.
        K: (B, 3, 3); image_size: (B, 2) as (W, H).
        occ2d: occluders projected with ``K`` into every frame, frame axis flattened (B * N).

    Returns:
        (B, N, ...) arrays: kp2d, kp2d_mask, kp2d_conf, kp3d, kp3d_mask, and the ground truth
        occlusion, joint_occluded, self_occluded, in_image, outlier, frame_missing, kp2d_gt (clean
        normalised projections), joints_2d (clean pixels, float64).
    """
    b, n = joints_cam.shape[:2]
    m = b * n
    size = np.asarray(image_size, dtype=np.float64)[:, None, None, :]  # (B, 1, 1, 2)
    depth = joints_cam[..., 2]
    fxy = np.stack([K[:, 0, 0], K[:, 1, 1]], axis=-1)[:, None, None, :]
    px = joints_cam[..., :2] / np.maximum(depth, 1e-6)[..., None] * fxy + K[:, None, None, :2, 2]
    focal = np.repeat(0.5 * (K[:, 0, 0] + K[:, 1, 1]), n)  # (M,)
    scale = np.linalg.norm(joints_cam[:, :, 9] - joints_cam[:, :, 0], axis=-1).reshape(m) / 0.095
    pxm, depthm = px.reshape(m, 21, 2), depth.reshape(m, 21)

    in_image = (depth > 0.05) & ((px >= 0.0) & (px <= size)).all(-1)  # normalised kp2d in [0, 1]
    # Eq. 17 needs the silhouette samples only where an occluder is in front or no joint is in the
    # image; elsewhere it is exactly 0 (every sample is a convex combination of in-image joints or a
    # joint itself, and nothing covers it).
    need = occ2d.front.any(axis=0) | ~in_image.reshape(m, 21).any(-1)
    occlusion = np.zeros(m)
    if need.any():
        points, weights = hand_samples(pxm[need], depthm[need], focal[need], scale[need])
        sizes = np.repeat(np.asarray(image_size, np.float64), n, axis=0)[need]
        occlusion[need] = occlusion_ratio(points, weights, _frames_of(occ2d, need), sizes)
    occlusion = occlusion.reshape(b, n)
    occluded = points_in_occluders(pxm, occ2d).reshape(b, n, 21)
    self_occ = self_occlusion(pxm, depthm, focal, scale).reshape(b, n, 21)

    # per-sequence random draws, in a fixed order
    draws = [_draws(r, n, cfg) for r in rngs]
    st = {k: np.stack([d[k] for d in draws]) for k in draws[0]}

    # detector noise: sigma proportional to the hand's size in the image, AR(1) in time
    diag = np.linalg.norm(px.max(axis=2) - px.min(axis=2), axis=-1)  # (B, N)
    sigma = st["noise_rel"][:, None] * np.maximum(diag, 8.0)
    rho = st["rho"][:, None, None]
    white = st["white"]
    noise = np.empty_like(white)
    noise[:, 0] = white[:, 0]
    c = np.sqrt(1.0 - rho * rho)
    for i in range(1, n):
        noise[:, i] = rho * noise[:, i - 1] + c * white[:, i]
    mult = _NOISE_SCALE * np.where(self_occ, 2.5, 1.0)
    obs = px + noise * (sigma[..., None] * mult)[..., None]
    # outliers: snapped onto another joint, or thrown 15-50 % of the hand's size away
    outlier = st["u_out"] < st["outlier_p"][:, None, None]
    snapped = np.take_along_axis(px, st["other"][..., None], axis=2)
    ang = st["angle"]
    thrown = px + (st["dist"] * diag[..., None])[..., None] * np.stack([np.cos(ang), np.sin(ang)], -1)
    wild = np.where((st["u_snap"] < 0.5)[..., None], snapped, thrown)
    obs = np.where(outlier[..., None], wild, obs)
    # confidence
    conf = np.where(self_occ, st["conf"] * st["conf_self"], st["conf"])
    conf = np.where(outlier, st["conf_out"], conf)

    visible = in_image & ~occluded
    lost = (visible.sum(axis=-1) < cfg.lost_min_joints) | (occlusion > cfg.lost_occlusion)
    frame_missing = st["gaps"] | lost
    observed = obs / size
    # a detector reports keypoints inside the image only (noise or an outlier can push one out)
    kp2d_mask = visible & ~frame_missing[..., None] & ((observed >= 0.0) & (observed <= 1.0)).all(-1)
    kp2d = np.where(kp2d_mask[..., None], observed, 0.0)
    conf = np.where(kp2d_mask, conf, 0.0)

    kp3d_mask = np.repeat(~st["kp3d_gaps"][..., None], 21, axis=-1)
    kp3d = np.where(kp3d_mask[..., None], joints_cano + st["kp3d_noise"], 0.0)

    f32 = np.float32
    return {
        "kp2d": kp2d.astype(f32), "kp2d_mask": kp2d_mask, "kp2d_conf": conf.astype(f32),
        "kp3d": kp3d.astype(f32), "kp3d_mask": kp3d_mask,
        "occlusion": occlusion.astype(f32), "joint_occluded": occluded, "self_occluded": self_occ,
        "in_image": in_image, "outlier": outlier, "frame_missing": frame_missing,
        "kp2d_gt": (px / size).astype(f32), "joints_2d": px,
    }


#: Errors of the simulated detector 3D (:func:`detector_hand3d`): size (relative), hand tilt and bone
#: directions (radians, standard deviations of AR(1) processes with correlation ``HAND3D_RHO``), joints (m).
HAND3D_SIZE, HAND3D_TILT, HAND3D_BONE, HAND3D_JOINT, HAND3D_RHO = 0.1, np.deg2rad(5.0), np.deg2rad(12.0), 0.003, 0.9


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """Unit-variance AR(1) noise along the first axis."""
    white = rng.normal(size=shape)
    out = np.empty_like(white)
    out[0] = white[0]
    for i in range(1, shape[0]):
        out[i] = rho * out[i - 1] + np.sqrt(1 - rho * rho) * white[i]
    return out


def detector_hand3d(rng: np.random.Generator, joints_cam: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(N, 21, 3) simulated detector 3D hand (see the module doc) from the true camera-frame joints; zero on
    the frames the detector did not find (``found`` False, the mask)."""
    n = joints_cam.shape[0]
    parents = np.array(OPENPOSE_PARENTS[1:])
    bones = joints_cam[:, 1:] - joints_cam[:, parents]  # (N, 20, 3)
    turn = Rotation.from_rotvec((_ar1(rng, (n, 20, 3), HAND3D_RHO) * HAND3D_BONE / np.sqrt(3)).reshape(-1, 3))
    bones = turn.apply(bones.reshape(-1, 3)).reshape(n, 20, 3)
    out = np.zeros_like(joints_cam)
    for j, p in enumerate(parents, start=1):  # parents come before their children
        out[:, j] = out[:, p] + bones[:, j - 1]
    tilt = Rotation.from_rotvec(_ar1(rng, (n, 3), HAND3D_RHO) * HAND3D_TILT / np.sqrt(3))
    out = np.einsum("nij,nkj->nki", tilt.as_matrix(), out)
    out = out * (1 + HAND3D_SIZE * rng.uniform(-1, 1)) + HAND3D_JOINT * rng.normal(size=out.shape)
    out -= 0.5 * (out[:, :1] + out[:, 9:10])  # about the palm's centre, as MediaPipe's
    return np.where(np.asarray(found, bool)[:, None, None], out, 0.0).astype(np.float32)


def _draws(rng: np.random.Generator, n: int, cfg: ConditionConfig) -> dict[str, np.ndarray]:
    """All random numbers one sequence's conditions use (few generator calls: they dominate)."""
    lo_hi = np.array([cfg.noise_rel, cfg.jitter_rho, cfg.outlier_p, cfg.kp3d_noise_m], dtype=np.float64)
    scalars = lo_hi[:, 0] + rng.random(4) * (lo_hi[:, 1] - lo_hi[:, 0])
    u = rng.random((8, n, 21))
    g = rng.normal(size=(n, 21, 5))
    return {
        "noise_rel": scalars[0], "rho": scalars[1], "outlier_p": scalars[2],
        "white": g[..., :2],
        "kp3d_noise": g[..., 2:] * scalars[3],
        "u_out": u[0],
        "other": np.minimum((u[1] * 21).astype(np.int64), 20),
        "angle": u[2] * (2 * np.pi),
        "dist": 0.15 + 0.35 * u[3],
        "u_snap": u[4],
        "conf": 0.75 + 0.23 * u[5],
        "conf_self": 0.4 + 0.4 * u[6],
        "conf_out": 0.1 + 0.5 * u[7],
        "gaps": _gaps(rng, n, cfg.gap_counts_p, cfg.gap_length),
        "kp3d_gaps": _gaps(rng, n, cfg.kp3d_gap_counts_p, cfg.gap_length),
    }
