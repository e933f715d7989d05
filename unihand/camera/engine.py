"""Camera motion from the background of a video (docs/design.md "Camera motion").

**Front end** (:class:`BackgroundTracker`, streaming): each frame is downscaled so its longer
side is :data:`WORK_SIZE` pixels and turned grey; Shi-Tomasi corners are tracked from frame to
frame by pyramidal Lucas-Kanade (started from the last frame's image motion, forward-backward
checked) and replenished, outside the hand regions (each detected hand's keypoint hull, dilated,
and its forearm beyond the wrist; a hand's region is held for a few frames where the detector
misses it). When most tracks are lost at once (a fast turn, blur, the hand sweeping over the view,
a blank wall) the last well-tracked frames' tracks are searched for in the frames that follow (ORB
descriptors at the tracks, a fundamental matrix check): found, a new track takes the old one's id,
so the back end sees one track across the loss. Only the tracks' 2D positions are kept (a few
hundred points per frame); the frames are dropped as they are read (but for the few kept for a
metric depth model, see below). With ``probe=True`` (``--camera auto``) a cheap probe (a hundred
corners at :data:`PROBE_SIZE` pixels, every other frame) runs first and hands over to the full
tracker only when the background moves.

**Back end** (:func:`solve_camera`):

1. a still background (the median displacement of the tracks since they were first seen stays
   below :data:`STATIC_PX`, about 0.15 degrees; or the probe never saw it move) -> static
   (``mode="auto"``); a clip with almost nothing to track -> static, with one warning (``why``);
2. the frames with enough tracks are cut into stretches linked by shared tracks (:func:`_segments`);
3. in each stretch, keyframes; the first keyframe pair with parallax no pure rotation explains
   starts a map (essential matrix); keyframes are registered by PnP on the mapped points and new
   tracks triangulated; a keyframe PnP cannot place (the view turned away from the mapped points)
   re-initialises the map from a mapped neighbour by two-view geometry, its scale from the points
   both see (or the scene's depth there); without parallax in the stretch, rotations alone (the
   camera turns about its centre). Bundle adjustment (pycolmap, Cauchy loss), then every frame by
   PnP on the adjusted points, or its rotation from its tracks (position interpolated);
4. where a stretch's map does not reach, the frames before and after it are solved again on their
   own (:func:`_solve_stretch`), and all solvers are joined (:func:`_join`): through the mapped
   points they share (a similarity: the shared scale from the overlap), else through shared tracks
   (their rotation, or two-view geometry), else across the break at the camera's speed;
5. frames nobody posed: rotation and position interpolated between posed frames, or the nearest
   pose held at the ends. Every frame carries a status (:data:`STATUSES`); only :data:`REGISTERED`
   ones are ``camera_valid``, and :func:`unregistered_warning` names the others in one line.

Translations are in units of the median depth of the background points seen in the first mapped
frame: monocular video gives motion only up to scale, which the refinement fits to the hands
(``camera_scale="fit"``) unless the user gives it or a metric depth model reads it from the scene
(:mod:`unihand.camera.depth`: a dozen frames kept by the camera stage, read only when there is a map).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from unihand.camera.depth import DepthFrames, DepthModel, depth_scale, model_name
from unihand.geometry.alignment import umeyama
from unihand.geometry.camera import rescale_K, rescale_pixels
from unihand.geometry.canonical import make_transform

#: Frames are tracked at this size (longer side, pixels).
WORK_SIZE = 640
#: Tracked background points kept per frame (replenished below 80 % of it).
MAX_FEATURES = 400
#: Minimum distance between tracked points (pixels at WORK_SIZE).
MIN_DISTANCE = 12
#: A frame with fewer tracked background points carries no camera evidence.
MIN_FEATURES = 30
#: Median displacement (pixels at WORK_SIZE) of the tracks since they were first seen below which
#: the background counts as still.
STATIC_PX = 1.5
#: Median track displacement since the last keyframe (pixels at WORK_SIZE) that makes a keyframe.
KEYFRAME_PX = 16.0
#: Parallax (degrees, median over the points, left by the best pure rotation) that starts the map; chosen
#: on a validation stream of rendered videos (seed 2100), not the benchmark's.
INIT_PARALLAX_DEG = 0.6
#: Below this much parallax over the clip the rotations are estimated alone.
MIN_PARALLAX_DEG = 0.3
#: Corners weaker than this (OpenCV's ``cornerMinEigenVal``, 7x7 block) are not tracked: sensor
#: noise on a blank wall stays below 1e-4, the weakest corners kept on the real sample are ~5e-4.
MIN_EIGENVALUE = 3e-4
#: Frames a hand's region stays masked after its last detection.
MASK_HOLD = 5
#: Reprojection threshold (pixels at WORK_SIZE) of the RANSAC fits and triangulation checks.
INLIER_PX = 1.5
#: Gaussian low-pass (frames) of the estimated camera centres (:func:`smooth_centres`).
CENTRE_SMOOTHING = 1.5
#: Shared tracks that link two frames (a rotation fit, a segment of the clip).
MIN_LINK = 12
#: Shared tracks an essential matrix may be fitted to where no pair shares twice MIN_FEATURES (a
#: low-texture view has 40-60 tracks in all).
MIN_TWO_VIEW = 40
#: A frame joins the current segment when it shares :data:`MIN_LINK` tracks with one of its last this many frames.
LINK_WINDOW = 60
#: Across a break in the tracks the camera is carried on at its speed for at most this many frames.
EXTRAPOLATE_FRAMES = 10
#: Fewer frames than this cannot tell a moving camera (static, with a warning).
MIN_TRACK_FRAMES = 5
#: The still-camera probe (:class:`BackgroundTracker` with ``probe=True``): frames this size (longer side),
#: this many corners; it hands over to the full tracker when the background has moved this far (pixels at
#: WORK_SIZE), replaying the last :data:`PROBE_BUFFER` frames.
PROBE_SIZE = 320
PROBE_FEATURES = 120
PROBE_SWITCH_PX = 0.5 * STATIC_PX
PROBE_BUFFER = 8
PROBE_STRIDE = 2  # the probe looks at every other frame
#: The full tracker looks for new corners at most every this many frames while it holds half its tracks.
REPLENISH_EVERY = 3
#: A track-count drop below this fraction of the previous frame's (blur, a fast turn, the hand sweeping
#: over the view) starts a search for the lost tracks by ORB matching against the last well-tracked frame.
BRIDGE_DROP = 0.5
#: How long (frames) the well-tracked frames before a drop are searched for after it, and how many of
#: them (at least :data:`ANCHOR_SPACING` frames apart) are kept.
BRIDGE_FRAMES = 90
BRIDGE_ANCHORS = 4
#: Matches a bridge needs (inliers of the fundamental matrix, at least half the candidate matches).
BRIDGE_MIN = 24
ANCHOR_SPACING = 8

#: Per-frame status of the camera (:attr:`CameraEstimate.status`): how the frame's pose was found.
#: ``map``: PnP on the mapped background points; ``turn``: the rotation-only model of a stretch without
#: parallax (the camera turns about its centre), fitted to the frame's tracks; ``still``: the background
#: does not move (a static camera); ``rotation``: the rotation fitted to the frame's tracks, its position
#: interpolated (PnP failed while the camera travels); ``interpolated``: no evidence of its own (no
#: tracks: blur, a blank wall, the hand over the view), rotation and position interpolated between the
#: frames around it; ``unlinked``: registered within a stretch that shares no track with the frames before
#: it (carried across the break at the camera's speed), or only tracks that give its rotation, not its
#: position (two-view geometry without a scale): its offset is a guess; ``held``: no evidence and no
#: registered frame on one side: the nearest pose held.
STATUSES = ("map", "turn", "still", "rotation", "interpolated", "unlinked", "held")
#: The statuses of a registered frame (``camera_valid``).
REGISTERED = ("map", "turn", "still")

_LK = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))


@dataclass
class CameraEstimate:
    """Per-frame camera poses of a clip and how they were found."""

    T_cano_from_cam: np.ndarray  # (N, 4, 4) float64, identity at frame 0; translation in ``unit``
    moving: bool  # False: every pose is the identity
    method: str  # "estimated", "rotation only", "static" or "static (too little texture)"
    unit: str  # what one unit of translation is
    low_texture_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # frames without evidence
    status: np.ndarray = field(default_factory=lambda: np.zeros(0, object))  # (N,) one of STATUSES per frame
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    #: metres per ``unit`` read from a metric depth model's depth at the mapped background points
    #: (:mod:`unihand.camera.depth`); None without a depth model or a map
    metric_scale: float | None = None
    why: str | None = None  # why the background could not be tracked (a static camera assumed)

    @property
    def num_frames(self) -> int:
        return int(self.T_cano_from_cam.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """(N,) bool: the frame's pose is registered (``camera_valid``), not interpolated or held."""
        return np.isin(self.status, REGISTERED)

    def rotation_deg(self) -> np.ndarray:
        """(N,) rotation angle of each frame's camera relative to the first, degrees."""
        R = self.T_cano_from_cam[:, :3, :3]
        c = np.clip((np.trace(R, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
        return np.degrees(np.arccos(c))


def frame_ranges(frames: np.ndarray) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    frames = np.asarray(frames, np.int64)
    if frames.size == 0:
        return ""
    out, start, prev = [], int(frames[0]), int(frames[0])
    for f in frames[1:]:
        f = int(f)
        if f != prev + 1:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = f
        prev = f
    out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(out)


# ------------------------------------------------------------------------------------------------
# Front end


def hand_mask(shape: tuple[int, int], hands: Sequence[np.ndarray], scale: float) -> np.ndarray:
    """(H, W) uint8 mask, 0 over the hands: each (21, 2) keypoint set (full-resolution pixels, OpenPose
    order; NaN joints ignored) times ``scale`` -> its hull grown by a quarter of the hand's size, and
    the forearm: a band 0.9 palm lengths wide from the wrist, 4 palm lengths away from the fingers."""
    mask = np.full(shape, 255, np.uint8)
    for kp in hands:
        kp = np.asarray(kp, np.float64) * scale
        ok = np.all(np.isfinite(kp), axis=1)
        if ok.sum() < 5:
            continue
        pts = kp[ok]
        c = pts.mean(0)
        size = float(np.linalg.norm(pts.max(0) - pts.min(0)))
        grown = c + (pts - c) * 1.25
        hull = cv2.convexHull(np.round(grown).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 0)
        cv2.polylines(mask, [hull], True, 0, int(np.clip(0.25 * size, 1, max(shape))))
        if ok[0] and ok[9]:
            axis = kp[0] - kp[9]
            palm = float(np.linalg.norm(axis))
            if palm > 1.0:
                u = axis / palm
                nrm = np.array([-u[1], u[0]]) * 0.45 * palm
                far = kp[0] + u * 4.0 * palm
                quad = np.array([kp[0] + nrm, kp[0] - nrm, far - 1.3 * nrm, far + 1.3 * nrm])
                cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 0)
    return mask


class BackgroundTracker:
    """Streaming front end: ``add(frame, hands)`` once per frame, then :func:`solve_camera`.

    Args:
        K: (3, 3) intrinsics of the video's pixels; image_size: (W, H).
        work_size: longer side (pixels) the frames are tracked at.
        max_features: tracked points per frame.
        probe: start with the still-camera probe (``--camera auto``): a few corners tracked at
            :data:`PROBE_SIZE` pixels, which costs a fraction of the full tracker; the first time the
            background moves :data:`PROBE_SWITCH_PX` the full tracker takes over, from the last
            :data:`PROBE_BUFFER` frames (kept by reference: the caller does not write into its frames),
            the frames before them given the first one's tracks (they did not move). A probe that never
            sees the background move decides a static camera without the full tracker.
    """

    def __init__(self, K: np.ndarray, image_size: tuple[int, int], work_size: int = WORK_SIZE,
                 max_features: int = MAX_FEATURES, probe: bool = False) -> None:
        w, h = int(image_size[0]), int(image_size[1])
        self.image_size = (w, h)
        self.scale = min(1.0, work_size / max(w, h))
        self.work_shape = (max(1, round(h * self.scale)), max(1, round(w * self.scale)))  # (H, W)
        self.K = rescale_K(K, self.scale)
        self.max_features = int(max_features)
        self.ids: list[np.ndarray] = []  # per frame: track ids (ascending)
        self.pts: list[np.ndarray] = []  # per frame: (n, 2) float32 positions (work pixels)
        self._prev: np.ndarray | None = None
        self._cur_ids = np.zeros(0, np.int64)
        self._cur_pts = np.zeros((0, 2), np.float32)
        self._vel = np.zeros(2, np.float32)  # median image motion of the last frame (prediction)
        self._next_id = 0
        self._since_new, self._after_new = REPLENISH_EVERY, 0
        self._mask: np.ndarray | None = None
        self._mask_age = 0
        self._anchors: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (frame, grey, ids, pts)
        self._lost: dict[str, Any] | None = None  # the search for the tracks lost at a drop
        self._orb = None
        self.bridges: list[dict[str, int]] = []
        self.seconds = 0.0
        self.depth: DepthFrames | None = None  # frames kept for a metric depth model (set by the camera stage)
        # the still-camera probe
        self.probing = bool(probe)
        self.probe_scale = min(1.0, PROBE_SIZE / max(w, h))
        self.probe_shape = (max(1, round(h * self.probe_scale)), max(1, round(w * self.probe_scale)))
        self.probe_motion_px = 0.0  # the probe's largest median background displacement (pixels at work size)
        self.probe_low_frames = 0  # frames the probe had too few corners on
        self.probe_frames = 0  # frames the probe looked at
        self.switched_at: int | None = None
        self._pr: dict[str, Any] = {"prev": None, "pts": np.zeros((0, 2), np.float32),
                                    "birth": np.zeros((0, 2), np.float32), "buffer": [], "mask": None, "age": 0}

    @property
    def num_frames(self) -> int:
        return len(self.ids)

    @property
    def decided_static(self) -> bool:
        """The probe never saw the background move (the full tracker never ran)."""
        return self.probing

    def to_full(self, pts: np.ndarray) -> np.ndarray:
        """Work-size pixel positions (n, 2) -> full-resolution pixels."""
        return rescale_pixels(pts, 1.0 / self.scale)

    def stats(self) -> dict[str, Any]:
        """What the front end did: the probe, the tracks bridged across a loss."""
        out: dict[str, Any] = {"bridged": self.bridges}
        if self.probing or self.switched_at is not None:
            out["probe"] = {"size": list(self.probe_shape[::-1]), "motion_px": round(self.probe_motion_px, 3),
                            "full_tracker_from_frame": self.switched_at}
        return out

    def _grey(self, frame: np.ndarray) -> np.ndarray:
        h, w = self.work_shape
        if frame.shape[0] != h or frame.shape[1] != w:
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame

    def add(self, frame: np.ndarray, hands: Sequence[np.ndarray] = ()) -> None:
        """Track one RGB frame (H, W, 3) uint8; ``hands``: (21, 2) keypoints (pixels) of the hands in it."""
        t0 = time.perf_counter()
        if self.probing:
            self._probe(frame, hands)
        else:
            ids, pts = self._track(self._grey(frame), hands, len(self.ids))
            self.ids.append(ids)
            self.pts.append(pts)
        self.seconds += time.perf_counter() - t0

    # -- the still-camera probe --

    def _probe(self, frame: np.ndarray, hands: Sequence[np.ndarray]) -> None:
        pr = self._pr
        f = len(self.ids)
        self.ids.append(np.zeros(0, np.int64))
        self.pts.append(np.zeros((0, 2), np.float32))
        pr["buffer"] = (pr["buffer"] + [(frame, list(hands))])[-PROBE_BUFFER:]
        if f % PROBE_STRIDE and f != 0:  # looked at every other frame (the buffer replays them all)
            return
        h, w = self.probe_shape
        # through the work size: OpenCV's area resize is fastest at halves
        small = cv2.resize(self._grey(frame), (w, h), interpolation=cv2.INTER_AREA)
        if hands:
            pr["mask"], pr["age"] = hand_mask((h, w), hands, self.probe_scale), 0
        elif pr["mask"] is not None:
            pr["age"] += 1
            pr["mask"] = None if pr["age"] > MASK_HOLD else pr["mask"]
        pts, birth = pr["pts"], pr["birth"]
        if pr["prev"] is not None and len(pts):
            p1, ok = _lk_checked(pr["prev"], small, pts, pr["mask"])
            pts, birth = p1[ok], birth[ok]
        if len(pts) < 0.6 * PROBE_FEATURES:
            new = _corners(small, PROBE_FEATURES - len(pts), pts, pr["mask"], MIN_DISTANCE // 2)
            pts, birth = np.concatenate([pts, new]), np.concatenate([birth, new])
        pr["prev"], pr["pts"], pr["birth"] = small, pts, birth
        self.probe_frames += 1
        if len(pts) < MIN_FEATURES // 2:
            self.probe_low_frames += 1
        if len(pts):
            moved = float(np.median(np.linalg.norm(pts - birth, axis=1))) * self.scale / self.probe_scale
            self.probe_motion_px = max(self.probe_motion_px, moved)
            if moved >= PROBE_SWITCH_PX:
                self._switch(f)

    def _switch(self, f: int) -> None:
        """The background moved: the full tracker from the buffered frames on (their tracks written in place),
        the frames before them given the first buffered frame's tracks."""
        buffer = self._pr["buffer"]
        self.probing, self._pr = False, {}
        first = f - len(buffer) + 1
        self.switched_at = first
        for k, (frame, hands) in enumerate(buffer):
            self.ids[first + k], self.pts[first + k] = self._track(self._grey(frame), hands, first + k)
        for k in range(first):
            self.ids[k], self.pts[k] = self.ids[first].copy(), self.pts[first].copy()

    # -- the full tracker --

    def _track(self, grey: np.ndarray, hands: Sequence[np.ndarray], f: int) -> tuple[np.ndarray, np.ndarray]:
        if hands:
            self._mask = hand_mask(self.work_shape, hands, self.scale)
            self._mask_age = 0
        elif self._mask is not None:
            self._mask_age += 1
            if self._mask_age > MASK_HOLD:
                self._mask = None
        mask = self._mask
        pts, ids = self._cur_pts, self._cur_ids
        before = len(pts)
        if self._prev is not None and len(pts):
            p1, ok = _lk_checked(self._prev, grey, pts, mask, self._vel)
            if ok.sum() >= 8:
                self._vel = np.median(p1[ok] - pts[ok], axis=0).astype(np.float32)
            pts, ids = p1[ok].astype(np.float32), ids[ok]
        kept = len(pts)
        # replenished below 80 % of the tracks: every frame while the image moves or a tenth of the tracks
        # found last time are gone, else every REPLENISH_EVERY frames (a still scene with few corners is not
        # searched on every frame)
        self._since_new += 1
        if len(pts) < 0.8 * self.max_features and (len(pts) < 0.9 * self._after_new or np.abs(self._vel).max() > 0.3
                                                   or self._since_new >= REPLENISH_EVERY):
            new = _corners(grey, self.max_features - len(pts), pts, mask, MIN_DISTANCE)
            pts = np.concatenate([pts, new])
            ids = np.concatenate([ids, np.arange(self._next_id, self._next_id + len(new))])
            self._next_id += len(new)
            self._since_new, self._after_new = 0, len(pts)
        # a loss of tracks: look for the well-tracked frames' tracks before it in the frames that follow
        dropped = (before >= 2 * MIN_FEATURES and kept < BRIDGE_DROP * before) or kept < MIN_FEATURES
        if dropped and self._lost is None and self._anchors:
            orb = self._orb_detector()
            self._lost = {"frame": f, "first_new": int(self._next_id - (len(pts) - kept)),
                          "anchors": [(a, ids_a, pts_a, *_orb_descriptors(orb, g, pts_a))
                                      for a, g, ids_a, pts_a in self._anchors]}
        if self._lost is not None:
            ids = self._bridge(grey, ids, pts, f)
        if kept >= 2 * MIN_FEATURES and kept >= BRIDGE_DROP * before and self._lost is None:
            # the last well-tracked frame, after older ones at least ANCHOR_SPACING apart
            if len(self._anchors) < 2 or self._anchors[-1][0] - self._anchors[-2][0] >= ANCHOR_SPACING:
                self._anchors = (self._anchors + [(f, grey, ids, pts)])[-BRIDGE_ANCHORS:]
            else:
                self._anchors[-1] = (f, grey, ids, pts)
        self._prev, self._cur_pts, self._cur_ids = grey, pts, ids
        order = np.argsort(ids, kind="stable")  # ids ascending (a bridge relabels some)
        self._cur_pts, self._cur_ids = pts[order], ids[order]
        return self._cur_ids.copy(), self._cur_pts.copy()

    def _orb_detector(self) -> Any:
        if self._orb is None:
            self._orb = cv2.ORB_create(nfeatures=1, edgeThreshold=16, patchSize=31)
        return self._orb

    def _bridge(self, grey: np.ndarray, ids: np.ndarray, pts: np.ndarray, f: int) -> np.ndarray:
        """Tracks of the well-tracked frames before a loss found again: ORB descriptors at the tracks born
        since the loss and at the old frames' tracks, matched (ratio 0.8) and checked by a fundamental
        matrix; a new track that matches takes the old track's id, so the back end sees one track across
        the loss (:data:`MIN_LINK` of them end the search)."""
        lost = self._lost
        if f - lost["frame"] > BRIDGE_FRAMES:
            self._lost = None
            return ids
        fresh = np.flatnonzero(ids >= lost["first_new"])
        if len(fresh) < MIN_LINK:
            return ids
        sel, desc = _orb_descriptors(self._orb_detector(), grey, pts[fresh])
        if desc is None or len(sel) < MIN_LINK:
            return ids
        alive = set(ids.tolist())
        for a, a_ids, a_pts, a_sel, a_desc in reversed(lost["anchors"]):
            if a_desc is None:
                continue
            m = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(desc, a_desc, k=2)
            pairs = [(q[0].queryIdx, q[0].trainIdx) for q in m
                     if len(q) == 2 and q[0].distance < 0.8 * q[1].distance and q[0].distance < 64]
            if len(pairs) < MIN_LINK:
                continue
            qi, ti = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
            old, cur = a_pts[a_sel[ti]].astype(np.float64), pts[fresh[sel[qi]]].astype(np.float64)
            F, inl = cv2.findFundamentalMat(old, cur, cv2.FM_RANSAC, INLIER_PX, 0.999)
            # a fundamental matrix fits a dozen chance matches: most of the matches must agree, and many
            if F is None or inl is None or int(inl.sum()) < BRIDGE_MIN or inl.sum() < 0.5 * len(pairs):
                continue
            ids = ids.copy()
            taken = 0
            for q, t in zip(qi[inl.ravel() > 0], ti[inl.ravel() > 0]):
                old_id = int(a_ids[a_sel[t]])
                if old_id not in alive:
                    ids[fresh[sel[q]]] = old_id
                    alive.add(old_id)
                    taken += 1
            if taken >= BRIDGE_MIN:
                self.bridges.append({"frame": f, "to": int(a), "tracks": taken})
                self._lost = None
                return ids
        return ids


def _lk_checked(prev: np.ndarray, grey: np.ndarray, pts: np.ndarray, mask: np.ndarray | None,
                vel: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pyramidal Lucas-Kanade from ``prev`` to ``grey`` (started from the last frame's image motion ``vel``),
    forward-backward checked: (positions (n, 2), ok (n,)), ok False out of the image or on the mask."""
    kw = dict(_LK)
    guess = None
    if vel is not None and np.abs(vel).max() > 1.0:
        guess = (pts + vel).astype(np.float32)
        kw["flags"] = cv2.OPTFLOW_USE_INITIAL_FLOW
    p1, st, _ = cv2.calcOpticalFlowPyrLK(prev, grey, pts, guess, **kw)
    back = pts.copy() if guess is not None else None
    p0r, st2, _ = cv2.calcOpticalFlowPyrLK(grey, prev, p1, back, **kw)
    h, w = grey.shape[:2]
    ok = (st.ravel() == 1) & (st2.ravel() == 1) & (np.abs(p0r - pts).max(axis=1) < 0.5)
    ok &= (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
    if mask is not None and ok.any():
        xi = np.clip(np.round(p1[:, 0]).astype(int), 0, w - 1)
        yi = np.clip(np.round(p1[:, 1]).astype(int), 0, h - 1)
        ok &= mask[yi, xi] > 0
    return p1, ok


def _corners(grey: np.ndarray, count: int, pts: np.ndarray, mask: np.ndarray | None, spacing: int) -> np.ndarray:
    """Up to ``count`` new Shi-Tomasi corners (n, 2) float32 away from ``pts`` and off the mask, only those
    Lucas-Kanade can follow (minimum eigenvalue above :data:`MIN_EIGENVALUE`: a blank wall yields none)."""
    m = np.full(grey.shape[:2], 255, np.uint8) if mask is None else mask.copy()
    for x, y in np.round(pts).astype(int):
        cv2.circle(m, (int(x), int(y)), spacing, 0, -1)
    new = cv2.goodFeaturesToTrack(grey, max(count, 1), 0.001, spacing, mask=m, blockSize=7)
    if new is None or not len(new):
        return np.zeros((0, 2), np.float32)
    new = new.reshape(-1, 2).astype(np.float32)
    h, w = grey.shape[:2]
    eig = cv2.cornerMinEigenVal(grey, 7, 3)
    return new[eig[np.clip(new[:, 1].round().astype(int), 0, h - 1), np.clip(new[:, 0].round().astype(int), 0, w - 1)]
               > MIN_EIGENVALUE]


def _orb_descriptors(orb: Any, grey: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(indices of ``pts`` kept, their ORB descriptors) at the given positions."""
    kps = [cv2.KeyPoint(float(x), float(y), 31, -1, 0, 0, int(i)) for i, (x, y) in enumerate(pts)]
    kps, desc = orb.compute(grey, kps)
    if desc is None or not kps:
        return np.zeros(0, np.int64), None
    return np.array([k.class_id for k in kps], np.int64), desc


# ------------------------------------------------------------------------------------------------
# Back end helpers


def _bearings(xn: np.ndarray) -> np.ndarray:
    b = np.concatenate([xn, np.ones((len(xn), 1))], axis=1)
    return b / np.linalg.norm(b, axis=1, keepdims=True)


def _rotvec_to_matrix(v: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(v, np.float64).reshape(3, 1))[0]


def _matrix_to_rotvec(R: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(R, np.float64))[0].ravel()


def _rotation_between(ba: np.ndarray, bb: np.ndarray, thr: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R with ``bb ~ R ba`` (unit bearings (n, 3)), RANSAC over 2-point Kabsch fits; (R, inliers)."""
    n = len(ba)
    if n < 3:
        return np.eye(3), np.ones(n, bool)
    pairs = np.stack([rng.choice(n, 2, replace=False) for _ in range(60)])
    R = umeyama(ba[pairs], bb[pairs], scale=False, translation=False)[1]  # (60, 3, 3)
    inliers = np.linalg.norm(bb - ba @ np.swapaxes(R, -1, -2), axis=-1) < thr  # (60, n)
    k = int(inliers.sum(-1).argmax())  # the first of the best, as drawn
    best, best_in = R[k], inliers[k]
    if best_in.sum() >= 3:
        best = umeyama(ba[best_in], bb[best_in], scale=False, translation=False)[1]
        best_in = np.linalg.norm(bb - ba @ best.T, axis=1) < thr
    return best, best_in


def _smooth_ids(ids_a: np.ndarray, ids_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)


class _Solver:
    """One segment's back end: ``frames`` (ascending), linked by shared tracks (see the module doc).
    Poses are (R, t), camera from the segment's own world frame, in the segment's own unit."""

    def __init__(self, tracker: BackgroundTracker, frames: Sequence[int], K: np.ndarray | None = None) -> None:
        self.tr = tracker
        self.frames = [int(f) for f in frames]
        self.K = np.asarray(tracker.K if K is None else K, np.float64)
        self.f = 0.5 * (self.K[0, 0] + self.K[1, 1])
        self.xn = {f: self._norm(tracker.pts[f]) for f in self.frames}
        self.ids = {f: tracker.ids[f] for f in self.frames}
        self.thr = INLIER_PX / self.f  # normalised units
        self.rng = np.random.default_rng(0)
        self.points: dict[int, np.ndarray] = {}  # track id -> 3D point (segment world)
        self.poses: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # frame -> (R, t) camera from world
        self.status: dict[int, str] = {}  # frame -> one of STATUSES
        self.joins: list[dict[str, Any]] = []  # where the map was re-initialised
        self.method = "rotation only"
        self.stats: dict[str, Any] = {}

    def _norm(self, p: np.ndarray) -> np.ndarray:
        K = self.K
        return np.stack([(p[:, 0] - K[0, 2]) / K[0, 0], (p[:, 1] - K[1, 2]) / K[1, 1]], axis=1).astype(np.float64)

    # -- keyframes and initialisation --

    def keyframes(self) -> list[int]:
        fr = self.frames
        kfs = [fr[0]]
        for prev, f in zip(fr[:-1], fr[1:]):
            last = kfs[-1]
            common, ia, ib = _smooth_ids(self.ids[last], self.ids[f])
            if len(common) < 2 * MIN_FEATURES:
                if prev > last:
                    kfs.append(prev)
                    common, ia, ib = _smooth_ids(self.ids[prev], self.ids[f])
                    if len(common) >= 2 * MIN_FEATURES and len(common) >= 0.66 * len(self.ids[prev]):
                        continue
                kfs.append(f)
                continue
            disp = np.median(np.linalg.norm(self.tr.pts[f][ib] - self.tr.pts[last][ia], axis=1))
            if disp > KEYFRAME_PX or len(common) < 0.66 * len(self.ids[last]):
                kfs.append(f)
        if kfs[-1] != fr[-1]:
            kfs.append(fr[-1])
        return kfs

    def _two_view(self, a: int, b: int, min_common: int = 2 * MIN_FEATURES) -> tuple[float, Any] | None:
        common, ia, ib = _smooth_ids(self.ids[a], self.ids[b])
        if len(common) < min_common:
            return None
        xa, xb = self.xn[a][ia], self.xn[b][ib]
        try:
            E, inl = cv2.findEssentialMat(xa, xb, np.eye(3), method=cv2.RANSAC, prob=0.999, threshold=self.thr)
        except cv2.error:  # OpenCV's five-point solver raises on degenerate samples (a nearly still camera)
            return None
        if E is None or E.shape != (3, 3):
            return None
        n_in, R, t, inl, _ = cv2.recoverPose(E, xa, xb, np.eye(3), distanceThresh=1e3, mask=inl.copy())
        inl = inl.ravel() > 0
        if n_in < MIN_FEATURES:
            return None
        # Parallax is what the best pure rotation leaves unexplained: a camera that only turns fits an
        # essential matrix too (a wrong one, whose own "rotation-compensated" parallax can read 10 degrees)
        ba, bb = _bearings(xa[inl]), _bearings(xb[inl])
        R_turn, _ = _rotation_between(ba, bb, self.thr, np.random.default_rng(0))
        par = np.degrees(np.arccos(np.clip((ba @ R_turn.T * bb).sum(1), -1, 1)))
        return float(np.median(par)), (R, t.ravel(), common[inl], xa[inl], xb[inl])

    def _triangulate(self, a: int, b: int, ids: np.ndarray | None = None, min_angle: float = 1.0) -> int:
        """New points from the tracks seen in posed frames a and b (not yet mapped, or ``ids``)."""
        common, ia, ib = _smooth_ids(self.ids[a], self.ids[b])
        if ids is not None:
            keep = np.isin(common, ids)
        else:
            keep = np.array([c not in self.points for c in common.tolist()], bool)
        if not keep.any():
            return 0
        common, ia, ib = common[keep], ia[keep], ib[keep]
        (Ra, ta), (Rb, tb) = self.poses[a], self.poses[b]
        Pa, Pb = np.hstack([Ra, ta[:, None]]), np.hstack([Rb, tb[:, None]])
        xa, xb = self.xn[a][ia], self.xn[b][ib]
        Xh = cv2.triangulatePoints(Pa, Pb, xa.T, xb.T)
        X = (Xh[:3] / np.where(np.abs(Xh[3]) < 1e-12, 1e-12, Xh[3])).T
        ca, cb = X @ Ra.T + ta, X @ Rb.T + tb
        ok = (ca[:, 2] > 1e-6) & (cb[:, 2] > 1e-6)
        with np.errstate(divide="ignore", invalid="ignore"):
            ea = np.linalg.norm(ca[:, :2] / ca[:, 2:] - xa, axis=1)
            eb = np.linalg.norm(cb[:, :2] / cb[:, 2:] - xb, axis=1)
        ok &= (ea < 2 * self.thr) & (eb < 2 * self.thr)
        centre_a, centre_b = -Ra.T @ ta, -Rb.T @ tb
        ra, rb = X - centre_a, X - centre_b
        cosang = (ra * rb).sum(1) / np.maximum(np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1), 1e-12)
        ok &= np.degrees(np.arccos(np.clip(cosang, -1, 1))) > min_angle
        for i in np.flatnonzero(ok):
            self.points[int(common[i])] = X[i]
        return int(ok.sum())

    def depth_of(self, f: int, ids: np.ndarray, unit: float) -> tuple[np.ndarray, np.ndarray]:
        """(ids of the mapped points among ``ids``, their depth in frame ``f``'s camera in map units / ``unit``)."""
        if f not in self.poses:
            return np.zeros(0, np.int64), np.zeros(0)
        kept = np.array([i for i in ids.tolist() if i in self.points], np.int64)
        if not len(kept):
            return kept, np.zeros(0)
        R, t = self.poses[f]
        X = np.stack([self.points[int(i)] for i in kept])
        return kept, (X @ R[2] + t[2]) / unit

    def median_depth(self, f: int) -> float | None:
        """Median depth of the mapped points in posed frame ``f`` (those it sees, else all in front of it)."""
        if f not in self.poses or not self.points:
            return None
        R, t = self.poses[f]
        _, X, _ = self._map_obs(f) if f in self.ids else (None, np.zeros((0, 3)), None)
        if len(X) < MIN_FEATURES // 2:
            X = np.stack(list(self.points.values()))
        z = X @ R[2] + t[2]
        return float(np.median(z[z > 0])) if (z > 0).any() else None

    def _map_obs(self, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = self.ids[f]
        sel = np.array([i in self.points for i in ids.tolist()], bool) if len(ids) else np.zeros(0, bool)
        if not sel.any():
            return np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 2))
        X = np.stack([self.points[int(i)] for i in ids[sel]])
        return ids[sel], X, self.xn[f][sel]

    def _pnp(self, f: int, guess: tuple[np.ndarray, np.ndarray] | None, ransac: bool = True) -> bool:
        _, X, x = self._map_obs(f)
        if len(X) < MIN_FEATURES // 2:
            return False
        rvec = tvec = None
        if ransac:
            ok, rvec, tvec, inl = cv2.solvePnPRansac(
                X, x, np.eye(3), None, iterationsCount=100, reprojectionError=self.thr, confidence=0.999,
                flags=cv2.SOLVEPNP_SQPNP)
            if not ok or inl is None or len(inl) < MIN_FEATURES // 2:
                return False
            inl = inl.ravel()
        else:
            if guess is None:
                return False
            rvec, tvec = _matrix_to_rotvec(guess[0]).reshape(3, 1), guess[1].reshape(3, 1).copy()
            inl = np.arange(len(X))
        for _ in range(2):  # refine, drop the outliers, refine again
            rvec, tvec = cv2.solvePnPRefineLM(X[inl], x[inl], np.eye(3), None, rvec.copy(), tvec.copy())
            R = _rotvec_to_matrix(rvec)
            c = X @ R.T + tvec.ravel()
            with np.errstate(divide="ignore", invalid="ignore"):
                err = np.linalg.norm(c[:, :2] / c[:, 2:] - x, axis=1)
            inl = np.flatnonzero((err < 2 * self.thr) & (c[:, 2] > 0))
            if len(inl) < MIN_FEATURES // 2:
                return False
        self.poses[f] = (_rotvec_to_matrix(rvec), tvec.ravel().copy())
        self.status[f] = "map"
        return True

    # -- bundle adjustment --

    def bundle_adjust(self, frames: list[int], refine_focal: bool = False) -> bool:
        """Keyframe poses and points by pycolmap's bundle adjustment (the first frame and the scale held);
        ``refine_focal``: the focal length too (one for the clip, the principal point held), into ``self.K``."""
        try:
            import pycolmap
        except ImportError:
            return False
        pycolmap.logging.minloglevel = 2
        K = self.K
        w, h = self.tr.work_shape[1], self.tr.work_shape[0]
        rec = pycolmap.Reconstruction()
        model = "SIMPLE_PINHOLE" if refine_focal else "PINHOLE"
        params = [self.f, K[0, 2], K[1, 2]] if refine_focal else [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]
        cam = pycolmap.Camera(model=model, width=w, height=h, params=params, camera_id=1)
        rec.add_camera_with_trivial_rig(cam)
        tracks: dict[int, list[tuple[int, int]]] = {}
        for k, f in enumerate(frames):
            ids = self.ids[f]
            R, t = self.poses[f]
            im = pycolmap.Image(name=str(f), keypoints=self.tr.pts[f].astype(np.float64), camera_id=1, image_id=k + 1)
            rec.add_image_with_trivial_frame(im, pycolmap.Rigid3d(pycolmap.Rotation3d(R), t))
            for j, i in enumerate(ids.tolist()):
                if i in self.points:
                    tracks.setdefault(i, []).append((k + 1, j))
        pid_of: dict[int, int] = {}
        for i, obs in tracks.items():
            if len(obs) < 2:
                continue
            tr = pycolmap.Track()
            for image_id, j in obs:
                tr.add_element(image_id, j)
            pid_of[i] = rec.add_point3D(self.points[i], tr)
        if len(pid_of) < MIN_FEATURES:
            return False
        opts = pycolmap.BundleAdjustmentOptions()
        opts.refine_focal_length = refine_focal
        opts.refine_principal_point = False
        opts.refine_extra_params = False
        opts.print_summary = False
        opts.ceres.loss_function_type = pycolmap.LossFunctionType.CAUCHY
        opts.ceres.loss_function_scale = 1.0
        opts.ceres.solver_options.max_num_iterations = 50
        opts.ceres.solver_options.num_threads = 1
        config = pycolmap.BundleAdjustmentConfig()
        for k in range(len(frames)):
            config.add_image(k + 1)
        config.set_constant_rig_from_world_pose(1)  # the first keyframe is the world
        config.fix_gauge(pycolmap.BundleAdjustmentGauge.TWO_CAMS_FROM_WORLD)
        pycolmap.create_default_bundle_adjuster(opts, config, rec).solve()
        if refine_focal:
            f_new = float(rec.camera(1).params[0])
            self.K = self.K.copy()
            self.K[0, 0] = self.K[1, 1] = f_new
        for k, f in enumerate(frames):
            M = rec.image(k + 1).cam_from_world().matrix()
            self.poses[f] = (M[:, :3].copy(), M[:, 3].copy())
        for i, pid in pid_of.items():
            self.points[i] = np.asarray(rec.point3D(pid).xyz, np.float64).copy()
        if refine_focal:  # the normalised coordinates follow the refined focal length
            self.f = float(self.K[0, 0])
            self.xn = {f: self._norm(self.tr.pts[f]) for f in self.frames}
            self.thr = INLIER_PX / self.f
        # drop points that stay far off after the adjustment
        for i, obs in tracks.items():
            if i not in pid_of:
                continue
            X = self.points[i]
            for image_id, j in obs:
                R, t = self.poses[frames[image_id - 1]]
                c = R @ X + t
                if c[2] <= 0 or np.linalg.norm(c[:2] / c[2] - self.xn[frames[image_id - 1]][j]) > 3 * self.thr:
                    del self.points[i]
                    break
        return True

    # -- rotations from the tracks --

    def _rotation_from(self, f: int, anchors: Sequence[int]) -> tuple[np.ndarray, int, float] | None:
        """(R of frame ``f``, the anchor it was fitted from, parallax in degrees): the rotation relative to the
        first posed anchor ``f`` shares :data:`MIN_LINK` tracks with, fitted to their bearings; the parallax
        is the median angle that rotation leaves unexplained. None without such an anchor."""
        for r in anchors:
            if r not in self.poses:
                continue
            common, ia, ib = _smooth_ids(self.ids[r], self.ids[f])
            if len(common) < MIN_LINK:
                continue
            ba, bb = _bearings(self.xn[r][ia]), _bearings(self.xn[f][ib])
            R_rel, inl = _rotation_between(ba, bb, self.thr, np.random.default_rng(0))
            if inl.sum() < MIN_LINK // 2:
                continue
            par = float(np.median(np.degrees(np.arccos(np.clip((ba @ R_rel.T * bb).sum(1), -1, 1)))))
            return R_rel @ self.poses[r][0], r, par
        return None

    def _nearest_posed(self, f: int, limit: int = 6, mapped: bool = False) -> list[int]:
        """Up to ``limit`` posed frames nearest ``f`` (``mapped``: registered in the map) that share
        :data:`MIN_LINK` tracks with it."""
        posed = np.array(sorted(g for g in self.poses if not mapped or self.status[g] == "map"), np.int64)
        out: list[int] = []
        for r in posed[np.argsort(np.abs(posed - f), kind="stable")[:LINK_WINDOW]].tolist():
            if r != f and len(np.intersect1d(self.ids[r], self.ids[f], assume_unique=True)) >= MIN_LINK:
                out.append(int(r))
                if len(out) == limit:
                    break
        return out

    def rotation_only(self, kfs: list[int]) -> None:
        """Rotations alone (no parallax in the segment): keyframe to keyframe, then each frame from its
        keyframe; the camera's centre stays where it is (status ``turn``)."""
        first = self.frames[0]
        self.poses[first] = (np.eye(3), np.zeros(3))
        self.status[first] = "turn"
        prev = first
        kset = set(kfs)
        for f in self.frames[1:]:
            rot = self._rotation_from(f, [prev]) or self._rotation_from(f, self._nearest_posed(f))
            if rot is not None:
                self.poses[f] = (rot[0], np.zeros(3))
                self.status[f] = "turn"
            if f in kset and f in self.poses:
                prev = f

    def initial_pair(self, kfs: list[int]) -> tuple[int, int, float, Any] | None:
        """The first keyframe pair (a, b) with :data:`INIT_PARALLAX_DEG` of parallax, else the pair with the
        most; None when no pair can be fitted. Every pair among the first keyframes is tried, then, along
        the rest of the stretch (a camera that starts walking later), every third keyframe with a few
        later ones."""
        best = None
        pairs = [(a, b) for ia, a in enumerate(kfs[:12]) for b in kfs[ia + 1:ia + 16]]
        pairs += [(kfs[ia], kfs[ib]) for ia in range(12, len(kfs), 3) for ib in (ia + 4, ia + 8, ia + 15)
                  if ib < len(kfs)]
        for min_common in (2 * MIN_FEATURES, MIN_TWO_VIEW):  # pairs that share fewer tracks only if need be
            for a, b in pairs:
                res = self._two_view(a, b, min_common)
                if res is None:
                    continue
                if best is None or res[0] > best[2]:
                    best = (a, b, res[0], res[1])
                if res[0] >= INIT_PARALLAX_DEG:
                    return best
        return best

    def _reinit(self, k: int, anchors: Sequence[int]) -> bool:
        """Keyframe ``k``, which PnP cannot place (the map's points are out of view), placed from a posed
        anchor by two-view geometry when they have :data:`INIT_PARALLAX_DEG` of parallax: the map
        re-initialised there and joined to the old one, its scale from the mapped points both frames see
        (the overlap), else from the scene's depth at the anchor."""
        for r in anchors:
            res = self._two_view(r, k, MIN_TWO_VIEW)
            if res is None or res[0] < INIT_PARALLAX_DEG:
                continue
            R_rel, t_rel, ids, xa, xb = res[1]
            Xh = cv2.triangulatePoints(np.eye(3, 4), np.hstack([R_rel, t_rel[:, None]]), xa.T, xb.T)
            z_new = Xh[2] / np.where(np.abs(Xh[3]) < 1e-12, 1e-12, Xh[3])
            Rr, tr = self.poses[r]
            old = np.array([int(i) in self.points for i in ids.tolist()], bool)
            ok = z_new > 1e-6
            how = "overlap"
            if (old & ok).sum() >= MIN_LINK // 2:
                X = np.stack([self.points[int(i)] for i in ids[old & ok]])
                s = float(np.median((X @ Rr[2] + tr[2]) / z_new[old & ok]))
            else:
                depth = self.median_depth(r)
                if depth is None or not ok.any():
                    continue
                s, how = depth / float(np.median(z_new[ok])), "scene depth"
            if not (np.isfinite(s) and s > 0):
                continue
            self.poses[k] = (R_rel @ Rr, R_rel @ tr + s * t_rel)
            self.status[k] = "map"
            self.joins.append({"frame": k, "from": r, "parallax_deg": round(res[0], 2), "scale": how})
            return True
        return False

    def structure_from_motion(self, kfs: list[int], pair: tuple[int, int, float, Any]) -> None:
        self.method = "estimated"
        a, j, _, (R, t, ids, xa, xb) = pair
        self.poses[a] = (np.eye(3), np.zeros(3))
        self.poses[j] = (R, t)
        self.status[a] = self.status[j] = "map"
        self._triangulate(a, j, ids=ids, min_angle=0.5)
        registered = [a, j]  # keyframes in the map
        failed: list[int] = []
        # outward from the pair: later keyframes forward, earlier ones backward
        order = [k for k in kfs if k > a] + [k for k in reversed(kfs) if k < a]
        for k in order:
            if k in self.poses:
                continue
            if self._pnp(k, None) or self._reinit(k, self._nearest_posed(k, 4, mapped=True)):
                registered.append(k)
                for r in sorted(registered, key=lambda r: abs(r - k))[1:16]:
                    self._triangulate(r, k)
                continue
            rot = self._rotation_from(k, self._nearest_posed(k, 4))
            if rot is None:
                failed.append(k)
                continue
            c = -self.poses[rot[1]][0].T @ self.poses[rot[1]][1]  # for now; interpolated once the map is adjusted
            self.poses[k] = (rot[0], -rot[0] @ c)
            self.status[k] = "rotation"
        ba = self.bundle_adjust(sorted(registered))
        for k in [k for k in kfs if self.status.get(k) == "rotation"]:  # centres between the map's keyframes
            R_k = self.poses[k][0]
            guess = self._interpolate(k, sorted(registered))
            self.poses[k] = (R_k, -R_k @ (-guess[0].T @ guess[1]))
        # every frame from the adjusted points, starting from the interpolated keyframe poses
        posed = sorted(self.poses)
        for f in self.frames:
            if f in self.poses:
                continue
            guess = self._interpolate(f, posed)
            if self._pnp(f, guess, ransac=False) or self._pnp(f, None):
                continue
            rot = self._rotation_from(f, self._nearest_posed(f, 4))
            if rot is None:
                continue
            c = -guess[0].T @ guess[1]  # the centre interpolated between the posed frames around it
            self.poses[f] = (rot[0], -rot[0] @ c)
            self.status[f] = "rotation"
        self.stats = {"keyframes": len(kfs), "registered_keyframes": len(registered), "failed_keyframes": len(failed),
                      "points": len(self.points), "reinitialised": self.joins,
                      "bundle_adjustment": "pycolmap" if ba else "none (pycolmap not installed)"}

    def solve(self) -> None:
        """Keyframes, then a map from the first pair with parallax, else rotations alone."""
        kfs = self.keyframes()
        pair = self.initial_pair(kfs)
        self.stats["init_parallax_deg"] = None if pair is None else round(pair[2], 3)
        if pair is None or pair[2] < MIN_PARALLAX_DEG:
            self.rotation_only(kfs)
            self.stats["keyframes"] = len(kfs)
        else:
            self.structure_from_motion(kfs, pair)
            self.stats["init_pair"] = [pair[0], pair[1]]

    def _interpolate(self, f: int, reg: list[int]) -> tuple[np.ndarray, np.ndarray]:
        k = int(np.searchsorted(reg, f))
        if k == 0:
            return self.poses[reg[0]]
        if k >= len(reg):
            return self.poses[reg[-1]]
        a, b = reg[k - 1], reg[k]
        s = (f - a) / (b - a)
        (Ra, ta), (Rb, tb) = self.poses[a], self.poses[b]
        Rrel = _rotvec_to_matrix(s * _matrix_to_rotvec(Rb @ Ra.T))
        # interpolate the camera centres, not the translations
        ca, cb = -Ra.T @ ta, -Rb.T @ tb
        R = Rrel @ Ra
        return R, -R @ ((1 - s) * ca + s * cb)


def smooth_centres(centres: np.ndarray, sigma: float = CENTRE_SMOOTHING) -> np.ndarray:
    """Camera centres (N, 3) low-passed by a Gaussian of ``sigma`` frames.

    Per-frame PnP leaves frame-to-frame jitter in the centres (about six times the true
    acceleration of head motion on the benchmark): fitting the metric scale to the hands'
    accelerations then shrinks it toward zero (noise in the regressor). The ends are padded by
    point reflection, so a camera already moving at either end is not pulled back and the first
    centre (the canonical frame's origin) stays where it is."""
    from scipy.ndimage import gaussian_filter1d

    n = len(centres)
    if n < 3 or sigma <= 0:
        return centres
    p = min(n - 1, int(math.ceil(4 * sigma)))
    head = 2 * centres[:1] - centres[1:p + 1][::-1]
    tail = 2 * centres[-1:] - centres[-p - 1:-1][::-1]
    out = gaussian_filter1d(np.concatenate([head, centres, tail]), sigma, axis=0, mode="nearest", truncate=4.0)
    return out[p:p + n]


def _segments(tracker: BackgroundTracker, counts: np.ndarray) -> list[list[int]]:
    """The clip's frames with enough tracks, split where a frame shares fewer than :data:`MIN_LINK` tracks
    with every one of the segment's last :data:`LINK_WINDOW` frames (tracks bridged across a blurred or
    covered stretch by the front end keep a segment whole). Segments of fewer than 3 frames are dropped."""
    segs: list[list[int]] = []
    cur: list[int] = []
    for f in np.flatnonzero(counts >= MIN_FEATURES).tolist():
        linked = any(len(np.intersect1d(tracker.ids[r], tracker.ids[f], assume_unique=True)) >= MIN_LINK
                     for r in reversed(cur[-LINK_WINDOW:]))
        if cur and not linked:
            segs.append(cur)
            cur = []
        cur.append(f)
    if cur:
        segs.append(cur)
    return [s for s in segs if len(s) >= 3]


def _extrapolate(T: np.ndarray, posed: list[int], a: int, frames: int) -> np.ndarray:
    """Camera-to-world pose ``frames`` after posed frame ``a`` at the turning speed and velocity of the few
    frames before it (at most :data:`EXTRAPOLATE_FRAMES` frames on; beyond, the pose stays)."""
    earlier = [f for f in posed if a - 4 <= f < a]
    if not earlier or frames <= 0:
        return T[a].copy()
    e = earlier[0]
    steps = min(frames, EXTRAPOLATE_FRAMES) / (a - e)
    w = _matrix_to_rotvec(T[a, :3, :3] @ T[e, :3, :3].T)
    v = T[a, :3, 3] - T[e, :3, 3]
    return make_transform(_rotvec_to_matrix(steps * w) @ T[a, :3, :3], T[a, :3, 3] + steps * v)


def _solve_stretch(tracker: BackgroundTracker, frames: list[int], K: np.ndarray | None) -> list[_Solver]:
    """Solvers for a stretch of linked frames: one map (or rotations alone), and where the map does not
    reach (it was lost: the view turned away from every mapped point, and no keyframe pair re-initialised
    it), the frames before and after it solved again on their own (their own map, or rotations alone),
    to be joined to it by :func:`_join` through the tracks they share."""
    s = _Solver(tracker, frames, K)
    s.solve()
    mapped = sorted(f for f, v in s.status.items() if v == "map")
    if s.method != "estimated" or not mapped:
        return [s]
    out: list[_Solver] = []
    for part, keep in (([f for f in frames if f < mapped[0]], False), (None, True),
                       ([f for f in frames if f > mapped[-1]], False)):
        if keep:
            out.append(s)
        elif len(part) >= MIN_TRACK_FRAMES:
            for f in part:
                s.poses.pop(f, None)
                s.status.pop(f, None)
            out.extend(_solve_stretch(tracker, part, K))
    return out


def _robust_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
    """``dst ~ s R src + t`` over 3D point pairs (n, 3), RANSAC over triplets then refitted on the inliers
    (within 5 % of the points' spread); None with fewer than :data:`MIN_LINK` // 2 inliers."""
    n = len(src)
    rng = np.random.default_rng(0)
    tol = 0.05 * float(np.median(np.linalg.norm(dst - np.median(dst, axis=0), axis=1)))
    best = None
    for _ in range(100):
        k = rng.choice(n, 3, replace=False)
        sc, R, t = umeyama(src[k], dst[k])
        if not (np.isfinite(sc) and sc > 0):
            continue
        inl = np.linalg.norm(sc * src @ R.T + t - dst, axis=1) < tol
        if best is None or inl.sum() > best.sum():
            best = inl
    if best is None or best.sum() < MIN_LINK // 2:
        return None
    sc, R, t = umeyama(src[best], dst[best])
    return float(sc), R, t


def _link(prev: _Solver, sim_prev: tuple[np.ndarray, np.ndarray, float], s: _Solver,
          T: np.ndarray) -> dict[str, Any] | None:
    """How solver ``s`` joins the trajectory ``T`` (camera-to-world in the joined frame) of the earlier
    solver ``prev`` (whose world goes into the joined one by ``sim_prev`` = (R, t, scale)), through the
    tracks they share: the similarity (R, t, scale) from its world into the joined one. The mapped points
    both hold give it (robust Umeyama: the shared scale from the overlap); else the rotation between the
    two frames that share the most tracks (fitted to their bearings), the earlier frame's centre, and the
    scale that makes the scene depth there agree. None: they share no tracks."""
    best = None
    a_frames = sorted(prev.poses)[-LINK_WINDOW:]
    for b in sorted(s.poses)[:2 * LINK_WINDOW:2]:  # tracks bridged by the front end may come back late
        for a in a_frames:
            c = len(np.intersect1d(prev.ids[a], s.ids[b], assume_unique=True))
            if c >= MIN_LINK and (best is None or c > best[0]):
                best = (c, a, b)
        if best is not None:
            break
    if best is None:
        return None
    _, a, b = best
    Rp, tp, sp = sim_prev
    common = [i for i in s.points if i in prev.points]
    if len(common) >= MIN_LINK // 2:
        dst = sp * np.stack([prev.points[i] for i in common]) @ Rp.T + tp
        fit = _robust_similarity(np.stack([s.points[i] for i in common]), dst)
        if fit is not None:
            return {"R": fit[1], "t": fit[2], "scale": fit[0], "how": "overlap", "after": a, "frame": b}
    _, ia, ib = _smooth_ids(prev.ids[a], s.ids[b])
    xa, xb = prev.xn[a][ia], s.xn[b][ib]
    R_ab, inl = _rotation_between(_bearings(xa), _bearings(xb), 2 * s.thr, np.random.default_rng(0))
    c_b = T[a, :3, 3].copy()  # the camera turned about its centre between a and b
    d_prev, d_new = prev.median_depth(a), s.median_depth(b)
    depth = bool(prev.method == "estimated" and d_prev and d_new)
    how, placed = "shared tracks", True
    if inl.sum() < max(MIN_LINK, 0.5 * len(ia)):  # no one rotation: the camera travelled between a and b
        try:
            E, m = cv2.findEssentialMat(xa, xb, np.eye(3), method=cv2.RANSAC, prob=0.999, threshold=2 * s.thr)
        except cv2.error:
            return None
        if E is None or E.shape != (3, 3):
            return None
        n_in, R_ab, t_ab, m, _ = cv2.recoverPose(E, xa, xb, np.eye(3), distanceThresh=1e3, mask=m.copy())
        if n_in < max(MIN_LINK, 0.5 * len(ia)):
            return None
        how, placed = "shared tracks, two-view", depth
        if depth:  # the baseline's length from the scene depth at a
            ok = m.ravel() > 0
            Xh = cv2.triangulatePoints(np.eye(3, 4), np.hstack([R_ab, t_ab]), xa[ok].T, xb[ok].T)
            z = Xh[2] / np.where(np.abs(Xh[3]) < 1e-12, 1e-12, Xh[3])
            if (z > 0).sum() < MIN_LINK // 2:
                return None
            base = sp * d_prev / float(np.median(z[z > 0]))
            c_b = T[a, :3, 3] - base * (T[a, :3, :3] @ R_ab.T @ t_ab.ravel())  # centre of b: -R_ab^T t in a's camera
    R_wb = T[a, :3, :3] @ R_ab.T  # camera b to the joined world
    Rs, ts = s.poses[b]
    sc = sp * d_prev / d_new if depth else 1.0
    R = R_wb @ Rs  # s's world -> joined: R_wc_joined(b) = R R_wc_s(b), R_wc_s(b) = Rs^T
    t = c_b - sc * R @ (-Rs.T @ ts)
    return {"R": R, "t": t, "scale": sc, "how": how + (", scene depth" if depth else ""), "after": a, "frame": b,
            "placed": placed}


def _join(solvers: list[_Solver], n: int) -> tuple[np.ndarray, np.ndarray, list[tuple], list[dict[str, Any]]]:
    """The solvers' poses in one frame: (T camera-to-world (N, 4, 4), status (N,) ("" where none posed the
    frame), each solver's similarity into the joined frame, the joins). A solver joins the earlier ones
    through shared tracks (:func:`_link`); one that shares none starts where the earlier trajectory,
    carried on at its speed over the gap, arrives, its scale from the scene depth, and its frames are
    marked ``unlinked`` (not registered), as are those of every solver joined through it."""
    T = np.full((n, 4, 4), np.nan)
    status = np.full(n, "", dtype=object)
    sims: list[tuple] = []
    joins: list[dict[str, Any]] = []
    done: list[tuple[_Solver, tuple, bool]] = []  # (solver, similarity, linked to frame 0's)
    for s in sorted(solvers, key=lambda s: min(s.poses) if s.poses else n):
        frames = sorted(s.poses)
        if not frames:
            sims.append((np.eye(3), np.zeros(3), 1.0))
            continue
        linked, link = True, None
        for prev, sim_prev, ok in reversed(done[-3:]):
            link = _link(prev, sim_prev, s, T)
            if link is not None:
                linked = ok
                break
        if link is not None:
            R, t, sc = link["R"], link["t"], link["scale"]
            linked = linked and link.get("placed", True)  # travelled across with no scale: position unknown
        elif not done:
            R, t, sc = np.eye(3), np.zeros(3), 1.0
        else:  # a break: no track shared with any earlier frame
            posed = np.flatnonzero(status != "").tolist()
            a, b = posed[-1], frames[0]
            target = _extrapolate(T, posed, a, b - a)
            prev, sim_prev, _ = done[-1]
            d_prev, d_new = prev.median_depth(a), s.median_depth(b)
            sc = sim_prev[2] * d_prev / d_new if (prev.method == "estimated" and d_prev and d_new) else 1.0
            Rs, ts = s.poses[b]
            R = target[:3, :3] @ Rs
            t = target[:3, 3] - sc * R @ (-Rs.T @ ts)
            link = {"how": "break: carried across at the camera's speed", "after": a, "frame": b}
            linked = False
        if done:
            joins.append({k: v for k, v in link.items() if k in ("how", "after", "frame")})
        for f in frames:
            Rf, tf = s.poses[f]
            T[f] = make_transform(R @ Rf.T, sc * R @ (-Rf.T @ tf) + t)
            status[f] = s.status[f] if linked else "unlinked"
        sims.append((R, t, sc))
        done.append((s, (R, t, sc), linked))
    return T, status, sims, joins


def _fill_gaps(T: np.ndarray, status: np.ndarray) -> None:
    """Frames no segment posed: between posed frames, rotation (slerp) and centre (linear) interpolated
    (``interpolated``); before the first or after the last posed frame, the nearest pose held (``held``)."""
    posed = np.flatnonzero(status != "")
    for f in np.flatnonzero(status == ""):
        k = int(np.searchsorted(posed, f))
        if k == 0 or k >= len(posed):
            T[f] = T[posed[0] if k == 0 else posed[-1]]
            status[f] = "held"
            continue
        a, b = posed[k - 1], posed[k]
        s = (f - a) / (b - a)
        R = _rotvec_to_matrix(s * _matrix_to_rotvec(T[b, :3, :3] @ T[a, :3, :3].T)) @ T[a, :3, :3]
        T[f] = make_transform(R, (1 - s) * T[a, :3, 3] + s * T[b, :3, 3])
        status[f] = "interpolated"


#: What the warning says was done for the frames of each status that is not registered.
_DONE = {"rotation": "rotation only: rotation from the tracks, position interpolated",
         "interpolated": "interpolated rotation and position",
         "unlinked": "tracked, but where they are relative to the frames before is a guess: the tracks broke off",
         "held": "static: the nearest registered pose held"}


def unregistered_warning(status: np.ndarray) -> str | None:
    """The one warning line naming the frames without a registered pose and what was done for them."""
    bad = ~np.isin(status, REGISTERED)
    if not bad.any():
        return None
    parts = []
    for code in ("rotation", "interpolated", "unlinked", "held"):
        frames = np.flatnonzero(status == code)
        if frames.size:
            parts.append(f"{frame_ranges(frames)} ({_DONE[code]})")
    msg = (f"camera: {int(bad.sum())} of {len(status)} frames not registered, marked in camera_valid: "
           + "; ".join(parts))
    return msg


def solve_camera(tracker: BackgroundTracker, mode: str = "auto", depth_model: DepthModel | None = None,
                 K: np.ndarray | None = None, refine_focal: bool = False) -> CameraEstimate:
    """The clip's camera poses from a filled :class:`BackgroundTracker`.

    ``mode="auto"``: a still background gives a static camera (identity poses); ``"estimate"``:
    always estimated (a still camera then comes out close to the identity). ``depth_model``: reads the
    frames the tracker kept (``tracker.depth``) for :attr:`CameraEstimate.metric_scale`, when there is a map.
    ``K``: intrinsics of the tracked (work-size) pixels instead of the tracker's; ``refine_focal``: the
    bundle adjustment refines the focal length (:attr:`CameraEstimate.focal_work`).
    """
    if mode not in ("auto", "estimate"):
        raise ValueError(f"mode {mode!r}: 'auto' or 'estimate'")
    t0 = time.perf_counter()
    n = tracker.num_frames
    counts = np.array([len(i) for i in tracker.ids], np.int64)
    low = np.flatnonzero(counts < MIN_FEATURES)
    eye = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
    unit = "median depth of the background in the first frame"
    stats: dict[str, Any] = {"frames": n, "work_size": list(tracker.work_shape[::-1]),
                             "features_median": int(np.median(counts)) if n else 0,
                             "front_end_s": round(tracker.seconds, 3)}
    stats.update(tracker.stats())

    def done(est: CameraEstimate) -> CameraEstimate:
        # the depth model's reads are timed apart (stats["depth"]["seconds"])
        stats["back_end_s"] = round(time.perf_counter() - t0 - stats.get("depth", {}).get("seconds", 0.0), 3)
        stats["ms_per_frame"] = round(1000 * (tracker.seconds + stats["back_end_s"]) / max(n, 1), 2)
        est.stats = stats
        return est

    def untrackable(why: str) -> CameraEstimate:
        return done(CameraEstimate(eye, False, "static (too little to track)", unit, low,
                                   np.full(n, "held", object), [f"camera: {why}: assuming a static camera"], why=why))

    if n == 0:
        return done(CameraEstimate(eye, False, "static", unit, status=np.full(0, "still", object)))
    if n < MIN_TRACK_FRAMES:
        return untrackable(f"{n} frame{'s' if n != 1 else ''} are too few to track the background "
                           f"(at least {MIN_TRACK_FRAMES})")
    if tracker.decided_static:  # the probe alone ran: its corners never moved
        if tracker.probe_low_frames > 0.5 * tracker.probe_frames:
            return untrackable(f"too few background features to track in {tracker.probe_low_frames} of the "
                               f"{tracker.probe_frames} frames looked at (textureless background?)")
        stats["background_motion_px"] = round(tracker.probe_motion_px, 3)
        return done(CameraEstimate(eye, False, "static", unit, status=np.full(n, "still", object)))
    if n - low.size < MIN_TRACK_FRAMES:
        return untrackable(f"too few background features to track in frames {frame_ranges(low)} "
                           f"(textureless background?)")
    # still background: median displacement of the tracks since they were first seen
    first: dict[int, np.ndarray] = {}
    disp = np.zeros(n)
    for f in range(n):
        ids, pts = tracker.ids[f], tracker.pts[f]
        for i, p in zip(ids.tolist(), pts):
            first.setdefault(i, p)
        if len(ids):
            birth = np.stack([first[i] for i in ids.tolist()])
            disp[f] = float(np.median(np.linalg.norm(pts - birth, axis=1)))
    stats["background_motion_px"] = round(float(disp.max()), 3)
    if mode == "auto" and disp.max() < STATIC_PX:
        return done(CameraEstimate(eye, False, "static", unit, low, np.full(n, "still", object)))
    segs = _segments(tracker, counts)
    if not segs:
        return untrackable("no stretch of frames shares enough background tracks")
    solvers = [sv for seg in segs for sv in _solve_stretch(tracker, seg, K)]
    if refine_focal:
        mapped = [s for s in solvers if s.method == "estimated"]
        if mapped:
            main = max(mapped, key=lambda s: sum(v == "map" for v in s.status.values()))
            main.bundle_adjust(sorted(f for f, v in main.status.items() if v == "map"), refine_focal=True)
            stats["focal_refined_work_px"] = round(float(main.K[0, 0]), 2)
    Twc, status, sims, joins = _join(solvers, n)
    if not (status != "").any():
        return untrackable("no frame could be registered")
    _fill_gaps(Twc, status)
    method = "estimated" if any(s.method == "estimated" for s in solvers) else "rotation only"
    stats["segments"] = [{"frames": f"{s.frames[0]}-{s.frames[-1]}", "method": s.method, **s.stats} for s in solvers]
    stats["joins"] = joins
    stats["bundle_adjustment"] = next((sg["bundle_adjustment"] for sg in stats["segments"] if "bundle_adjustment" in sg),
                                      None)
    breaks = [j for j in joins if j["how"].startswith("break")]
    stats["frame_status"] = {code: int((status == code).sum()) for code in STATUSES if (status == code).any()}
    T = np.linalg.inv(Twc[0]) @ Twc  # relative to frame 0
    depth = 1.0
    order = sorted(solvers, key=lambda s: min(s.poses) if s.poses else n)
    mapped = [(s, sim[2]) for s, sim in zip(order, sims) if s.method == "estimated" and s.points]
    if mapped:
        s, sc = mapped[0]
        d = s.median_depth(min(s.poses))
        depth = sc * d if d else 1.0
    if depth > 0 and np.isfinite(depth):
        T[:, :3, 3] /= depth
    if method == "estimated":
        T[:, :3, 3] = smooth_centres(T[:, :3, 3])
        posed = np.flatnonzero(status != "held")
        for f in np.flatnonzero(status == "held"):  # held exactly at the nearest registered pose
            T[f] = T[posed[np.argmin(np.abs(posed - f))]]
    T[0] = np.eye(4)
    warnings = [w for w in [unregistered_warning(status)] if w]
    est = CameraEstimate(T, True, method, unit, low, status, warnings)
    if depth_model is not None and tracker.depth is not None:
        if mapped and depth > 0 and np.isfinite(depth):
            def z_of(f: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                for s, sc in mapped:
                    if f in s.poses and s.status.get(f) == "map":
                        return s.depth_of(f, ids, depth / sc)
                return np.zeros(0, np.int64), np.zeros(0)

            est.metric_scale, stats["depth"] = depth_scale(tracker.depth, depth_model, z_of)
        else:
            stats["depth"] = {"model": model_name(depth_model), "frames_used": 0,
                              "frames_kept": len(tracker.depth.frames), "seconds": 0.0,
                              "why": "no map with parallax: the translation is not estimated"}
    stats["rotation_max_deg"] = round(float(est.rotation_deg().max()), 3)
    return done(est)
