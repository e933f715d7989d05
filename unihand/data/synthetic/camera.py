"""Synthetic cameras: intrinsics of common devices and static / head-mounted trajectories.

Conventions (docs/design.md §2): OpenCV camera frame (x right, y down, z forward), metres.
The canonical frame of a sequence is the camera of its first frame, so every camera
trajectory here is returned as ``T_cano_from_cam (N, 4, 4)`` with the identity at frame 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unihand.data.synthetic._rot import rotvec_to_matrix
from unihand.data.synthetic.smooth import smooth_noise
from unihand.geometry.camera import intrinsics_from_fov
from unihand.geometry.canonical import rigid_inverse


@dataclass(frozen=True)
class CameraPreset:
    """A device: image size (W, H) in pixels and horizontal field of view in degrees (pinhole)."""

    name: str
    width: int
    height: int
    hfov_deg: float
    weight: float  # sampling weight


#: Common cameras, each approximated by a pinhole. The Aria RGB camera is a fisheye; here it is
#: its wide-angle pinhole rectification (as HOT3D evaluations use), 1408 x 1408 at ~100 deg.
CAMERA_PRESETS: dict[str, CameraPreset] = {
    p.name: p
    for p in (
        CameraPreset("webcam", 640, 480, 60.0, 0.3),
        CameraPreset("gopro", 1280, 720, 90.0, 0.2),
        CameraPreset("aria", 1408, 1408, 100.0, 0.25),
        CameraPreset("phone", 1920, 1080, 68.0, 0.15),
        CameraPreset("phone_portrait", 1080, 1920, 42.0, 0.1),
    )
}


@dataclass
class CameraSpec:
    """One sequence's camera: intrinsics, image size and per-frame pose in the canonical frame."""

    preset: str
    K: np.ndarray  # (3, 3) float64
    image_size: np.ndarray  # (2,) int64, (W, H)
    T_cano_from_cam: np.ndarray  # (N, 4, 4) float64, identity at frame 0
    moving: bool

    @property
    def T_cam_from_cano(self) -> np.ndarray:
        """(N, 4, 4) inverse of :attr:`T_cano_from_cam` (rigid inverse)."""
        return rigid_inverse(self.T_cano_from_cam)


def sample_intrinsics(rng: np.random.Generator, preset: str | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """Draw a device (weighted) and jitter its field of view (+-5 %) and principal point (+-1 %).

    Returns:
        (preset name, K (3, 3) float64, image_size (2,) int64 as (W, H)).
    """
    names = list(CAMERA_PRESETS)
    if preset is None:
        w = np.array([CAMERA_PRESETS[n].weight for n in names])
        preset = names[int(rng.choice(len(names), p=w / w.sum()))]
    p = CAMERA_PRESETS[preset]
    K = intrinsics_from_fov(p.hfov_deg * rng.uniform(0.95, 1.05), p.width, p.height)
    K[0, 2] += rng.uniform(-0.01, 0.01) * p.width
    K[1, 2] += rng.uniform(-0.01, 0.01) * p.height
    return preset, K, np.array([p.width, p.height], dtype=np.int64)


def head_motion(
    rng: np.random.Generator, t: np.ndarray, *, rot_deg: float = 6.0, trans_m: float = 0.04,
) -> np.ndarray:
    """Egocentric head motion: small smooth rotations and translations, identity at ``t[0]``.

    Rotation: a rotation vector of band-limited noise (0.1-0.7 Hz) bounded by ``rot_deg``
    per axis, yaw and pitch larger than roll. Translation: sway/bob bounded by ``trans_m`` per
    axis. Peak angular speeds stay below ~30 deg/s and linear speeds below ~0.2 m/s, the range
    of a person looking at their hands.

    Returns:
        (T, 4, 4) float64 ``T_cano_from_cam``.
    """
    amp_r = np.deg2rad(rot_deg) * np.array([1.0, 1.0, 0.4]) * rng.uniform(0.3, 1.0, size=3)
    amp_t = trans_m * np.array([1.0, 0.6, 0.8]) * rng.uniform(0.3, 1.0, size=3)
    both = smooth_noise(rng, t, (6,), np.concatenate([amp_r, amp_t]), fmin=0.1, fmax=0.7)
    rv, tr = both[:, :3], both[:, 3:]
    R = rotvec_to_matrix(rv)
    R = np.swapaxes(R[:1], -1, -2) @ R  # R_0^T R_i: identity at frame 0
    T = np.zeros((len(t), 4, 4))
    T[:, :3, :3] = R
    T[:, :3, 3] = np.einsum("ij,tj->ti", R[0].T, tr - tr[:1])
    T[:, 3, 3] = 1.0
    T[0] = np.eye(4)  # exactly (R_0^T R_0 is only identity up to rounding)
    return T


def sample_camera(
    rng: np.random.Generator, t: np.ndarray, *, moving_prob: float = 0.5, preset: str | None = None,
) -> CameraSpec:
    """One sequence's camera: a device from :data:`CAMERA_PRESETS`, static or head-mounted."""
    name, K, size = sample_intrinsics(rng, preset)
    moving = bool(rng.random() < moving_prob)
    if moving:
        T = head_motion(rng, t)
    else:
        T = np.broadcast_to(np.eye(4), (len(t), 4, 4)).copy()
    return CameraSpec(preset=name, K=K, image_size=size, T_cano_from_cam=T, moving=moving)
