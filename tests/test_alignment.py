"""Umeyama / Procrustes alignment: known similarity transforms, reflections, torch parity."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from unihand.geometry.alignment import apply_similarity, procrustes_align, umeyama


@pytest.fixture
def case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 21, 3)) * 0.05
    R = Rotation.random(6, random_state=1).as_matrix()
    s = rng.uniform(0.5, 2.0, size=6)
    t = rng.normal(size=(6, 3))
    y = s[:, None, None] * x @ R.transpose(0, 2, 1) + t[:, None]
    return x, y, s, R, t


def test_recovers_known_similarity(case) -> None:
    x, y, s, R, t = case
    s_hat, R_hat, t_hat = umeyama(x.astype(np.float32), y)
    assert s_hat.dtype == np.float64
    np.testing.assert_allclose(s_hat, s, rtol=1e-5)
    np.testing.assert_allclose(R_hat, R, atol=1e-5)
    np.testing.assert_allclose(t_hat, t, atol=1e-5)
    aligned, _ = procrustes_align(x, y)
    np.testing.assert_allclose(aligned, y, atol=1e-12)


def test_rigid_and_rotation_only_variants(case) -> None:
    x, y, s, R, t = case
    s1, R1, t1 = umeyama(x, y, scale=False)
    np.testing.assert_array_equal(s1, np.ones(6))
    np.testing.assert_allclose(R1, R, atol=1e-10)  # the rotation is still the right one
    y0 = x @ R.transpose(0, 2, 1)
    s2, R2, t2 = umeyama(x, y0, scale=False, translation=False)
    np.testing.assert_allclose(R2, R, atol=1e-12)
    np.testing.assert_array_equal(t2, np.zeros((6, 3)))
    s3, _, t3 = umeyama(x, 3.0 * y0, translation=False)
    np.testing.assert_allclose(s3, 3.0)
    np.testing.assert_array_equal(t3, np.zeros((6, 3)))


def test_reflection_is_not_allowed() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 3))
    y = x * np.array([-1.0, 1.0, 1.0])  # a mirror image: the best orthogonal map is a reflection
    _, R, _ = umeyama(x, y)
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)


def test_degenerate_source_gets_unit_scale() -> None:
    x = np.zeros((5, 3))
    y = np.ones((5, 3))
    aligned, (s, _, _) = procrustes_align(x, y)
    assert s == 1.0
    np.testing.assert_allclose(aligned, y)


def test_torch_matches_numpy_and_is_differentiable(case) -> None:
    x, y, *_ = case
    xt = torch.tensor(x, requires_grad=True)
    aligned_t, (s_t, R_t, t_t) = procrustes_align(xt, torch.tensor(y + 0.01))
    aligned_n, (s_n, R_n, t_n) = procrustes_align(x, y + 0.01)
    np.testing.assert_allclose(aligned_t.detach().numpy(), aligned_n, atol=1e-10)
    np.testing.assert_allclose(s_t.detach().numpy(), s_n, atol=1e-10)
    aligned_t.sum().backward()
    assert torch.isfinite(xt.grad).all()
    _, (_, R_rot, _) = procrustes_align(xt.detach(), torch.tensor(y), scale=False, translation=False)
    _, (_, R_rot_n, _) = procrustes_align(x, y, scale=False, translation=False)
    np.testing.assert_allclose(R_rot.numpy(), R_rot_n, atol=1e-10)


def test_apply_similarity_broadcasts(case) -> None:
    x, _, s, R, t = case
    out = apply_similarity(x, s, R, t)
    np.testing.assert_allclose(out[2], s[2] * x[2] @ R[2].T + t[2])
    with pytest.raises(ValueError, match="same shape"):
        umeyama(x, x[:, :5])
