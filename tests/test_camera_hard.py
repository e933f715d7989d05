"""The camera on hard head motion: fast pure turns, a map lost and found again, frames it cannot register
(``camera_valid``, one warning line, no frozen pose passed off), the focal length from the video, and the
bad inputs (too short, too uniform to track). Small rendered clips (480 px, 36-40 frames)."""

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from unihand.camera.engine import REGISTERED, BackgroundTracker, solve_camera
from unihand.camera.focal import estimate_focal
from unihand.camera.stage import plan_camera, resolve_camera
from unihand.errors import UserError
from unihand.geometry.camera import default_intrinsics


def _angle_deg(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    M = np.einsum("nji,njk->nik", A[:, :3, :3], B[:, :3, :3])
    return np.degrees(np.arccos(np.clip((np.trace(M, axis1=1, axis2=2) - 1) / 2, -1, 1)))


def _clip(seed: int, index: int, head: str, frames: int = 36, size: int = 480, **cfg):
    """(frames (N, H, W, 3), K of the frames, true hand keypoints (pixels, NaN out of view), true poses)."""
    from unihand.data.synthetic.conditions import ConditionConfig
    from unihand.data.synthetic.world import SynthConfig, SyntheticWorld

    config = SynthConfig(frames=frames, left_p=0.0, moving_camera_p=1.0, exit_p=0.0, camera="gopro", head_motion=head,
                         background="room", occluder_counts_p=(1.0,), conditions=ConditionConfig(gap_counts_p=(1.0,)),
                         **cfg)
    seq = SyntheticWorld(seed=seed, config=config).sequence(index)
    lb = seq.letterbox(size)
    kp = lb.normalized_to_crop(np.asarray(seq.conditions.extra["kp2d_gt"], np.float64))
    kp = np.where(seq.conditions.extra["in_image"][..., None], kp, np.nan)
    return lb.crop(seq.render(size)), lb.crop_K(seq.camera.K), kp, seq.camera.T_cano_from_cam


def _track(frames: np.ndarray, K: np.ndarray, kp: np.ndarray | None, probe: bool = False) -> BackgroundTracker:
    tracker = BackgroundTracker(K, (frames.shape[2], frames.shape[1]), probe=probe)
    for k, f in enumerate(frames):
        tracker.add(f, [] if kp is None else [kp[k]])
    return tracker


@pytest.fixture(scope="module")
def turn_clip():
    return _clip(3100, 0, "turn", motion_blur=0.5)


def test_a_fast_pure_turn_registers_every_frame_within_two_degrees(turn_clip) -> None:
    frames, K, kp, T_true = turn_clip
    rv = Rotation.from_matrix(T_true[:, :3, :3])
    speed = np.degrees((rv[1:] * rv[:-1].inv()).magnitude()) * 30.0
    assert speed.max() > 60.0 and np.abs(T_true[:, :3, 3]).max() < 1e-9  # fast, and no translation at all
    est = solve_camera(_track(frames, K, kp), "auto")
    assert est.moving and est.method == "rotation only"
    assert est.valid.all() and not est.warnings
    err = _angle_deg(est.T_cano_from_cam, T_true)
    assert err.max() < 2.0, err.max()


def test_a_map_lost_and_found_again_comes_back_as_one_trajectory(turn_clip) -> None:
    """Frames 22-27 blanked (the hand over the lens) while the camera turns 19 degrees across them: the tracks
    are lost there and found again in the frames after, which join the ones before through the re-found
    tracks, not by a guess."""
    frames, K, kp, T_true = turn_clip
    frames = frames.copy()
    frames[22:28] = 128
    tracker = _track(frames, K, kp)
    est = solve_camera(tracker, "estimate")
    assert tracker.bridges  # the front end found the lost tracks again
    assert set(est.status[22:28]) == {"interpolated"}
    assert np.isin(est.status[:22], REGISTERED).all() and np.isin(est.status[28:], REGISTERED).all()
    assert not any(j["how"].startswith("break") for j in est.stats["joins"])
    err = _angle_deg(est.T_cano_from_cam, T_true)
    assert err[est.valid].max() < 2.0 and err.max() < 6.0
    assert len(est.warnings) == 1 and "22-27 (interpolated rotation and position)" in est.warnings[0]


def test_unregistered_frames_are_flagged_printed_once_and_never_a_frozen_pose(tmp_path: Path, turn_clip) -> None:
    """The texture lost for the last frames: ``unihand estimate`` writes them with camera_valid False, the
    log names them in exactly one warning line, and every frame whose pose is held is flagged."""
    from tests.test_video_estimate import StubModel
    from unihand.video.detect import Detection
    from unihand.video.estimate import estimate_video
    from unihand.viz.video import H264Writer

    frames, K, kp, _ = turn_clip
    frames = frames.copy()
    frames[28:] = 128
    video = tmp_path / "clip.mp4"
    writer = H264Writer(video, (frames.shape[2], frames.shape[1]), 30.0, crf=18)
    for f in frames:
        writer.write(f)
    writer.close()
    count = iter(range(10**6))

    def detector(frame: np.ndarray) -> list[Detection]:
        k = kp[next(count) % len(kp)]
        return [Detection(np.nan_to_num(k).astype(np.float32), np.isfinite(k[:, 0]).astype(np.float32), 1.0, 1.0)]

    log: list[str] = []
    res = estimate_video(video, tmp_path / "out", hands="right", intrinsics=(K[0, 0], K[1, 1], K[0, 2], K[1, 2]),
                         model=StubModel(), detector=detector, render=False, progress=False, camera="estimate",
                         log=log.append)
    warnings = [m for m in log if m.startswith("warning: camera")]
    assert len(warnings) == 1 and "28-35 (static: the nearest registered pose held)" in warnings[0]
    saved = np.load(tmp_path / "out" / "right_motion.npz")
    valid = saved["camera_valid"]
    assert valid.dtype == bool and not valid[28:].any() and valid[:28].all()
    T = saved["T_cano_from_cam"]
    # a pose equal to its predecessor's (frozen) only where the frame is flagged
    frozen = np.flatnonzero(np.all(np.abs(T[1:] - T[:-1]) < 1e-9, axis=(1, 2))) + 1
    assert not valid[frozen].any()
    assert res.hands["right"].summary["camera"]["unregistered_frames"] == {"held": "28-35"}


def test_the_focal_length_of_a_90_degree_clip_is_found_without_fov() -> None:
    frames, K, kp, _ = _clip(3100, 3, "hard", frames=40, motion_blur=0.5)
    w, h = frames.shape[2], frames.shape[1]
    true = math.degrees(2 * math.atan(w / 2 / K[0, 0]))
    assert abs(true - 90.0) < 5.0
    tracker = _track(frames, default_intrinsics(w, h), kp)  # the default 60 degrees to start from
    f_work, stats = estimate_focal(tracker)  # the rotation's homographies
    assert f_work is not None and stats["pairs"] >= 3
    # the camera stage refines it with the map and hands the pipeline the new intrinsics, with the source
    said: list[str] = []
    res = resolve_camera(plan_camera("auto"), tracker, len(frames), 30.0, said.append, focal_unknown=True)
    fov = math.degrees(2 * math.atan(w / 2 / res.K[0, 0]))
    assert abs(fov - true) < 5.0, (fov, true, res.info["focal"])
    assert res.info["focal"]["source"].startswith("estimated from the camera's rotation")
    assert any("focal length estimated from the video" in m for m in said)


def test_a_still_camera_keeps_the_default_focal_and_says_so() -> None:
    frames, K, kp, _ = _clip(3100, 0, "turn", frames=12)
    still = np.repeat(frames[:1], 12, axis=0)
    tracker = _track(still, K, kp[:1].repeat(12, 0), probe=True)
    said: list[str] = []
    res = resolve_camera(plan_camera("auto"), tracker, 12, 30.0, said.append, focal_unknown=True)
    assert not res.moving and res.K is None and tracker.decided_static
    assert any("focal length not estimated" in m and "default" in m for m in said)


@pytest.mark.parametrize("case", ["short", "uniform"])
def test_untrackable_video_auto_is_static_with_one_warning_estimate_exits(case: str, turn_clip) -> None:
    frames, K, _, _ = turn_clip
    frames = frames[:3] if case == "short" else np.full_like(frames[:12], 128)
    tracker = _track(frames, K, None, probe=True)
    said: list[str] = []
    res = resolve_camera(plan_camera("auto"), tracker, len(frames), 30.0, said.append)
    assert not res.moving and res.poses is None and not res.camera_valid(len(frames)).any()
    assert len([m for m in said if m.startswith("warning:")]) == 1
    with pytest.raises(UserError, match="--camera estimate: ") as err:
        resolve_camera(plan_camera("estimate"), _track(frames, K, None), len(frames), 30.0)
    assert "\n" not in str(err.value)


def test_estimate_on_an_untrackable_video_is_one_line_and_writes_nothing(tmp_path: Path, turn_clip) -> None:
    """``--camera estimate`` on a uniform video: a one-line UserError (the command line's exit 2) naming the
    flag, before any output is written; ``--camera auto`` on it writes a static camera, all frames flagged."""
    from tests.test_video_estimate import StubModel
    from unihand.video.detect import Detection
    from unihand.video.estimate import estimate_video
    from unihand.viz.video import H264Writer

    _, _, kp, _ = turn_clip
    video = tmp_path / "grey.mp4"
    writer = H264Writer(video, (480, 270), 30.0, crf=18)
    for _ in range(12):
        writer.write(np.full((270, 480, 3), 128, np.uint8))
    writer.close()
    hand = [Detection(np.nan_to_num(kp[0]).astype(np.float32), np.ones(21, np.float32), 1.0, 1.0)]
    kw = dict(hands="right", model=StubModel(), detector=lambda frame: hand, render=False, progress=False)
    with pytest.raises(UserError, match="^--camera estimate: too few background features") as err:
        estimate_video(video, tmp_path / "out", camera="estimate", **kw)
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()
    log: list[str] = []
    estimate_video(video, tmp_path / "auto", camera="auto", log=log.append, **kw)
    assert len([m for m in log if m.startswith("warning:")]) == 1
    assert not np.load(tmp_path / "auto" / "right_motion.npz")["camera_valid"].any()


def test_the_hard_generator_turns_fast_walks_blurs_and_paints_walls_blank() -> None:
    from unihand.data.synthetic.camera import hard_head_motion, pure_turn
    from unihand.data.synthetic.render import motion_blur_kernels, sample_room
    from unihand.geometry.camera import intrinsics_from_fov

    t = np.arange(120) / 30.0
    peaks, travels = [], []
    for k in range(20):
        T = hard_head_motion(np.random.default_rng(k), t)
        rv = Rotation.from_matrix(T[:, :3, :3])
        peaks.append(np.degrees((rv[1:] * rv[:-1].inv()).magnitude()).max() * 30.0)
        travels.append(np.linalg.norm(T[-1, :3, 3] - T[0, :3, 3]))
    assert 60.0 < np.median(peaks) < 250.0 and min(peaks) > 40.0
    assert 0.35 < min(travels) and max(travels) < 1.3  # walking 0.5-1 m, plus the head's swing about the neck
    turn = pure_turn(np.random.default_rng(0), t)
    assert np.abs(turn[:, :3, 3]).max() == 0.0
    # a turn of 100 degrees per second smears a 90-degree, 640 px frame over ~9 px at half the frame interval
    R = Rotation.from_rotvec(np.outer(np.arange(3) / 30.0, [0.0, np.radians(100.0), 0.0])).as_matrix()
    T = np.tile(np.eye(4), (3, 1, 1))
    T[:, :3, :3] = R
    ker = motion_blur_kernels(T, intrinsics_from_fov(90.0, 640, 360), 0.5)[1]
    assert ker is not None and 9 <= ker.shape[0] <= 11 and abs(ker.sum() - 1.0) < 1e-5
    room = sample_room(np.random.default_rng(0), np.tile(np.eye(4), (2, 1, 1)), np.full((2, 21, 3), 0.4), 256, blank_walls=2)
    flat = [bool((room.atlas[:, k * room.tile:(k + 1) * room.tile] == room.atlas[0, k * room.tile]).all()) for k in range(7)]
    assert sum(flat) == 3 and flat[2]  # two side walls and the ceiling
