"""The estimate path end to end: outputs, masks, left hands, the CLI, and every kind of bad input.

These tests use a stand-in model (back-projects the detected keypoints at a fixed depth) so they
test the orchestration in well under a second each; ``test_video_demo.py`` runs the real model
through the same path.
"""

import json
import os
from pathlib import Path
from types import SimpleNamespace

import imageio_ffmpeg
import numpy as np
import pytest

from unihand.data.io import Conditions, Motion
from unihand.errors import UserError
from unihand.pipeline import UniHandPipelineOutput
from unihand.video.decode import open_video, read_all
from unihand.geometry.camera import DEFAULT_FOV_DEG
from unihand.video.conditions import track_conditions
from unihand.video.estimate import estimate_video
from unihand.video.intrinsics import resolve_intrinsics
from unihand.video.outputs import OUTPUT_NAMES
from unihand.video.track import HandTrack

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "right_hand_office.mp4"
needs_sample = pytest.mark.skipif(not SAMPLE.exists(), reason="sample video not available")
N = 12


class StubModel:
    """Called like a UniHandPipeline: joints on the rays of the 2D keypoints at 0.5 m (the last seen pose when
    infilling)."""

    def __init__(self) -> None:
        self.calls: list[Conditions] = []

    def __call__(self, cond: Conditions, **kw) -> UniHandPipelineOutput:
        return UniHandPipelineOutput(motions=[self.generate(cond, **kw)])

    def generate(self, cond: Conditions, *, num_inference_steps=None, guidance_scale=None, generator=None,
                 progress=False, refine=True, camera_poses=None, camera_scale=1.0, other_hand=None) -> Motion:
        self.calls.append(cond)
        n = cond.num_frames
        w, h = cond.image_size
        px = cond.kp2d * np.array([w, h])
        Kinv = np.linalg.inv(cond.K.astype(np.float64))
        joints = np.zeros((n, 21, 3))
        last = np.tile([0.0, 0.0, 0.5], (21, 1))
        for t in range(n):
            m = cond.kp2d_mask[t]
            ray = np.concatenate([px[t], np.ones((21, 1))], axis=1) @ Kinv.T
            cur = last.copy()
            cur[m] = ray[m] * 0.5
            joints[t] = last = cur
        mano = np.zeros((n, 61), np.float32)
        return Motion.from_mano(mano, joints=joints.astype(np.float32), is_right=cond.is_right, fps=cond.fps,
                                K=cond.K, image_size=cond.image_size)


def _write_video(path: Path, frames: np.ndarray, fps: float = 30) -> Path:
    gen = imageio_ffmpeg.write_frames(str(path), (frames.shape[2], frames.shape[1]), fps=fps, codec="libx264",
                                      macro_block_size=2, ffmpeg_log_level="error", quality=None,
                                      output_params=["-crf", "18"])
    gen.send(None)
    for f in frames:
        gen.send(np.ascontiguousarray(f))
    gen.close()
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """12 frames of the sample at 640x360, its mirror image (a left hand), and a video without hands."""
    import cv2

    d = tmp_path_factory.mktemp("clips")
    out = {"blank": _write_video(d / "blank.mp4", np.full((6, 120, 160, 3), 128, np.uint8))}
    if SAMPLE.exists():
        frames = read_all(open_video(SAMPLE, start="100f", end=f"{100 + N}f"))
        small = np.stack([cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in frames])
        out["right"] = _write_video(d / "right.mp4", small)
        out["left"] = _write_video(d / "left.mp4", small[:, :, ::-1])
    return out


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


@pytest.fixture(scope="module")
def sample_run(clips, tmp_path_factory):
    """The stand-in model's run on the 12-frame clip, every output rendered."""
    if "right" not in clips:
        pytest.skip("sample video not available")
    tmp_path = tmp_path_factory.mktemp("run")
    model = StubModel()
    res = estimate_video(clips["right"], tmp_path / "out", model=model, progress=False)
    return model, res, tmp_path


@needs_sample
def test_outputs_for_the_sample(sample_run) -> None:
    model, res, tmp_path = sample_run
    assert list(res.hands) == ["right"]
    r = res.hands["right"]
    expected = sorted(v.format(hand="right") for v in OUTPUT_NAMES.values())
    assert _listing(tmp_path / "out") == expected  # and no staging folder left
    umask = os.umask(0o022)
    os.umask(umask)
    for p in (tmp_path / "out").iterdir():  # ordinary permissions, not the 0600 of temporary files
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask
    # conditions: normalised keypoints, per-joint masks, K and image size
    cond = model.calls[0]
    assert cond.is_right and cond.kp2d.shape == (N, 21, 2) and cond.kp2d_mask.shape == (N, 21)
    assert (cond.kp2d[cond.kp2d_mask] >= 0).all() and (cond.kp2d[cond.kp2d_mask] <= 1).all()
    assert tuple(cond.image_size) == (640, 360)
    assert cond.K[0, 0] == pytest.approx((640 / 2) / np.tan(np.radians(DEFAULT_FOV_DEG / 2)), rel=1e-5)
    # the motion file
    m = Motion.load(tmp_path / "out" / "right_motion.npz", require_joints=True)
    assert m.num_frames == N and m.is_right and m.fps == pytest.approx(30)
    assert m.joints_2d.shape == (N, 21, 2) and tuple(m.image_size) == (640, 360)
    np.testing.assert_array_equal(m.extra["frame_index"], np.arange(N))
    assert m.extra["detected"].sum() == r.track.num_detected >= N - 1
    # the stub puts joints on the detected rays: reprojection error ~0 where detected
    assert r.summary["reprojection_error_px"]["median"] < 0.01
    s = json.loads((tmp_path / "out" / "right_summary.json").read_text())
    assert s["frames"] == N and s["detections"] + s["infilled_frames"] == N
    assert s["hand"] == "right" and "default" in s["intrinsics"]
    for stage in ("decode", "detect", "track", "generate", "write_motion", "render_overlay"):
        assert stage in s["timings_s"]
    assert s["outputs"]["bvh"] == "right.bvh"


@needs_sample
def test_left_hand_and_side_selection(clips, tmp_path) -> None:
    model = StubModel()
    res = estimate_video(clips["left"], tmp_path / "o", model=model, render=False, progress=False)
    assert list(res.hands) == ["left"] and not model.calls[0].is_right
    m = Motion.load(tmp_path / "o" / "left_motion.npz")
    assert not m.is_right
    assert _listing(tmp_path / "o") == ["left_motion.npz", "left_summary.json"]
    with pytest.raises(UserError, match="no right hand detected.*found a left hand.*--hands left"):
        estimate_video(clips["left"], tmp_path / "o2", hands="right", model=model, render=False, progress=False)
    assert _listing(tmp_path / "o2") == []


@needs_sample
def test_range_and_masks(clips, tmp_path) -> None:
    model = StubModel()
    res = estimate_video(clips["right"], None, start="4f", end="10f", model=model, progress=False)
    r = res.hands["right"]
    assert r.motion.num_frames == 6
    np.testing.assert_array_equal(r.motion.extra["frame_index"], np.arange(4, 10))
    assert r.summary["canonical_frame"] == "camera of frame 4"


def test_track_conditions_masks_missing_and_low_confidence() -> None:
    n = 5
    kp = np.full((n, 21, 2), 100.0, np.float32)
    kp[2] = np.nan
    conf = np.ones((n, 21), np.float32)
    conf[2] = 0
    conf[3, 7] = 0.2
    det = np.isfinite(kp[:, 0, 0])
    track = HandTrack("left", kp, conf, det, np.full(n, 0.1, np.float32))
    K = np.eye(3)
    c = track_conditions(track, K, (200, 100), 25.0, conf_threshold=0.5)
    assert not c.is_right and c.fps == 25.0
    assert not c.kp2d_mask[2].any() and c.kp2d_mask[3].sum() == 20 and not c.kp2d_mask[3, 7]
    assert np.isfinite(c.kp2d).all() and (c.kp2d[2] == 0).all()
    np.testing.assert_allclose(c.kp2d[0, 0], [0.5, 1.0])
    assert (c.kp2d_conf[~c.kp2d_mask] == 0).all()


def test_no_hand_anywhere(clips, tmp_path) -> None:
    with pytest.raises(UserError, match="no hand detected in the 6 frames"):
        estimate_video(clips["blank"], tmp_path / "o", model=StubModel(), progress=False)
    assert _listing(tmp_path / "o") == []


def test_bad_videos_write_nothing(tmp_path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(UserError, match="not a readable video"):
        estimate_video(bad, tmp_path / "o", model=StubModel(), progress=False)
    assert not (tmp_path / "o").exists()


def test_truncated_video_writes_nothing(tmp_path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, size=(40, 64, 96, 3), dtype=np.uint8)
    full = _write_video(tmp_path / "full.mp4", frames).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(UserError) as err:
        estimate_video(cut, tmp_path / "o", model=StubModel(), progress=False)
    assert "\n" not in str(err.value)
    assert _listing(tmp_path / "o") == []


def test_unwritable_output_dir(clips, tmp_path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="cannot write outputs there"):
        estimate_video(clips["blank"], tmp_path / "afile" / "out", model=StubModel(), progress=False)
    with pytest.raises(UserError, match="not a folder"):
        estimate_video(clips["blank"], tmp_path / "afile", model=StubModel(), progress=False)


@needs_sample
def test_failure_while_writing_leaves_previous_outputs_alone(clips, tmp_path, monkeypatch) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "right.bvh").write_text("old")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("unihand.viz.bvh.write_bvh", boom)
    with pytest.raises(UserError, match="writing outputs failed.*No space left"):
        estimate_video(clips["right"], out, model=StubModel(), progress=False)
    assert _listing(out) == ["right.bvh"] and (out / "right.bvh").read_text() == "old"


def test_intrinsics() -> None:
    K, src = resolve_intrinsics(1280, 720)
    assert K[0, 0] == pytest.approx(640 / np.tan(np.radians(30)))
    assert "default" in src
    # portrait: the default FoV spans the longer (vertical) side
    Kp, _ = resolve_intrinsics(720, 1280)
    assert Kp[1, 1] == pytest.approx(640 / np.tan(np.radians(30)))
    K, _ = resolve_intrinsics(1280, 720, fov=90)
    assert K[0, 0] == pytest.approx(640)
    K, _ = resolve_intrinsics(1280, 720, intrinsics="1000, 1001, 640, 360")
    np.testing.assert_allclose(K, [[1000, 0, 640], [0, 1001, 360], [0, 0, 1]])
    K, _ = resolve_intrinsics(1280, 720, intrinsics=(900, 900, 600, 350))
    assert K[0, 2] == 600


@pytest.mark.parametrize("kw, match", [
    ({"intrinsics": "-5,100,640,360"}, "positive"),
    ({"intrinsics": "nan,1000,640,360"}, "positive"),
    ({"intrinsics": "1e7,1e7,640,360"}, "field of view"),
    ({"intrinsics": "1,1,640,360"}, "field of view"),
    ({"intrinsics": "1000,3000,640,360"}, "fx/fy"),
    ({"intrinsics": "1000,1000,5000,360"}, "outside"),
    ({"intrinsics": "1000,1000"}, "four numbers"),
    ({"intrinsics": "a,b,c,d"}, "four numbers"),
    ({"fov": 0.0}, "between"),
    ({"fov": 179.0}, "between"),
    ({"fov": float("nan")}, "between"),
    ({"fov": 60.0, "intrinsics": "1000,1000,640,360"}, "not both"),
])
def test_absurd_intrinsics(kw, match) -> None:
    with pytest.raises(UserError, match=match) as err:
        resolve_intrinsics(1280, 720, **kw)
    assert "\n" not in str(err.value)


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the estimate subcommand as ``unihand`` would (UserError -> one line, exit code 2)."""
    from unihand.cli import main

    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_bad_inputs_exit_2_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "x.mp4"
    bad.write_text("nope")
    code, _, err = _cli(["estimate", str(bad), "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and err.count("\n") == 1 and "not a readable video" in err
    good = tmp_path / "g.mp4"
    _write_video(good, np.zeros((3, 32, 32, 3), np.uint8))
    code, _, err = _cli(["estimate", str(good), "--intrinsics", "0,0,1,1", "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and err.count("\n") == 1 and "focal lengths" in err
    code, _, err = _cli(["estimate", str(good), "--fov", "500"], capsys)
    assert code == 2 and "--fov" in err
    code, _, err = _cli(["estimate", str(good), "--detect-scale", "3"], capsys)
    assert code == 2 and "--detect-scale" in err
    assert not (tmp_path / "o").exists()


@needs_sample
def test_mesh_overlay_with_mano_files(clips, sample_run, tmp_path) -> None:
    """With MANO files the overlay also draws the mesh (random MANO-shaped files stand in here)."""
    import imageio.v3 as iio

    from unihand.hand.testing import write_random_mano

    mano_dir = write_random_mano(tmp_path / "mano")

    class MeshStub(StubModel):
        def generate(self, cond, **kw):
            m = super().generate(cond, **kw)
            rng = np.random.default_rng(0)
            idx = rng.integers(0, 21, 778)
            m.vertices = (m.joints[:, idx] + rng.normal(0, 0.005, (1, 778, 3))).astype(np.float32)
            return m

    model = MeshStub()
    model.model = SimpleNamespace(mano_dir=str(mano_dir))  # what the pipeline's model was loaded with
    estimate_video(clips["right"], tmp_path / "o", end="3f", model=model, progress=False)
    m = Motion.load(tmp_path / "o" / "right_motion.npz")
    assert m.vertices.shape == (3, 778, 3)
    with_mesh = iio.imread(tmp_path / "o" / "right_overlay.mp4", index=1)
    without = iio.imread(sample_run[2] / "out" / "right_overlay.mp4", index=1)  # same frame, no mesh
    assert np.abs(with_mesh.astype(int) - without.astype(int)).mean() > 0.5  # the mesh was drawn


class ReplayDetector:
    """Returns prepared detections frame by frame (no pixels looked at)."""

    def __init__(self, per_frame):
        self.per_frame, self.t = per_frame, 0

    def __call__(self, frame):
        self.t += 1
        return self.per_frame[self.t - 1] if self.t <= len(self.per_frame) else []


def _det(center, right_prob):
    from unihand.video.detect import Detection

    rng = np.random.default_rng(int(center[0]))
    kp = np.asarray(center, float) + rng.uniform(-15, 15, (21, 2))
    return Detection(kp.astype(np.float32), np.ones(21, np.float32), right_prob, 0.9)


def test_both_hands_skips_a_side_seen_on_a_few_frames(tmp_path) -> None:
    n = 300  # with --hands both a side needs 2 % of the frames (6 here)
    video = _write_video(tmp_path / "v.mp4", np.zeros((n, 64, 96, 3), np.uint8))
    frames = [[_det((30, 30), 0.9)] for _ in range(n)]
    for t in range(50, 54):  # a "left hand" on 4 frames: a false detection
        frames[t].append(_det((70, 40), 0.1))
    res = estimate_video(video, None, model=StubModel(), detector=ReplayDetector(frames), progress=False)
    assert list(res.hands) == ["right"]
    res = estimate_video(video, None, hands="left", model=StubModel(), detector=ReplayDetector(frames),
                         progress=False)
    assert list(res.hands) == ["left"] and res.hands["left"].track.num_detected == 4
    # both sides well observed: both estimated, the left one mirrored by the pipeline
    for t in range(n):
        frames[t][1:] = [_det((70, 40), 0.1)]
    model = StubModel()
    res = estimate_video(video, None, model=model, detector=ReplayDetector(frames), progress=False)
    assert list(res.hands) == ["right", "left"] and [c.is_right for c in model.calls] == [True, False]


@needs_sample
def test_vision_checkpoint_gets_the_frames(clips, tmp_path) -> None:
    """A vision-enabled model receives every frame, resized to its backbone's input size."""
    class VisionStub(StubModel):
        model = SimpleNamespace(cfg=SimpleNamespace(vision=SimpleNamespace(enabled=True, input_size=64)))

        def generate(self, cond, *, frames=None, **kw):
            self.frames = frames
            return super().generate(cond, **kw)

    model = VisionStub()
    res = estimate_video(clips["right"], None, end="5f", model=model, progress=False)
    assert model.frames.shape == (5, 36, 64, 3) and model.frames.dtype == np.uint8
    assert res.hands["right"].summary["model"]["conditions"] == ["kp2d", "vision"]
    # a model without the vision condition is not given frames (StubModel has no such argument)
    res = estimate_video(clips["right"], None, end="5f", model=StubModel(), progress=False)
    assert res.hands["right"].summary["model"]["conditions"] == ["kp2d"]


@needs_sample
def test_real_vision_model_runs(clips) -> None:
    """The pipeline's own vision path (small trainable backbone, untrained weights) through estimate."""
    from unihand.config import model_config
    from unihand.pipeline import UniHandModel, UniHandPipeline
    from unihand.cli.flags import torch_threads

    with torch_threads(1):
        pipe = UniHandPipeline(UniHandModel(model_config("small", {"vision": {"enabled": True}})).eval())
        res = estimate_video(clips["right"], None, end="8f", model=pipe, steps=1, progress=False)
    m = res.hands["right"].motion
    assert m.num_frames == 8 and np.isfinite(m.joints).all()


# ------------------------------------------------------------------------------------------------
# The output set: replaced as one unit


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


@needs_sample
def test_rerun_replaces_the_whole_set(clips, sample_run, tmp_path) -> None:
    """A --no-render rerun leaves no overlay (or plot, viewer, BVH) of the earlier run, a hand the
    new run does not produce goes too, the user's own files stay; stale temp files are cleaned."""
    import shutil

    out = tmp_path / "o"
    shutil.copytree(sample_run[2] / "out", out)
    (out / "left_overlay.mp4").write_bytes(b"an earlier run's left hand")
    (out / "notes.txt").write_text("mine")
    (out / ".unihand-staging-dead").mkdir()  # a killed run's staging folder, no journal
    (out / ".unihand-staging-dead" / "new").mkdir()
    (out / ".right_motion.npz.k1ll3d.npz").write_bytes(b"half a file")
    estimate_video(clips["right"], out, model=StubModel(), render=False, progress=False)
    assert _listing(out) == ["notes.txt", "right_motion.npz", "right_summary.json"]
    s = json.loads((out / "right_summary.json").read_text())
    assert s["outputs"] == {"motion": "right_motion.npz", "summary": "right_summary.json"}
    assert s["motion"]["frames"] == N  # the exporter's numbers ride along


@needs_sample
def test_crash_between_renames_leaves_old_or_new_set(clips, sample_run, tmp_path, monkeypatch) -> None:
    """The k-th rename of the swap fails (an OSError: rolled back at once) or kills the run (the
    next run's recovery finishes it): the folder holds the complete old or the complete new set."""
    import shutil

    from unihand.export import output_set

    class Killed(BaseException):
        pass

    real_commit, real_replace = output_set.OutputSet.commit, os.replace
    old_names = sorted(v.format(hand="right") for v in OUTPUT_NAMES.values())
    new_names = ["right_motion.npz", "right_summary.json"]
    outcomes = set()
    for k in (1, 2, 5, 8, 9, 10, 11):
        for exc in (OSError(5, "Input/output error"), Killed()):
            out = tmp_path / f"o{k}{type(exc).__name__}"
            shutil.copytree(sample_run[2] / "out", out)
            old = _snapshot(out)
            calls = [0]

            def replace(src, dst, *a, _exc=exc, _k=k, **kw):
                calls[0] += 1
                if calls[0] == _k:
                    raise _exc
                return real_replace(src, dst, *a, **kw)

            def commit(self, _replace=replace):
                monkeypatch.setattr(os, "replace", _replace)
                try:
                    return real_commit(self)
                finally:
                    monkeypatch.setattr(os, "replace", real_replace)

            monkeypatch.setattr(output_set.OutputSet, "commit", commit)
            try:
                estimate_video(clips["right"], out, model=StubModel(), render=False, progress=False)
            except UserError as err:
                assert isinstance(exc, OSError) and "earlier outputs are kept" in str(err)
                assert _snapshot(out) == old  # rolled back in place, byte for byte
            except Killed:
                output_set.recover(out)  # what the next run does first
            monkeypatch.setattr(output_set.OutputSet, "commit", real_commit)
            listing = _listing(out)
            assert listing in (old_names, new_names), (k, exc, listing)
            if listing == old_names:
                assert _snapshot(out) == old
            else:
                assert Motion.load(out / "right_motion.npz").num_frames == N
            outcomes.add(len(listing))
    assert outcomes == {len(old_names), len(new_names)}  # both sides of the commit point were hit


@needs_sample
def test_progress_in_a_log_file_is_one_line_per_stage(clips, capfd) -> None:
    """stderr is not a terminal here (a log file): no bar, no carriage returns, one summary line per stage."""
    import sys

    estimate_video(clips["right"], None, model=StubModel(), log=lambda m: print(m, file=sys.stderr))
    err = capfd.readouterr().err
    assert "\r" not in err
    assert sum(line.startswith("detect: 12 frames in ") for line in err.splitlines()) == 1


def test_progress_bar_or_summary() -> None:
    import io
    import sys

    from unihand.progress import Progress

    buf, real = io.StringIO(), sys.stderr
    sys.stderr = buf
    try:
        with Progress(3, "work", "item") as bar:  # StringIO is no terminal: one line at the end
            for _ in range(3):
                bar.update()
        with Progress(3, "quiet", enabled=False) as bar:
            bar.update()
        with pytest.raises(RuntimeError), Progress(3, "failed") as bar:
            bar.update()
            raise RuntimeError("no summary of unfinished work")
    finally:
        sys.stderr = real
    assert buf.getvalue().splitlines() == [buf.getvalue().splitlines()[0]]
    assert buf.getvalue().startswith("work: 3 items in ") and "\r" not in buf.getvalue()
