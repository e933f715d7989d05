"""Camera motion from the background of a video (docs/design.md "Camera motion").

**Front end** (:class:`BackgroundTracker`, streaming): each frame is downscaled so its longer
side is :data:`WORK_SIZE` pixels and turned grey; Shi-Tomasi corners are tracked from frame to
frame by pyramidal Lucas-Kanade (forward-backward checked) and replenished, outside the hand
regions (each detected hand's keypoint hull, dilated, and its forearm beyond the wrist; a hand's
region is held for a few frames where the detector misses it). Only the tracks' 2D positions
are kept (a few hundred points per frame), so memory does not grow with the resolution and the
frames are dropped as they are read (but for the few kept for a metric depth model, see below).

**Back end** (:func:`solve_camera`), all OpenCV but the bundle adjustment:

1. texture: frames with fewer than :data:`MIN_FEATURES` tracked background points have no camera
   evidence. From the first such frame on the camera is held where it was (from frame 0: the
   whole clip is static), with a warning naming the frames;
2. still background: the median displacement of the tracks since they were first seen stays
   below :data:`STATIC_PX` (about 0.15 degrees) in every frame -> static (``mode="auto"``);
3. keyframes where the median track displacement since the last one exceeds
   :data:`KEYFRAME_PX` or a third of its tracks are lost; the first keyframe pair with enough
   parallax (essential matrix, RANSAC; the parallax is the angle the best pure rotation of the
   pair leaves unexplained, so a turning camera's spurious essential matrix does not start it) starts
   the map;
4. every other keyframe is registered by PnP (RANSAC, Levenberg-Marquardt refined) on the
   mapped points, and new tracks are triangulated against the earliest keyframe that saw them;
5. bundle adjustment of keyframe poses and points (pycolmap, i.e. COLMAP's Ceres problem,
   Cauchy loss; without pycolmap the poses of step 4 are kept);
6. every frame is registered by PnP on the adjusted points (from the interpolated keyframe
   poses); a frame that cannot be (the hand fills the view, or the map starts after it, as frame 0
   may) gets its rotation from the nearest registered frame it shares tracks with and that frame's
   camera centre.

Without parallax anywhere (a camera that only turns, or a distant background) the rotations
are estimated alone (keyframe to keyframe, robust fits to the tracked bearings) and the
translation is zero. Translations are in units of the median depth of the background points
seen in the first frame: monocular video gives motion only up to scale, which the refinement
fits to the hands (``camera_scale="fit"``) unless the user gives it or a metric depth model reads
it from the scene (:mod:`unihand.camera.depth`: a dozen frames kept by the camera stage, read only
when there is a map).
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

_LK = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))


@dataclass
class CameraEstimate:
    """Per-frame camera poses of a clip and how they were found."""

    T_cano_from_cam: np.ndarray  # (N, 4, 4) float64, identity at frame 0; translation in ``unit``
    moving: bool  # False: every pose is the identity
    method: str  # "estimated", "rotation only", "static" or "static (too little texture)"
    unit: str  # what one unit of translation is
    low_texture_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # frames without evidence
    held_from: int | None = None  # poses from this frame on are held (tracking lost)
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    #: metres per ``unit`` read from a metric depth model's depth at the mapped background points
    #: (:mod:`unihand.camera.depth`); None without a depth model or a map
    metric_scale: float | None = None

    @property
    def num_frames(self) -> int:
        return int(self.T_cano_from_cam.shape[0])

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
        cv2.polylines(mask, [hull], True, 0, max(1, int(0.25 * size)))
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
    """

    def __init__(self, K: np.ndarray, image_size: tuple[int, int], work_size: int = WORK_SIZE,
                 max_features: int = MAX_FEATURES) -> None:
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
        self._next_id = 0
        self._mask: np.ndarray | None = None
        self._mask_age = 0
        self.seconds = 0.0
        self.depth: DepthFrames | None = None  # frames kept for a metric depth model (set by the camera stage)

    @property
    def num_frames(self) -> int:
        return len(self.ids)

    def to_full(self, pts: np.ndarray) -> np.ndarray:
        """Work-size pixel positions (n, 2) -> full-resolution pixels."""
        return rescale_pixels(pts, 1.0 / self.scale)

    def _grey(self, frame: np.ndarray) -> np.ndarray:
        h, w = self.work_shape
        if frame.shape[0] != h or frame.shape[1] != w:
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame

    def add(self, frame: np.ndarray, hands: Sequence[np.ndarray] = ()) -> None:
        """Track one RGB frame (H, W, 3) uint8; ``hands``: (21, 2) keypoints (pixels) of the hands in it."""
        t0 = time.perf_counter()
        grey = self._grey(frame)
        if hands:
            self._mask = hand_mask(self.work_shape, hands, self.scale)
            self._mask_age = 0
        elif self._mask is not None:
            self._mask_age += 1
            if self._mask_age > MASK_HOLD:
                self._mask = None
        mask = self._mask
        pts, ids = self._cur_pts, self._cur_ids
        if self._prev is not None and len(pts):
            p1, st, _ = cv2.calcOpticalFlowPyrLK(self._prev, grey, pts, None, **_LK)
            p0r, st2, _ = cv2.calcOpticalFlowPyrLK(grey, self._prev, p1, None, **_LK)
            h, w = self.work_shape
            ok = (st.ravel() == 1) & (st2.ravel() == 1) & (np.abs(p0r - pts).max(axis=1) < 0.5)
            ok &= (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
            if mask is not None and ok.any():
                xi = np.clip(np.round(p1[:, 0]).astype(int), 0, w - 1)
                yi = np.clip(np.round(p1[:, 1]).astype(int), 0, h - 1)
                ok &= mask[yi, xi] > 0
            pts, ids = p1[ok].astype(np.float32), ids[ok]
        if len(pts) < 0.8 * self.max_features:
            m = np.full(self.work_shape, 255, np.uint8) if mask is None else mask.copy()
            for x, y in np.round(pts).astype(int):
                cv2.circle(m, (int(x), int(y)), MIN_DISTANCE, 0, -1)
            new = cv2.goodFeaturesToTrack(grey, self.max_features - len(pts), 0.001, MIN_DISTANCE, mask=m, blockSize=7)
            if new is not None and len(new):
                new = new.reshape(-1, 2).astype(np.float32)
                # keep only corners Lucas-Kanade can follow (a textureless frame yields none)
                eig = cv2.cornerMinEigenVal(grey, 7, 3)
                h, w = self.work_shape
                keep = eig[np.clip(new[:, 1].round().astype(int), 0, h - 1),
                           np.clip(new[:, 0].round().astype(int), 0, w - 1)] > MIN_EIGENVALUE
                new = new[keep]
                pts = np.concatenate([pts, new])
                ids = np.concatenate([ids, np.arange(self._next_id, self._next_id + len(new))])
                self._next_id += len(new)
        self._prev, self._cur_pts, self._cur_ids = grey, pts, ids
        self.ids.append(ids.copy())
        self.pts.append(pts.copy())
        self.seconds += time.perf_counter() - t0


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
    """One clip's back end (see the module doc)."""

    def __init__(self, tracker: BackgroundTracker, end: int) -> None:
        self.tr = tracker
        self.end = end
        K = tracker.K
        self.f = 0.5 * (K[0, 0] + K[1, 1])
        self.Kinv = np.linalg.inv(K)
        self.xn = [self._norm(p) for p in tracker.pts[:end]]
        self.ids = tracker.ids[:end]
        self.thr = INLIER_PX / self.f  # normalised units
        self.rng = np.random.default_rng(0)
        self.points: dict[int, np.ndarray] = {}  # track id -> 3D point (frame 0 camera)
        self.poses: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # frame -> (R, t) camera from world

    def _norm(self, p: np.ndarray) -> np.ndarray:
        K = self.tr.K
        return np.stack([(p[:, 0] - K[0, 2]) / K[0, 0], (p[:, 1] - K[1, 2]) / K[1, 1]], axis=1).astype(np.float64)

    # -- keyframes and initialisation --

    def keyframes(self) -> list[int]:
        kfs = [0]
        for f in range(1, self.end):
            last = kfs[-1]
            common, ia, ib = _smooth_ids(self.ids[last], self.ids[f])
            if len(common) < 2 * MIN_FEATURES:
                if f - 1 > last:
                    kfs.append(f - 1)
                    common, ia, ib = _smooth_ids(self.ids[f - 1], self.ids[f])
                    if len(common) >= 2 * MIN_FEATURES and len(common) >= 0.66 * len(self.ids[f - 1]):
                        continue
                kfs.append(f)
                continue
            disp = np.median(np.linalg.norm(self.tr.pts[f][ib] - self.tr.pts[last][ia], axis=1))
            if disp > KEYFRAME_PX or len(common) < 0.66 * len(self.ids[last]):
                kfs.append(f)
        if kfs[-1] != self.end - 1:
            kfs.append(self.end - 1)
        return kfs

    def _two_view(self, a: int, b: int) -> tuple[float, Any] | None:
        common, ia, ib = _smooth_ids(self.ids[a], self.ids[b])
        if len(common) < 2 * MIN_FEATURES:
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
        """New points from the tracks seen in registered frames a and b (not yet mapped, or ``ids``)."""
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
        return True

    # -- bundle adjustment --

    def bundle_adjust(self, frames: list[int]) -> bool:
        """Keyframe poses and points by pycolmap's bundle adjustment (frame 0 and the scale held)."""
        try:
            import pycolmap
        except ImportError:
            return False
        pycolmap.logging.minloglevel = 2
        K = self.tr.K
        w, h = self.tr.work_shape[1], self.tr.work_shape[0]
        rec = pycolmap.Reconstruction()
        cam = pycolmap.Camera(model="PINHOLE", width=w, height=h, params=[K[0, 0], K[1, 1], K[0, 2], K[1, 2]],
                              camera_id=1)
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
        opts.refine_focal_length = False
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
        config.set_constant_rig_from_world_pose(1)  # frame 0 (the first keyframe) is the world
        config.fix_gauge(pycolmap.BundleAdjustmentGauge.TWO_CAMS_FROM_WORLD)
        pycolmap.create_default_bundle_adjuster(opts, config, rec).solve()
        for k, f in enumerate(frames):
            M = rec.image(k + 1).cam_from_world().matrix()
            self.poses[f] = (M[:, :3].copy(), M[:, 3].copy())
        for i, pid in pid_of.items():
            self.points[i] = np.asarray(rec.point3D(pid).xyz, np.float64).copy()
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

    # -- whole clip --

    def rotation_only(self, kfs: list[int]) -> None:
        """Rotations alone: keyframe to keyframe, then each frame from its keyframe; zero translation."""
        self.poses[0] = (np.eye(3), np.zeros(3))
        prev = 0
        for f in range(1, self.end):
            common, ia, ib = _smooth_ids(self.ids[prev], self.ids[f])
            Rp = self.poses[prev][0]
            if len(common) >= MIN_FEATURES:
                R, _ = _rotation_between(_bearings(self.xn[prev][ia]), _bearings(self.xn[f][ib]), self.thr, self.rng)
                self.poses[f] = (R @ Rp, np.zeros(3))
            else:
                self.poses[f] = (Rp, np.zeros(3))
            if f in kfs:
                prev = f

    def initial_pair(self, kfs: list[int]) -> tuple[int, int, float, Any] | None:
        """The first keyframe pair (a, b), a among the first keyframes, with :data:`INIT_PARALLAX_DEG` of
        parallax, else the pair with the most; None when no pair can be fitted."""
        best = None
        for ia, a in enumerate(kfs[:12]):
            for b in kfs[ia + 1:ia + 16]:
                res = self._two_view(a, b)
                if res is None:
                    continue
                if best is None or res[0] > best[2]:
                    best = (a, b, res[0], res[1])
                if res[0] >= INIT_PARALLAX_DEG:
                    return best
        return best

    def structure_from_motion(self, kfs: list[int], pair: tuple[int, int, float, Any]) -> dict[str, Any]:
        a, j, _, (R, t, ids, xa, xb) = pair
        self.poses[a] = (np.eye(3), np.zeros(3))
        self.poses[j] = (R, t)
        self._triangulate(a, j, ids=ids, min_angle=0.5)
        failed: list[int] = []
        registered = [a, j]
        # outward from the pair: later keyframes forward, earlier ones backward
        order = [k for k in kfs if k > a] + [k for k in reversed(kfs) if k < a]
        for k in order:
            if k in self.poses:
                continue
            if not self._pnp(k, None):
                failed.append(k)
                continue
            registered.append(k)
            for r in sorted(registered):
                if r != k:
                    self._triangulate(r, k)
        ba = self.bundle_adjust(sorted(registered))
        # every frame from the adjusted points, starting from the interpolated keyframe poses
        reg = sorted(registered)
        turned = []
        for f in range(self.end):
            if f in registered:
                continue
            guess = self._interpolate(f, reg)
            if not self._pnp(f, guess, ransac=False) and not self._pnp(f, None):
                self.poses[f] = self._turned_from(f, reg) or guess
                turned.append(f)
        return {"keyframes": len(kfs), "registered_keyframes": len(registered), "failed_keyframes": failed,
                "points": len(self.points), "bundle_adjustment": "pycolmap" if ba else "none (pycolmap not installed)",
                "unregistered_frames": frame_ranges(np.array(turned)) if turned else None}

    def _turned_from(self, f: int, reg: list[int]) -> tuple[np.ndarray, np.ndarray] | None:
        """A frame PnP cannot register (too few mapped points in view: the hand fills the image, or the map
        starts later, as frame 0 may): the rotation from the nearest registered frame it shares tracks
        with, fitted to the tracks' bearings, and that frame's camera centre. None without such a frame."""
        for r in sorted(reg, key=lambda r: abs(r - f)):
            common, ia, ib = _smooth_ids(self.ids[r], self.ids[f])
            if len(common) >= MIN_FEATURES:
                R_rel, _ = _rotation_between(_bearings(self.xn[r][ia]), _bearings(self.xn[f][ib]), self.thr,
                                             np.random.default_rng(0))
                Rr, tr = self.poses[r]
                R = R_rel @ Rr
                return R, R @ (Rr.T @ tr)  # same centre: -R^T t kept
        return None

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


def solve_camera(tracker: BackgroundTracker, mode: str = "auto", depth_model: DepthModel | None = None) -> CameraEstimate:
    """The clip's camera poses from a filled :class:`BackgroundTracker`.

    ``mode="auto"``: a still background gives a static camera (identity poses); ``"estimate"``:
    always estimated (a still camera then comes out close to the identity). ``depth_model``: reads the
    frames the tracker kept (``tracker.depth``) for :attr:`CameraEstimate.metric_scale`, when there is a map.
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

    def done(est: CameraEstimate) -> CameraEstimate:
        # the depth model's reads are timed apart (stats["depth"]["seconds"])
        stats["back_end_s"] = round(time.perf_counter() - t0 - stats.get("depth", {}).get("seconds", 0.0), 3)
        stats["ms_per_frame"] = round(1000 * (tracker.seconds + stats["back_end_s"]) / max(n, 1), 2)
        est.stats = stats
        return est

    if n == 0:
        return done(CameraEstimate(eye, False, "static", unit))
    if low.size and (low[0] == 0 or low.size > 0.5 * n):
        msg = (f"camera: too few background features to track in frames {frame_ranges(low)} "
               f"(textureless background?): assuming a static camera")
        return done(CameraEstimate(eye, False, "static (too little texture)", unit, low, 0, [msg]))
    end = int(low[0]) if low.size else n
    # still background: median displacement of the tracks since they were first seen
    first: dict[int, np.ndarray] = {}
    disp = np.zeros(end)
    for f in range(end):
        ids, pts = tracker.ids[f], tracker.pts[f]
        for i, p in zip(ids.tolist(), pts):
            first.setdefault(i, p)
        if len(ids):
            birth = np.stack([first[i] for i in ids.tolist()])
            disp[f] = float(np.median(np.linalg.norm(pts - birth, axis=1)))
    stats["background_motion_px"] = round(float(disp.max()), 3)
    warnings: list[str] = []
    if low.size:
        warnings.append(f"camera: too few background features to track in frames {frame_ranges(low)} "
                        f"(textureless background?): the camera is held from frame {end} on")
    if mode == "auto" and disp.max() < STATIC_PX:
        return done(CameraEstimate(eye, False, "static", unit, low, end if low.size else None, warnings))
    solver = _Solver(tracker, end)
    kfs = solver.keyframes()
    stats["keyframes"] = len(kfs)
    pair = solver.initial_pair(kfs)
    method = "estimated"
    stats["init_parallax_deg"] = None if pair is None else round(pair[2], 3)
    if pair is None or pair[2] < MIN_PARALLAX_DEG:
        solver.rotation_only(kfs)
        method = "rotation only"
    else:
        stats["init_pair"] = [pair[0], pair[1]]
        stats.update(solver.structure_from_motion(kfs, pair))
    T = eye.copy()
    for f in range(end):
        R, t = solver.poses[f]
        T[f, :3, :3] = R.T
        T[f, :3, 3] = -R.T @ t
    T[end:] = T[end - 1]
    depth = 1.0
    if method == "estimated":
        R0, t0_ = solver.poses[0]
        _, X, _ = solver._map_obs(0)
        X = np.stack(list(solver.points.values())) if not len(X) else X
        z = (X @ R0.T + t0_)[:, 2]
        depth = float(np.median(z[z > 0])) if (z > 0).any() else 1.0
    T = np.linalg.inv(T[0]) @ T  # relative to frame 0 (the map may start at a later keyframe)
    if depth > 0 and np.isfinite(depth):
        T[:, :3, 3] /= depth
    if method == "estimated":
        T[:end, :3, 3] = smooth_centres(T[:end, :3, 3])
        T[end:] = T[end - 1]
    T[0] = np.eye(4)
    est = CameraEstimate(T, True, method, unit, low, end if low.size else None, warnings)
    if depth_model is not None and tracker.depth is not None:
        if method == "estimated" and depth > 0 and np.isfinite(depth):
            est.metric_scale, stats["depth"] = depth_scale(tracker.depth, depth_model,
                                                           lambda f, ids: solver.depth_of(f, ids, depth))
        else:
            stats["depth"] = {"model": model_name(depth_model), "frames_used": 0,
                              "frames_kept": len(tracker.depth.frames), "seconds": 0.0,
                              "why": "no map with parallax: the translation is not estimated"}
    stats["rotation_max_deg"] = round(float(est.rotation_deg().max()), 3)
    return done(est)
