"""``Refiner``: the generated motion made consistent with every given observation.

The diffusion model fuses conditions softly, so a sample passes near, not through, the evidence
(and a small CPU-trained prior passes far from it). The refiner turns the sample into the motion
that best explains the observations under the priors (:mod:`unihand.refine.objective`), in three
steps:

1. given MANO frames are put in exactly, their difference to the sample spread over the frames
   between them (:func:`unihand.refine.anchor.spread_given_mano`);
2. each frame's hand is placed rigidly on its 2D / 3D evidence (:func:`unihand.refine.anchor.anchor`);
3. Levenberg-Marquardt over the whole sequence and one shape (:mod:`unihand.refine.solver`).

It works in the right-hand space the network uses (the pipeline mirrors left hands in and out).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from threadpoolctl import threadpool_limits
from torch import nn

from unihand.errors import UserError
from unihand.hand.joints import OPENPOSE_PARENTS
from unihand.refine.anchor import anchor, spread_given_mano
from unihand.refine.articulation import choose_fingers, detector_markers
from unihand.refine.gaps import bridge_gaps, interior_gaps
from unihand.refine.kinematics import PoseState, pose_joints
from unihand.refine.objective import Observations, RefineConfig, _evidence
from unihand.refine.solver import refine_sequence


#: Gaussian low-pass (frames) of the wrist and camera paths before the first scale is fitted.
SCALE_SMOOTHING = 2.0


def observations(arrays: dict[str, np.ndarray], num_frames: int, fps: float,
                 camera_poses: np.ndarray | None = None) -> Observations:
    """The refinement's observations from the pipeline's condition arrays (``pipeline.condition_arrays``)."""
    t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))  # noqa: E731
    obs = Observations(float(fps), num_frames)
    if "kp2d" in arrays:
        size = np.asarray(arrays["image_size"], np.float64)
        conf = arrays.get("kp2d_conf")
        weight = arrays["kp2d_mask"].astype(np.float64) * (1.0 if conf is None else conf)
        obs.kp2d, obs.kp2d_weight, obs.K = t(arrays["kp2d"] * size), t(weight), t(arrays["K"])
        if camera_poses is not None:
            obs.cam_from_cano = t(np.linalg.inv(np.asarray(camera_poses, np.float64)))
    if "kp3d" in arrays:
        obs.kp3d, obs.kp3d_weight = t(arrays["kp3d"]), t(arrays["kp3d_mask"])
    if "kp3d_hand" in arrays:
        usable = usable_hand3d(arrays["kp3d_hand"])[:, None]
        obs.kp3d_hand, obs.kp3d_hand_weight = t(arrays["kp3d_hand"]), t(arrays["kp3d_hand_mask"] & usable)
    if "other_hand" in arrays:  # kept clear of where this hand has no evidence of its own
        known = np.isfinite(arrays["other_hand"]).all(axis=(1, 2))
        obs.other_hand = t(np.nan_to_num(arrays["other_hand"]))
        obs.other_hand_weight = t(known) * ~_evidence(obs)
    if "mano" in arrays:
        obs.mano, obs.mano_mask = t(arrays["mano"]), torch.from_numpy(np.asarray(arrays["mano_mask"], bool))
    return obs


#: Shortest bone (m) a detector's 3D hand may have: one shorter has no direction to follow.
MIN_BONE = 1e-3


def usable_hand3d(hand3d: np.ndarray) -> np.ndarray:
    """(N,) bool: a detector's 3D hand (N, 21, 3) is usable on a frame when it is finite and every bone has a
    length (degenerate hands, e.g. all joints at one point or zero-filled frames, are ignored)."""
    with np.errstate(invalid="ignore"):
        bones = np.linalg.norm(hand3d[:, 1:] - hand3d[:, list(OPENPOSE_PARENTS[1:])], axis=-1)
        return np.isfinite(hand3d).all(axis=(1, 2)) & (bones > MIN_BONE).all(1)


class Refiner:
    """Refine generated MANO motions (N, 61) against the conditions they were generated from."""

    def __init__(self, hand: nn.Module, config: RefineConfig | None = None) -> None:
        self.hand = hand
        self.config = config or RefineConfig()
        self.camera_scale = 1.0  # of the last call's camera translations (fitted with camera_scale="fit")

    def __call__(self, sample: np.ndarray, arrays: dict[str, np.ndarray], fps: float,
                 camera_poses: np.ndarray | None = None, camera_scale: float | str = 1.0) -> np.ndarray:
        """The refined (N, 61) motion: one shape, given MANO frames' poses exactly as given.

        ``camera_poses`` T_cano_from_cam (N, 4, 4) with translations in metres times ``camera_scale``;
        ``camera_scale="fit"``: translations known only up to scale (monocular camera tracking), the
        scale is fitted to the hands (metric bones and hand size) and left in ``self.camera_scale``.
        """
        fit = camera_scale == "fit"
        poses = None if camera_poses is None else np.asarray(camera_poses, np.float64).copy()
        if poses is not None and not fit:
            poses[:, :3, 3] *= float(camera_scale)
        obs = observations(arrays, len(sample), fps, poses)
        obs.fit_scale = fit and poses is not None
        given = arrays.get("mano_mask")
        if given is not None and given.any():
            sample = spread_given_mano(sample, arrays["mano"], given)
        # one BLAS thread: the banded solves are small, and OpenBLAS threads spinning against other
        # work on a few cores made them 6x slower (bench/RESULTS.md, "Evidence-faithful motion: refinement")
        with torch.no_grad(), threadpool_limits(limits=1, user_api="blas"):
            start = anchor(self.hand, PoseState.from_mano(sample), obs)
            scale = 1.0
            if obs.fit_scale:  # a first scale from the placed hands, then place them again with it
                scale = initial_camera_scale(self.hand, start, obs)
                obs.cam_from_cano = obs.cam_from_cano.clone()
                obs.cam_from_cano[:, :3, 3] *= scale
                start = anchor(self.hand, PoseState.from_mano(sample), obs)
            cfg = self._config(obs)
            if obs.kp3d_hand is not None and cfg.detector_markers:
                obs.markers = detector_markers(self.hand, start.betas, obs.kp3d_hand, obs.kp3d_hand_weight)
            if obs.kp3d_hand is not None and cfg.detector_start:
                start, _ = choose_fingers(self.hand, start, obs, cfg)
            solved = refine_sequence(self.hand, start, start, obs, cfg)
            seen = _evidence(obs).numpy()
            if cfg.gap_restart and interior_gaps(seen):
                # again, each gap started on (and held near) its edges' interpolation; the shape and the 2D
                # kernel's graduation are done
                bridged = bridge_gaps(solved, seen)
                solved = refine_sequence(self.hand, bridged, bridge_gaps(start, seen, bridged), obs,
                                         replace(cfg, gnc_2d=cfg.gnc_2d[-1:]), shape=False)
            out = solved.to_mano()
        self.camera_scale = float(scale * solved.log_scale.exp()) if obs.fit_scale else float(camera_scale)
        if not np.all(np.isfinite(out)):
            raise UserError("the refinement produced non-finite values: check the intrinsics K, the image size "
                            "and the keypoints (or pass refine=False / --refine off)")
        if given is not None and given.any():
            keep = np.r_[0:48, 58:61]
            out[np.ix_(given, keep)] = np.asarray(arrays["mano"], np.float32)[np.ix_(given, keep)]
        return out


    def _config(self, obs: Observations) -> RefineConfig:
        """The weights; with no evidence anywhere the sample is all there is to keep, so the prior tightens
        (otherwise the smoothness term flattens an unconditional sample's motion along with its jitter)."""
        cfg = self.config
        if bool(_evidence(obs).any()):
            return cfg
        f = cfg.unobserved_prior
        return replace(cfg, sigma_prior_angles=cfg.sigma_prior_angles * f, sigma_prior_rot=cfg.sigma_prior_rot * f,
                       sigma_prior_transl=cfg.sigma_prior_transl * f)


def initial_camera_scale(hand: nn.Module, state: PoseState, obs: Observations) -> float:
    """The scale of up-to-scale camera translations under which the placed wrist moves most smoothly in
    the world (:func:`path_scale` over the frames with evidence; 1 when that is undetermined, the
    refinement then fits the scale with every other term)."""
    joints, _ = pose_joints(hand, state, jacobian=False)
    rot, t = obs.camera(state.rot.shape[0])
    cam = torch.einsum("nij,nj->ni", rot, joints[:, 0]) + t  # camera-frame wrist at unit scale
    return path_scale(cam.numpy(), rot.numpy(), t.numpy(), _evidence(obs).numpy())


def path_scale(cam: np.ndarray, rot: np.ndarray, t: np.ndarray, seen: np.ndarray | None = None,
               order: int = 2) -> float:
    """``s`` for which the world path ``p_t(s) = R_t^T (c_t - s t_t)`` of a point is smoothest: ``cam`` (N, 3)
    its metric camera-frame positions ``c_t``, ``(rot, t)`` (N, 3, 3), (N, 3) the unit-scale cameras
    (cam_from_world). Robust least squares (:func:`robust_scale`) on the ``order``-th differences of
    ``p`` (2: accelerations) over frames ``seen`` (default all), after a Gaussian low-pass of
    :data:`SCALE_SMOOTHING` frames."""
    a = np.einsum("nji,nj->ni", rot, cam)  # R^T c
    b = np.einsum("nji,nj->ni", rot, t)  # R^T t
    # band-limited: per-frame depth noise of the placed hands and any jitter left in the camera
    # centres would otherwise dominate the accelerations and shrink the scale toward zero
    a, b = (gaussian_filter1d(x, SCALE_SMOOTHING, axis=0, mode="nearest") for x in (a, b))
    ok = np.ones(len(a), bool) if seen is None else np.asarray(seen, bool)
    for _ in range(order):  # a difference needs every frame it spans
        ok = ok[1:] & ok[:-1]
    return robust_scale(np.diff(a, order, axis=0)[ok], np.diff(b, order, axis=0)[ok])


def robust_scale(da: np.ndarray, db: np.ndarray, iterations: int = 20) -> float:
    """``s`` minimising the Cauchy-robust size of the per-frame residuals ``da - s db`` (M, 3): the best
    of a log-spaced grid over [1e-2, 1e2], then iteratively re-weighted least squares with the
    residuals' own scale (a frame whose hand was placed far off must not decide the scale); 1 when
    the camera does not accelerate."""
    if float((db * db).sum()) < 1e-12:
        return 1.0
    grid = np.logspace(-2, 2, 161)
    sigma = 1.4826 * float(np.median(np.linalg.norm(da, axis=1))) + 1e-12
    cost = [np.log1p((np.linalg.norm(da - g * db, axis=1) / sigma) ** 2).sum() for g in grid]
    s = float(grid[int(np.argmin(cost))])
    for _ in range(iterations):
        r = np.linalg.norm(da - s * db, axis=1)
        w = 1.0 / (1.0 + (r / (1.4826 * float(np.median(r)) + 1e-12)) ** 2)
        s = float((w * (da * db).sum(1)).sum() / max(float((w * (db * db).sum(1)).sum()), 1e-30))
    return float(np.clip(s, 1e-2, 1e2)) if s > 0 else 1.0
