"""Synthetic cameras: intrinsics of common devices and static / head-mounted trajectories.

Kinds of head motion (:data:`HEAD_MOTIONS`): ``gentle`` (the training default: a few degrees
and centimetres, a person holding still while looking at their hands), ``realistic``
(:func:`realistic_head_motion`: tens of degrees per second and tens of centimetres, glances,
a step or a lean, the camera turning about the neck, not about its own centre), ``hard``
(:func:`hard_head_motion`: what real egocentric footage does to a camera tracker: fast head turns
of 60-120 degrees per second and walking 0.5-1 m) and ``turn`` (:func:`pure_turn`: fast turns about
the camera's own centre, no translation at all: no parallax).

Conventions (docs/design.md §2): OpenCV camera frame (x right, y down, z forward), metres.
The canonical frame of a sequence is the camera of its first frame, so every camera
trajectory here is returned as ``T_cano_from_cam (N, 4, 4)`` with the identity at frame 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

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
    #: How much of the head's rotation the hands follow (1: all of it, they stay where the camera
    #: looks; realistic head motion: 0.65-0.9, a glance moves the hand in the image).
    hand_follow: float = 1.0
    #: How much of the camera's travel the hands share (1: all; realistic head motion: 0-0.3, the
    #: hands stay at their task while the head leans, steps and turns about the neck).
    hand_follow_translation: float = 1.0

    @property
    def T_cam_from_cano(self) -> np.ndarray:
        """(N, 4, 4) inverse of :attr:`T_cano_from_cam` (rigid inverse)."""
        return rigid_inverse(self.T_cano_from_cam)


def sample_intrinsics(rng: np.random.Generator, preset: str | None = None,
                      fov_deg: float | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """Draw a device (weighted) and jitter its field of view (+-5 %) and principal point (+-1 %);
    ``fov_deg``: exactly this horizontal field of view instead (the same draws are made).

    Returns:
        (preset name, K (3, 3) float64, image_size (2,) int64 as (W, H)).
    """
    names = list(CAMERA_PRESETS)
    if preset is None:
        w = np.array([CAMERA_PRESETS[n].weight for n in names])
        preset = names[int(rng.choice(len(names), p=w / w.sum()))]
    p = CAMERA_PRESETS[preset]
    jitter = rng.uniform(0.95, 1.05)
    K = intrinsics_from_fov(p.hfov_deg * jitter if fov_deg is None else fov_deg, p.width, p.height)
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
    R = Rotation.from_rotvec(rv).as_matrix()
    R = np.swapaxes(R[:1], -1, -2) @ R  # R_0^T R_i: identity at frame 0
    T = np.zeros((len(t), 4, 4))
    T[:, :3, :3] = R
    T[:, :3, 3] = np.einsum("ij,tj->ti", R[0].T, tr - tr[:1])
    T[:, 3, 3] = 1.0
    T[0] = np.eye(4)  # exactly (R_0^T R_0 is only identity up to rounding)
    return T


#: Kinds of head motion of a moving camera (:func:`sample_camera`).
HEAD_MOTIONS = ("gentle", "realistic", "hard", "turn")
#: The camera's centre relative to the head's pivot (the neck), in the camera frame: 10 cm up
#: (-y) and 8 cm forward, as glasses or a head strap sit. Turning the head moves the camera.
NECK_TO_CAMERA = np.array([0.0, -0.10, 0.08])


def realistic_head_motion(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Head motion of a person moving about while using their hands, identity at ``t[0]``.

    Rotation: slow band-limited wander (0.1-1 Hz, up to 8 degrees of pitch, 12 of yaw, 3 of roll)
    plus glances, about one every 1.5 s: minimum-jerk turns of 10-30 degrees, mostly yaw, at
    30-60 degrees per second on average (peaks 1.9 times that), half of them turning back after a
    short hold. The camera sits at :data:`NECK_TO_CAMERA` from the pivot, so every turn also moves
    it. Translation of the pivot: sway (up to 3-4 cm, 0.2-1.2 Hz) plus one or two steps or leans
    of 8-25 cm, mostly horizontal. Over 96 frames at 30 fps (5-95th percentiles of 200 draws): at
    most 15-60 degrees from the first frame (median 35), peak speeds of 70-180 degrees per second
    (median 107) and the camera 8-34 cm from where it started (median 20).

    Returns:
        (T, 4, 4) float64 ``T_cano_from_cam``.
    """
    from unihand.data.synthetic.smooth import minimum_jerk

    t = np.asarray(t, np.float64)
    dur_total = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    amp_r = np.deg2rad([8.0, 12.0, 3.0]) * rng.uniform(0.5, 1.0, size=3)  # pitch (x), yaw (y), roll (z)
    amp_t = np.array([0.04, 0.03, 0.04]) * rng.uniform(0.4, 1.0, size=3)
    both = smooth_noise(rng, t, (6,), np.concatenate([amp_r, amp_t]), fmin=0.1, fmax=1.0)
    rv, body = both[:, :3], both[:, 3:]
    for _ in range(1 + int(rng.poisson(dur_total / 1.5))):
        axis = np.array([rng.normal(0, 0.5), rng.choice([-1.0, 1.0]), rng.normal(0, 0.1)])
        axis /= np.linalg.norm(axis)
        angle = np.deg2rad(rng.uniform(10.0, 30.0))
        dur = max(0.3, angle / np.deg2rad(rng.uniform(30.0, 60.0)))
        t0 = rng.uniform(t[0] - 0.3, t[0] + max(dur_total - 0.2, 0.0))
        w = minimum_jerk((t - t0) / dur)
        if rng.random() < 0.5:  # glance and back
            w = w - minimum_jerk((t - t0 - dur - rng.uniform(0.2, 0.8)) / dur)
        rv = rv + w[:, None] * angle * axis
    for _ in range(int(rng.integers(1, 3))):
        step = rng.normal(size=3) * np.array([1.0, 0.25, 1.0])
        step *= rng.uniform(0.08, 0.25) / np.linalg.norm(step)
        t0, dur = rng.uniform(t[0] - 0.5, t[0] + max(dur_total - 0.3, 0.0)), rng.uniform(0.8, 2.0)
        body = body + minimum_jerk((t - t0) / dur)[:, None] * step
    R = Rotation.from_rotvec(rv).as_matrix()
    R = np.swapaxes(R[:1], -1, -2) @ R  # R_0^T R_i: identity at frame 0
    off = NECK_TO_CAMERA
    T = np.zeros((len(t), 4, 4))
    T[:, :3, :3] = R
    # camera centre = pivot + R_i off, the pivot at -off at frame 0 and carried by the body
    T[:, :3, 3] = (R @ off) - off + (body - body[:1])
    T[:, 3, 3] = 1.0
    T[0] = np.eye(4)
    return T


def _fast_turns(rng: np.random.Generator, t: np.ndarray, count: int, angle_deg: tuple[float, float],
                speed_deg_s: tuple[float, float]) -> np.ndarray:
    """(T, 3) rotation vectors of ``count`` minimum-jerk head turns, mostly yaw, of ``angle_deg`` at a mean
    speed of ``speed_deg_s`` (peaks 1.875 times that), half of them turning back after a short hold."""
    from unihand.data.synthetic.smooth import minimum_jerk

    rv = np.zeros((len(t), 3))
    span = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    for k in range(count):
        axis = np.array([rng.normal(0, 0.3), rng.choice([-1.0, 1.0]), rng.normal(0, 0.1)])
        axis /= np.linalg.norm(axis)
        angle = np.deg2rad(rng.uniform(*angle_deg))
        dur = angle / np.deg2rad(rng.uniform(*speed_deg_s))
        t0 = t[0] + span * (k + rng.uniform(0.1, 0.6)) / count
        w = minimum_jerk((t - t0) / dur)
        if rng.random() < 0.5:
            w = w - minimum_jerk((t - t0 - dur - rng.uniform(0.2, 0.6)) / dur)
        rv += w[:, None] * angle * axis
    return rv


def _pose_track(rv: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(T, 4, 4) T_cano_from_cam from rotation vectors and camera centres, identity at frame 0."""
    R = Rotation.from_rotvec(rv).as_matrix()
    R = np.swapaxes(R[:1], -1, -2) @ R
    T = np.zeros((len(rv), 4, 4))
    T[:, :3, :3] = R
    T[:, :3, 3] = centre - centre[:1]
    T[:, 3, 3] = 1.0
    T[0] = np.eye(4)
    return T


def hard_head_motion(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Head motion that real egocentric footage shows and that loses a camera tracker, identity at ``t[0]``.

    Rotation: the slow wander of :func:`realistic_head_motion` plus one or two fast turns of 40-90
    degrees at 60-120 degrees per second on average (mostly yaw; half of them turning back). The
    camera sits at :data:`NECK_TO_CAMERA` from the pivot. Translation of the pivot: walking 0.5-1 m
    (mostly forward and sideways, minimum-jerk start and stop over most of the clip) with the gait's
    bob (1-3 cm at 1.6-2.2 Hz) and sway (half that, at half the frequency).

    Returns:
        (T, 4, 4) float64 ``T_cano_from_cam``.
    """
    from unihand.data.synthetic.smooth import minimum_jerk

    t = np.asarray(t, np.float64)
    span = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    amp_r = np.deg2rad([6.0, 8.0, 2.0]) * rng.uniform(0.5, 1.0, size=3)
    rv = smooth_noise(rng, t, (3,), amp_r, fmin=0.1, fmax=1.0)
    rv = rv + _fast_turns(rng, t, int(rng.integers(1, 3)), (40.0, 90.0), (60.0, 120.0))
    heading = rng.uniform(-0.8, 0.8)  # walking direction off the first view direction (rad)
    dist = rng.uniform(0.5, 1.0)
    t0, dur = t[0] + rng.uniform(0.0, 0.2) * span, rng.uniform(0.6, 0.8) * span
    walk = minimum_jerk((t - t0) / max(dur, 1e-6))[:, None] * dist * np.array([np.sin(heading), 0.0, np.cos(heading)])
    speed = np.gradient(walk[:, 2] * np.cos(heading) + walk[:, 0] * np.sin(heading), t) if len(t) > 1 else np.zeros(1)
    gait = np.clip(speed / max(speed.max(), 1e-9), 0, 1) if len(t) > 1 else np.zeros(1)
    f, phase = rng.uniform(1.6, 2.2), rng.uniform(0, 2 * np.pi)
    bob = rng.uniform(0.01, 0.03)
    body = walk + gait[:, None] * np.stack([0.5 * bob * np.sin(np.pi * f * t + phase), bob * np.sin(2 * np.pi * f * t),
                                            np.zeros_like(t)], 1)
    R = Rotation.from_rotvec(rv).as_matrix()
    R = np.swapaxes(R[:1], -1, -2) @ R
    return _pose_track(rv, (R @ NECK_TO_CAMERA) + body)


def pure_turn(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """The camera turning about its own centre only (no translation: nothing for parallax), identity at
    ``t[0]``: one or two fast turns of 40-90 degrees at 60-120 degrees per second and a slow wander."""
    amp_r = np.deg2rad([4.0, 6.0, 2.0]) * rng.uniform(0.5, 1.0, size=3)
    rv = smooth_noise(rng, t, (3,), amp_r, fmin=0.1, fmax=1.0)
    rv = rv + _fast_turns(rng, np.asarray(t, np.float64), int(rng.integers(1, 3)), (40.0, 90.0), (60.0, 120.0))
    return _pose_track(rv, np.zeros((len(t), 3)))


#: Time scale (s) of the head motion the hands follow: glances and quick turns are not followed.
FOLLOW_SMOOTHING_S = 0.5


def hand_anchor(camera: CameraSpec, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(R (N, 3, 3), travel (N, 3)): the frame the hand's path is drawn in, in the canonical frame.

    With ``hand_follow`` = ``hand_follow_translation`` = 1 (gentle head motion) it is the camera
    itself: the hand stays where the camera looks. Otherwise the hands follow the slow part of the
    head's motion only (Gaussian low-pass of :data:`FOLLOW_SMOOTHING_S`): ``hand_follow`` of its
    rotation (the body turning toward where one looks) and ``hand_follow_translation`` of the
    camera's travel, not the glances nor the camera's swing about the neck, as hands at a task do.
    """
    T = camera.T_cano_from_cam
    R, c = T[:, :3, :3], T[:, :3, 3]
    if camera.hand_follow == 1.0 and camera.hand_follow_translation == 1.0:
        return R, c
    from scipy.ndimage import gaussian_filter1d

    sigma = FOLLOW_SMOOTHING_S * fps
    rv = gaussian_filter1d(Rotation.from_matrix(R).as_rotvec(), sigma, axis=0, mode="nearest")
    slow = Rotation.from_rotvec(camera.hand_follow * rv).as_matrix()
    slow = np.swapaxes(slow[:1], -1, -2) @ slow
    travel = gaussian_filter1d(c, sigma, axis=0, mode="nearest")
    return slow, camera.hand_follow_translation * (travel - travel[:1])


def sample_camera(
    rng: np.random.Generator, t: np.ndarray, *, moving_prob: float = 0.5, preset: str | None = None,
    head: str = "gentle", fov_deg: float | None = None,
) -> CameraSpec:
    """One sequence's camera: a device from :data:`CAMERA_PRESETS`, static or head-mounted
    (``head``: one of :data:`HEAD_MOTIONS`); ``fov_deg``: the horizontal field of view, exactly."""
    if head not in HEAD_MOTIONS:
        raise ValueError(f"head motion {head!r}: choose from {', '.join(HEAD_MOTIONS)}")
    name, K, size = sample_intrinsics(rng, preset, fov_deg)
    moving = bool(rng.random() < moving_prob)
    follow = follow_t = 1.0
    if moving and head in ("realistic", "hard", "turn"):
        T = {"realistic": realistic_head_motion, "hard": hard_head_motion, "turn": pure_turn}[head](rng, t)
        follow = float(rng.uniform(0.65, 0.9))
        # a walking person carries the hands along; a turn or a step leaves them at the task
        follow_t = float(rng.uniform(0.0, 0.3)) if head != "hard" else float(rng.uniform(0.7, 1.0))
    elif moving:
        T = head_motion(rng, t)
    else:
        T = np.broadcast_to(np.eye(4), (len(t), 4, 4)).copy()
    return CameraSpec(preset=name, K=K, image_size=size, T_cano_from_cam=T, moving=moving, hand_follow=follow,
                      hand_follow_translation=follow_t)
