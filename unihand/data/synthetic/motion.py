"""Procedural hand motions: finger activities from anatomical key poses, wrist and arm trajectories.

Fingers. A sequence performs one *activity* — a grasp (power, precision, pinch, tripod, lateral,
spherical: pre-shape, close, hold, release), a chain of gestures (point, peace, thumbs-up, OK,
fist, open, ...), finger taps, counting, or a wrist turn with a loose hand — written as key poses
in anatomical angles (flexion, abduction, twist per MANO joint, :mod:`unihand.hand.anatomy`).
Consecutive key poses are joined by minimum-jerk transitions (0.3-0.8 s, the speed of real
grasps) with a small per-finger delay (fingers do not close in lockstep), plus a band-limited
flexion tremor of at most 2 degrees (0.3-1.5 Hz). Every key pose is clipped into the joint limits shrunk by the tremor's
bound, and transitions are convex blends of key poses, so every frame is within
:data:`~unihand.hand.anatomy.JOINT_LIMITS` by construction (no clipping of the trajectory, which
would break its smoothness).

Wrist. The hand's palm centre follows a smooth path in front of the camera (0.25-0.7 m deep,
at a distance where the hand spans 18-50 % of the image's long side when the lens allows):
a sum of low-frequency sinusoids plus optional minimum-jerk reaches and, in some sequences, an
excursion out of the image. Its orientation is a random viewing direction (fingers up or away
from the camera, any roll: palm, back or side view) moved by smooth pronation/supination,
flexion/extension and deviation, and optional minimum-jerk wrist turns.

Everything is C2-continuous in time and bounded to human speeds (wrist < ~1 m/s, finger joints
< ~10 rad/s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unihand.data.synthetic._rot import rotvec_to_matrix
from unihand.data.synthetic.smooth import keyframe_track, minimum_jerk, smooth_noise
from unihand.hand.anatomy import JOINT_LIMITS

FINGER_NAMES = ("index", "middle", "little", "ring", "thumb")  # MANO order

#: Palm centre relative to the wrist in the un-rotated right hand (MANO frame: fingers along -x,
#: palm facing -y): half-way to the middle MCP.
PALM_CENTER_OFFSET = np.array([-0.047, -0.006, 0.0])


def _finger(mcp: float, pip: float, dip: float, abd: float = 0.0, twist: float = 0.0) -> list[list[float]]:
    return [[mcp, abd, twist], [pip, 0.0, 0.0], [dip, 0.0, 0.0]]


def _thumb(cmc_flex: float, cmc_abd: float, cmc_twist: float, mcp: float, ip: float) -> list[list[float]]:
    return [[cmc_flex, cmc_abd, cmc_twist], [mcp, 0.0, 0.0], [ip, 0.0, 0.0]]


def _pose(index: list, middle: list, little: list, ring: list, thumb: list) -> np.ndarray:
    """(15, 3) radians from per-finger degrees in MANO finger order."""
    return np.deg2rad(np.array(index + middle + little + ring + thumb, dtype=np.float64))


_FIST_FINGERS = dict(index=_finger(85, 100, 60, 0), middle=_finger(88, 100, 60, 0),
                     ring=_finger(90, 100, 60, 0), little=_finger(90, 100, 60, -5))
_CURLED = dict(index=_finger(75, 100, 55, 0), middle=_finger(80, 100, 55, 0),
               ring=_finger(85, 100, 55, 0), little=_finger(85, 100, 55, -5))

#: Key poses (15, 3) in radians, MANO joint order (index, middle, little, ring, thumb). The thumb
#: angles of the grasps and gestures were fitted (gradient descent through the kinematic hand,
#: within the limits) so its tip lands where it should: on the index tip (OK, pinch), 1.5-3 cm
#: from the index/middle tips (tripod, precision), over the curled fingers' middle phalanges
#: (fist, point, peace, three, power), against the index's side (lateral), 6.5 cm across a ball
#: (spherical).
POSES: dict[str, np.ndarray] = {
    "flat": _pose(_finger(0, 0, 0, 8), _finger(0, 0, 0, 0), _finger(0, 0, 0, -14), _finger(0, 0, 0, -6),
                  _thumb(5, 0, 0, 0, 0)),
    "open": _pose(_finger(5, 8, 5, 12), _finger(5, 8, 5, 0), _finger(8, 8, 5, -18), _finger(6, 8, 5, -9),
                  _thumb(-5, 20, 0, 0, 5)),
    "relaxed": _pose(_finger(20, 25, 12, 4), _finger(25, 30, 15, 0), _finger(35, 40, 20, -8),
                     _finger(30, 35, 18, -4), _thumb(15, 15, -10, 15, 15)),
    "fist": _pose(**_FIST_FINGERS, thumb=_thumb(28, -7, -28, 37, 38)),
    "point": _pose(_finger(0, 5, 5, 0), _CURLED["middle"], _CURLED["little"], _CURLED["ring"],
                   _thumb(51, -13, -19, 31, 19)),
    "peace": _pose(_finger(0, 5, 5, 14), _finger(0, 5, 5, -10), _CURLED["little"], _CURLED["ring"],
                   _thumb(66, -11, -12, 36, 22)),
    "three": _pose(_finger(0, 5, 5, 12), _finger(0, 5, 5, 0), _CURLED["little"], _finger(5, 5, 5, -10),
                   _thumb(67, -9, -8, 49, 25)),
    "thumbs_up": _pose(**_FIST_FINGERS, thumb=_thumb(-15, 30, 0, 0, 0)),
    "call": _pose(_CURLED["index"], _CURLED["middle"], _finger(0, 5, 5, -20), _CURLED["ring"],
                  _thumb(-15, 35, 0, 0, 0)),
    "ok": _pose(_finger(45, 65, 35, 0), _finger(10, 15, 10, 0), _finger(15, 15, 10, -18), _finger(12, 15, 10, -9),
                _thumb(34, 7, -24, 26, 24)),
    # grasps (with their pre-shapes)
    "preshape": _pose(_finger(10, 15, 8, 10), _finger(12, 15, 8, 0), _finger(15, 18, 10, -15),
                      _finger(14, 16, 9, -8), _thumb(0, 28, -10, 5, 10)),
    "power": _pose(_finger(55, 70, 40, 0), _finger(58, 72, 40, 0), _finger(65, 75, 45, -3), _finger(62, 74, 42, -1),
                   _thumb(45, -21, -33, 16, 5)),
    "precision": _pose(_finger(35, 45, 25, 3), _finger(40, 45, 25, 0), _finger(50, 60, 30, -6),
                       _finger(45, 50, 28, -3), _thumb(42, 7, -26, 18, 16)),
    "pinch": _pose(_finger(40, 50, 30, 0), _finger(25, 30, 15, 0), _finger(35, 40, 20, -8), _finger(30, 35, 18, -4),
                   _thumb(35, 5, -22, 19, 21)),
    "tripod": _pose(_finger(40, 50, 28, 3), _finger(42, 50, 28, -2), _finger(40, 45, 25, -10), _finger(38, 45, 25, -6),
                    _thumb(43, 3, -26, 20, 17)),
    "lateral": _pose(_finger(70, 90, 50, 0), _finger(75, 90, 50, 0), _finger(80, 90, 50, -3), _finger(78, 90, 50, -1),
                     _thumb(-9, -16, -8, 52, 65)),
    "spherical": _pose(_finger(30, 50, 40, 12), _finger(32, 50, 40, 0), _finger(38, 50, 40, -18),
                       _finger(35, 50, 40, -9), _thumb(31, 27, -20, 20, 20)),
}
GRASPS = ("power", "precision", "pinch", "tripod", "lateral", "spherical")
GESTURES = ("point", "peace", "three", "thumbs_up", "call", "ok", "fist", "open", "flat", "relaxed")
ACTIVITIES = ("grasp", "gestures", "taps", "counting", "wrist_turn")
_ACTIVITY_P = (0.35, 0.3, 0.15, 0.1, 0.1)

#: Tremor bound (radians) per joint angle: 2 degrees, at most 20 % of the joint's half-range.
TREMOR = np.minimum(np.deg2rad(2.0), 0.2 * (JOINT_LIMITS[..., 1] - JOINT_LIMITS[..., 0]) / 2.0)
#: Limits that key poses are clipped into: the anatomical limits shrunk by the tremor (+ 0.5 deg).
SAFE_LIMITS = np.stack([JOINT_LIMITS[..., 0] + TREMOR + np.deg2rad(0.5),
                        JOINT_LIMITS[..., 1] - TREMOR - np.deg2rad(0.5)], axis=-1)


def clip_to_limits(angles: np.ndarray) -> np.ndarray:
    """Clip (..., 15, 3) angles into :data:`SAFE_LIMITS`."""
    return np.clip(angles, SAFE_LIMITS[..., 0], SAFE_LIMITS[..., 1])


@dataclass
class FingerMotion:
    angles: np.ndarray  # (N, 15, 3) radians
    activity: str  # e.g. "grasp:power", "gestures:point>peace", "taps"


def _vary(rng: np.random.Generator, pose: np.ndarray, deg: float = 4.0) -> np.ndarray:
    """Key poses (..., 15, 3) with per-angle jitter (flexion jitters most), clipped into the safe limits."""
    scale = np.array([1.0, 0.5, 0.3]) * np.deg2rad(deg)
    return clip_to_limits(pose + rng.normal(size=pose.shape) * scale)


def _schedule(rng: np.random.Generator, count: int, start: float, move: tuple[float, float],
              hold: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Transition starts and durations for ``count`` transitions separated by holds."""
    starts, durs = [], []
    t = start
    for _ in range(count):
        d = rng.uniform(*move)
        starts.append(t)
        durs.append(d)
        t += d + rng.uniform(*hold)
    return np.array(starts), np.array(durs)


def sample_finger_motion(rng: np.random.Generator, t: np.ndarray, activity: str | None = None) -> FingerMotion:
    """Finger angles (N, 15, 3) over the sample times ``t`` (seconds, from 0).

    The activity's timeline starts before or within the window at a random phase, so a window
    can begin mid-grasp or mid-gesture.
    """
    activity = activity or ACTIVITIES[int(rng.choice(len(ACTIVITIES), p=_ACTIVITY_P))]
    span = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    start = rng.uniform(-1.0, 0.5 * span)  # first transition (may be before the window)
    label = activity
    taps = None
    if activity == "grasp":
        kind = GRASPS[int(rng.integers(len(GRASPS)))]
        rest = "relaxed" if rng.random() < 0.6 else "open"
        names = [rest, "preshape", kind, "preshape" if rng.random() < 0.5 else rest]
        starts, durs = _schedule(rng, 3, start, (0.35, 0.8), (0.2, 1.2))
        label = f"grasp:{kind}"
    elif activity == "gestures":
        count = int(rng.integers(2, 5))
        names = [GESTURES[int(i)] for i in rng.choice(len(GESTURES), size=count, replace=False)]
        starts, durs = _schedule(rng, count - 1, start, (0.3, 0.7), (0.25, 0.9))
        label = "gestures:" + ">".join(names)
    elif activity == "counting":
        seq = ["fist", "point", "peace", "three", "open"]
        k = int(rng.integers(0, 2))
        names = seq[k:k + int(rng.integers(3, 5))]
        starts, durs = _schedule(rng, len(names) - 1, start, (0.3, 0.55), (0.15, 0.5))
    elif activity == "taps":
        names = ["relaxed" if rng.random() < 0.5 else "flat"] * 2
        starts, durs = np.array([0.0]), np.array([1.0])
        taps = rng.random(4) < np.array([0.9, 0.6, 0.4, 0.5])  # which fingers tap (index, middle, little, ring)
    else:  # wrist_turn: a loose hand, the wrist does the moving
        names = [("open", "flat", "relaxed")[int(rng.integers(3))], "relaxed"]
        starts, durs = _schedule(rng, 1, start, (0.5, 1.0), (0.0, 0.0))
    keys = _vary(rng, np.stack([POSES[n] for n in names]))  # (K + 1, 15, 3)
    delay = rng.uniform(-0.04, 0.08, size=5)  # per finger (MANO order)
    tf = t[:, None] - delay[None]  # (N, 5)
    angles = keyframe_track(tf, starts, durs, keys.reshape(len(keys), 5, 9)).reshape(len(t), 15, 3)
    if taps is not None:
        angles = angles + _tap_offsets(rng, t, angles, taps)
    angles[..., 0] += smooth_noise(rng, t, (15,), TREMOR[:, 0], fmin=0.3, fmax=1.5, terms=2)  # flexion tremor
    return FingerMotion(angles=angles, activity=label)


def _tap_offsets(rng: np.random.Generator, t: np.ndarray, angles: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Periodic MCP/PIP flexion taps (1.5-3.5 Hz) of the chosen fingers, staying inside the limits."""
    out = np.zeros_like(angles)
    freq = rng.uniform(1.5, 3.5)
    for f in np.flatnonzero(taps):
        amp = np.deg2rad(rng.uniform(10, 30))
        phase = rng.uniform(0, 2 * np.pi)
        wave = 0.5 * (1 - np.cos(2 * np.pi * freq * t + phase))  # in [0, 1]
        for j, share in ((3 * f, 1.0), (3 * f + 1, 0.6)):
            room = SAFE_LIMITS[j, 0, 1] - angles[:, j, 0].max()
            out[:, j, 0] = min(amp * share, max(room, 0.0)) * wave
    return out


@dataclass
class WristMotion:
    """Hand placement in a camera's frame over time."""

    rotation: np.ndarray  # (N, 3, 3) global orientation (MANO's about the wrist)
    center: np.ndarray  # (N, 3) palm centre, camera frame, metres
    exits: bool  # the path leaves the image on purpose


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross costs ~20x more on tiny inputs)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _frame_from(fingers: np.ndarray, palm: np.ndarray) -> np.ndarray:
    """Rotation taking the rest hand (fingers -x, palm normal -y) to finger direction / palm normal."""
    d = fingers / np.linalg.norm(fingers)
    p = palm - palm.dot(d) * d
    p /= np.linalg.norm(p)
    # columns: images of x, y, z; x -> -d, y -> -p, z -> x cross y
    return np.stack([-d, -p, _cross(d, p)], axis=-1)  # (-d) x (-p) = d x p


def sample_wrist_motion(
    rng: np.random.Generator, t: np.ndarray, K: np.ndarray, image_size: np.ndarray, *, exit_p: float = 0.15,
    activity: str = "",
) -> WristMotion:
    """Palm-centre path and hand orientation in a camera frame (OpenCV axes)."""
    w, h = float(image_size[0]), float(image_size[1])
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # orientation: fingers roughly up in the image and/or away from the camera, any roll
    fingers = np.array([rng.normal(0, 0.5), -rng.uniform(0.2, 1.0), rng.uniform(-0.4, 1.0)])
    roll = rng.uniform(0, 2 * np.pi)
    d = fingers / np.linalg.norm(fingers)
    ref = np.array([0.0, 0.0, -1.0]) - d[2] * d  # palm toward the camera, then rolled about the fingers
    ref /= max(np.linalg.norm(ref), 1e-6)
    palm = np.cos(roll) * ref + np.sin(roll) * _cross(d, ref)
    R0 = _frame_from(d, palm)
    # palm centre: a base point in view, low-frequency sway, optional reach and exit
    # depth from the hand's apparent size: its length (~19 cm) spans 18-50 % of the image's long side
    frac = rng.uniform(0.18, 0.5)
    z0 = float(np.clip(0.19 * 0.5 * (fx + fy) / (frac * max(w, h)), 0.3, 0.65))
    u0, v0 = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)
    base = np.array([(u0 * w - cx) * z0 / fx, (v0 * h - cy) * z0 / fy, z0])
    half = np.array([0.5 * w / fx, 0.5 * h / fy]) * z0  # half extent of the view at depth z0
    sway_amp = np.concatenate([np.minimum(rng.uniform(0.01, 0.08, size=2), 0.3 * half), [rng.uniform(0.01, 0.05)]])
    # body-frame wrist motion: x = finger axis (pronation/supination), z = flexion/extension, y = deviation
    rot_amp = np.deg2rad(np.array([35.0, 15.0, 20.0])) * rng.uniform(0.2, 1.0, size=3)
    noise = smooth_noise(rng, t, (6,), np.concatenate([rot_amp, sway_amp]), fmin=0.1, fmax=0.75)
    omega = noise[:, :3]
    turn_p = 0.9 if activity == "wrist_turn" else 0.25
    if rng.random() < turn_p:
        axis = np.array([1.0, 0.0, 0.0]) if rng.random() < 0.7 else np.array([0.0, 0.0, 1.0])
        angle = np.deg2rad(rng.uniform(30, 90)) * rng.choice([-1.0, 1.0])
        t0, dur = rng.uniform(t[0] - 0.3, t[-1] - 0.3), rng.uniform(0.6, 1.0) * abs(angle) / np.deg2rad(60)
        dur = max(dur, 0.4)
        omega = omega + (minimum_jerk((t - t0) / dur) * angle)[:, None] * axis
    rotation = R0 @ rotvec_to_matrix(omega)
    center = base + noise[:, 3:]
    if rng.random() < 0.35:  # a reach: minimum-jerk displacement of 5-20 cm
        reach = rng.normal(size=3) * np.array([1.0, 1.0, 0.5])
        reach *= rng.uniform(0.05, 0.2) / np.linalg.norm(reach)
        reach[2] = max(reach[2], 0.27 - z0)  # keeps the hand >= 22 cm away
        t0, dur = rng.uniform(t[0] - 0.5, t[-1]), rng.uniform(0.5, 1.2)
        center = center + minimum_jerk((t - t0) / dur)[:, None] * reach
    exits = bool(rng.random() < exit_p)
    if exits:  # leave (or enter) the view sideways or vertically
        axis = int(rng.integers(2))
        sign = rng.choice([-1.0, 1.0])
        shift = np.zeros(3)
        shift[axis] = sign * half[axis] * rng.uniform(1.0, 1.6)
        # minimum jerk peaks at 1.875 * distance / duration: keep the hand under 1 m/s
        dur = max(rng.uniform(0.5, 1.0), 1.875 * abs(shift[axis]) / 1.0)
        t0 = rng.uniform(t[0] - 0.3, max(t[0], t[-1] - dur * 0.5))
        s = minimum_jerk((t - t0) / dur)
        s = 1.0 - s if rng.random() < 0.5 else s  # entering instead of leaving
        center = center + s[:, None] * shift
    return WristMotion(rotation=rotation, center=center, exits=exits)


def sample_betas(rng: np.random.Generator) -> np.ndarray:
    """Hand shape: betas ~ N(0, 1) clipped to [-2.5, 2.5] (10,)."""
    return np.clip(rng.normal(size=10), -2.5, 2.5)
