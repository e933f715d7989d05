"""Synthetic world: determinism, anatomy, smoothness, cameras, conditions, occlusion, rendering."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from unihand.data.synthetic import SynthConfig, SyntheticWorld
from unihand.data.synthetic._rot import (
    angles_to_hand_pose_fast, matrix_to_rotvec, matrix_to_rotvec_continuous, rotvec_to_matrix,
)
from unihand.data.synthetic.motion import POSES, SAFE_LIMITS
from unihand.data.synthetic.render import RenderStyle, draw_hand, letterbox
from unihand.data.synthetic.scene import occluder_polygons, project_occluders
from unihand.data.synthetic.smooth import keyframe_track, minimum_jerk
from unihand.geometry.canonical import rigid_inverse
from unihand.geometry.mirror import mirror_mano_vector, mirror_points
from unihand.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from unihand.hand import angles_to_hand_pose, fk_numpy, limit_violation, load_hand_model
from unihand.hand.anatomy import JOINT_LIMITS

COUNT = 24


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld(0)


@pytest.fixture(scope="module")
def seqs(world: SyntheticWorld) -> list:
    return world.sequences(range(COUNT))


def _arrays(seq) -> dict[str, np.ndarray]:
    out = {f"m.{k}": np.asarray(v) for k, v in seq.motion.to_dict().items() if v is not None}
    out.update({f"c.{k}": np.asarray(v) for k, v in seq.conditions.to_dict().items() if v is not None})
    return out


# --- determinism --------------------------------------------------------------------------------

def test_same_seed_and_index_give_identical_arrays(seqs: list) -> None:
    again = SyntheticWorld(0).sequence(5)
    a, b = _arrays(seqs[5]), _arrays(again)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def test_batch_equals_one_by_one(world: SyntheticWorld, seqs: list) -> None:
    for i in (0, 7, 13):
        a, b = _arrays(seqs[i]), _arrays(world.sequence(i))
        for k in a:
            assert np.array_equal(a[k], b[k]), (i, k)


def test_different_seed_or_index_differ(seqs: list) -> None:
    other = SyntheticWorld(1000).sequence(5)
    assert not np.allclose(other.motion.hand_pose, seqs[5].motion.hand_pose)
    assert not np.allclose(seqs[4].motion.transl, seqs[5].motion.transl)


def test_rendering_is_deterministic_and_leaves_conditions_alone(world: SyntheticWorld) -> None:
    s = world.sequence(3)
    before = _arrays(s)
    f1, f2 = s.render(64), world.sequence(3).render(64)
    assert f1.shape == (48, 64, 64, 3) and f1.dtype == np.uint8
    assert np.array_equal(f1, f2)
    after = _arrays(s)
    assert all(np.array_equal(before[k], after[k]) for k in before)


# --- anatomy and motion -----------------------------------------------------------------------

def test_every_frame_within_joint_limits(seqs: list) -> None:
    assert {s.is_right for s in seqs} == {True, False}
    for s in seqs:
        bad = limit_violation(s.motion.hand_pose.astype(np.float64), tol_deg=0.01, is_right=s.is_right)
        assert not bad.any(), (s.index, s.activity)


def test_key_poses_inside_the_safe_limits() -> None:
    for name, pose in POSES.items():
        clipped = np.clip(pose, SAFE_LIMITS[..., 0], SAFE_LIMITS[..., 1])
        # key poses are clipped when used; those that need clipping may only do so a little
        assert np.abs(clipped - pose).max() < np.deg2rad(5), name
    assert np.all(SAFE_LIMITS[..., 0] > JOINT_LIMITS[..., 0]) and np.all(SAFE_LIMITS[..., 1] < JOINT_LIMITS[..., 1])


def test_motion_is_smooth_and_at_human_speed(seqs: list) -> None:
    fps = 30.0
    for s in seqs:
        j = s.motion.joints.astype(np.float64)
        acc = (j[2:] - 2 * j[1:-1] + j[:-2]) * fps**2  # (N-2, 21, 3) m/s^2
        a = np.linalg.norm(acc, axis=-1)
        assert a.mean() < 5.0, (s.index, s.activity, a.mean())  # AccEr of the GT against a still hand
        assert a.max() < 40.0, (s.index, s.activity, a.max())
        # C2: the acceleration itself changes by little from frame to frame (no kinks)
        assert np.linalg.norm(acc[1:] - acc[:-1], axis=-1).max() < 30.0
        speed = np.linalg.norm(j[1:] - j[:-1], axis=-1) * fps
        assert speed[:, 0].max() < 1.5 and speed.max() < 3.0  # wrist / any joint, m/s


def test_global_orient_is_continuous(seqs: list) -> None:
    for s in seqs:
        go = s.motion.global_orient.astype(np.float64)
        assert np.linalg.norm(go[1:] - go[:-1], axis=-1).max() < 0.5, s.index


def test_betas_constant_and_wrist_depth_in_range(seqs: list) -> None:
    for s in seqs:
        b = s.motion.betas
        assert np.all(b == b[0]) and np.all(np.abs(b) <= 2.5)
        z = s.joints_cam[:, 0, 2]
        assert z.min() > 0.15 and z.max() < 0.85, (s.index, z.min(), z.max())


def test_fk_of_the_stored_mano_gives_the_stored_joints(seqs: list) -> None:
    hands = {True: load_hand_model(is_right=True), False: load_hand_model(is_right=False)}
    for s in seqs[:8]:
        joints, _ = fk_numpy(hands[s.is_right], s.motion.mano().astype(np.float64))
        np.testing.assert_allclose(joints, s.motion.joints, atol=2e-5)


def test_left_hand_is_the_mirrored_right_hand(seqs: list) -> None:
    right = load_hand_model(is_right=True)
    left = next(s for s in seqs if not s.is_right)
    mirrored = mirror_mano_vector(left.motion.mano().astype(np.float64))
    joints, _ = fk_numpy(right, mirrored)
    np.testing.assert_allclose(mirror_points(joints), left.motion.joints, atol=2e-5)


# --- cameras and the canonical frame ----------------------------------------------------------

def test_canonical_frame_is_the_first_camera() -> None:
    w = SyntheticWorld(7, SynthConfig(moving_camera_p=1.0))
    for s in w.sequences(range(4)):
        T = s.motion.extra["T_cano_from_cam"].astype(np.float64)
        assert np.array_equal(T[0], np.eye(4))
        assert s.camera.moving and np.abs(T[1:] - np.eye(4)).max() > 1e-4
        R = T[:, :3, :3]
        np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-6)
        # canonical joints = T_cano_from_cam applied to each frame's camera-frame joints
        cam = s.motion.extra["joints_cam"].astype(np.float64)
        cano = (R[:, None] @ cam[..., None])[..., 0] + T[:, None, :3, 3]
        np.testing.assert_allclose(cano, s.motion.joints, atol=1e-5)


def test_static_camera_is_identity() -> None:
    s = SyntheticWorld(7, SynthConfig(moving_camera_p=0.0)).sequence(0)
    assert np.array_equal(s.motion.extra["T_cano_from_cam"], np.broadcast_to(np.eye(4, dtype=np.float32), (48, 4, 4)))
    np.testing.assert_allclose(s.motion.extra["joints_cam"], s.motion.joints, atol=1e-6)


def test_intrinsics_are_those_of_the_preset() -> None:
    s = SyntheticWorld(0, SynthConfig(camera="webcam")).sequence(0)
    assert tuple(s.motion.image_size) == (640, 480)
    hfov = 2 * np.degrees(np.arctan(320 / s.motion.K[0, 0]))
    assert 56 < hfov < 64  # 60 deg +- 5 %


# --- conditions -------------------------------------------------------------------------------

def test_kp2d_is_the_per_frame_projection_within_noise(seqs: list) -> None:
    for s in seqs:
        c, m = s.conditions, s.motion
        K = m.K.astype(np.float64)
        T_cam = rigid_inverse(m.extra["T_cano_from_cam"].astype(np.float64))
        cam = (T_cam[:, None, :3, :3] @ m.joints.astype(np.float64)[..., None])[..., 0] + T_cam[:, None, :3, 3]
        px = cam[..., :2] / cam[..., 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
        np.testing.assert_allclose(px, m.joints_2d, atol=0.05)  # pixels (float32 storage)
        size = m.image_size.astype(np.float64)
        ok = c.kp2d_mask & ~c.extra["outlier"]
        if not ok.any():
            continue
        diag = np.linalg.norm(px.max(1) - px.min(1), axis=-1)[:, None]
        err = np.linalg.norm(c.kp2d * size - px, axis=-1) / diag
        clean = ok & ~c.extra["self_occluded"]
        assert np.median(err[clean]) < 0.03  # sigma is 0.5-2 % of the hand's size
        assert err[ok].max() < 0.3


def test_masks_follow_occlusion_image_bounds_and_gaps(seqs: list) -> None:
    for s in seqs:
        c = s.conditions
        e = c.extra
        gt = e["kp2d_gt"]
        outside = (gt < 0).any(-1) | (gt > 1).any(-1)
        assert not (c.kp2d_mask & outside).any()
        assert not (c.kp2d_mask & e["joint_occluded"]).any()
        assert not c.kp2d_mask[e["frame_missing"]].any()
        expected = e["in_image"] & ~e["joint_occluded"] & ~e["frame_missing"][:, None]
        assert not (c.kp2d_mask & ~expected).any()
        # the rest are observations pushed out of the image by noise or outliers: few
        assert (expected & ~c.kp2d_mask).sum() <= 0.05 * expected.sum() + 2
        assert np.all((c.kp2d[c.kp2d_mask] >= 0) & (c.kp2d[c.kp2d_mask] <= 1))
        assert np.all(c.kp2d[~c.kp2d_mask] == 0) and np.all(c.kp2d_conf[~c.kp2d_mask] == 0)
        assert np.all((c.kp2d_conf >= 0) & (c.kp2d_conf <= 1))
        assert c.kp2d_mask.shape == (48, 21) and c.kp3d_mask.shape == (48, 21) and c.mano_mask.all()
        occ = e["occlusion"]
        assert occ.shape == (48,) and np.all((occ >= 0) & (occ <= 1))
        # joints hidden by an occluder make the hand (partly) occluded
        assert np.all(occ[(e["joint_occluded"] & e["in_image"]).any(-1)] > 0)
        kp3d_ok = c.kp3d_mask[:, 0]
        np.testing.assert_allclose(c.kp3d[kp3d_ok], s.motion.joints[kp3d_ok], atol=0.03)


def test_corruptions_all_occur(seqs: list) -> None:
    e = {k: np.stack([s.conditions.extra[k] for s in seqs]) for k in ("occlusion", "frame_missing", "outlier", "in_image")}
    assert (e["occlusion"] > 0.5).any() and (e["occlusion"] == 0).mean() > 0.3
    assert e["frame_missing"].any() and e["outlier"].any() and (~e["in_image"]).any()


def test_occlusion_ratio_matches_the_drawn_pixels(world: SyntheticWorld) -> None:
    """Eq. 17 from silhouette samples agrees with a pixel count of the drawn hand and occluders."""
    style = RenderStyle(skin=np.array([200.0, 150, 120]), sleeve=np.zeros(3), background=None, margin=0, gain=1.0,
                        bias=0.0, noise=None, blur=0.0)
    diffs = []
    for s in world.sequences(range(40, 80)):
        if s.occluders.count == 0:
            continue
        lb = letterbox(s.camera.image_size, 256)
        Kf = lb.frame_K(s.camera.K)
        occ2d = project_occluders(s.occluders, rigid_inverse(s.camera.T_cano_from_cam), Kf, s.joints_cam[..., 2].mean(-1))
        polys = occluder_polygons(occ2d)
        for i in range(0, 48, 8):
            hand = np.zeros((256, 256, 3), np.uint8)
            draw_hand(hand, s.joints_cam[i], Kf, style)
            hand_mask = hand.any(-1)
            ox, oy = lb.offset
            hand_mask[:, :ox] = hand_mask[:, 256 - ox:] = False
            hand_mask[:oy] = hand_mask[256 - oy:] = False
            if hand_mask.sum() < 200:
                continue
            cover = np.zeros((256, 256), np.uint8)
            for o in range(s.occluders.count):
                if occ2d.front[o, i]:
                    cv2.fillPoly(cover, [np.round(polys[o, i]).astype(np.int32)], 1)
            pixel_ratio = (hand_mask & (cover > 0)).sum() / hand_mask.sum()
            diffs.append(abs(pixel_ratio - s.conditions.extra["occlusion"][i]))
    assert len(diffs) > 20
    assert np.mean(diffs) < 0.04 and np.percentile(diffs, 90) < 0.12


# --- rendering --------------------------------------------------------------------------------

def test_rendered_hand_covers_its_joints(world: SyntheticWorld) -> None:
    style = RenderStyle(skin=np.array([200.0, 150, 120]), sleeve=np.zeros(3), background=None, margin=0, gain=1.0,
                        bias=0.0, noise=None, blur=0.0)
    hits = total = 0
    for s in world.sequences(range(8)):
        lb = letterbox(s.camera.image_size, 224)
        Kf = lb.frame_K(s.camera.K)
        px = lb.to_frame(s.motion.joints_2d)
        for i in (0, 24, 47):
            img = np.zeros((224, 224, 3), np.uint8)
            draw_hand(img, s.joints_cam[i], Kf, style)
            p = np.round(px[i]).astype(int)
            inside = (p >= 0).all(-1) & (p < 224).all(-1)
            hits += int(img[p[inside, 1], p[inside, 0]].any(-1).sum())
            total += int(inside.sum())
    assert total > 100 and hits / total > 0.97


def test_letterbox_geometry() -> None:
    lb = letterbox((640, 480), 224)
    assert (lb.active_w, lb.active_h) == (224, 168) and lb.offset == (0, 28)
    K = np.array([[500.0, 0, 319.5], [0, 500, 239.5], [0, 0, 1]])
    p = np.array([[0.1, -0.05, 0.5]])
    cam_px = p[:, :2] / p[:, 2:] * 500 + K[:2, 2]
    Kf = lb.frame_K(K)
    np.testing.assert_allclose(lb.to_frame(cam_px), p[:, :2] / p[:, 2:] * Kf[[0, 1], [0, 1]] + Kf[:2, 2])
    np.testing.assert_allclose(lb.to_frame(np.array([[-0.5, -0.5], [639.5, 479.5]])), [[-0.5, 27.5], [223.5, 195.5]])


def test_frames_have_black_bars_and_a_cluttered_background() -> None:
    s = SyntheticWorld(0, SynthConfig(camera="phone")).sequence(2)
    f = s.render(96)
    lb = s.letterbox(96)
    oy = lb.offset[1]
    assert oy > 0 and f[:, :oy].max() == 0 and f[:, 96 - oy:].max() == 0
    active = f[:, oy:96 - oy].reshape(48, -1, 3)
    assert active.std(axis=1).mean() > 10  # not a flat background


# --- numpy kernels vs the public torch versions ---------------------------------------------

def test_fast_rotation_kernels_agree_with_geometry() -> None:
    rng = np.random.default_rng(0)
    ang = rng.uniform(JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1], size=(64, 15, 3))
    np.testing.assert_allclose(angles_to_hand_pose_fast(ang), angles_to_hand_pose(ang), atol=1e-12)
    v = rng.normal(size=(256, 3)) * 1.2
    np.testing.assert_allclose(rotvec_to_matrix(v), axis_angle_to_matrix(v), atol=1e-12)
    R = rotvec_to_matrix(v)
    np.testing.assert_allclose(matrix_to_rotvec(R), matrix_to_axis_angle(R), atol=1e-9)
    # a turn through 180 degrees stays continuous and is the same rotation
    seq = np.outer(np.linspace(2.6, 3.8, 40), [0.0, 0.6, 0.8])
    cont = matrix_to_rotvec_continuous(rotvec_to_matrix(seq))
    np.testing.assert_allclose(cont, seq, atol=1e-9)
    np.testing.assert_allclose(rotvec_to_matrix(cont), rotvec_to_matrix(seq), atol=1e-12)
    torch.testing.assert_close(torch.from_numpy(rotvec_to_matrix(cont)), axis_angle_to_matrix(torch.from_numpy(seq)))


def test_minimum_jerk_keyframes_are_c2() -> None:
    s = np.linspace(-0.5, 1.5, 401)
    w = minimum_jerk(s)
    assert w[0] == 0 and w[-1] == 1
    t = np.linspace(0, 2, 2001)
    track = keyframe_track(t, np.array([0.2, 1.0]), np.array([0.5, 0.6]), np.array([[0.0], [1.0], [-0.5]]))[:, 0]
    assert track[0] == 0 and abs(track[700] - 1.0) < 1e-12 and abs(track[-1] + 0.5) < 1e-12
    acc = np.diff(track, 2) / (t[1] - t[0]) ** 2
    # no jumps in acceleration: steps stay at jerk * dt, a tiny fraction of the peak acceleration
    assert np.abs(np.diff(acc)).max() < 0.05 * np.abs(acc).max()
