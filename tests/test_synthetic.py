"""Synthetic world: determinism, anatomy, smoothness, cameras, conditions, occlusion, rendering,
realistic motion (DIP-PIP coupling, synergies, reach-to-grasp timing, speeds)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from unihand.data.synthetic import SynthConfig, SyntheticWorld
from unihand.data.synthetic.motion import (
    ACTIVITIES, DIP, DIP_NOISE, DIP_PIP_RATIO, PIP, POSES, SAFE_LIMITS, SPEED_RANGE, TREMOR, aperture, reach_size,
    sample_finger_motion, sample_wrist_motion,
)
from unihand.data.synthetic.render import RenderStyle, draw_hand
from unihand.geometry.letterbox import letterbox
from unihand.data.synthetic.scene import occluder_polygons, project_occluders
from unihand.data.synthetic.smooth import keyframe_track, minimum_jerk, skewed_minimum_jerk, skewed_minimum_jerk_peak
from unihand.geometry.canonical import rigid_inverse
from unihand.geometry.mirror import mirror_mano_vector, mirror_points
from unihand.hand import angles_to_hand_pose, fk_numpy, hand_pose_to_angles, limit_violation, load_hand_model
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
    # the crop without the bars: its K projects onto its own pixels, where the keypoints land too
    frames = np.zeros((2, 224, 224, 3), np.uint8)
    frames[:, 28:196] = 7
    crop = lb.crop(frames)
    assert crop.shape == (2, 168, 224, 3) and (crop == 7).all()
    Kc = lb.crop_K(K)
    kp_norm = cam_px / np.array([640, 480])
    np.testing.assert_allclose(lb.normalized_to_crop(kp_norm), p[:, :2] / p[:, 2:] * Kc[[0, 1], [0, 1]] + Kc[:2, 2])


def test_frames_have_black_bars_and_a_cluttered_background() -> None:
    s = SyntheticWorld(0, SynthConfig(camera="phone")).sequence(2)
    f = s.render(96)
    lb = s.letterbox(96)
    oy = lb.offset[1]
    assert oy > 0 and f[:, :oy].max() == 0 and f[:, 96 - oy:].max() == 0
    active = f[:, oy:96 - oy].reshape(48, -1, 3)
    assert active.std(axis=1).mean() > 10  # not a flat background


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


# --- realistic motion: coupling, synergies, reach-to-grasp, speeds --------------------

_LONG = np.arange(0.0, 12.0, 1.0 / 120.0)  # whole grasp episodes at 120 Hz


@pytest.fixture(scope="module")
def episodes() -> list:
    """60 whole grasp episodes: (finger motion, wrist motion)."""
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    out = []
    for i in range(60):
        f = sample_finger_motion(np.random.default_rng([12, i]), _LONG, "grasp")
        w = sample_wrist_motion(np.random.default_rng([13, i]), _LONG, K, np.array([640, 480]), activity="grasp",
                                episode=f.episode)
        out.append((f, w))
    return out


def test_every_frame_within_joint_limits_in_every_activity() -> None:
    t = np.arange(0.0, 10.0, 1.0 / 30.0)
    for k, activity in enumerate(ACTIVITIES):
        for i in range(60):
            a = sample_finger_motion(np.random.default_rng([k, i]), t, activity).angles
            assert np.all(a >= JOINT_LIMITS[..., 0]) and np.all(a <= JOINT_LIMITS[..., 1]), (activity, i)
    for s in SyntheticWorld(4, SynthConfig(activity="grasp")).sequences(range(48)):
        assert not limit_violation(s.motion.hand_pose.astype(np.float64), tol_deg=0.01, is_right=s.is_right).any()


def test_dip_follows_two_thirds_of_pip(seqs: list) -> None:
    t = np.arange(0.0, 6.0, 1.0 / 30.0)
    bound = DIP_NOISE + 0.2 * TREMOR[DIP, 0].max() + 1e-9  # key noise + the DIP's own tremor share
    for activity in ACTIVITIES:
        for i in range(30):
            f = sample_finger_motion(np.random.default_rng([7, i]), t, activity)
            assert DIP_PIP_RATIO[0] <= f.dip_ratio <= DIP_PIP_RATIO[1]
            pip, dip = f.angles[:, PIP, 0], f.angles[:, DIP, 0]
            flexing = pip > np.deg2rad(10)  # below, the DIP may sit at its lower limit
            assert np.abs(dip - f.dip_ratio * pip)[flexing].max(initial=0.0) <= bound, (activity, i)
    # end to end, from the stored MANO poses of both hands
    for s in seqs:
        a = hand_pose_to_angles(s.motion.hand_pose.astype(np.float64), is_right=s.is_right)
        pip, dip = a[:, PIP, 0], a[:, DIP, 0]
        flexing = pip > np.deg2rad(20)
        if flexing.sum() < 10:
            continue
        ratio = dip[flexing] / pip[flexing]
        assert DIP_PIP_RATIO[0] - 0.02 < np.median(ratio) < DIP_PIP_RATIO[1] + 0.02, s.activity
        assert np.all(np.abs(ratio - np.median(ratio)) < 2 * np.deg2rad(2.5) / pip[flexing] + 0.02), s.activity


def test_grasp_transport_is_bell_shaped(episodes: list) -> None:
    for f, w in episodes:
        ep = f.episode
        reach = (_LONG >= ep.start) & (_LONG <= ep.contact)
        speed = np.linalg.norm(np.gradient(w.transport, _LONG, axis=0), axis=-1)[reach]
        k = int(speed.argmax())
        assert 0.35 < (_LONG[reach][k] - ep.start) / ep.duration < 0.65, f.activity
        assert np.all(np.diff(speed[:k + 1]) > -1e-9) and np.all(np.diff(speed[k:]) < 1e-9), f.activity  # one peak
        assert speed[0] < 0.02 * speed[k] and speed[-1] < 0.02 * speed[k]  # starts and ends at rest
        dist = np.linalg.norm(w.transport[0])  # the approach (shortened where the view is too small)
        assert 0.8 * ep.distance < dist <= ep.distance + 1e-12
        assert abs(speed[k] - skewed_minimum_jerk_peak(ep.skew) * dist / ep.duration) < 0.02 * speed[k]
        assert speed[k] < 1.02 * ep.speed  # the sequence's tempo
    # the whole transport (approach, held moves and turns, retract) is C2: no jumps in acceleration
    fine = np.arange(0.0, 12.0, 1.0 / 2000.0)
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    for i, (f, _) in enumerate(episodes[:10]):
        w = sample_wrist_motion(np.random.default_rng([13, i]), fine, K, np.array([640, 480]), episode=f.episode)
        for path in (w.transport, w.center):
            acc = np.linalg.norm(np.diff(path, 2, axis=0), axis=-1) * 2000.0**2
            jump = np.linalg.norm(np.diff(path, 3, axis=0), axis=-1) * 2000.0**2
            assert jump.max() < 0.05 * acc.max(), f.activity


def test_reaches_stay_in_view_unless_the_hand_exits(episodes: list) -> None:
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    paths = [w.center for _, w in episodes if not w.exits]
    for i in range(40):  # free reaches of the other activities
        w = sample_wrist_motion(np.random.default_rng([14, i]), _LONG[:240], K, np.array([640, 480]), exit_p=0.0)
        paths.append(w.center)
    for c in paths:
        px = c[:, :2] / c[:, 2:] * 500.0 + np.array([320.0, 240.0])
        assert np.all((px > 0) & (px < np.array([640.0, 480.0]))) and np.all((c[:, 2] > 0.22) & (c[:, 2] < 0.75))


def test_grip_aperture_peaks_before_contact_and_scales_with_the_object(episodes: list) -> None:
    sizes, mgas = [], []
    for f, _ in episodes:
        ep = f.episode
        reach = (_LONG >= ep.start) & (_LONG <= ep.contact)
        ap = aperture(f.angles[reach])
        when = (_LONG[reach][ap.argmax()] - ep.start) / ep.duration
        assert 0.45 < when < 0.85, (f.activity, when)  # Jeannerod: about 60-70 % of the reach
        assert ap.max() > ep.size and ap.max() > ap[-1], f.activity  # opens wider than the object, then closes
        sizes.append(ep.size)
        mgas.append(ap.max())
    slope = np.polyfit(sizes, mgas, 1)[0]
    assert 0.6 < slope < 1.0  # ~0.8 cm more aperture per cm of object


def test_grip_postures_lie_near_two_synergies(episodes: list) -> None:
    rows = [(j, 0) for j in (0, 3, 6, 9, 1, 4, 7, 10)] + [(0, 1), (6, 1), (9, 1), (12, 0), (12, 1), (12, 2), (13, 0),
                                                           (14, 0)]
    grips = []
    for f, _ in episodes:
        i = int(np.searchsorted(_LONG, f.episode.contact + 0.1))
        grips.append([f.angles[i, j, c] for j, c in rows])
    x = np.array(grips) - np.mean(grips, axis=0)
    var = np.linalg.svd(x, compute_uv=False) ** 2
    assert var[:2].sum() / var.sum() > 0.8  # Santello et al. 1998


def test_reach_speeds_span_slow_to_fast() -> None:
    speeds = np.array([sample_finger_motion(np.random.default_rng([3, i]), _LONG[:480], "grasp").episode.speed
                       for i in range(300)])
    assert np.all((speeds >= SPEED_RANGE[0]) & (speeds <= SPEED_RANGE[1]))
    assert speeds.min() < 0.12 and speeds.max() > 1.3 and 0.25 < np.median(speeds) < 0.6
    rng = np.random.default_rng(0)
    for v in (0.1, 0.5, 1.5):  # free reaches: within human durations, at the drawn peak speed
        dist, dur = reach_size(rng, v, (0.05, 0.25))
        assert 0.35 - 1e-9 <= dur <= 1.6 + 1e-9 and abs(1.875 * dist / dur - v) < 1e-9


def test_grasp_sequences_are_deterministic() -> None:
    cfg = SynthConfig(activity="grasp")
    a, b = SyntheticWorld(5, cfg).sequences(range(4)), SyntheticWorld(5, cfg)
    for i, s in enumerate(a):
        x, y = _arrays(s), _arrays(b.sequence(i))
        assert s.activity.startswith("grasp:") and all(np.array_equal(x[k], y[k]) for k in x)
    f1, f2 = (sample_finger_motion(np.random.default_rng(9), _LONG, "grasp") for _ in range(2))
    assert np.array_equal(f1.angles, f2.angles) and f1.episode == f2.episode


def test_skewed_minimum_jerk_is_a_c2_bell() -> None:
    s = np.linspace(0.0, 1.0, 2001)
    np.testing.assert_allclose(skewed_minimum_jerk(s, 3.0), minimum_jerk(s), atol=1e-12)
    for b in (3.0, 3.5, 4.0):
        v = np.gradient(skewed_minimum_jerk(s, b), s)
        assert abs(s[v.argmax()] - 2.0 / (b + 1.0)) < 1e-3 and abs(v.max() - skewed_minimum_jerk_peak(b)) < 1e-3
        acc = np.diff(skewed_minimum_jerk(np.linspace(-0.2, 1.2, 2801), b), 2) * 2000.0**2
        assert np.abs(np.diff(acc)).max() < 0.02 * np.abs(acc).max()  # no jumps in acceleration


def test_aperture_is_the_thumb_index_tip_distance() -> None:
    rng = np.random.default_rng(1)
    ang = rng.uniform(JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1], size=(32, 15, 3))
    joints, _ = fk_numpy(load_hand_model(is_right=True), np.concatenate(
        [np.zeros((32, 3)), angles_to_hand_pose(ang), np.zeros((32, 13))], axis=-1))
    np.testing.assert_allclose(aperture(ang), np.linalg.norm(joints[:, 4] - joints[:, 8], axis=-1), atol=1e-9)
