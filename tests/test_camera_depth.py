"""The camera path's metric scale from a metric depth model (``--depth-model``): the room's
true depth, sampling at the tracks, the scale on rendered video, the transformers loader and the checks."""

from pathlib import Path

import numpy as np
import pytest

from unihand.camera.depth import DepthFrames, TransformersDepth, depth_scale, sample_depth
from unihand.camera.engine import BackgroundTracker
from unihand.camera.stage import CameraTap, plan_camera, resolve_camera
from unihand.data.synthetic.render import Room, room_depth
from unihand.errors import UserError
from unihand.video.detect import Detection


def _room() -> Room:
    return Room(lo=np.array([-1.0, -1.0, -1.0]), hi=np.array([1.0, 1.0, 2.0]),
                table=np.array([0.5, -0.2, 0.2, 0.5, 1.0]), atlas=np.zeros((2, 14, 3), np.uint8), tile=2)


def test_room_depth_is_the_distance_to_the_wall_or_the_table() -> None:
    K = np.array([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]])
    d = room_depth(_room(), K, np.eye(4), 100, 200)
    assert d[40, 50] == pytest.approx(2.0)  # straight ahead: the far wall z = 2
    # the ray to (0, 0.5, 0.75) on the table top: pixel (50, 40 + 100 * 0.5 / 0.75)
    v = 40 + 100 * 0.5 / 0.75
    assert d[int(round(v)), 50] == pytest.approx(0.5 / ((round(v) - 40) / 100), rel=1e-9)
    # a moved camera sees the far wall closer by its travel
    T = np.eye(4)
    T[2, 3] = 0.5
    assert room_depth(_room(), K, T, 100, 200)[40, 50] == pytest.approx(1.5)


def test_depth_is_sampled_bilinearly_at_the_tracks() -> None:
    depth = np.add.outer(np.arange(20.0), 10 * np.arange(30.0)).astype(np.float32)  # d(y, x) = y + 10 x
    np.testing.assert_allclose(sample_depth(depth, np.array([[2.5, 3.25], [10.0, 1.0]])), [3.25 + 25.0, 101.0],
                               rtol=1e-5)


def test_large_frames_are_kept_downscaled_with_their_tracks() -> None:
    kept = DepthFrames(every=4)
    assert kept.wants(8) and not kept.wants(9)
    kept.keep(8, np.zeros((2160, 3840, 3), np.uint8), np.array([3, 5]), np.array([[0.0, 0.0], [3839.0, 2159.0]]))
    assert kept.images[0].shape == (1080, 1920, 3)
    np.testing.assert_allclose(kept.pts[0], [[-0.25, -0.25], [1919.25, 1079.25]])  # pixel centres kept


class _Constant:
    name = "constant"

    def __init__(self, values: dict[int, float]) -> None:
        self.values, self.calls = values, []

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        self.calls.append(index)
        d = np.full(frame.shape[:2], self.values[index], np.float32)
        d[0, 0] = np.nan  # a hole: dropped
        return d


def test_depth_scale_is_the_median_ratio_and_reads_only_frames_with_mapped_points() -> None:
    kept = DepthFrames(every=1)
    ids = np.arange(40)
    pts = np.stack([np.arange(40.0) % 10, np.arange(40.0) // 10], 1)  # (0, 0) is the hole
    values = {0: 2.0, 1: 2.2, 2: 1.8, 3: 9.0, 4: 2.1, 5: 2.0}  # frame 3 far off: the median ignores it
    for f in values:
        kept.keep(f, np.zeros((10, 10, 3), np.uint8), ids, pts)

    def z_of(f, ids):  # every point at depth 1 map unit; frame 5 sees too few mapped points
        return (ids, np.ones(len(ids))) if f != 5 else (ids[:5], np.ones(5))

    model = _Constant(values)
    scale, stats = depth_scale(kept, model, z_of)
    assert scale == pytest.approx(2.1) and stats["frames_used"] == 5 and stats["frames_kept"] == 6
    assert model.calls == [0, 1, 2, 3, 4]  # frame 5 is not worth a read
    assert depth_scale(kept, model, lambda f, ids: (ids[:3], np.ones(3)))[0] is None

    def wrong(frame, index):
        return np.ones((3, 3), np.float32)

    with pytest.raises(UserError, match=r"shape \(3, 3\) for frame 0, expected \(10, 10\)"):
        depth_scale(kept, wrong, z_of)


def _rendered_room(size: int = 480):
    from tests.test_camera_motion import _rendered_sequence

    frames, K, kp, seq = _rendered_sequence(3000, 1, moving=True, size=size)
    return frames, K, kp, seq, seq.room(size)


class _TrueDepth:
    """The room's depth times a known factor (a depth model that is 30 % too far)."""

    name = "true room x1.3"

    def __init__(self, room: Room, K: np.ndarray, T: np.ndarray, size: tuple[int, int]) -> None:
        self.room, self.K, self.T, self.size = room, K, T, size

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        return 1.3 * room_depth(self.room, self.K, self.T[index], *self.size)


def test_the_scale_of_an_estimated_path_comes_from_the_depth_model() -> None:
    frames, K, kp, seq, room = _rendered_room()
    T_true = seq.camera.T_cano_from_cam
    size = (frames.shape[2], frames.shape[1])
    tracker = BackgroundTracker(K, size)
    depth = _TrueDepth(room, K, T_true, size)
    tap = CameraTap(lambda f: [Detection(kp[tracker.num_frames].astype(np.float32), np.ones(21, np.float32), 1.0, 1.0)],
                    tracker, depth_every=4)
    for f in frames:
        tap(f)
    said: list[str] = []
    res = resolve_camera(plan_camera("estimate", None, None, depth), tracker, len(frames), 30.0, said.append, depth)
    assert res.moving and isinstance(res.scale, float)
    assert res.scale_source == "metric depth model true room x1.3"
    te, tt = res.poses[:, :3, 3], T_true[:, :3, 3]
    best = float((te * tt).sum() / (te * te).sum())  # the unit path's least-squares scale onto the truth
    assert res.scale / best == pytest.approx(1.3, rel=0.1)
    depth = res.info["stats"]["depth"]
    assert depth["frames_kept"] == 10 and depth["frames_used"] >= 8 and res.depth_seconds > 0
    assert any("scale from the metric depth model" in m for m in said)


def test_plan_checks_the_depth_model_with_the_other_camera_flags(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--depth-model scales an estimated camera path"):
        plan_camera("static", None, None, "/some/dir")
    with pytest.raises(UserError, match="either --camera-scale or --depth-model"):
        plan_camera("auto", "0.5", None, "/some/dir")
    with pytest.raises(UserError, match="expected a directory with a transformers config.json"):
        plan_camera("auto", None, None, tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "dpt"}')
    with pytest.raises(UserError, match="model_type 'dpt' does not give metric depth"):
        plan_camera("auto", None, None, tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "depth_anything"}')  # no key: relative, as transformers reads it
    with pytest.raises(UserError, match=r"'depth_anything \(relative depth\)' does not give metric depth"):
        plan_camera("auto", None, None, tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "depth_anything", "depth_estimation_type": "metric"}')
    assert plan_camera("auto", None, None, tmp_path).tracks


def _tiny_depth_anything(path: Path, kind: str = "metric") -> Path:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    from transformers import DPTImageProcessorPil

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            image_size=56, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                                 head_hidden_size=8, reassemble_hidden_size=32, depth_estimation_type=kind,
                                 max_depth=20)
    DepthAnythingForDepthEstimation(config).save_pretrained(path)
    DPTImageProcessorPil(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14).save_pretrained(path)
    return path


def test_a_local_transformers_metric_checkpoint_gives_a_depth_map(tmp_path: Path) -> None:
    model = TransformersDepth(_tiny_depth_anything(tmp_path / "da"))
    frame = np.random.default_rng(0).integers(0, 255, (72, 128, 3), dtype=np.uint8)
    d = model(frame, 0)
    assert d.shape == (72, 128) and d.dtype == np.float32 and np.all(np.isfinite(d)) and np.all(d > 0)
    assert model.name == "depth_anything:da"


def test_a_relative_missing_or_broken_depth_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not give metric depth"):
        TransformersDepth(_tiny_depth_anything(tmp_path / "rel", "relative"))
    with pytest.raises(UserError, match="expected a directory with a transformers config.json"):
        TransformersDepth(tmp_path / "nothing")
    broken = _tiny_depth_anything(tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="cannot read the checkpoint"):
        TransformersDepth(broken)


def test_a_clip_of_unknown_length_keeps_a_bounded_number_of_frames() -> None:
    from unihand.camera.depth import DEPTH_FRAMES, depth_schedule

    kept = DepthFrames(every=depth_schedule(None))
    for f in range(5000):
        if kept.wants(f):
            kept.keep(f, np.zeros((4, 4, 3), np.uint8), np.arange(3), np.zeros((3, 2)))
    assert DEPTH_FRAMES <= len(kept.frames) <= 2 * DEPTH_FRAMES
    gaps = np.diff(kept.frames)
    assert kept.frames[0] == 0 and np.all(gaps == gaps[0])  # still evenly spread over the clip


def test_a_still_camera_costs_no_depth_reads() -> None:
    from tests.test_camera_motion import _rendered

    frames, K, kp, _ = _rendered(3000, 0, moving=False, frames=20)
    tracker = BackgroundTracker(K, (frames.shape[2], frames.shape[1]))
    tap = CameraTap(lambda f: [Detection(kp[tracker.num_frames].astype(np.float32), np.ones(21, np.float32), 1.0, 1.0)],
                    tracker, depth_every=4)
    for f in frames:
        tap(f)
    model = _Constant({})
    res = resolve_camera(plan_camera("auto", None, None, model), tracker, len(frames), 30.0, None, model)
    assert not res.moving and res.scale == 1.0 and model.calls == []
    assert len(tracker.depth.frames) == 5  # kept, never read


def test_estimate_with_a_depth_model_writes_metric_poses_and_names_the_source(tmp_path: Path) -> None:
    """``estimate_video(..., depth_model=...)``: the motion's camera poses in metres at the depth model's
    scale, the summary names the source, the reads are timed apart."""
    import json

    from tests.test_video_estimate import StubModel
    from unihand.video.estimate import estimate_video
    from unihand.viz.video import H264Writer

    frames, K, kp, seq, room = _rendered_room()
    T_true = seq.camera.T_cano_from_cam
    video = tmp_path / "clip.mp4"
    writer = H264Writer(video, (frames.shape[2], frames.shape[1]), 30.0, crf=18)
    for f in frames:
        writer.write(f)
    writer.close()
    count = iter(range(10**6))

    def detector(frame: np.ndarray) -> list[Detection]:
        return [Detection(kp[next(count) % len(kp)].astype(np.float32), np.ones(21, np.float32), 1.0, 1.0)]

    depth = _TrueDepth(room, K, T_true, (frames.shape[2], frames.shape[1]))
    res = estimate_video(video, tmp_path / "out", hands="right", intrinsics=(K[0, 0], K[1, 1], K[0, 2], K[1, 2]),
                         model=StubModel(), detector=detector, render=False, progress=False, depth_model=depth)
    cam = json.loads((tmp_path / "out" / "right_summary.json").read_text())["camera"]
    assert cam["scale_source"] == "metric depth model true room x1.3" and cam["stats"]["depth"]["frames_used"] >= 8
    T = np.load(tmp_path / "out" / "right_motion.npz")["T_cano_from_cam"].astype(np.float64)
    te, tt = T[:, :3, 3], T_true[:, :3, 3]
    assert float((te * tt).sum() / (te * te).sum()) == pytest.approx(1 / 1.3, rel=0.1)  # metres, 30 % too long
    assert res.timings["depth_model"] > 0 and res.timings["camera"] > 0
