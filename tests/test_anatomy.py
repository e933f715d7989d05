"""Anatomical angles <-> MANO hand_pose: round trips, directions of motion, limits."""

import numpy as np
import pytest
import torch

from unihand.hand.anatomy import (
    JOINT_LIMITS,
    JOINT_LIMITS_DEG,
    angles_to_hand_pose,
    hand_pose_to_angles,
    limit_violation,
)
from unihand.hand.joints import OPENPOSE_FINGERS
from unihand.hand.kinematic import KinematicHand

# MANO finger order (index, middle, little, ring, thumb) -> OpenPose fingertip index.
TIPS = {f: OPENPOSE_FINGERS[op][-1] for f, op in enumerate((1, 2, 4, 3, 0))}


def random_angles(n: int, seed: int = 0) -> torch.Tensor:
    lim = torch.from_numpy(JOINT_LIMITS)
    u = torch.rand(n, 15, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return lim[..., 0] + (lim[..., 1] - lim[..., 0]) * u


def tip_motion(hand: KinematicHand, joint: int, axis: int, angle: float) -> torch.Tensor:
    """Displacement of the joint's fingertip when one angle of one joint is set."""
    angles = torch.zeros(15, 3, dtype=torch.float64)
    angles[joint, axis] = angle
    tip = TIPS[joint // 3]
    pose = angles_to_hand_pose(angles, is_right=hand.is_right)
    return hand(hand_pose=pose).joints[tip] - hand(hand_pose=torch.zeros(45, dtype=torch.float64)).joints[tip]


def test_zero_angles_are_the_flat_hand():
    assert torch.equal(angles_to_hand_pose(torch.zeros(15, 3)), torch.zeros(45))


@pytest.mark.parametrize("is_right", [True, False])
def test_round_trip_within_limits(is_right):
    angles = random_angles(500)
    pose = angles_to_hand_pose(angles, is_right=is_right)
    assert pose.shape == (500, 45)
    assert torch.allclose(hand_pose_to_angles(pose, is_right=is_right), angles, atol=1e-9)
    assert not limit_violation(pose, is_right=is_right).any()


def test_numpy_in_numpy_out():
    angles = random_angles(4).numpy().astype(np.float32)
    pose = angles_to_hand_pose(angles)
    assert isinstance(pose, np.ndarray) and pose.dtype == np.float32 and pose.shape == (4, 45)
    np.testing.assert_allclose(pose, angles_to_hand_pose(torch.from_numpy(angles).double()).numpy(), atol=1e-6)
    back = hand_pose_to_angles(pose)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, angles, atol=1e-5)
    viol = limit_violation(pose)
    assert viol.dtype == np.bool_ and viol.shape == (4,)


@pytest.mark.parametrize("is_right", [True, False])
def test_numpy_path_equals_torch(is_right):
    """The numpy (scipy) conversion, the synthetic generator's, equals the torch (roma) one."""
    rng = np.random.default_rng(0)
    for angles in (random_angles(256).numpy().reshape(4, 64, 15, 3), rng.uniform(-3.0, 3.0, size=(256, 15, 3))):
        fast = angles_to_hand_pose(angles, is_right=is_right)
        ref = angles_to_hand_pose(torch.from_numpy(angles), is_right=is_right).numpy()
        assert fast.shape == angles.shape[:-2] + (45,)
        np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)


def test_left_hand_pose_is_the_mirrored_right_pose():
    angles = random_angles(3)
    right = angles_to_hand_pose(angles).view(3, 15, 3)
    left = angles_to_hand_pose(angles, is_right=False).view(3, 15, 3)
    assert torch.equal(left, right * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))


@pytest.mark.parametrize("is_right", [True, False])
@pytest.mark.parametrize("joint", range(15))
def test_positive_flexion_curls_toward_the_palm(is_right, joint):
    hand = KinematicHand(is_right=is_right)
    move = tip_motion(hand, joint, axis=0, angle=0.4)
    assert move[1] < -2e-3  # palm faces -y (MANO rest layout)
    if joint >= 12:  # the thumb curls across the palm, toward the little finger (-z)
        assert move[2] < -2e-3


@pytest.mark.parametrize("is_right", [True, False])
@pytest.mark.parametrize("joint", [0, 3, 6, 9])
def test_positive_abduction_moves_toward_the_thumb(is_right, joint):
    move = tip_motion(KinematicHand(is_right=is_right), joint, axis=1, angle=0.2)
    assert move[2] > 2e-3  # thumb side is +z for both hands (the mirror flips x only)
    assert abs(move[1]) < 1e-9  # in the palm plane


def test_gradients_flow_through_the_mapping():
    angles = random_angles(2).requires_grad_()
    angles_to_hand_pose(angles).square().sum().backward()
    assert torch.isfinite(angles.grad).all() and angles.grad.abs().sum() > 0


def test_limits_table():
    assert JOINT_LIMITS.shape == (15, 3, 2)
    assert (JOINT_LIMITS[..., 0] < JOINT_LIMITS[..., 1]).all()
    np.testing.assert_allclose(np.rad2deg(JOINT_LIMITS), JOINT_LIMITS_DEG)
    for finger in range(4):
        mcp, pip, dip = JOINT_LIMITS_DEG[3 * finger: 3 * finger + 3]
        assert tuple(mcp[0]) == (-20, 90) and tuple(mcp[1]) == (-20, 20)
        assert tuple(pip[0]) == (0, 110) and tuple(dip[0]) == (0, 90)
        assert np.abs(pip[1:]).max() <= 5 and np.abs(dip[1:]).max() <= 5


def test_limit_violation_per_frame_and_tolerance():
    angles = torch.zeros(3, 15, 3, dtype=torch.float64)
    angles[1, 1, 0] = np.deg2rad(-10)  # PIP hyperextended by 10 degrees
    angles[2, 4, 0] = np.deg2rad(110.5)  # PIP flexed 0.5 degree past its limit
    pose = angles_to_hand_pose(angles)
    assert limit_violation(pose).tolist() == [False, True, False]
    assert limit_violation(pose, tol_deg=0.0).tolist() == [False, True, True]
    assert limit_violation(pose, tol_deg=15.0).tolist() == [False, False, False]
