"""Refinement against the observations: numbers, not shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unihand.data.io import Conditions
from unihand.data.synthetic.world import SynthConfig, SyntheticWorld
from unihand.errors import UserError
from unihand.eval.metrics import bone_lengths, window_join_ratio
from unihand.geometry.camera import project
from unihand.hand import angles_to_hand_pose, fk_numpy, hand_pose_to_angles, load_hand_model
from unihand.pipeline import UniHandModel, condition_arrays, make_scheduler
from unihand.pipeline.windows import generate_windows
from unihand.refine.kinematics import FRAME_DIM, FREE_ANGLES, PoseState, pose_joints
from unihand.refine.objective import RefineConfig
from unihand.refine.refiner import Refiner

from sampling import sample

HAND = load_hand_model(None, is_right=True)


@pytest.fixture(scope="module")
def model() -> UniHandModel:
    return UniHandModel.from_pretrained()


def _sequence(index: int = 0, frames: int = 32):
    return SyntheticWorld(1000, SynthConfig(left_p=0.0, moving_camera_p=0.0, frames=frames, exit_p=0.0)).sequence(index)


def _clean_2d(seq) -> dict[str, np.ndarray]:
    """Noise-free 2D of every joint of every frame, as the pipeline hands them to the refiner."""
    c = seq.conditions
    px = project(seq.motion.joints.astype(np.float64), c.K.astype(np.float64))
    cond = Conditions(kp2d=(px / c.image_size).astype(np.float32), kp2d_mask=np.ones(px.shape[:2], bool),
                      K=c.K, image_size=c.image_size, fps=c.fps)
    return condition_arrays(cond, seq.num_frames)


def _perturbed(seq, rng: np.random.Generator) -> np.ndarray:
    """The true motion, 15 degrees and 7 cm off, the mean shape, finger angles off by ~9 degrees per
    frame in the degrees of freedom the refinement moves (the hinge joints' flexion, all three at MCPs)."""
    mano = seq.motion.mano().astype(np.float64)
    mano[:, :3] += rng.normal(0, 0.15, 3)
    angles = hand_pose_to_angles(mano[:, 3:48]).reshape(len(mano), 45)
    angles[:, FREE_ANGLES] += rng.normal(0, 0.15, (len(mano), len(FREE_ANGLES)))
    mano[:, 3:48] = angles_to_hand_pose(angles.reshape(-1, 15, 3))
    mano[:, 58:] += np.array([0.03, -0.02, 0.06])
    mano[:, 48:58] = 0.0
    return mano.astype(np.float32)


def _reprojection(mano: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
    joints = fk_numpy(HAND, mano)[0]
    return np.linalg.norm(project(joints.astype(np.float64), arrays["K"].astype(np.float64))
                          - arrays["kp2d"] * arrays["image_size"], axis=-1)


def test_joint_jacobian_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    mano = np.zeros((4, 61))
    mano[:, :3], mano[:, 3:48], mano[:, 48:58] = rng.normal(0, 1, (4, 3)), rng.normal(0, 0.4, (4, 45)), rng.normal(0, 1, (4, 10))
    mano[:, 58:] = [0.0, 0.0, 0.5]
    state = PoseState.from_mano(mano)
    _, jac = pose_joints(HAND, state)
    eps = 1e-6
    for k in range(FRAME_DIM):
        d = torch.zeros(4, FRAME_DIM, dtype=torch.float64)
        d[:, k] = eps
        num = (pose_joints(HAND, state.step(d), False)[0] - pose_joints(HAND, state.step(-d), False)[0]) / (2 * eps)
        torch.testing.assert_close(jac[..., k], num, atol=1e-8, rtol=0)


def test_refinement_pulls_a_perturbed_motion_onto_clean_2d_below_one_pixel() -> None:
    seq = _sequence(1)
    arrays = _clean_2d(seq)
    start = _perturbed(seq, np.random.default_rng(3))
    before = _reprojection(start, arrays)
    out = Refiner(HAND)(start, arrays, seq.motion.fps)
    after = _reprojection(out, arrays)
    assert np.median(before) > 20.0
    assert after.mean() < 1.0


def test_masked_joints_exert_no_pull() -> None:
    seq = _sequence(2)
    arrays = _clean_2d(seq)
    start = _perturbed(seq, np.random.default_rng(4))
    mask = arrays["kp2d_mask"].copy()
    mask[::3, 8] = False  # the index tip on every third frame
    mask[10:14] = False  # four frames without any 2D
    outs = []
    for junk in (0.0, 0.9):
        a = dict(arrays, kp2d_mask=mask, kp2d=np.where(mask[..., None], arrays["kp2d"], junk).astype(np.float32))
        outs.append(Refiner(HAND)(start, a, seq.motion.fps))
    np.testing.assert_array_equal(outs[0], outs[1])
    # a zero confidence is a mask too
    conf = np.where(mask, 1.0, 0.0).astype(np.float32)
    a = dict(arrays, kp2d_conf=conf, kp2d=np.where(mask[..., None], arrays["kp2d"], 0.5).astype(np.float32))
    np.testing.assert_allclose(Refiner(HAND)(start, a, seq.motion.fps), outs[0], atol=1e-6)


def test_with_nothing_observed_the_sample_keeps_its_motion() -> None:
    """An unconditional sample has no evidence to move toward: the refinement removes jitter and keeps
    the movement (it used to flatten a smooth motion to about half its speed)."""
    seq = _sequence(3, frames=48)
    true = seq.motion.mano().astype(np.float32)
    jitter = true.copy()
    jitter[:, 58:] += np.random.default_rng(0).normal(0, 0.002, (len(true), 3)).astype(np.float32)  # 2 mm
    arrays = condition_arrays(Conditions(fps=seq.motion.fps), len(true))
    speed = lambda m: float(np.linalg.norm(np.diff(fk_numpy(HAND, m)[0], axis=0), axis=-1).mean())  # noqa: E731
    accel = lambda m: float(np.linalg.norm(np.diff(fk_numpy(HAND, m)[0], 2, axis=0), axis=-1).mean())  # noqa: E731
    out = Refiner(HAND)(jitter, arrays, seq.motion.fps)
    assert 0.85 * speed(true) < speed(out) < 1.15 * speed(true)
    assert accel(out) < 0.5 * accel(jitter)  # the jitter is gone
    flat = Refiner(HAND, RefineConfig(unobserved_prior=1.0))(jitter, arrays, seq.motion.fps)
    assert speed(flat) < speed(out)


def test_one_shape_per_sequence_and_constant_bones(model: UniHandModel) -> None:
    seq = _sequence(3, frames=48)
    c = seq.conditions
    out = sample(model, Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask, kp2d_conf=c.kp2d_conf, K=c.K,
                                    image_size=c.image_size, fps=c.fps), seed=0)
    assert np.ptp(out.betas, axis=0).max() == 0.0
    assert 1000 * bone_lengths(out.joints).std(axis=0).max() < 0.5
    pure = sample(model, Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask, K=c.K, image_size=c.image_size), refine=False)
    assert np.ptp(pure.betas, axis=0).max() > 1e-3  # the sample alone changes shape from frame to frame


def test_refine_off_gives_exactly_the_pure_sample(model: UniHandModel) -> None:
    seq = _sequence(4, frames=40)
    c = seq.conditions
    cond = Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask, K=c.K, image_size=c.image_size, fps=c.fps)
    arrays = condition_arrays(cond, 40)
    pure = generate_windows(model, make_scheduler(model), arrays, 40, generator=torch.Generator().manual_seed(7))[0]
    np.testing.assert_array_equal(sample(model, cond, seed=7, refine=False).mano(), pure)
    assert np.abs(sample(model, cond, seed=7).mano() - pure).max() > 1e-2


def test_given_mano_comes_back_and_3d_keypoints_are_met(model: UniHandModel) -> None:
    seq = _sequence(5)
    n = seq.num_frames
    known = np.zeros(n, bool)
    known[[0, 1, 2, n - 3, n - 2, n - 1]] = True
    base = dict(K=seq.conditions.K, image_size=seq.conditions.image_size, fps=seq.motion.fps)
    out = sample(model, Conditions(mano=seq.motion.mano(), mano_mask=known, **base), seed=0)
    pose = np.r_[0:48, 58:61]
    np.testing.assert_allclose(out.mano()[known][:, pose], seq.motion.mano()[known][:, pose], atol=1e-6)
    lift = Conditions(kp3d=seq.motion.joints, kp3d_mask=np.ones((n, 21), bool), **base)
    err = np.linalg.norm(sample(model, lift, seed=0).joints - seq.motion.joints, axis=-1).mean()
    raw = np.linalg.norm(sample(model, lift, seed=0, refine=False).joints - seq.motion.joints, axis=-1).mean()
    assert err < 0.002 < raw


def test_no_seam_at_window_joins(model: UniHandModel) -> None:
    seq = _sequence(6, frames=144)  # 5 overlapping windows of 48
    c = seq.conditions
    cond = Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask, kp2d_conf=c.kp2d_conf, K=c.K, image_size=c.image_size,
                      fps=c.fps)
    refined = sample(model, cond, seed=0).joints
    pure = sample(model, cond, seed=0, refine=False).joints
    assert window_join_ratio(refined, c.fps, 48, 16) <= 1.5 < window_join_ratio(pure, c.fps, 48, 16)


def test_chunked_refinement_is_seamless_and_matches_one_solve() -> None:
    seq = _sequence(7, frames=96)
    arrays = _clean_2d(seq)
    start = _perturbed(seq, np.random.default_rng(5))
    whole = Refiner(HAND)(start, arrays, seq.motion.fps)
    cfg = RefineConfig(chunk=40, overlap=16)  # three chunks
    chunked = Refiner(HAND, cfg)(start, arrays, seq.motion.fps)
    j_whole, j_chunked = fk_numpy(HAND, whole)[0], fk_numpy(HAND, chunked)[0]
    assert np.linalg.norm(j_whole - j_chunked, axis=-1).mean() < 0.002
    assert _reprojection(chunked, arrays).mean() < 1.1 * _reprojection(whole, arrays).mean()
    acc = np.linalg.norm(j_chunked[2:] - 2 * j_chunked[1:-1] + j_chunked[:-2], axis=-1).max(-1)
    joins = [40 - 8, 40 - 8 + 40 - 16]  # where each later chunk takes over
    near = np.concatenate([acc[j - 3 : j + 2] for j in joins])
    assert near.max() <= 1.5 * np.percentile(acc, 95)


def test_pixels_instead_of_normalised_keypoints_and_bad_confidence_are_one_line_errors(model: UniHandModel) -> None:
    seq = _sequence(0, frames=16)
    c = seq.conditions
    with pytest.raises(UserError, match="normalised to \\[0, 1\\].*pixels"):
        Conditions(kp2d=c.kp2d * c.image_size, kp2d_mask=c.kp2d_mask, K=c.K, image_size=c.image_size)
    ok = Conditions.from_pixels(c.kp2d * c.image_size, c.image_size, kp2d_mask=c.kp2d_mask, K=c.K)
    np.testing.assert_allclose(ok.kp2d, c.kp2d, atol=1e-6)
    ok.kp2d = ok.kp2d * c.image_size  # set after construction: generate checks again
    with pytest.raises(UserError, match="pixels"):
        sample(model, ok)
    with pytest.raises(UserError, match="confidences are expected in \\[0, 1\\]"):
        Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask, kp2d_conf=np.full((16, 21), 1.5, np.float32), K=c.K,
                   image_size=c.image_size)


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_very_short_inputs_give_finite_motions(model: UniHandModel, frames: int) -> None:
    """1, 2 and 3 frames: the per-sequence arrays (K, image size) are not padded as if they were frames."""
    rng = np.random.default_rng(frames)
    cond = Conditions(kp2d=(0.5 + rng.normal(0, 0.05, (frames, 21, 2))).astype(np.float32), image_size=np.array([640, 480]),
                      K=np.array([[500, 0, 320], [0, 500, 240], [0, 0, 1]], np.float32))
    motion = sample(model, cond)
    assert motion.joints.shape == (frames, 21, 3) and np.isfinite(motion.joints).all()


@pytest.mark.parametrize("value", [0.5, 0.0])
def test_degenerate_2d_keypoints_do_not_reach_opencv(model: UniHandModel, value: float) -> None:
    """Every joint at one point (or zero-filled frames left unmasked): no placement, no OpenCV assertion."""
    cond = Conditions(kp2d=np.full((8, 21, 2), value, np.float32), image_size=np.array([640, 480]),
                      K=np.array([[500, 0, 320], [0, 500, 240], [0, 0, 1]], np.float32))
    assert np.isfinite(sample(model, cond).joints).all()
