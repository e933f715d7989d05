"""The refinement objective: observation terms, prior terms, and their Gauss-Newton normal equations.

Every term is a weighted sum of squared residuals (the 2D term and the accelerations robustly, through
iteratively re-weighted least squares). Weights are written as the standard deviation a residual
is expected to have (``1 / sigma**2``), so each is in the residual's own unit:

- **2D reprojection** (metres at the hand): pixel error x (depth / focal length), so a pixel counts
  for what it means at the hand's distance and the term balances the metric ones whatever the
  resolution; confidence-weighted, Geman-McClure with scale ``robust_2d`` (outliers beyond it pull
  less and less), through each frame's camera when camera poses are known;
- **3D keypoints** (metres) and **MANO parameters** on the frames where they are given (angles,
  global rotation and translation; tight, so given frames come back as given);
- **learned prior**: stay near the diffusion sample (finger angles, global rotation, translation),
  the form chosen in docs/design.md ("Refinement");
- **smoothness**: joint accelerations (m/s^2) and finger-angle accelerations (rad/s^2), Cauchy
  (heavy-tailed: a fast real movement, a hand snapping open, costs little more than a moderate one,
  while frame-to-frame jitter is smoothed);
- **joint limits** (:data:`unihand.hand.anatomy.JOINT_LIMITS`, one-sided);
- **two hands** (one-sided, on the frames where this hand is unobserved and the other hand is known): no
  joint within 3 cm of the other hand's joints, wrists at most 0.9 m apart;
- **shape**: ``betas ~ N(0, sigma_betas^2)``; one shape per sequence (the solver's shape stage).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from unihand.errors import UserError
from unihand.geometry.alignment import umeyama
from unihand.hand.anatomy import JOINT_LIMITS
from unihand.hand.joints import OPENPOSE_PARENTS
from unihand.refine.kinematics import ANGLES, FRAME_DIM, FREE_ANGLES, PoseState, _euler_parts, pose_joints

#: Joints of the palm (OpenPose order: wrist and the four finger MCPs) on which a detector's
#: hand-centred 3D is aligned to the estimate.
PALM = [0, 5, 9, 13, 17]
_PARENT = list(OPENPOSE_PARENTS[1:])  # parent of joints 1..20
#: Joints rigid with the palm: the wrist, the thumb's CMC and the four MCPs.
PALM_JOINTS = [0, 1, 5, 9, 13, 17]
#: Nearest depth (m) the 2D term's Jacobian uses; points closer than this are not pulled through the lens.
MIN_DEPTH = 0.05


@dataclass
class RefineConfig:
    """Weights (as expected residual sizes) and solver settings of the refinement."""

    sigma_2d: float = 0.005  # m at the hand: typical detector error
    robust: str = "gm"  # 2D kernel: "gm" (Geman-McClure) or "huber"
    robust_2d: float = 0.02  # m at the hand: the kernel's scale (its last; see gnc_2d)
    sigma_3d: float = 0.002  # m
    sigma_hand3d: float = 0.01  # m per joint: a detector's hand-centred 3D (articulation)
    robust_hand3d: float = 0.02  # m: its Cauchy scale (a wrong finger of the detector pulls less and less)
    detector_start: bool = True  # per finger, start from the detector's 3D where it explains the 2D better
    detector_markers: bool = True  # the detector's keypoints at its own proportions along the fingers
    gap_restart: bool = True  # solve again from each gap's interpolation (refine.gaps)
    sigma_mano_rot: float = 1e-3  # rad, given MANO frames
    sigma_mano_transl: float = 1e-3  # m
    sigma_mano_betas: float = 0.01  # the shape of given MANO frames
    sigma_prior_angles: float = 0.6  # rad, finger angles from the diffusion sample
    sigma_prior_rot: float = 1.0  # rad, global orientation from the diffusion sample
    sigma_prior_transl: float = 0.3  # m
    unobserved_prior: float = 0.03  # the three above scale by this where nothing is observed (docs/design.md)
    sigma_accel: float = 3.0  # m/s^2, joint acceleration
    robust_accel: float = 4.0  # m/s^2: Cauchy scale, so fast real movements are not smoothed away (fingers)
    robust_accel_palm: float = 15.0  # m/s^2: the same for the wrist and the MCPs (a whole hand does not jump)
    sigma_angle_accel: float = 50.0  # rad/s^2, finger-angle acceleration
    robust_angle_accel: float = 40.0  # rad/s^2: its Cauchy scale
    sigma_limit: float = 0.01  # rad beyond a joint limit
    hand_clearance: float = 0.03  # m: nearest an unobserved hand's joint may come to the other hand's joints
    max_wrist_distance: float = 0.9  # m: farthest apart one person's wrists are placed where one is unobserved
    sigma_two_hands: float = 0.0005  # m beyond either bound
    sigma_betas: float = 1.0
    sigma_log_scale: float = 1.0  # camera scale fitted to the hands: log-normal around its start
    iterations: int = 15  # Levenberg-Marquardt iterations per chunk (at most), over all the stages below
    gnc_2d: tuple[float, ...] = (10.0, 3.0, 1.0)  # the 2D kernel's scale, widest first: graduated non-convexity
    rtol: float = 3e-3  # stop when an iteration lowers the cost by less than this fraction
    shape_iterations: int = 4
    ik_iterations: int = 6  # inverse kinematics onto a detector's hand-centred 3D (the second start)
    shape_frames: int = 12  # frames the shape is fitted on (spread over the sequence)
    chunk: int = 512  # frames solved at once (memory is bounded by one chunk)
    overlap: int = 32  # frames shared by consecutive chunks

    def __post_init__(self) -> None:
        self.gnc_2d = tuple(float(x) for x in self.gnc_2d)
        if not self.gnc_2d or not all(0 < x < float("inf") for x in self.gnc_2d):
            raise UserError(f"refinement setting gnc_2d={self.gnc_2d}: expected one or more positive scale factors")


#: The fields of :class:`Observations` that hold one entry per frame.
_PER_FRAME = ("kp2d", "kp2d_weight", "cam_from_cano", "kp3d", "kp3d_weight", "kp3d_hand", "kp3d_hand_weight", "mano",
              "mano_mask", "other_hand", "other_hand_weight")


@dataclass
class Observations:
    """What the refinement fits, in the right-hand space the model works in (float64 tensors)."""

    fps: float
    num_frames: int
    kp2d: torch.Tensor | None = None  # (N, 21, 2) pixels
    kp2d_weight: torch.Tensor | None = None  # (N, 21) confidence (0: not observed)
    K: torch.Tensor | None = None  # (3, 3)
    cam_from_cano: torch.Tensor | None = None  # (N, 4, 4); None: static camera (identity)
    kp3d: torch.Tensor | None = None  # (N, 21, 3) canonical
    kp3d_weight: torch.Tensor | None = None  # (N, 21)
    kp3d_hand: torch.Tensor | None = None  # (N, 21, 3) hand-centred 3D keypoints (any origin and orientation)
    kp3d_hand_weight: torch.Tensor | None = None  # (N, 21)
    mano: torch.Tensor | None = None  # (N, 61)
    mano_mask: torch.Tensor | None = None  # (N,) bool
    other_hand: torch.Tensor | None = None  # (N, 21, 3) the other hand's joints (same space), kept clear of
    other_hand_weight: torch.Tensor | None = None  # (N,) the frames where it is (this hand unobserved there)
    # (21, 21): the detector's keypoints as points on the hand's skeleton (rows: keypoints, columns: the
    # joints they are combined from); None: the keypoints are the joints (see refine.articulation)
    markers: torch.Tensor | None = None
    fit_scale: bool = False  # the camera translations are known up to one scale, fitted to the hands

    def frames(self, idx: slice | torch.Tensor) -> "Observations":
        """The observations of the frames ``idx`` (per-frame fields cut, the rest shared)."""
        n = int(torch.arange(self.num_frames)[idx].numel())
        cut = {f: getattr(self, f)[idx] for f in _PER_FRAME if getattr(self, f) is not None}
        return replace(self, num_frames=n, **cut)

    def keypoints(self, joints: torch.Tensor, jac: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The detector's keypoints on the hand (N, 21, 3) from its joints, and their Jacobian (N, 21, 3, P)."""
        if self.markers is None:
            return joints, jac
        m = self.markers.to(joints)
        return m @ joints, None if jac is None else (m @ jac.flatten(2)).unflatten(2, jac.shape[2:])

    def camera(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, 3) rotation and (N, 3) translation, canonical -> each frame's camera."""
        if self.cam_from_cano is None:
            return torch.eye(3, dtype=torch.float64).expand(n, 3, 3), torch.zeros(n, 3, dtype=torch.float64)
        return self.cam_from_cano[:, :3, :3], self.cam_from_cano[:, :3, 3]


def robust(r2: torch.Tensor, scale: float, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Robust cost of squared residuals and its IRLS weight (d cost / d r2): Geman-McClure
    ``s^2 r^2 / (s^2 + r^2)``, Cauchy ``s^2 log(1 + r^2 / s^2)`` or Huber (``r^2`` within ``s``,
    ``2 s |r| - s^2`` beyond)."""
    s2 = scale**2
    if kind == "gm":
        return s2 * r2 / (s2 + r2), (s2 / (s2 + r2)).pow(2)
    if kind == "cauchy":
        return s2 * torch.log1p(r2 / s2), 1.0 / (1.0 + r2 / s2)
    if kind == "huber":
        r = r2.clamp_min(1e-30).sqrt()
        inside = r <= scale
        return torch.where(inside, r2, 2 * scale * r - s2), torch.where(inside, torch.ones_like(r), scale / r)
    raise ValueError(f"unknown robust kernel {kind!r} (choose gm, cauchy or huber)")


def shape_jacobian(hand: nn.Module, state: PoseState) -> torch.Tensor:
    """d joints / d betas (N, 21, 3, 10): joints are affine in betas for both hand models, so a unit step is exact."""
    n = state.rot.shape[0]
    steps = torch.cat([state.betas[None], state.betas + torch.eye(10, dtype=state.betas.dtype)])  # (11, 10)
    local, _ = _euler_parts(state.angles)
    rotations = torch.cat([state.rot[:, None], local], 1).repeat(11, 1, 1, 1)
    joints = hand.forward_rotations(rotations, steps.repeat_interleave(n, 0), state.transl.repeat(11, 1)).joints
    joints = joints.unflatten(0, (11, n))
    return (joints[1:] - joints[:1]).permute(1, 2, 3, 0)


def _evidence(obs: "Observations") -> torch.Tensor:
    """(N,) bool: frames with any observation (2 or more 2D keypoints, a 3D keypoint or MANO)."""
    seen = torch.zeros(obs.num_frames, dtype=torch.bool)
    if obs.kp2d is not None:
        seen |= (obs.kp2d_weight > 0).sum(1) >= 2
    if obs.kp3d is not None:
        seen |= (obs.kp3d_weight > 0).any(1)
    if obs.kp3d_hand is not None:
        seen |= (obs.kp3d_hand_weight > 0).sum(1) >= 2
    if obs.mano_mask is not None:
        seen |= obs.mano_mask
    return seen


def _gram(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched ``a^T b`` (N, R, P) x (N, R, Q) -> (N, P, Q), in float32 (the normal equations only steer
    the step: the cost that accepts it is float64) and back."""
    return (a.transpose(1, 2).float() @ b.float()).double()


class Normal:
    """Gauss-Newton normal equations of N frames: block-banded (blocks of FRAME_DIM) plus ``border``
    variables shared by all frames (the shape, 10, or the camera scale, 1)."""

    def __init__(self, n: int, border: int = 0, banded: bool = True) -> None:
        p = FRAME_DIM
        z = lambda *s: torch.zeros(*s, dtype=torch.float64)  # noqa: E731
        self.diag, self.grad = z(n, p, p), z(n, p)
        self.off = [z(max(n - 1, 0), p, p), z(max(n - 2, 0), p, p)] if banded else None
        self.border_hess, self.border_grad, self.cross = (
            (z(border, border), z(border), z(n, p, border)) if border else (None, None, None))

    def add(self, r: torch.Tensor, jac: torch.Tensor, w: torch.Tensor, jac_border: torch.Tensor | None = None) -> None:
        """Per-frame residuals ``r`` (N, R) with Jacobian (N, R, FRAME_DIM), weights (N, R), border Jacobian (N, R, B)."""
        wj = jac * w[..., None]
        self.diag += _gram(wj, jac)
        self.grad += (wj * r[..., None]).sum(1)
        if self.cross is not None and jac_border is not None:
            self.cross += wj.transpose(1, 2) @ jac_border
            wb = jac_border * w[..., None]
            self.border_hess += torch.einsum("nra,nrb->ab", wb, jac_border)
            self.border_grad += (wb * r[..., None]).sum((0, 1))

    def add_border_prior(self, r: torch.Tensor, w: torch.Tensor) -> None:
        """Residuals that are the border variables' own values (r (B,) with weights w (B,))."""
        if self.border_hess is not None:
            self.border_hess += torch.diag(w)
            self.border_grad += w * r

    def predicted_decrease(self, d_pose: torch.Tensor, d_border: torch.Tensor | None = None) -> float:
        """Decrease of the cost the Gauss-Newton model predicts for a step: ``-(2 g.d + d^T H d)``."""
        quad = torch.einsum("na,nab,nb->", d_pose, self.diag, d_pose)
        lin = (self.grad * d_pose).sum()
        if self.off is not None:
            quad = quad + 2 * torch.einsum("na,nab,nb->", d_pose[:-1], self.off[0], d_pose[1:])
            quad = quad + 2 * torch.einsum("na,nab,nb->", d_pose[:-2], self.off[1], d_pose[2:])
        if d_border is not None and self.border_hess is not None:
            quad = quad + 2 * torch.einsum("na,nab,b->", d_pose, self.cross, d_border) + d_border @ self.border_hess @ d_border
            lin = lin + self.border_grad @ d_border
        return float(-(2 * lin + quad))

    def add_direct(self, r: torch.Tensor, w: torch.Tensor, cols: slice = slice(None)) -> None:
        """Residuals that are the update's own entries ``cols`` (Jacobian: identity), weights (N, R)."""
        idx = torch.arange(FRAME_DIM)[cols]
        self.diag[:, idx, idx] += w
        self.grad[:, idx] += w * r

    @staticmethod
    def _second_difference_back(r: torch.Tensor, n: int) -> torch.Tensor:
        """Adjoint of the second difference: (N - 2, Q) values at the centres -> (N, Q) per frame
        (the gradient of ``0.5 sum_t w |q[t-1] - 2 q[t] + q[t+1]|^2`` for ``r = w * acc``)."""
        back = r.new_zeros(n, r.shape[1])
        back[:-2] += r
        back[1:-1] -= 2 * r
        back[2:] += r
        return back

    def add_second_difference(self, q: torch.Tensor, jac: torch.Tensor, w: torch.Tensor) -> None:
        """Residuals ``q[t-1] - 2 q[t] + q[t+1]`` of a per-frame quantity q (N, Q), Jacobian (N, Q, FRAME_DIM),
        weights (N - 2, Q) per centre frame t = 1 .. N - 2."""
        n = q.shape[0]
        if n < 3:
            return
        acc = q[:-2] - 2 * q[1:-1] + q[2:]
        self.grad += (jac.transpose(1, 2) @ self._second_difference_back(w * acc, n)[..., None])[..., 0]
        # each block sums the centres it takes part in: a frame is the first, middle (x -2) and last frame of
        # three centres, a pair of neighbours shares two; three Gram products, in float32 (see _gram)
        wd = w.new_zeros(n, w.shape[1])
        wd[:-2] += w
        wd[1:-1] += 4 * w
        wd[2:] += w
        wo = w.new_zeros(n - 1, w.shape[1])
        wo[:-1] -= 2 * w
        wo[1:] -= 2 * w
        jf = jac.float()
        gram = lambda wx, x, y: ((x * wx.float()[..., None]).transpose(1, 2) @ y).double()  # noqa: E731
        self.diag += gram(wd, jf, jf)
        self.off[0] += gram(wo, jf[:-1], jf[1:])
        self.off[1] += gram(w, jf[:-2], jf[2:])

    def add_second_difference_direct(self, q: torch.Tensor, w: torch.Tensor, cols: slice) -> None:
        """Second differences of the update's own entries ``cols`` (q (N, Q) their values), weights (N - 2, Q)
        per centre frame."""
        n = q.shape[0]
        if n < 3:
            return
        idx = torch.arange(FRAME_DIM)[cols]
        self.grad[:, idx] += self._second_difference_back(w * (q[:-2] - 2 * q[1:-1] + q[2:]), n)
        self.diag[:-2, idx, idx] += w
        self.diag[1:-1, idx, idx] += 4 * w
        self.diag[2:, idx, idx] += w
        self.off[0][:-1, idx, idx] -= 2 * w
        self.off[0][1:, idx, idx] -= 2 * w
        self.off[1][:, idx, idx] += w


class Objective:
    """The refinement objective over the frames of ``obs`` for a fixed prior (the diffusion sample)."""

    def __init__(self, hand: nn.Module, obs: Observations, prior: PoseState, cfg: RefineConfig,
                 temporal: bool = True) -> None:
        self.hand, self.obs, self.prior, self.cfg, self.temporal = hand, obs, prior, cfg, temporal
        self.widen_2d = 1.0  # the 2D kernel's scale over cfg.robust_2d (graduated non-convexity)
        self.limits = torch.from_numpy(JOINT_LIMITS).flatten(0, 1)[FREE_ANGLES]  # (27, 2)
        n = prior.rot.shape[0]
        self.cam_rot, self.cam_t = obs.camera(n)
        self.pixel_scale = None
        if obs.kp2d is not None:
            # metres per pixel at the hand, fixed from the prior's depth (so the weights do not move)
            joints, _ = pose_joints(hand, prior, jacobian=False)
            depth = (torch.einsum("nij,nj->ni", self.cam_rot, joints[:, 0]) + self.cam_t)[:, 2]
            focal = 0.5 * (obs.K[0, 0] + obs.K[1, 1])
            self.pixel_scale = depth.clamp_min(MIN_DEPTH) / focal  # (N,)
        if obs.mano is not None and obs.mano_mask is not None and bool(obs.mano_mask.any()):
            self.given = PoseState.from_mano(obs.mano.numpy())
        else:
            self.given = None
        self.evidence = _evidence(obs)  # (N,) frames with any observation
        # the palm's joints move with the whole hand, which does not jump: a lighter tail than the fingers'
        self.accel_scale = torch.full((21,), cfg.robust_accel, dtype=torch.float64)
        self.accel_scale[PALM_JOINTS] = cfg.robust_accel_palm
        if obs.kp3d_hand is not None:  # frames whose palm the alignment can use; a bone needs both its ends
            self.hand3d_seen = (obs.kp3d_hand_weight[:, PALM] > 0).all(1)
            wt = obs.kp3d_hand_weight
            self.hand3d_weight = torch.minimum(wt[:, 1:], wt[:, _PARENT]) * self.hand3d_seen[:, None]
            # the palm (wrist and MCPs) is rigid with the hand, so the rotation of the detector's hand onto the
            # estimate's palm is the hand's rotation times a fixed one, fitted once on the rest palm
            eye = torch.eye(3, dtype=torch.float64).expand(16, 3, 3)
            rest = hand.forward_rotations(eye, prior.betas).joints[PALM]
            src = obs.kp3d_hand[:, PALM] - obs.kp3d_hand[:, :1]
            self.hand3d_align = umeyama(src, (rest - rest[:1]).expand_as(src), translation=False)[1]  # (N, 3, 3)

    @staticmethod
    def _smoothness(a2: torch.Tensor, scale: float, seen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cauchy cost and IRLS weight of squared accelerations at centres with evidence, quadratic elsewhere."""
        rho, irls = robust(a2, scale, "cauchy")
        return torch.where(seen, rho, a2), torch.where(seen, irls, torch.ones_like(irls))

    # ---------------------------------------------------------------- residuals
    def _reprojection(self, joints: torch.Tensor, jac: torch.Tensor | None, log_scale: torch.Tensor,
                      scale_column: bool = False):
        """Metric 2D residuals (N, 42), IRLS weights (N, 42), robust cost, Jacobian (N, 42, P) or None.

        The camera translations are scaled by ``exp(log_scale)``; ``scale_column`` appends the
        Jacobian column of that log-scale.
        """
        obs, cfg = self.obs, self.cfg
        moving = obs.cam_from_cano is not None
        cam_t = self.cam_t * log_scale.exp()
        cam = torch.einsum("nij,nkj->nki", self.cam_rot, joints) + cam_t[:, None] if moving else joints
        z = cam[..., 2:].clamp_min(MIN_DEPTH)  # (N, 21, 1)
        xy = cam[..., :2] / z
        K2 = obs.K[:2, :2]
        s = self.pixel_scale[:, None, None]
        r = (xy @ K2.T + obs.K[:2, 2] - obs.kp2d) * s  # (N, 21, 2)
        c = obs.kp2d_weight / cfg.sigma_2d**2
        rho, irls = robust(r.pow(2).sum(-1), cfg.robust_2d * self.widen_2d, cfg.robust)
        cost = float((c * rho).sum())
        w = (c * irls).repeat_interleave(2, dim=1)
        if jac is None:
            return r.flatten(1), w, cost, None
        jcam = torch.einsum("nij,nkjp->nkip", self.cam_rot, jac) if moving else jac  # (N, 21, 3, P)
        if scale_column:  # d cam / d log-scale = the scaled translation, the same for every joint
            jcam = torch.cat([jcam, cam_t[:, None, :, None].expand(-1, 21, 3, 1)], -1)
        # d(x/z, y/z) = (d[x, y] - [x/z, y/z] dz) / z, then K's 2 x 2 part, then metres at the hand
        dxy = (jcam[..., :2, :] - xy[..., None] * jcam[..., 2:, :]) * (s / z)[..., None]
        return r.flatten(1), w, cost, (K2 @ dxy).flatten(1, 2)

    def _articulation(self, joints: torch.Tensor, jac: torch.Tensor | None, state_rot: torch.Tensor):
        """Bone-direction residuals (N, 60) against a detector's hand-centred 3D: each of the 20 bones
        between the detector's keypoints (parent -> child) should point where the detector's does, once
        the detector's hand is rotated onto the estimate's palm (the hand's rotation ``state_rot`` times a
        fixed per-frame rotation, so the term sees the articulation alone). Directions, not positions, so
        the two hands' bone lengths need not agree; a bone's residual is ``v - |v| u`` (v the bone, u the
        detector's direction: metres). IRLS weights (N, 60), robust cost, Jacobian ``(I - u v^T / |v|) dv``
        plus u's turn with the hand's rotation (``|v| [u]x`` on its columns)."""
        obs, cfg = self.obs, self.cfg
        src = obs.kp3d_hand - obs.kp3d_hand[:, :1]
        R = state_rot @ self.hand3d_align
        bone = joints[:, 1:] - joints[:, _PARENT]  # (N, 20, 3)
        length = bone.norm(dim=-1, keepdim=True)
        ref = (src[:, 1:] - src[:, _PARENT]) @ R.transpose(1, 2)
        ref = ref / ref.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        r = torch.where(self.hand3d_seen[:, None, None], bone - length * ref, torch.zeros_like(bone))
        c = self.hand3d_weight / cfg.sigma_hand3d**2
        rho, irls = robust(r.pow(2).sum(-1), cfg.robust_hand3d, "cauchy")
        cost = float((c * rho).sum())
        w = (c * irls).repeat_interleave(3, dim=1)
        if jac is None:
            return r.flatten(1), w, cost, None
        jb = jac[:, 1:] - jac[:, _PARENT]  # (N, 20, 3, P)
        unit = bone / length.clamp_min(1e-9)
        jr = jb - ref[..., None] * (unit[..., None, :] @ jb)
        x, y, z = (length * ref).unbind(-1)
        zero = torch.zeros_like(x)
        skew = torch.stack([torch.stack([zero, -z, y], -1), torch.stack([z, zero, -x], -1),
                            torch.stack([-y, x, zero], -1)], -2)  # |v| [u]x: u turns with the hand
        jr = torch.cat([jr[..., :3] + skew, jr[..., 3:]], -1)
        return r.flatten(1), w, cost, jr.flatten(1, 2)

    def _two_hands(self, joints: torch.Tensor, jac: torch.Tensor | None):
        """One-sided residuals keeping an unobserved hand off the other hand (every joint pair at least
        ``hand_clearance`` apart) and within reach of it (wrists at most ``max_wrist_distance`` apart), on
        the frames ``obs.other_hand_weight`` marks: (N, 442) residuals, weights, cost, Jacobian or None."""
        obs, cfg = self.obs, self.cfg
        diff = joints[:, :, None] - obs.other_hand[:, None]  # (N, 21, 21, 3)
        dist = diff.norm(dim=-1).clamp_min(1e-9)
        near = (cfg.hand_clearance - dist).clamp_min(0).flatten(1)  # (N, 441), > 0 where too near
        wrist = dist[:, 0, 0]
        far = (wrist - cfg.max_wrist_distance).clamp_min(0)[:, None]
        r = torch.cat([-near, far], 1)  # grows with the joint pair's distance, as the wrists'
        w = (obs.other_hand_weight[:, None] * (r != 0)).expand_as(r) / cfg.sigma_two_hands**2
        cost = float((w * r * r).sum())
        if jac is None:
            return r, w, cost, None
        unit = diff / dist[..., None]  # d dist / d joint i
        j_near = (unit[..., None] * jac[:, :, None]).sum(3).flatten(1, 2)  # (N, 441, P)
        j_far = (unit[:, 0, 0, :, None] * jac[:, 0]).sum(1)[:, None]  # (N, 1, P)
        return r, w, cost, torch.cat([j_near, j_far], 1)

    def _pose_residuals(self, state: PoseState, target: PoseState, mask: torch.Tensor | None,
                        sig_rot: float, sig_ang: float, sig_tr: float):
        """Residuals pulling ``state`` toward ``target`` (N, FRAME_DIM) and their weights (Jacobian: identity)."""
        # sin(angle) * axis of the rotation between them (the angle itself near 0, cheaper than a log map)
        d = state.rot @ target.rot.transpose(1, 2)
        r_rot = 0.5 * torch.stack([d[:, 2, 1] - d[:, 1, 2], d[:, 0, 2] - d[:, 2, 0], d[:, 1, 0] - d[:, 0, 1]], 1)
        r = torch.cat([r_rot, state.free_angles() - target.free_angles(), state.transl - target.transl], 1)
        w = torch.cat([torch.full((3,), sig_rot**-2), torch.full((len(FREE_ANGLES),), sig_ang**-2),
                       torch.full((3,), sig_tr**-2)])
        w = w.to(r).expand_as(r)
        if mask is not None:
            w = w * mask[:, None].to(r)
        return r, w

    def evaluate(self, state: PoseState, normal: Normal | None = None, border: str | None = None) -> float:
        """Total cost of ``state``; with ``normal``, add every term's Gauss-Newton contribution to it,
        with ``border`` "shape" (the betas) or "scale" (the camera scale) as shared variables."""
        cfg, obs = self.cfg, self.obs
        need = normal is not None
        joints, jac = pose_joints(self.hand, state, jacobian=need)
        jac_shape = shape_jacobian(self.hand, state) if need and border == "shape" else None
        n = joints.shape[0]
        cost = 0.0
        both = jac if jac_shape is None or jac is None else torch.cat([jac, jac_shape], -1)
        points, jac_points = obs.keypoints(joints, both)  # what the detector's keypoints observe
        if obs.kp2d is not None:
            r, w, c, j2 = self._reprojection(points, jac_points, state.log_scale, need and border == "scale")
            cost += c
            if need:
                normal.add(r, j2[..., :FRAME_DIM], w, None if border is None else j2[..., FRAME_DIM:])
        if obs.kp3d is not None:
            r = (joints - obs.kp3d).flatten(1)
            w = (obs.kp3d_weight / cfg.sigma_3d**2)[..., None].expand(-1, -1, 3).flatten(1)
            cost += float((w * r * r).sum())
            if need:
                normal.add(r, jac.flatten(1, 2), w, None if jac_shape is None else jac_shape.flatten(1, 2))
        if obs.kp3d_hand is not None:
            r, w, c, jh = self._articulation(points, jac_points, state.rot)
            cost += c
            if need:
                normal.add(r, jh[..., :FRAME_DIM], w, None if jac_shape is None else jh[..., FRAME_DIM:])
        if obs.other_hand is not None and bool((obs.other_hand_weight > 0).any()):
            r, w, c, jt = self._two_hands(joints, jac)
            cost += c
            if need:
                normal.add(r, jt, w, None if jac_shape is None else self._two_hands(joints, jac_shape)[3])
        if self.given is not None:
            r, w = self._pose_residuals(state, self.given, obs.mano_mask, cfg.sigma_mano_rot, cfg.sigma_mano_rot,
                                        cfg.sigma_mano_transl)
            cost += float((w * r * r).sum())
            if need:
                normal.add_direct(r, w)
        r, w = self._pose_residuals(state, self.prior, None, cfg.sigma_prior_rot, cfg.sigma_prior_angles,
                                    cfg.sigma_prior_transl)
        cost += float((w * r * r).sum())
        if need:
            normal.add_direct(r, w)
        ang = state.free_angles()
        lo, hi = self.limits[:, 0].to(ang), self.limits[:, 1].to(ang)
        r = torch.where(ang < lo, ang - lo, torch.where(ang > hi, ang - hi, torch.zeros_like(ang)))
        w = torch.full_like(ang, cfg.sigma_limit**-2) * (r != 0)
        cost += float((w * r * r).sum())
        if need:
            normal.add_direct(r, w, ANGLES)
        if self.temporal and n >= 3:
            fps2 = obs.fps**2
            q = joints.flatten(1)
            acc = (q[:-2] - 2 * q[1:-1] + q[2:]) * fps2  # (N - 2, 63) m/s^2
            # heavy-tailed where the three frames of an acceleration have evidence (a fast movement seen is
            # let through), quadratic where any has none (nothing there justifies a jump: the sampler's window
            # joins, the last frames before a hand leaves the view)
            ev = self.evidence
            seen = (ev[:-2] & ev[1:-1] & ev[2:])[:, None]
            rho, irls = self._smoothness(acc.unflatten(1, (21, 3)).pow(2).sum(-1), self.accel_scale, seen)
            cost += float(rho.sum()) / cfg.sigma_accel**2
            wa = (irls * fps2**2 / cfg.sigma_accel**2).repeat_interleave(3, dim=1)  # per joint coordinate
            acc_ang = (ang[:-2] - 2 * ang[1:-1] + ang[2:]) * fps2  # rad/s^2
            rho, irls = self._smoothness(acc_ang.pow(2), cfg.robust_angle_accel, seen)
            cost += float(rho.sum()) / cfg.sigma_angle_accel**2
            wq = irls * fps2**2 / cfg.sigma_angle_accel**2
            if need:
                normal.add_second_difference(q, jac.flatten(1, 2), wa)
                normal.add_second_difference_direct(ang, wq, ANGLES)
        cost += float((state.betas / cfg.sigma_betas).pow(2).sum())
        if need and border == "shape":
            normal.add_border_prior(state.betas, torch.full((10,), cfg.sigma_betas**-2, dtype=torch.float64))
        if self.given is not None:  # the shape of given MANO frames
            mask = obs.mano_mask.to(torch.float64)
            diff = state.betas - obs.mano[:, 48:58]
            cost += float((mask[:, None] * diff.pow(2)).sum()) / cfg.sigma_mano_betas**2
            if need and border == "shape":
                k = float(mask.sum()) / cfg.sigma_mano_betas**2
                normal.add_border_prior((mask[:, None] * diff).sum(0) / max(float(mask.sum()), 1.0),
                                        torch.full((10,), k, dtype=torch.float64))
        cost += float(state.log_scale / cfg.sigma_log_scale) ** 2
        if need and border == "scale":
            normal.add_border_prior(state.log_scale[None], torch.full((1,), cfg.sigma_log_scale**-2, dtype=torch.float64))
        return cost


