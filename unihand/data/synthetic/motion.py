"""Procedural hand motions: finger activities from anatomical key poses, wrist and arm trajectories.

Fingers. A sequence performs one *activity* — a reach-to-grasp episode, a chain of gestures
(point, peace, thumbs-up, OK, fist, open, ...), finger taps, counting, or a wrist turn with a
loose hand — written as key poses in anatomical angles (flexion, abduction, twist per MANO joint,
:mod:`unihand.hand.anatomy`). Consecutive key poses are joined by minimum-jerk transitions (the
speed of real finger movements, at a per-sequence tempo) with a small per-finger delay (fingers
do not close in lockstep), plus a band-limited flexion tremor of at most 2 degrees (0.3-1.5 Hz).

Coupling and synergies. Key poses vary along a few postural synergies (:data:`SYNERGIES`:
whole-hand closing, thumb-index opposition, ulnar fingers; Santello et al. 1998) plus small
independent parts, and in every activity each finger's DIP flexion is ``ratio`` times its PIP
flexion (``ratio`` per sequence in :data:`DIP_PIP_RATIO`, about 2/3) plus at most 2.4 degrees
of independent noise; taps, in-hand offsets and tremor keep the coupling.

Grasp episodes (:class:`GraspEpisode`). An object of a random shape and size (:data:`OBJECTS`:
cylinder, sphere, small object, flat object, disc) sets the grip (:data:`GRIP_KEYS`: power,
spherical, pinch, tripod, lateral, disc; flexion scales with the size) and the episode is:
approach — the hand's transport is a bell-shaped step whose velocity peaks at 40-50 % of the
reach (:func:`~.smooth.skewed_minimum_jerk`) while the hand pre-shapes, its thumb-index aperture
peaking at 60-72 % of the reach at about 4.5 cm + 0.8 x the object's size (Jeannerod 1984), then
closing on the object at the end of the transport; grasp and manipulate — the grip holds (with a
small adjustment) while the wrist moves, rotates or tilts the object, optionally with in-hand
rolling between thumb and index or finger gaiting; release — the fingers open and the hand
retracts. Each sequence's tempo sets the peak transport speed, log-uniform in
:data:`SPEED_RANGE` (0.1-1.5 m/s); a window sees a random part of the episode.

Limits. Every key pose is clipped into the joint limits shrunk by the tremor's bound,
transitions are convex blends of key poses and additive offsets are scaled to fit, so every
frame is within :data:`~unihand.hand.anatomy.JOINT_LIMITS` by construction (no clipping of the
trajectory, which would break its smoothness).

Wrist. The hand's palm centre follows a smooth path in front of the camera (0.25-0.7 m deep,
at a distance where the hand spans 18-50 % of the image's long side when the lens allows):
a sum of low-frequency sinusoids plus the grasp episode's transports, or optional minimum-jerk
reaches at the sequence's tempo, all kept in the middle of the view, and, in some sequences, an
excursion out of the image (never during a reach: it enters before a grasp's approach or leaves
after its retract). Its orientation is a random viewing direction (fingers up or away from the
camera, any roll: palm, back or side view) moved by smooth pronation/supination,
flexion/extension and deviation, the episode's object rotations and tilts, or optional
minimum-jerk wrist turns.

Everything is C2-continuous in time and bounded to human speeds (palm centre transports
<= 1.5 m/s, finger joints < ~10 rad/s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from unihand.data.synthetic.smooth import (
    keyframe_track, minimum_jerk, skewed_minimum_jerk, skewed_minimum_jerk_peak, smooth_noise,
)
from unihand.hand.anatomy import JOINT_FRAMES, JOINT_LIMITS
from unihand.hand.kinematic import REST_OFFSETS

FINGER_NAMES = ("index", "middle", "little", "ring", "thumb")  # MANO order

#: Palm centre relative to the wrist in the un-rotated right hand (MANO frame: fingers along -x,
#: palm facing -y): half-way to the middle MCP.
PALM_CENTER_OFFSET = np.array([-0.047, -0.006, 0.0])

#: Joint rows (MANO order) of the four fingers' MCP, PIP and DIP joints (index, middle, little, ring).
MCP, PIP, DIP = np.arange(0, 12, 3), np.arange(1, 12, 3), np.arange(2, 12, 3)


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
#: (spherical). The ``*_wide`` grips hold the largest objects of their kind (thumb-index tip
#: distance: power 7.3 cm, spherical 10.6, pinch 3.7, disc 11.1; lateral: 1.9 cm more between
#: the thumb pad and the index's side).
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
    # one or two fingers folded while the others stay open (counting on the fingers, a finger onto the
    # thumb: what real footage shows and the grasps and gestures above rarely do)
    "index_fold": _pose(_finger(70, 95, 55, 0), _finger(5, 8, 5, 0), _finger(8, 8, 5, -18), _finger(6, 8, 5, -9),
                        _thumb(-5, 20, 0, 0, 5)),
    "middle_fold": _pose(_finger(5, 8, 5, 12), _finger(80, 95, 55, 0), _finger(8, 8, 5, -18),
                         _finger(6, 8, 5, -9), _thumb(-5, 20, 0, 0, 5)),
    "ring_thumb": _pose(_finger(5, 8, 5, 12), _finger(5, 8, 5, 0), _finger(12, 10, 5, -15), _finger(60, 90, 50, -5),
                        _thumb(55, -15, -30, 30, 20)),
    "little_fold": _pose(_finger(5, 8, 5, 12), _finger(5, 8, 5, 0), _finger(80, 95, 55, -5), _finger(10, 10, 5, -9),
                         _thumb(-5, 20, 0, 0, 5)),
    "ulnar_curl": _pose(_finger(5, 8, 5, 12), _finger(5, 8, 5, 0), _CURLED["little"], _CURLED["ring"],
                        _thumb(-5, 20, 0, 0, 5)),
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
    "power_wide": _pose(_finger(35, 45, 30, 2), _finger(38, 45, 30, 0), _finger(45, 50, 33, -6),
                        _finger(42, 48, 32, -3), _thumb(20, 25, -25, 8, 8)),
    "spherical_wide": _pose(_finger(15, 35, 23, 15), _finger(15, 35, 23, 0), _finger(20, 38, 25, -18),
                            _finger(18, 36, 24, -11), _thumb(15, 35, -15, 8, 10)),
    "pinch_wide": _pose(_finger(35, 45, 30, 0), _finger(22, 28, 18, 0), _finger(32, 38, 24, -8),
                        _finger(28, 33, 21, -4), _thumb(30, 12, -22, 16, 16)),
    "lateral_wide": _pose(_finger(70, 90, 50, 0), _finger(75, 90, 50, 0), _finger(80, 90, 50, -3),
                          _finger(78, 90, 50, -1), _thumb(-9, -5, -8, 40, 45)),
    "disc_wide": _pose(_finger(25, 30, 20, 15), _finger(25, 30, 20, 0), _finger(30, 35, 23, -18),
                       _finger(28, 32, 21, -12), _thumb(10, 40, -10, 5, 10)),
}
#: Grips: (object size in metres, key pose) from the smallest to the largest object the grip takes;
#: an object's grip is the piecewise-linear blend of these key poses at its size.
GRIP_KEYS: dict[str, tuple[tuple[float, str], ...]] = {
    "power": ((0.02, "fist"), (0.045, "power"), (0.085, "power_wide")),
    "spherical": ((0.04, "precision"), (0.065, "spherical"), (0.10, "spherical_wide")),
    "pinch": ((0.005, "pinch"), (0.035, "pinch_wide")),
    "tripod": ((0.01, "tripod"), (0.035, "precision")),
    "lateral": ((0.002, "lateral"), (0.015, "lateral_wide")),
    "disc": ((0.03, "precision"), (0.12, "disc_wide")),
}
#: Object shapes: (grips that take them, size range in metres along the grip, probability). Sizes:
#: diameter (cylinder: bottle, handle, pen; sphere: ball, fruit; disc: lid, coaster, held by its
#: rim), width (small: coin, cap, marble) or thickness (flat: card, key, plate).
OBJECTS: dict[str, tuple[tuple[str, ...], tuple[float, float], float]] = {
    "cylinder": (("power",), (0.02, 0.085), 0.3),
    "sphere": (("spherical",), (0.04, 0.10), 0.2),
    "small": (("pinch", "tripod"), (0.005, 0.035), 0.25),
    "flat": (("lateral",), (0.002, 0.015), 0.1),
    "disc": (("disc",), (0.03, 0.12), 0.15),
}
GESTURES = ("point", "peace", "three", "thumbs_up", "call", "ok", "fist", "open", "flat", "relaxed")
#: Single fingers folded (or pinched onto the thumb) while the others stay open.
SINGLE_FOLDS = ("index_fold", "middle_fold", "ring_thumb", "little_fold", "ulnar_curl", "ok")
#: ``single_fingers`` (folds of :data:`SINGLE_FOLDS` from an open hand) and ``snap`` (a fist opening and
#: closing within 2-4 frames at 30 fps) are test activities: chosen only when asked for
#: (``SynthConfig(activity=...)``), outside the training mix, so they test what real footage shows.
ACTIVITIES = ("grasp", "gestures", "taps", "counting", "wrist_turn", "single_fingers", "snap")
_ACTIVITY_P = (0.45, 0.25, 0.1, 0.1, 0.1, 0.0, 0.0)
#: Duration (s) of a ``snap`` transition: 2-4 frames at 30 fps.
SNAP_TIME = (0.06, 0.13)

#: Per-sequence DIP/PIP flexion ratio band (about 2/3: Rijpkema & Girard 1991).
DIP_PIP_RATIO = (0.55, 0.8)
#: Bound (radians) of the DIP's independent noise in key poses.
DIP_NOISE = np.deg2rad(2.0)
#: Peak palm-centre speeds (m/s) of a sequence's reaches and transports: log-uniform in this range.
SPEED_RANGE = (0.1, 1.5)
_MOVE_TIME = (0.35, 1.6)  # reach durations, s

#: Postural synergies (3, 15, 3), radians per unit coefficient (degrees of the leading angle):
#: whole-hand closing, thumb-index opposition (precision), ulnar fingers (little and ring against
#: index). DIP rows are zero: the DIP follows the PIP through the coupling.
SYNERGIES = np.stack([
    _pose(_finger(1.0, 1.0, 0, -0.2), _finger(1.0, 1.0, 0), _finger(1.0, 1.0, 0, 0.3), _finger(1.0, 1.0, 0, 0.15),
          _thumb(0.5, -0.3, -0.3, 0.6, 0.6)),
    _pose(_finger(0.8, 0.8, 0), _finger(0.4, 0.4, 0), _finger(-0.3, -0.3, 0), _finger(-0.2, -0.2, 0),
          _thumb(0.8, 0.6, -0.5, 0.3, 0.5)),
    _pose(_finger(-0.3, -0.3, 0), _finger(0.2, 0.2, 0), _finger(1.0, 1.0, 0, -0.3), _finger(0.8, 0.8, 0, -0.15),
          _thumb(0.1, 0, 0, 0, 0)),
])
#: Standard deviations (degrees) of the synergy coefficients of a key pose, and of its independent
#: (flexion, abduction, twist) parts.
SYNERGY_SD = np.array([6.0, 4.0, 3.0])
INDEPENDENT_SD = np.deg2rad(np.array([1.5, 1.0, 0.6]))

#: Tremor bound (radians) per joint angle: 2 degrees, at most 20 % of the joint's half-range.
TREMOR = np.minimum(np.deg2rad(2.0), 0.2 * (JOINT_LIMITS[..., 1] - JOINT_LIMITS[..., 0]) / 2.0)
#: Limits that key poses are clipped into: the anatomical limits shrunk by the tremor (+ 0.5 deg).
SAFE_LIMITS = np.stack([JOINT_LIMITS[..., 0] + TREMOR + np.deg2rad(0.5),
                        JOINT_LIMITS[..., 1] - TREMOR - np.deg2rad(0.5)], axis=-1)


def clip_to_limits(angles: np.ndarray) -> np.ndarray:
    """Clip (..., 15, 3) angles into :data:`SAFE_LIMITS`."""
    return np.clip(angles, SAFE_LIMITS[..., 0], SAFE_LIMITS[..., 1])


_APERTURE_ROWS = [0, 1, 2, 12, 13, 14]  # index MCP, PIP, DIP; thumb CMC, MCP, IP


#: (6, 3, 3) anatomical frames (columns: flexion, abduction, twist axes) of the index and thumb joints.
_APERTURE_FRAMES = JOINT_FRAMES[_APERTURE_ROWS]


def aperture(angles: np.ndarray) -> np.ndarray:
    """Grip aperture (...,) in metres: thumb-tip to index-tip distance of the mean right hand posed
    with finger angles (..., 15, 3) (the kinematic hand's forward kinematics of those two chains)."""
    angles = np.asarray(angles, dtype=np.float64)[..., _APERTURE_ROWS, :]
    euler = Rotation.from_euler("XYZ", angles.reshape(-1, 3)).as_matrix().reshape(angles.shape + (3,))
    local = _APERTURE_FRAMES @ euler @ np.swapaxes(_APERTURE_FRAMES, -1, -2)
    tips = []
    for first, chain in ((0, (1, 2, 3, 17)), (3, (13, 14, 15, 16))):  # index, thumb (extended joint order)
        pos, glob = REST_OFFSETS[chain[0]], local[..., first, :, :]
        for k, child in enumerate(chain[1:]):
            pos = pos + glob @ REST_OFFSETS[child]
            if k < 2:
                glob = glob @ local[..., first + k + 1, :, :]
        tips.append(pos)
    return np.linalg.norm(tips[0] - tips[1], axis=-1)


@dataclass
class GraspEpisode:
    """A reach-to-grasp episode on the sequence's clock (seconds): approach, grasp, manipulate, release."""

    shape: str  # object shape (OBJECTS)
    size: float  # object size along the grip, metres
    grip: str  # GRIP_KEYS
    speed: float  # peak palm-centre speed of the approach, m/s (the sequence's tempo)
    start: float  # the transport starts
    duration: float  # transport time; the fingers close on the object at start + duration
    distance: float  # transport distance, metres
    skew: float  # ``b`` of the transport's skewed_minimum_jerk profile
    aperture_peak: float  # time of the pre-shape key pose (maximum grip aperture)
    actions: list[tuple[str, float, float, float]]  # held: (move | rotate | tilt, start, duration, m | rad)
    in_hand: tuple[str, float, float] | None  # in-hand manipulation: ("roll" | "gait", start, end)
    release: float  # the fingers start opening
    retract: tuple[float, float, float]  # start, duration, distance (metres)

    @property
    def contact(self) -> float:
        """When the fingers close on the object (the end of the approach)."""
        return self.start + self.duration


@dataclass
class FingerMotion:
    angles: np.ndarray  # (N, 15, 3) radians
    activity: str  # e.g. "grasp:power:cylinder:52mm", "gestures:point>peace", "taps"
    dip_ratio: float  # DIP / PIP flexion coupling of this sequence
    episode: GraspEpisode | None = None  # grasps only


def _couple(rng: np.random.Generator, poses: np.ndarray, ratio: float) -> np.ndarray:
    """Key poses (K, 15, 3) clipped into the safe limits with each DIP at ``ratio`` x its PIP (+ noise)."""
    poses = clip_to_limits(poses)
    poses[:, DIP, 0] = ratio * poses[:, PIP, 0] + rng.uniform(-DIP_NOISE, DIP_NOISE, size=(len(poses), 4))
    return clip_to_limits(poses)


def _vary(rng: np.random.Generator, poses: np.ndarray, ratio: float, scale: float | np.ndarray = 1.0,
          ) -> np.ndarray:
    """Key poses (K, 15, 3) moved along the synergies plus small independent parts (``scale``: of
    the variation, scalar or per key), DIP-coupled and clipped into the safe limits."""
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (len(poses),))
    coef = rng.normal(size=(len(poses), len(SYNERGIES))) * SYNERGY_SD * scale[:, None]
    noise = rng.normal(size=poses.shape) * INDEPENDENT_SD * scale[:, None, None]
    return _couple(rng, poses + np.tensordot(coef, SYNERGIES, axes=1) + noise, ratio)


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


def draw_speed(rng: np.random.Generator) -> float:
    """A sequence's tempo: peak transport speed (m/s), log-uniform in :data:`SPEED_RANGE`."""
    return float(np.exp(rng.uniform(*np.log(SPEED_RANGE))))


def reach_size(rng: np.random.Generator, speed: float, distance: tuple[float, float], b: float = 3.0,
               ) -> tuple[float, float]:
    """Distance (m, in ``distance`` where the duration allows) and duration (s, in 0.35-1.6) of a
    :func:`~.smooth.skewed_minimum_jerk` reach whose peak speed is ``speed``."""
    rate = skewed_minimum_jerk_peak(b)
    lo = max(distance[0], speed * _MOVE_TIME[0] / rate)
    hi = max(min(distance[1], speed * _MOVE_TIME[1] / rate), lo)
    dist = rng.uniform(lo, hi)
    return dist, rate * dist / speed


def _blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    return a + w * (b - a)


def _grip_pose(grip: str, size: float) -> np.ndarray:
    """Key pose (15, 3) of ``grip`` on an object of ``size`` metres."""
    sizes = np.array([s for s, _ in GRIP_KEYS[grip]])
    names = [n for _, n in GRIP_KEYS[grip]]
    i = int(np.clip(np.searchsorted(sizes, size), 1, len(sizes) - 1))
    w = float(np.clip((size - sizes[i - 1]) / (sizes[i] - sizes[i - 1]), 0.0, 1.0))
    return _blend(POSES[names[i - 1]], POSES[names[i]], w)


def _crossing(a: np.ndarray, b: np.ndarray, target: float) -> float:
    """First weight of the blend of poses ``a`` -> ``b`` whose aperture reaches ``target`` (1 if
    none does; apertures need not be monotone along a blend): on a 0.1 grid, then interpolated."""
    w = np.linspace(0.0, 1.0, 11)
    ap = aperture(a + w[:, None, None] * (b - a))
    hit = np.flatnonzero(ap >= target)
    if not len(hit):
        return 1.0
    k = hit[0]
    return 0.0 if k == 0 else float(w[k - 1] + 0.1 * (target - ap[k - 1]) / (ap[k] - ap[k - 1]))


def _grasp_plan(rng: np.random.Generator, t0: float, span: float, ratio: float,
                ) -> tuple[GraspEpisode, np.ndarray, np.ndarray, np.ndarray]:
    """A reach-to-grasp episode placed so that the window [t0, t0 + span] sees a random part of it;
    its key poses (6, 15, 3), transition starts and durations."""
    shape = tuple(OBJECTS)[int(rng.choice(len(OBJECTS), p=[o[2] for o in OBJECTS.values()]))]
    grips, sizes, _ = OBJECTS[shape]
    grip = grips[int(rng.integers(len(grips)))]
    size = rng.uniform(*sizes)
    speed = draw_speed(rng)
    skew = rng.uniform(3.0, 4.0)  # velocity peak at 40-50 % of the transport
    dist, dur = reach_size(rng, speed, (0.08, 0.4), skew)
    start = rng.uniform(0.2, 0.8)
    peak = start + rng.uniform(0.6, 0.72) * dur  # maximum grip aperture (Jeannerod 1984)
    contact = start + dur
    hold = contact + rng.uniform(0.02, 0.08)  # the fingers settle on the object
    t = hold + rng.uniform(0.1, 0.3)
    actions = []
    omega = float(np.clip(5.0 * speed, 1.0, 7.0))  # peak rotation speed, rad/s
    for kind in rng.permutation(["move", "rotate", "tilt"])[:int(rng.integers(1, 3))]:
        if kind == "move":
            amount = rng.uniform(0.05, 0.25)
            d = 1.875 * amount / (speed * rng.uniform(0.6, 1.0))
        else:
            amount = float(np.deg2rad(rng.uniform(30, 100) if kind == "rotate" else rng.uniform(15, 45)))
            d = 1.875 * amount / omega
        d = float(np.clip(d, 0.4, 2.0))
        actions.append((str(kind), t, d, amount))
        t += d + rng.uniform(0.1, 0.5)
    in_hand = None
    if rng.random() < 0.5:
        kind = "roll" if grip in ("pinch", "tripod") else "gait"
        a = hold + rng.uniform(0.1, 0.4)
        in_hand = (kind, a, a + rng.uniform(0.8, 1.6))
        t = max(t, in_hand[2] + 0.1)
    release = t + rng.uniform(0.05, 0.3)
    opening = rng.uniform(0.25, 0.5)
    r_dist, r_dur = reach_size(rng, min(speed * rng.uniform(0.7, 1.2), SPEED_RANGE[1]), (0.5 * dist, dist))
    r_start = release + rng.uniform(0.05, 0.2)
    end = r_start + r_dur + rng.uniform(0.2, 0.6)
    # the window's place in the episode
    off = t0 - rng.uniform(min(0.0, end - span), max(0.0, end - span))
    # key poses: rest, pre-shape (max aperture), grip, adjusted grip, released, rest
    rest_name = "relaxed" if rng.random() < 0.6 else "open"
    grip_v, pre_v, relaxed_v, final_v = _vary(rng, np.stack([_grip_pose(grip, size), POSES["preshape"],
                                                             POSES["relaxed"], POSES[rest_name]]),
                                              ratio, scale=np.array([0.5, 0.5, 1.0, 1.0]))
    mga = (0.045 + 0.8 * size) * rng.uniform(0.9, 1.1)  # maximum grip aperture (as far as the pre-shape opens)
    alpha = max(_crossing(grip_v, pre_v, mga), 0.15)
    gamma = _crossing(grip_v, relaxed_v, mga - 0.02)  # rest: 2 cm or more below it
    adjusted = _vary(rng, grip_v[None], ratio, scale=0.3)[0]  # a small grip adjustment
    keys = np.stack([_blend(grip_v, relaxed_v, gamma), _blend(grip_v, pre_v, alpha), grip_v, adjusted,
                     _blend(grip_v, pre_v, rng.uniform(0.4, 0.9)), final_v])
    span_hold = release - hold
    adj = hold + span_hold * rng.uniform(0.1, 0.4)
    opened = release + opening
    starts = np.array([start + rng.uniform(0.0, 0.1) * dur, peak, adj, release, opened]) + off
    ends = np.array([peak, hold, adj + span_hold * rng.uniform(0.2, 0.5), opened,
                     max(r_start + r_dur, opened + 0.3)]) + off
    episode = GraspEpisode(
        shape=shape, size=size, grip=grip, speed=speed, start=start + off, duration=dur, distance=dist, skew=skew,
        aperture_peak=peak + off, actions=[(k, a + off, d, m) for k, a, d, m in actions],
        in_hand=None if in_hand is None else (in_hand[0], in_hand[1] + off, in_hand[2] + off), release=release + off,
        retract=(r_start + off, r_dur, r_dist),
    )
    return episode, keys, starts, ends - starts


def sample_finger_motion(rng: np.random.Generator, t: np.ndarray, activity: str | None = None) -> FingerMotion:
    """Finger angles (N, 15, 3) over the sample times ``t`` (seconds, from 0).

    The activity's timeline starts before or within the window at a random phase, so a window
    can begin mid-grasp or mid-gesture.
    """
    activity = activity or ACTIVITIES[int(rng.choice(len(ACTIVITIES), p=_ACTIVITY_P))]
    span = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    start = rng.uniform(-1.0, 0.5 * span)  # first transition (may be before the window)
    ratio = rng.uniform(*DIP_PIP_RATIO)
    tempo = float(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))  # gestures' pace
    label = activity
    episode = None
    taps = None
    if activity == "grasp":
        episode, keys, starts, durs = _grasp_plan(rng, float(t[0]), span, ratio)
        label = f"grasp:{episode.grip}:{episode.shape}:{1000 * episode.size:.0f}mm"
        if episode.in_hand:
            label += f":{episode.in_hand[0]}"
    else:
        if activity == "gestures":
            count = int(rng.integers(2, 5))
            names = [GESTURES[int(i)] for i in rng.choice(len(GESTURES), size=count, replace=False)]
            starts, durs = _schedule(rng, count - 1, start, (0.3 * tempo, 0.7 * tempo), (0.25 * tempo, 0.9 * tempo))
            label = "gestures:" + ">".join(names)
        elif activity == "counting":
            seq = ["fist", "point", "peace", "three", "open"]
            k = int(rng.integers(0, 2))
            names = seq[k:k + int(rng.integers(3, 5))]
            starts, durs = _schedule(rng, len(names) - 1, start, (0.3 * tempo, 0.55 * tempo),
                                     (0.15 * tempo, 0.5 * tempo))
        elif activity == "single_fingers":
            count = int(rng.integers(2, 4))
            folds = [SINGLE_FOLDS[int(i)] for i in rng.choice(len(SINGLE_FOLDS), size=count, replace=False)]
            names = ["open"] + [n for f in folds for n in (f, "open")]
            starts, durs = _schedule(rng, len(names) - 1, start, (0.2 * tempo, 0.45 * tempo),
                                     (0.15 * tempo, 0.5 * tempo))
            label = "single_fingers:" + ">".join(folds)
        elif activity == "snap":
            names = ["fist", "open", "fist", "open", "fist"][int(rng.integers(0, 2)):]
            starts, durs = _schedule(rng, len(names) - 1, rng.uniform(-0.2, 0.3), SNAP_TIME, (0.25, 0.6))
        elif activity == "taps":
            names = ["relaxed" if rng.random() < 0.5 else "flat"] * 2
            starts, durs = np.array([0.0]), np.array([1.0])
            taps = rng.random(4) < np.array([0.9, 0.6, 0.4, 0.5])  # which fingers tap (index, middle, little, ring)
        else:  # wrist_turn: a loose hand, the wrist does the moving
            names = [("open", "flat", "relaxed")[int(rng.integers(3))], "relaxed"]
            starts, durs = _schedule(rng, 1, start, (0.5, 1.0), (0.0, 0.0))
        keys = _vary(rng, np.stack([POSES[n] for n in names]), ratio)  # (K + 1, 15, 3)
    delay = rng.uniform(-0.04, 0.08, size=5) * (0.3 if episode else 0.1 if activity == "snap" else 1.0)  # per finger
    tf = t[:, None] - delay[None]  # (N, 5)
    angles = keyframe_track(tf, starts, durs, keys.reshape(len(keys), 5, 9)).reshape(len(t), 15, 3)
    if taps is not None:
        angles += _tap_offsets(rng, t, angles, taps, ratio)
    if episode is not None and episode.in_hand:
        kind, a, b = episode.in_hand
        angles += (_roll_offsets if kind == "roll" else _gait_offsets)(rng, t, angles, a, b, ratio)
    tremor = smooth_noise(rng, t, (15,), TREMOR[:, 0], fmin=0.3, fmax=1.5, terms=2)
    tremor[:, DIP] = ratio * tremor[:, PIP] + 0.2 * tremor[:, DIP]  # within the DIP's bound: 0.8 + 0.2
    angles[..., 0] += tremor
    return FingerMotion(angles=angles, activity=label, dip_ratio=ratio, episode=episode)


def _bounded_offsets(angles: np.ndarray, joints: np.ndarray, shares: np.ndarray, profile: np.ndarray,
                     amplitude: float) -> np.ndarray:
    """Flexion offsets (N, 15, 3): ``a * shares * profile`` on ``joints`` with the largest
    ``a <= amplitude`` that keeps ``angles`` inside :data:`SAFE_LIMITS` where the profile acts."""
    active = profile != 0.0
    out = np.zeros_like(angles)
    if not active.any():
        return out
    now = angles[active][:, joints, 0]
    hi = np.maximum(shares * profile.max(), shares * profile.min())  # largest offset per unit amplitude
    lo = -np.minimum(shares * profile.max(), shares * profile.min())
    room_hi = SAFE_LIMITS[joints, 0, 1] - now.max(0)
    room_lo = now.min(0) - SAFE_LIMITS[joints, 0, 0]
    a = min(amplitude, np.divide(room_hi, hi, out=np.full_like(hi, np.inf), where=hi > 0).min(),
            np.divide(room_lo, lo, out=np.full_like(lo, np.inf), where=lo > 0).min())
    out[:, joints, 0] = max(a, 0.0) * shares * profile[:, None]
    return out


def _tap_offsets(rng: np.random.Generator, t: np.ndarray, angles: np.ndarray, taps: np.ndarray,
                 ratio: float) -> np.ndarray:
    """Periodic MCP/PIP (and coupled DIP) flexion taps (1.5-3.5 Hz) of the chosen fingers."""
    out = np.zeros_like(angles)
    freq = rng.uniform(1.5, 3.5)
    for f in np.flatnonzero(taps):
        amp = np.deg2rad(rng.uniform(10, 30))
        phase = rng.uniform(0, 2 * np.pi)
        wave = 0.5 * (1 - np.cos(2 * np.pi * freq * t + phase))  # in [0, 1]
        out += _bounded_offsets(angles, 3 * f + np.arange(3), np.array([1.0, 0.6, 0.6 * ratio]), wave, amp)
    return out


def _window(t: np.ndarray, a: float, b: float, ramp: float) -> np.ndarray:
    """C2 window: 0 before ``a``, 1 on [a + ramp, b - ramp], 0 after ``b``."""
    return minimum_jerk((t - a) / ramp) - minimum_jerk((t - b + ramp) / ramp)


def _roll_offsets(rng: np.random.Generator, t: np.ndarray, angles: np.ndarray, a: float, b: float,
                  ratio: float) -> np.ndarray:
    """In-hand rolling of a small object between thumb and index: 1-2 Hz antiphase flexion."""
    freq = rng.uniform(1.0, 2.0)
    profile = np.sin(2 * np.pi * freq * (t - a)) * _window(t, a, b, 0.2)
    joints = np.array([0, 1, 2, 12, 13, 14])  # index MCP, PIP, DIP; thumb CMC, MCP, IP
    shares = np.array([-0.5, -1.0, -ratio, 0.3, 1.0, 1.0])
    return _bounded_offsets(angles, joints, shares, profile, np.deg2rad(rng.uniform(6, 12)))


def _gait_offsets(rng: np.random.Generator, t: np.ndarray, angles: np.ndarray, a: float, b: float,
                  ratio: float) -> np.ndarray:
    """Finger gaiting: fingers lift off the object (MCP/PIP/DIP extension) and replace it one after another."""
    out = np.zeros_like(angles)
    fingers = rng.permutation(4)[:int(rng.integers(2, 5))]
    step = (b - a) / (len(fingers) + 0.5)
    for k, f in enumerate(fingers):
        lift = _window(t, a + k * step, a + (k + 1.5) * step, 0.4 * step)  # overlapping lifts
        out += _bounded_offsets(angles, 3 * f + np.arange(3), np.array([-0.8, -1.0, -ratio]), lift,
                                np.deg2rad(rng.uniform(15, 30)))
    return out


@dataclass
class WristMotion:
    """Hand placement in a camera's frame over time."""

    rotation: np.ndarray  # (N, 3, 3) global orientation (MANO's about the wrist)
    center: np.ndarray  # (N, 3) palm centre, camera frame, metres
    exits: bool  # the path leaves the image on purpose
    transport: np.ndarray  # (N, 3) the deliberate part of the palm centre's path (reaches, transports)


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


def _view_box(K: np.ndarray, image_size: np.ndarray, margin: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Half-spaces ``A q <= c`` (6, 3), (6,) of camera-frame points that project into the middle
    ``margin`` of the image (each axis) at depths 0.27-0.7 m."""
    lo, hi = 0.5 - margin / 2, 0.5 + margin / 2
    x0, x1 = (np.array([lo, hi]) * image_size[0] - K[0, 2]) / K[0, 0]
    y0, y1 = (np.array([lo, hi]) * image_size[1] - K[1, 2]) / K[1, 1]
    A = np.array([[1.0, 0.0, -x1], [-1.0, 0.0, x0], [0.0, 1.0, -y1], [0.0, -1.0, y0], [0.0, 0.0, -1.0],
                  [0.0, 0.0, 1.0]])
    return A, np.array([0.0, 0.0, 0.0, 0.0, -0.27, 0.7])


def _displacement(rng: np.random.Generator, p: np.ndarray, dist: float, box: tuple[np.ndarray, np.ndarray],
                  ) -> np.ndarray:
    """A displacement (3,) of ``dist`` metres from ``p`` that ends inside the view ``box``
    (:func:`_view_box`): the first of 16 random directions that does, else the one that goes
    furthest, shortened to stay in (the box is convex: the straight path stays in view too)."""
    A, c = box
    u = rng.normal(size=(16, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    room = np.maximum(c - A @ p, 0.0)  # (6,)
    rate = dist * (u @ A.T)  # (16, 6): constraint growth per unit of the way
    reach = np.where(rate > 0, room / np.where(rate > 0, rate, 1.0), np.inf).min(axis=1)  # (16,) fraction of dist
    full = np.flatnonzero(reach >= 1.0)
    k = full[0] if len(full) else int(reach.argmax())
    return min(reach[k], 1.0) * dist * u[k]


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _episode_path(rng: np.random.Generator, t: np.ndarray, ep: GraspEpisode, base: np.ndarray,
                  box: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Palm-centre displacement (N, 3) and body-frame rotation vector (N, 3) of a grasp episode:
    approach to the object (at ``base``, displacement 0), the held object's moves, rotations and
    tilts, retract; the path stays in the view ``box``."""
    s = skewed_minimum_jerk((t - ep.start) / ep.duration, ep.skew)
    shift = (1.0 - s)[:, None] * _displacement(rng, base, ep.distance, box)
    # the hand turns toward the object's orientation during the approach
    turn = -(1.0 - s)[:, None] * (np.deg2rad(rng.uniform(10, 35)) * _unit(rng))
    p = base.copy()
    for kind, a, d, amount in ep.actions:
        w = minimum_jerk((t - a) / d)[:, None]
        if kind == "move":
            step = _displacement(rng, p, amount, box)
            shift = shift + w * step
            p += step
        else:  # body x: pronation/supination; z: flexion/extension; y: deviation
            axis = 0 if kind == "rotate" else (2 if rng.random() < 0.6 else 1)
            turn[:, axis] += w[:, 0] * amount * rng.choice([-1.0, 1.0])
    r_start, r_dur, r_dist = ep.retract
    w = minimum_jerk((t - r_start) / r_dur)[:, None]
    shift = shift + w * _displacement(rng, p, r_dist, box)
    turn = turn + w * (np.deg2rad(rng.uniform(0, 20)) * _unit(rng))
    return shift, turn


def _free_path(rng: np.random.Generator, t: np.ndarray, base: np.ndarray, box: tuple[np.ndarray, np.ndarray],
               activity: str, reach_p: float) -> tuple[np.ndarray, np.ndarray]:
    """Palm-centre displacement (N, 3) and body-frame rotation vector (N, 3) outside grasps: an
    optional minimum-jerk wrist turn and, with probability ``reach_p``, a reach at the sequence's
    tempo, in view."""
    turn = np.zeros((len(t), 3))
    if rng.random() < (0.9 if activity == "wrist_turn" else 0.25):
        axis = 0 if rng.random() < 0.7 else 2
        angle = np.deg2rad(rng.uniform(30, 90)) * rng.choice([-1.0, 1.0])
        t0, dur = rng.uniform(t[0] - 0.3, t[-1] - 0.3), rng.uniform(0.6, 1.0) * abs(angle) / np.deg2rad(60)
        turn[:, axis] = minimum_jerk((t - t0) / max(dur, 0.4)) * angle
    shift = np.zeros((len(t), 3))
    if rng.random() < reach_p:
        dist, dur = reach_size(rng, draw_speed(rng), (0.05, 0.25))
        t0 = rng.uniform(t[0] - 0.5, t[-1])
        shift = minimum_jerk((t - t0) / dur)[:, None] * _displacement(rng, base, dist, box)
    return shift, turn


def sample_wrist_motion(
    rng: np.random.Generator, t: np.ndarray, K: np.ndarray, image_size: np.ndarray, *, exit_p: float = 0.15,
    activity: str = "", episode: GraspEpisode | None = None,
) -> WristMotion:
    """Palm-centre path and hand orientation in a camera frame (OpenCV axes); ``episode``: the
    grasp that the fingers perform, whose transports and object rotations the wrist makes."""
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
    # palm centre: a base point in view (the object, for grasps), low-frequency sway, reaches, exit
    # depth from the hand's apparent size: its length (~19 cm) spans 18-50 % of the image's long side
    frac = rng.uniform(0.18, 0.5)
    z0 = float(np.clip(0.19 * 0.5 * (fx + fy) / (frac * max(w, h)), 0.3, 0.65))
    u0, v0 = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)
    base = np.array([(u0 * w - cx) * z0 / fx, (v0 * h - cy) * z0 / fy, z0])
    half = np.array([0.5 * w / fx, 0.5 * h / fy]) * z0  # half extent of the view at depth z0
    sway_amp = np.concatenate([np.minimum(rng.uniform(0.01, 0.08, size=2), 0.3 * half), [rng.uniform(0.01, 0.05)]])
    if episode is not None:
        sway_amp *= 0.5  # the hand is on its way to, or holding, an object
    # body-frame wrist motion: x = finger axis (pronation/supination), z = flexion/extension, y = deviation
    rot_amp = np.deg2rad(np.array([35.0, 15.0, 20.0])) * rng.uniform(0.2, 1.0, size=3)
    noise = smooth_noise(rng, t, (6,), np.concatenate([rot_amp, sway_amp]), fmin=0.1, fmax=0.75)
    exits = bool(rng.random() < exit_p)
    box = _view_box(K, image_size)
    if episode is not None:
        shift, turn = _episode_path(rng, t, episode, base, box)
    else:
        shift, turn = _free_path(rng, t, base, box, activity, reach_p=0.0 if exits else 0.35)
    rotation = R0 @ Rotation.from_rotvec(noise[:, :3] + turn).as_matrix()
    center = base + noise[:, 3:] + shift
    if exits:  # leave (or enter) the view sideways or vertically, never during a reach or transport
        axis = int(rng.integers(2))
        sign = rng.choice([-1.0, 1.0])
        move = np.zeros(3)
        move[axis] = sign * half[axis] * rng.uniform(1.0, 1.6)
        # minimum jerk peaks at 1.875 * distance / duration: keep the hand under 1 m/s
        dur = max(rng.uniform(0.5, 1.0), 1.875 * abs(move[axis]) / 1.0)
        entering = rng.random() < 0.5
        if episode is None:
            t0 = rng.uniform(t[0] - 0.3, max(t[0], t[-1] - dur * 0.5))
        elif entering:  # the hand comes into view, then reaches for the object
            t0 = episode.start - dur - rng.uniform(0.0, 0.3)
        else:  # it leaves the view after the retract
            t0 = episode.retract[0] + episode.retract[1] + rng.uniform(0.0, 0.3)
        s = minimum_jerk((t - t0) / dur)
        center = center + (1.0 - s if entering else s)[:, None] * move
    return WristMotion(rotation=rotation, center=center, exits=exits, transport=shift)


def sample_betas(rng: np.random.Generator) -> np.ndarray:
    """Hand shape: betas ~ N(0, 1) clipped to [-2.5, 2.5] (10,)."""
    return np.clip(rng.normal(size=10), -2.5, 2.5)
