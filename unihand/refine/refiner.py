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

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from unihand.errors import UserError
from unihand.refine.anchor import anchor, spread_given_mano
from unihand.refine.kinematics import PoseState
from unihand.refine.objective import Observations, RefineConfig
from unihand.refine.solver import refine_sequence


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
    if "mano" in arrays:
        obs.mano, obs.mano_mask = t(arrays["mano"]), torch.from_numpy(np.asarray(arrays["mano_mask"], bool))
    return obs


class Refiner:
    """Refine generated MANO motions (N, 61) against the conditions they were generated from."""

    def __init__(self, hand: nn.Module, config: RefineConfig | None = None) -> None:
        self.hand = hand
        self.config = config or RefineConfig()

    def __call__(self, sample: np.ndarray, arrays: dict[str, np.ndarray], fps: float,
                 camera_poses: np.ndarray | None = None) -> np.ndarray:
        """The refined (N, 61) motion: one shape, given MANO frames' poses exactly as given."""
        obs = observations(arrays, len(sample), fps, camera_poses)
        given = arrays.get("mano_mask")
        if given is not None and given.any():
            sample = spread_given_mano(sample, arrays["mano"], given)
        # one BLAS thread: the banded solves are small, and OpenBLAS threads spinning against other
        # work on a few cores made them 6x slower (bench/RESULTS.md, issue 11)
        with torch.no_grad(), threadpool_limits(limits=1, user_api="blas"):
            start = anchor(self.hand, PoseState.from_mano(sample), obs)
            out = refine_sequence(self.hand, start, start, obs, self.config).to_mano()
        if not np.all(np.isfinite(out)):
            raise UserError("the refinement produced non-finite values: check the intrinsics K, the image size "
                            "and the keypoints (or pass refine=False / --refine off)")
        if given is not None and given.any():
            keep = np.r_[0:48, 58:61]
            out[np.ix_(given, keep)] = np.asarray(arrays["mano"], np.float32)[np.ix_(given, keep)]
        return out
