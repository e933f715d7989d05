"""Left/right mirroring: conventions, consistency with projection, and exact involution."""

import numpy as np
import pytest
import torch

from unihand.hand.joints import MANO_SLICES
from unihand.geometry import mirror
from unihand.geometry.camera import intrinsics_from_fov, project

W = 640


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Same float64 bits; -0.0 counts as 0.0 (both flip to W - 1, so the sign of a zero cannot survive)."""
    a, b = np.asarray(a, dtype=np.float64) + 0.0, np.asarray(b, dtype=np.float64) + 0.0
    return a.shape == b.shape and np.array_equal(a.view(np.uint64), b.view(np.uint64))


def test_image_flip() -> None:
    img = np.arange(2 * 3 * 4 * 3).reshape(2, 3, 4, 3)  # (B, H, W, C)
    out = mirror.mirror_image(img)
    np.testing.assert_array_equal(out[:, :, 0], img[:, :, 3])  # x -> W - 1 - x
    np.testing.assert_array_equal(mirror.mirror_image(out), img)
    chw = torch.as_tensor(img).permute(0, 3, 1, 2)
    torch.testing.assert_close(mirror.mirror_image(chw, layout="CHW").permute(0, 2, 3, 1), torch.as_tensor(out))
    np.testing.assert_array_equal(mirror.mirror_image(img[..., 0], layout="HW"), out[..., 0])


def test_keypoint_flips_values_and_consistency() -> None:
    px = np.array([[0.0, 5.0], [639.0, 7.0], [100.25, 1.0]], dtype=np.float32)
    out = mirror.mirror_keypoints_2d(px, W)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[639.0, 5.0], [0.0, 7.0], [538.75, 1.0]])
    n = px / np.array([W, 480.0])
    np.testing.assert_allclose(mirror.mirror_keypoints_2d_normalized(n, W) * [W, 480], out, atol=1e-9)


def test_mirrored_points_project_to_mirrored_pixels() -> None:
    rng = np.random.default_rng(0)
    p = rng.normal(size=(50, 3)) * [0.2, 0.2, 0.1] + [0, 0, 1.0]
    K = intrinsics_from_fov(60.0, W, 480)  # centred: mirroring needs no K change
    np.testing.assert_allclose(project(mirror.mirror_points(p), K), mirror.mirror_keypoints_2d(project(p, K), W), atol=1e-9)
    K_off = K.copy()
    K_off[0, 1:] = [3.0, 300.0]  # skew and an off-centre principal point
    np.testing.assert_allclose(
        project(mirror.mirror_points(p), mirror.mirror_intrinsics(K_off, W)),
        mirror.mirror_keypoints_2d(project(p, K_off), W), atol=1e-9,
    )


def test_mano_conventions() -> None:
    rng = np.random.default_rng(1)
    go, hp, betas, tr = (rng.normal(size=(4, d)).astype(np.float32) for d in (3, 45, 10, 3))
    go_m, hp_m, betas_m, tr_m = mirror.mirror_mano(go, hp, betas, tr)
    np.testing.assert_array_equal(go_m, go * [1, -1, -1])
    np.testing.assert_array_equal(hp_m.reshape(4, 15, 3), hp.reshape(4, 15, 3) * [1, -1, -1])
    np.testing.assert_array_equal(betas_m, betas)
    np.testing.assert_array_equal(tr_m, tr * [-1, 1, 1])
    vec = np.concatenate([go, hp, betas, tr], axis=-1)
    vec_m = mirror.mirror_mano_vector(vec)
    assert vec_m.dtype == np.float32
    for part, arr in zip(MANO_SLICES, (go_m, hp_m, betas_m, tr_m)):
        np.testing.assert_array_equal(vec_m[:, MANO_SLICES[part]], arr)
    with pytest.raises(ValueError, match="61"):
        mirror.mirror_mano_vector(vec[:, :60])
    with pytest.raises(ValueError, match="multiple of 3"):
        mirror.mirror_axis_angle(vec[:, :4])


def test_torch_inputs_stay_torch_and_differentiable() -> None:
    x = torch.randn(5, 61, requires_grad=True)
    mirror.mirror_mano_vector(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.as_tensor(mirror.mirror_mano_vector(np.ones((1, 61), np.float32)))[0].expand(5, 61))
    kp = torch.rand(5, 21, 2)
    out = mirror.mirror_keypoints_2d_normalized(kp, W)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    torch.testing.assert_close(mirror.mirror_keypoints_2d_normalized(out, W), kp.double(), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mirror_twice_is_identity_bitwise(dtype: type) -> None:
    rng = np.random.default_rng(2)
    px = rng.uniform(-200, W + 200, size=(1000, 21, 2)).astype(dtype)
    px[0, :3, 0] = [0.0, -0.0, 1e-3]
    norm = rng.uniform(-0.5, 1.5, size=(1000, 21, 2)).astype(dtype)
    pts = rng.normal(size=(1000, 21, 3)).astype(dtype)
    mano = rng.normal(size=(1000, 61)).astype(dtype)
    if dtype == np.float64:  # float64 values that carry float32 precision (see mirror's module doc)
        px, norm = px.astype(np.float32).astype(np.float64), norm.astype(np.float32).astype(np.float64)
    for width in (W, 1920, 4097):
        assert _bits_equal(mirror.mirror_keypoints_2d(mirror.mirror_keypoints_2d(px, width), width), px)
        assert _bits_equal(mirror.mirror_keypoints_2d_normalized(mirror.mirror_keypoints_2d_normalized(norm, width), width), norm)
    for fn in (mirror.mirror_points, mirror.mirror_axis_angle, mirror.mirror_mano_vector):
        x = {mirror.mirror_points: pts, mirror.mirror_axis_angle: pts, mirror.mirror_mano_vector: mano}[fn]
        twice = fn(fn(x))
        assert twice.dtype == dtype and np.array_equal(twice.view(np.uint8), x.view(np.uint8))


def test_full_precision_float64_round_trips_to_one_ulp() -> None:
    px = np.random.default_rng(3).uniform(0, W, size=(1000, 2))
    twice = mirror.mirror_keypoints_2d(mirror.mirror_keypoints_2d(px, W), W)
    assert np.max(np.abs(twice - px)) <= np.spacing(float(W))
