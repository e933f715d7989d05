"""Pinhole projection, intrinsics from FoV, keypoint normalisation and validation."""

import math

import numpy as np
import pytest
import torch

from unihand.errors import UserError
from unihand.geometry import camera


K = np.array([[500.0, 0.0, 320.0], [0.0, 400.0, 240.0], [0.0, 0.0, 1.0]])


def test_project_known_point() -> None:
    px = camera.project(np.array([0.1, -0.2, 2.0]), K)
    np.testing.assert_allclose(px, [500 * 0.05 + 320, 400 * -0.1 + 240])


def test_project_batched_per_frame_K_and_torch() -> None:
    pts = torch.rand(4, 21, 3, dtype=torch.float64) + torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)
    Ks = torch.as_tensor(K).expand(4, 3, 3).clone()
    Ks[:, 0, 0] = torch.tensor([300.0, 400.0, 500.0, 600.0], dtype=torch.float64)
    px = camera.project(pts, Ks[:, None])
    assert px.shape == (4, 21, 2)
    expected_u = Ks[:, 0, 0, None] * pts[..., 0] / pts[..., 2] + 320.0
    torch.testing.assert_close(px[..., 0], expected_u)


def test_behind_camera_is_finite_and_flagged() -> None:
    pts = torch.tensor([[0.1, 0.1, 1.0], [0.1, 0.1, -1.0], [0.0, 0.0, 0.0], [5.0, 0.0, 1.0]], requires_grad=True)
    px, valid = camera.project_valid(pts, torch.as_tensor(K, dtype=torch.float32), image_size=(640, 480))
    assert torch.isfinite(px).all()
    assert valid.tolist() == [True, False, False, False]  # the last one lands at u = 2820, outside
    px.sum().backward()
    assert torch.isfinite(pts.grad).all()
    _, valid_no_size = camera.project_valid(pts.detach().numpy(), K.astype(np.float32))
    assert valid_no_size.tolist() == [True, False, False, True]


def test_normalize_round_trip() -> None:
    px = np.array([[0.0, 0.0], [640.0, 480.0], [320.0, 120.0]], dtype=np.float32)
    n = camera.normalize_keypoints(px, np.array([640, 480]))
    np.testing.assert_allclose(n, [[0, 0], [1, 1], [0.5, 0.25]])
    assert n.dtype == np.float32
    np.testing.assert_allclose(camera.denormalize_keypoints(n, (640, 480)), px)


def test_intrinsics_from_horizontal_fov() -> None:
    Kf = camera.intrinsics_from_fov(90.0, 640, 480)
    assert Kf[0, 0] == pytest.approx(320.0) and Kf[1, 1] == pytest.approx(320.0)
    assert (Kf[0, 2], Kf[1, 2]) == (319.5, 239.5)
    # a point on the FoV edge projects onto the image's left/right border
    edge = camera.project(np.array([math.tan(math.radians(45.0)), 0.0, 1.0]), Kf)
    assert edge[0] == pytest.approx(639.5)
    with pytest.raises(ValueError):
        camera.intrinsics_from_fov(180.0, 640, 480)


def test_check_intrinsics_and_image_size() -> None:
    assert camera.check_intrinsics(K).dtype == np.float64
    for bad, word in [(np.eye(2), "shape"), (np.full((3, 3), np.nan), "NaN"), (K * 2, "last row"), (np.diag([-1.0, 1.0, 1.0]), "focal")]:
        with pytest.raises(UserError, match=word):
            camera.check_intrinsics(bad, where="cam.npz")
    assert camera.check_image_size(np.array([640, 480])) == (640, 480)
    assert camera.check_image_size(torch.tensor([640.0, 480.0])) == (640, 480)
    for bad in [np.array([640]), np.array([640.5, 480]), np.array([0, 480])]:
        with pytest.raises(UserError, match="image_size"):
            camera.check_image_size(bad)


# --- canonical frame (unihand.geometry.canonical) ---------------------------------------------

from scipy.spatial.transform import Rotation  # noqa: E402

from unihand.geometry import canonical  # noqa: E402
from unihand.geometry.rotations import axis_angle_to_matrix  # noqa: E402


def _random_transforms(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return canonical.make_transform(Rotation.random(n, random_state=seed).as_matrix(), rng.normal(size=(n, 3)))


def test_known_rigid_transform_and_inverse() -> None:
    T = canonical.make_transform(axis_angle_to_matrix(np.array([0.0, 0.0, np.pi / 2])), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(canonical.transform_points(np.array([1.0, 0.0, 0.0]), T), [1.0, 3.0, 3.0], atol=1e-15)
    np.testing.assert_allclose(canonical.rigid_inverse(T) @ T, np.eye(4), atol=1e-15)


def test_static_camera_gives_identity() -> None:
    T = np.repeat(_random_transforms(1, 0), 5, axis=0)
    np.testing.assert_allclose(canonical.canonical_from_camera(T), np.broadcast_to(np.eye(4), (5, 4, 4)), atol=1e-12)
    pts = np.random.default_rng(1).normal(size=(5, 21, 3))
    np.testing.assert_allclose(canonical.points_to_canonical(pts, T, source="camera"), pts, atol=1e-12)


def test_moving_camera_to_canonical_matches_definition() -> None:
    T_wc = _random_transforms(4, 3)  # camera i -> world
    p_world = np.random.default_rng(4).normal(size=(4, 21, 3))
    p_cam = np.stack([canonical.transform_points(p_world[i], canonical.rigid_inverse(T_wc[i])) for i in range(4)])
    expected = canonical.transform_points(p_world, np.linalg.inv(T_wc[0]))  # p_cano = T_world->cam1 p_world
    np.testing.assert_allclose(canonical.points_to_canonical(p_cam, T_wc, source="camera"), expected, atol=1e-12)
    np.testing.assert_allclose(canonical.points_to_canonical(p_world, T_wc, source="world"), expected, atol=1e-12)
    np.testing.assert_allclose(canonical.points_to_canonical(p_cam, T_wc, source="camera")[0], p_cam[0], atol=1e-12)
    with pytest.raises(ValueError, match="source"):
        canonical.points_to_canonical(p_cam, T_wc, source="image")


def _toy_hand(orient: torch.Tensor, transl: torch.Tensor, rest: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
    """Joints of a rigid hand that, like MANO, rotates its rest joints (J, 3) about the root."""
    R = axis_angle_to_matrix(orient)
    return (rest - root) @ R.transpose(-1, -2) + root + transl[..., None, :]


def test_mano_transform_moves_hand_like_its_points() -> None:
    g = torch.Generator().manual_seed(5)
    rest = torch.randn(21, 3, generator=g, dtype=torch.float64) * 0.05
    root = rest[0]
    orient = torch.randn(6, 3, generator=g, dtype=torch.float64)
    transl = torch.randn(6, 3, generator=g, dtype=torch.float64)
    T_wc = torch.as_tensor(_random_transforms(6, 6))
    joints_world = _toy_hand(orient, transl, rest, root)
    go_c, tr_c = canonical.mano_to_canonical(orient, transl, root, T_wc, source="world")
    torch.testing.assert_close(_toy_hand(go_c, tr_c, rest, root), canonical.points_to_canonical(joints_world, T_wc))
    go_k, tr_k = canonical.mano_to_canonical(orient, transl, root.expand(6, 3), T_wc, source="camera")
    torch.testing.assert_close(_toy_hand(go_k, tr_k, rest, root), canonical.points_to_canonical(joints_world, T_wc, source="camera"))


def test_canonical_is_differentiable() -> None:
    T_wc = torch.as_tensor(_random_transforms(3, 7)).requires_grad_(True)
    pts = torch.randn(3, 21, 3, dtype=torch.float64)
    canonical.points_to_canonical(pts, T_wc, source="camera").sum().backward()
    assert torch.isfinite(T_wc.grad).all()


def test_rescaled_intrinsics_project_to_rescaled_pixels() -> None:
    K = np.array([[800.0, 0.0, 639.5], [0.0, 790.0, 359.5], [0.0, 0.0, 1.0]])
    pts = np.array([[0.1, -0.2, 1.5], [-0.3, 0.25, 0.8]])
    for s in (0.5, 1 / 3, 2.0):
        np.testing.assert_allclose(camera.project(pts, camera.rescale_K(K, s)),
                                   camera.rescale_pixels(camera.project(pts, K), s), atol=1e-9)
    # the image centre stays the centre: 1280 -> 640 pixels wide
    np.testing.assert_allclose(camera.rescale_pixels(np.array([639.5, 359.5]), 0.5), [319.5, 179.5])
