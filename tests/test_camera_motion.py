"""Moving camera: poses files, the background engine on rendered video, the metric scale,
and ``unihand estimate --camera`` end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from unihand.camera.engine import BackgroundTracker, smooth_centres, solve_camera
from unihand.camera.poses import read_poses
from unihand.camera.stage import metric_scale, plan_camera
from unihand.errors import UserError
from unihand.refine.refiner import robust_scale


def _random_poses(n: int, seed: int = 0) -> np.ndarray:
    """Smooth camera-to-world poses (N, 4, 4), not the identity at frame 0."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n)[:, None]
    rv = rng.normal(0, 0.3, 3) + t * rng.normal(0, 0.5, 3)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = Rotation.from_rotvec(rv).as_matrix()
    T[:, :3, 3] = rng.normal(0, 1, 3) + t * rng.normal(0, 0.3, 3)
    return T


def _relative(T_world_from_cam: np.ndarray) -> np.ndarray:
    return np.linalg.inv(T_world_from_cam[0]) @ T_world_from_cam


def _angle_deg(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    M = np.einsum("nji,njk->nik", A[:, :3, :3], B[:, :3, :3])
    return np.degrees(np.arccos(np.clip((np.trace(M, axis1=1, axis2=2) - 1) / 2, -1, 1)))


# ---------------------------------------------------------------- poses files


def test_npz_world_poses_are_made_relative_to_the_first_frame(tmp_path: Path) -> None:
    T = _random_poses(10)
    np.savez(tmp_path / "p.npz", T_world_from_cam=T)
    got, fmt = read_poses(tmp_path / "p.npz", 10)
    assert fmt == "npz"
    np.testing.assert_allclose(got, _relative(T), atol=1e-9)
    np.testing.assert_allclose(got[0], np.eye(4), atol=1e-12)


def test_colmap_images_txt_sorted_by_name_and_inverted(tmp_path: Path) -> None:
    T = _random_poses(12, seed=1)
    lines = ["# Image list with two lines of data per image:", "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME"]
    order = np.random.default_rng(2).permutation(12)  # written in any order; frame_2 before frame_10
    for k in order:
        cw = np.linalg.inv(T[k])  # COLMAP stores cam_from_world
        x, y, z, w = Rotation.from_matrix(cw[:3, :3]).as_quat()
        lines.append(f"{k + 7} {w} {x} {y} {z} {cw[0, 3]} {cw[1, 3]} {cw[2, 3]} 1 frame_{k}.png")
        lines.append("10.0 20.0 -1")
    (tmp_path / "images.txt").write_text("\n".join(lines) + "\n")
    got, fmt = read_poses(tmp_path / "images.txt", 12)
    assert fmt == "colmap"
    np.testing.assert_allclose(got, _relative(T), atol=1e-6)


def test_aria_trajectory_sampled_at_the_video_frames(tmp_path: Path) -> None:
    """A 1 kHz MPS trajectory of a known motion, read at 30 fps: the poses at the frames' times."""
    ts = np.arange(0, 1_200_000, 1000.0) + 5e6  # 1.2 s at 1 kHz, microseconds
    s = (ts - ts[0]) / 1e6
    rot = Rotation.from_rotvec(np.stack([0.3 * s, np.sin(s), 0.1 * s], 1))
    pos = np.stack([0.2 * s, 0.05 * np.sin(3 * s), -0.1 * s], 1)
    rows = ["tracking_timestamp_us,utc_timestamp_ns,tx_world_device,ty_world_device,tz_world_device,"
            "qx_world_device,qy_world_device,qz_world_device,qw_world_device"]
    for k in range(len(ts)):
        q = rot[k].as_quat()
        rows.append(f"{ts[k]:.0f},0,{pos[k, 0]},{pos[k, 1]},{pos[k, 2]},{q[0]},{q[1]},{q[2]},{q[3]}")
    (tmp_path / "closed_loop_trajectory.csv").write_text("\n".join(rows) + "\n")
    got, fmt = read_poses(tmp_path / "closed_loop_trajectory.csv", 30, fps=30.0)
    assert fmt == "aria"
    f = np.arange(30) / 30.0
    T = np.tile(np.eye(4), (30, 1, 1))
    T[:, :3, :3] = Rotation.from_rotvec(np.stack([0.3 * f, np.sin(f), 0.1 * f], 1)).as_matrix()
    T[:, :3, 3] = np.stack([0.2 * f, 0.05 * np.sin(3 * f), -0.1 * f], 1)
    np.testing.assert_allclose(got[:, :3, 3], _relative(T)[:, :3, 3], atol=1e-5)
    assert _angle_deg(got, _relative(T)).max() < 1e-3


@pytest.mark.parametrize("case, match", [
    ("count", "11 poses for the 10 frames"),
    ("nan", "finite"),
    ("shear", "not a rigid transform"),
    ("key", "no 'T_cano_from_cam'"),
])
def test_bad_npz_poses_are_one_line_errors(tmp_path: Path, case: str, match: str) -> None:
    T = _random_poses(11 if case == "count" else 10)
    if case == "nan":
        T[3, 0, 3] = np.nan
    if case == "shear":
        T[4, 0, 1] += 0.2
    np.savez(tmp_path / "p.npz", **{("poses" if case == "key" else "T_cano_from_cam"): T})
    with pytest.raises(UserError, match=match) as err:
        read_poses(tmp_path / "p.npz", 10)
    assert "\n" not in str(err.value) and "p.npz" in str(err.value)


def test_camera_choices_are_checked_before_any_frame() -> None:
    with pytest.raises(UserError, match="--camera 'moving'"):
        plan_camera("moving")
    with pytest.raises(UserError, match="positive number"):
        plan_camera("estimate", "-2")
    with pytest.raises(UserError, match="not found"):
        plan_camera("/no/such/poses.npz")
    assert plan_camera("estimate", "fit").tracks and not plan_camera("static").tracks


# ---------------------------------------------------------------- the engine on rendered video


def _rendered(seed: int, index: int, moving: bool, size: int = 480, frames: int = 40):
    """Frames (N, H, W, 3), the frames' K, the true hand keypoints (pixels) and the true poses."""
    video, K, kp, seq = _rendered_sequence(seed, index, moving, size, frames)
    return video, K, kp, seq.camera.T_cano_from_cam


def _rendered_sequence(seed: int, index: int, moving: bool, size: int = 480, frames: int = 40):
    """Frames (N, H, W, 3), the frames' K, the true hand keypoints (pixels) and the sequence."""
    from unihand.data.synthetic.conditions import ConditionConfig
    from unihand.data.synthetic.world import SynthConfig, SyntheticWorld

    cfg = SynthConfig(frames=frames, left_p=0.0, moving_camera_p=float(moving), exit_p=0.0, camera="gopro",
                      head_motion="realistic", background="room", occluder_counts_p=(1.0,),
                      conditions=ConditionConfig(gap_counts_p=(1.0,)))
    seq = SyntheticWorld(seed=seed, config=cfg).sequence(index)
    lb = seq.letterbox(size)
    kp = lb.normalized_to_crop(np.asarray(seq.conditions.kp2d, np.float64))
    return lb.crop(seq.render(size)), lb.crop_K(seq.camera.K), kp, seq


@pytest.fixture(scope="module")
def moving_clip():
    return _rendered(3000, 1, moving=True)


def _solve(frames: np.ndarray, K: np.ndarray, kp: np.ndarray | None, mode: str):
    tracker = BackgroundTracker(K, (frames.shape[2], frames.shape[1]))
    for k, f in enumerate(frames):
        tracker.add(f, [] if kp is None else [kp[k]])
    return solve_camera(tracker, mode)


def test_head_motion_is_recovered_from_the_background(moving_clip) -> None:
    frames, K, kp, T_true = moving_clip
    est = _solve(frames, K, kp, "auto")
    assert est.moving and est.method == "estimated"
    true_turn = _angle_deg(np.broadcast_to(np.eye(4), T_true.shape), T_true).max()
    assert true_turn > 15.0  # realistic head motion: tens of degrees
    err = _angle_deg(est.T_cano_from_cam, T_true)
    assert err.mean() < 1.0 and err.max() < 2.5
    # translation up to scale: the direction of travel is right
    te, tt = est.T_cano_from_cam[:, :3, 3], T_true[:, :3, 3]
    far = np.linalg.norm(tt, axis=1) > 0.03
    cos = (te[far] * tt[far]).sum(1) / (np.linalg.norm(te[far], axis=1) * np.linalg.norm(tt[far], axis=1))
    assert np.median(cos) > np.cos(np.radians(15))


def test_a_still_background_is_called_static() -> None:
    frames, K, kp, T_true = _rendered(3000, 0, moving=False, frames=20)
    assert np.allclose(T_true, np.eye(4))
    est = _solve(frames, K, kp, "auto")
    assert not est.moving and est.method == "static"
    forced = _solve(frames, K, kp, "estimate")  # forced: close to the identity, no motion invented
    assert _angle_deg(forced.T_cano_from_cam, T_true).max() < 0.5


def test_textureless_frames_fall_back_to_static_with_a_warning(moving_clip) -> None:
    frames, K, _, _ = moving_clip
    blank = np.full_like(frames[:12], 128)
    est = _solve(blank, K, None, "auto")
    assert not est.moving and est.method == "static (too little to track)" and not est.valid.any()
    assert len(est.warnings) == 1 and "frames 0-11" in est.warnings[0]
    # texture lost half-way: the pose is held from there, flagged, and the warning names those frames
    mixed = np.concatenate([frames[:20], np.full_like(frames[:8], 128)])
    est = _solve(mixed, K, None, "estimate")
    assert list(est.status[20:]) == ["held"] * 8 and est.valid[:20].all()
    assert len(est.warnings) == 1 and "20-27 (static: the nearest registered pose held)" in est.warnings[0]
    np.testing.assert_allclose(est.T_cano_from_cam[20:], np.broadcast_to(est.T_cano_from_cam[19], (8, 4, 4)))


def test_centre_smoothing_removes_jitter_not_motion() -> None:
    t = np.arange(90) / 30.0
    true = np.stack([0.2 * np.sin(2 * t), 0.05 * t, 0.1 * np.cos(t) - 0.1], 1)
    noisy = true + np.random.default_rng(0).normal(0, 0.004, true.shape)
    noisy[0] = true[0]  # frame 0 is the reference: exact
    out = smooth_centres(noisy)
    acc = lambda x: np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=1).mean()  # noqa: E731
    assert acc(out - true) < 0.25 * acc(noisy - true)
    assert np.abs(out - true)[5:-5].max() < 0.006
    np.testing.assert_array_equal(out[0], noisy[0])


# ---------------------------------------------------------------- the metric scale


def test_robust_scale_ignores_frames_whose_hand_was_placed_far_off() -> None:
    rng = np.random.default_rng(0)
    db = rng.normal(0, 1.0, (80, 3))
    da = 2.5 * db + rng.normal(0, 0.2, (80, 3))
    da[30:36] += rng.normal(0, 40.0, (6, 3))  # a few wildly wrong placements
    assert abs(robust_scale(da, db) - 2.5) < 0.1
    assert robust_scale(da, np.zeros_like(db)) == 1.0  # the camera does not accelerate: undetermined


def test_metric_scale_of_fitted_poses() -> None:
    T = _relative(_random_poses(8))
    M = T.copy()
    M[:, :3, 3] *= 0.37
    assert metric_scale(T, M) == pytest.approx(0.37)
    assert metric_scale(np.broadcast_to(np.eye(4), (8, 4, 4)), M) is None


# ---------------------------------------------------------------- the command line


def test_estimate_with_a_poses_file_writes_world_motion_and_poses(tmp_path: Path, moving_clip) -> None:
    """``estimate --camera poses.npz``: the motion holds T_cano_from_cam in metres, the joints reproject
    through each frame's own camera, the summary names the source."""
    from tests.test_video_estimate import StubModel
    from unihand.video.detect import Detection
    from unihand.video.estimate import estimate_video
    from unihand.viz.video import H264Writer

    frames, K, kp, T_true = moving_clip
    video = tmp_path / "clip.mp4"
    writer = H264Writer(video, (frames.shape[2], frames.shape[1]), 30.0, crf=18)
    for f in frames:
        writer.write(f)
    writer.close()
    np.savez(tmp_path / "poses.npz", T_cano_from_cam=T_true)
    count = iter(range(10**6))

    def detector(frame: np.ndarray) -> list[Detection]:  # the true keypoints, frame after frame
        return [Detection(kp[next(count) % len(kp)].astype(np.float32), np.ones(21, np.float32), 1.0, 1.0)]

    res = estimate_video(video, tmp_path / "out", hands="right", intrinsics=(K[0, 0], K[1, 1], K[0, 2], K[1, 2]),
                         model=StubModel(), detector=detector, render=False, progress=False,
                         camera=str(tmp_path / "poses.npz"))
    r = res.hands["right"]
    np.testing.assert_allclose(r.motion.extra["T_cano_from_cam"], T_true, atol=1e-5)
    assert r.summary["camera"]["source"].startswith("poses file poses.npz")
    saved = np.load(tmp_path / "out" / "right_motion.npz")
    np.testing.assert_allclose(saved["T_cano_from_cam"], T_true, atol=1e-5)
    summary = json.loads((tmp_path / "out" / "right_summary.json").read_text())
    assert summary["camera"]["format"] == "npz"
    # a poses file for another number of frames: one line, nothing written
    np.savez(tmp_path / "short.npz", T_cano_from_cam=T_true[:-3])
    with pytest.raises(UserError, match=f"{len(frames) - 3} poses for the {len(frames)} frames"):
        estimate_video(video, tmp_path / "out2", hands="right", model=StubModel(), detector=detector,
                       render=False, progress=False, camera=str(tmp_path / "short.npz"))
    assert not (tmp_path / "out2").exists()
