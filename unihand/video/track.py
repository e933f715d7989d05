"""One identity per hand across a video: no duplicates, no left/right swaps, gaps survived.

Per-frame detections (:class:`~unihand.video.detect.Detection`) become at most one left and
one right track in three steps, offline over the whole clip:

1. **Duplicates**: two detections of one frame that cover the same hand (keypoints within
   0.25 hand sizes of each other on average) are reduced to the more confident one.
2. **Tracklets**: detections are linked frame to frame by keypoint distance (normalised by
   hand size; Hungarian assignment, gated), bridging gaps of up to ``max_gap`` frames. A
   tracklet is one physical hand over a stretch of continuous observation.
3. **Sides**: each tracklet's handedness is the sum of its per-frame log-odds, so one
   mislabelled frame cannot swap a hand. Tracklets are given sides strongest evidence first;
   one that would overlap in time a tracklet already on its side takes the other side if that
   is free, and otherwise loses the overlapping frames. Tracklets on the same side are joined
   across gaps, so a hand that leaves and re-enters keeps its identity.

Per-joint confidence from the detector is then lowered for joints that jump away from the
temporal median of their hand-relative position (single-frame glitches).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from unihand.video.detect import Detection

SIDES = ("right", "left")


@dataclass
class HandTrack:
    """One hand over the N frames of a clip (pixels; NaN and 0 confidence where not detected)."""

    side: str
    keypoints: np.ndarray  # (N, 21, 2) pixels, NaN where not detected
    confidence: np.ndarray  # (N, 21) in [0, 1], 0 where not detected
    detected: np.ndarray  # (N,) bool
    right_prob: np.ndarray  # (N,) per-frame P(right) from the detector, NaN where not detected
    tracklets: list[tuple[int, int]] = field(default_factory=list)  # (first, last) frame of each fragment
    world: np.ndarray | None = None  # (N, 21, 3) the detector's hand-centred metric 3D landmarks, NaN where absent

    @property
    def is_right(self) -> bool:
        return self.side == "right"

    @property
    def num_frames(self) -> int:
        return int(self.detected.shape[0])

    @property
    def num_detected(self) -> int:
        return int(self.detected.sum())


@dataclass
class _Tracklet:
    frames: list[int] = field(default_factory=list)
    dets: list[Detection] = field(default_factory=list)

    @property
    def last(self) -> Detection:
        return self.dets[-1]

    @property
    def evidence(self) -> float:
        """Summed log-odds of being a right hand."""
        p = np.clip(np.array([d.right_prob for d in self.dets]), 0.02, 0.98)
        return float(np.sum(np.log(p / (1 - p))))


def _kp_distance(a: Detection, b: Detection) -> float:
    """Mean keypoint distance in units of ``b``'s hand size."""
    return float(np.linalg.norm(a.keypoints - b.keypoints, axis=-1).mean() / b.scale)


def suppress_duplicates(dets: list[Detection], thresh: float = 0.25) -> list[Detection]:
    """Drop detections that repeat a more confident one of the same frame."""
    order = sorted(dets, key=lambda d: -float(d.confidence.mean() * max(d.score, 0.5)))
    kept: list[Detection] = []
    for d in order:
        if all(_kp_distance(d, k) > thresh and _kp_distance(k, d) > thresh for k in kept):
            kept.append(d)
    return kept


def build_tracklets(
    detections: list[list[Detection]], max_gap: int = 5, gate: float = 1.0, side_weight: float = 0.3,
) -> list[_Tracklet]:
    """Link detections into tracklets by keypoint continuity (gaps of up to ``max_gap`` frames)."""
    from scipy.optimize import linear_sum_assignment

    done: list[_Tracklet] = []
    active: list[_Tracklet] = []
    for t, raw in enumerate(detections):
        dets = suppress_duplicates(raw)
        still = []
        for tr in active:  # retire tracklets whose gap grew too long
            (still if t - tr.frames[-1] <= max_gap + 1 else done).append(tr)
        active = still
        matched: set[int] = set()
        if active and dets:
            cost = np.zeros((len(dets), len(active)))
            for i, d in enumerate(dets):
                for j, tr in enumerate(active):
                    gap = t - tr.frames[-1]
                    side = abs(d.right_prob - float(np.mean([x.right_prob for x in tr.dets[-10:]])))
                    # the allowed distance grows with the gap: the hand kept moving while unseen
                    cost[i, j] = _kp_distance(d, tr.last) / np.sqrt(gap) + side_weight * side
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols):
                if cost[i, j] <= gate:
                    active[j].frames.append(t)
                    active[j].dets.append(dets[i])
                    matched.add(i)
        for i, d in enumerate(dets):
            if i not in matched:
                active.append(_Tracklet([t], [d]))
    return done + active


def _temporal_confidence(kp: np.ndarray, detected: np.ndarray, lo: float = 0.2, hi: float = 0.4,
                         radius: int = 2) -> np.ndarray:
    """(N, 21) factor in [0, 1]: 0 for joints far (in hand sizes) from their temporal median.

    Positions are taken relative to the hand centre so whole-hand motion is not penalised;
    the median over +-``radius`` detected neighbours follows monotonic motion exactly, so only
    isolated jumps are flagged.
    """
    n = kp.shape[0]
    out = np.ones(kp.shape[:2], np.float32)
    idx = np.flatnonzero(detected)
    if idx.size < 3:
        return out
    rel = kp[idx] - kp[idx].mean(axis=1, keepdims=True)
    scale = np.linalg.norm(kp[idx].max(axis=1) - kp[idx].min(axis=1), axis=-1).clip(min=1.0)
    for k, t in enumerate(idx):
        a, b = max(0, k - radius), min(idx.size, k + radius + 1)
        if b - a < 3:
            continue
        med = np.median(rel[a:b], axis=0)
        r = np.linalg.norm(rel[k] - med, axis=-1) / scale[k]
        out[t] = np.clip((hi - r) / (hi - lo), 0.0, 1.0)
    assert out.shape[0] == n
    return out


def track_hands(
    detections: list[list[Detection]], sides: tuple[str, ...] = SIDES, max_gap: int = 5, min_frames: int = 3,
) -> dict[str, HandTrack]:
    """One :class:`HandTrack` per requested side that was seen in at least one frame.

    ``detections[t]`` are the hands of frame t. Tracklets shorter than ``min_frames`` (or than the
    clip, if it is shorter) are treated as spurious and dropped.
    """
    n = len(detections)
    # a clip shorter than min_frames keeps what it has (a 1-frame clip with a hand has a 1-frame track)
    shortest = min(min_frames, n)
    tracklets = [tr for tr in build_tracklets(detections, max_gap=max_gap) if len(tr.frames) >= shortest]
    owner: dict[str, dict[int, tuple[_Tracklet, Detection]]] = {s: {} for s in SIDES}
    assigned: dict[str, list[_Tracklet]] = {s: [] for s in SIDES}
    for tr in sorted(tracklets, key=lambda tr: -abs(tr.evidence)):
        pref = "right" if tr.evidence >= 0 else "left"
        other = "left" if pref == "right" else "right"
        frames = set(tr.frames)
        if frames & owner[pref].keys() and not frames & owner[other].keys():
            pref = other
        for t, d in zip(tr.frames, tr.dets):
            if t not in owner[pref]:  # a stronger tracklet keeps the frames they share
                owner[pref][t] = (tr, d)
        assigned[pref].append(tr)
    out: dict[str, HandTrack] = {}
    for side in sides:
        if not owner[side]:
            continue
        kp = np.full((n, 21, 2), np.nan, np.float32)
        conf = np.zeros((n, 21), np.float32)
        rp = np.full(n, np.nan, np.float32)
        world = np.full((n, 21, 3), np.nan, np.float32)
        for t, (_, d) in owner[side].items():
            kp[t], conf[t], rp[t] = d.keypoints, d.confidence, d.right_prob
            if d.world is not None:
                world[t] = d.world
        det = np.isfinite(kp[:, 0, 0])
        conf = conf * _temporal_confidence(np.nan_to_num(kp), det)
        spans = sorted((tr.frames[0], tr.frames[-1]) for tr in assigned[side])
        has_world = np.isfinite(world[:, 0, 0]).any()
        out[side] = HandTrack(side, kp, conf, det, rp, spans, world if has_world else None)
    return out
