"""Rotation conversions: round trips, conventions, numpy wrapper, gradients."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from unihand.geometry import rotations as rot


@pytest.fixture
def aa() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    v = torch.randn(4, 5, 3, generator=g, dtype=torch.float64)
    angles = torch.rand(4, 5, 1, generator=g, dtype=torch.float64) * 3.0  # < pi: axis-angle is unique
    return v / v.norm(dim=-1, keepdim=True) * angles


def test_axis_angle_matrix_round_trip(aa: torch.Tensor) -> None:
    R = rot.axis_angle_to_matrix(aa)
    assert R.shape == (4, 5, 3, 3)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(4, 5, 3, 3))
    torch.testing.assert_close(rot.matrix_to_axis_angle(R), aa)


def test_matches_scipy(aa: torch.Tensor) -> None:
    flat = aa.reshape(-1, 3).numpy()
    np.testing.assert_allclose(rot.axis_angle_to_matrix(aa).reshape(-1, 3, 3).numpy(), Rotation.from_rotvec(flat).as_matrix(), atol=1e-12)
    q = rot.axis_angle_to_quat(aa).reshape(-1, 4).numpy()
    q_ref = Rotation.from_rotvec(flat).as_quat()  # scipy is xyzw too
    np.testing.assert_allclose(q * np.sign(q[:, 3:]), q_ref * np.sign(q_ref[:, 3:]), atol=1e-12)


def test_rot6d_is_first_two_columns_and_round_trips(aa: torch.Tensor) -> None:
    R = rot.axis_angle_to_matrix(aa)
    six = rot.matrix_to_rot6d(R)
    assert six.shape == (4, 5, 6)
    torch.testing.assert_close(six[..., :3], R[..., :, 0])
    torch.testing.assert_close(six[..., 3:], R[..., :, 1])
    torch.testing.assert_close(rot.rot6d_to_matrix(six), R)
    torch.testing.assert_close(rot.rot6d_to_axis_angle(rot.axis_angle_to_rot6d(aa)), aa)


def test_rot6d_gram_schmidt_of_unnormalised_input() -> None:
    six = torch.tensor([2.0, 0.0, 0.0, 1.0, 3.0, 0.0])
    torch.testing.assert_close(rot.rot6d_to_matrix(six), torch.eye(3))


def test_quaternion_round_trips_and_wxyz(aa: torch.Tensor) -> None:
    R = rot.axis_angle_to_matrix(aa)
    q = rot.matrix_to_quat(R)
    torch.testing.assert_close(rot.quat_to_matrix(q), R)
    torch.testing.assert_close(rot.quat_to_matrix(3.0 * q), R)  # normalised first
    torch.testing.assert_close(rot.quat_to_axis_angle(rot.axis_angle_to_quat(aa)), aa)
    q_wxyz = rot.matrix_to_quat_wxyz(R)
    torch.testing.assert_close(q_wxyz[..., 0], q[..., 3])
    torch.testing.assert_close(rot.quat_wxyz_to_matrix(q_wxyz), R)
    torch.testing.assert_close(rot.wxyz_to_xyzw(rot.xyzw_to_wxyz(q)), q)


def test_known_rotation() -> None:
    R = rot.axis_angle_to_matrix(torch.tensor([0.0, 0.0, np.pi / 2], dtype=torch.float64))
    torch.testing.assert_close(R @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    q = rot.quat_wxyz_to_matrix(torch.tensor([np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)], dtype=torch.float64))
    torch.testing.assert_close(q, R)


def test_compose_axis_angle(aa: torch.Tensor) -> None:
    R = rot.axis_angle_to_matrix(aa[0, 0])
    out = rot.compose_axis_angle(R, aa[1])
    torch.testing.assert_close(rot.axis_angle_to_matrix(out), R @ rot.axis_angle_to_matrix(aa[1]))


def test_numpy_in_numpy_out_keeps_dtype() -> None:
    x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    R = rot.axis_angle_to_matrix(x)
    assert isinstance(R, np.ndarray) and R.dtype == np.float32 and R.shape == (7, 3, 3)
    np.testing.assert_allclose(rot.matrix_to_axis_angle(R.astype(np.float64)), rot.matrix_to_axis_angle(R), atol=1e-5)


def test_differentiable_including_zero_rotation() -> None:
    x = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    rot.axis_angle_to_rot6d(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    y = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    rot.rot6d_to_axis_angle(y).sum().backward()
    assert torch.isfinite(y.grad).all()


def test_axis_angle_continuous_in_time_through_pi() -> None:
    axis = np.array([0.0, 0.6, 0.8])
    seq = np.outer(np.linspace(2.6, 3.8, 40), axis)  # a turn through 180 degrees
    R = rot.axis_angle_to_matrix(np.stack([seq, -seq[::-1]]))  # (2, 40, 3, 3): two time series
    cont = rot.matrix_to_axis_angle_continuous(R)
    assert cont.shape == (2, 40, 3)
    np.testing.assert_allclose(cont[0], seq, atol=1e-9)
    # the second starts beyond pi: frame 0 is taken in [0, pi], the rest follow it continuously
    np.testing.assert_allclose(cont[1], 2 * np.pi * axis - seq[::-1], atol=1e-9)
    assert np.linalg.norm(cont[1, 0]) < np.pi
    np.testing.assert_allclose(rot.axis_angle_to_matrix(cont), R, atol=1e-12)
