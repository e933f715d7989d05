"""``unihand demo``: synthetic video -> the estimate path -> metrics against the ground truth."""

import json

import numpy as np
import pytest

from unihand.data.io import Motion
from unihand.cli.demo import DEMO_INDEX, make_demo_sequence, make_detector, run_demo
from unihand.video.detect import SimulatedDetector
from unihand.errors import UserError


@pytest.fixture(scope="module")
def model():
    from unihand.pipeline import UniHand, shipped_checkpoint
    from unihand.cli.flags import torch_threads

    with torch_threads(1):  # as the demo runs (restored afterwards for the other tests)
        if (shipped_checkpoint() / "config.json").exists():
            yield UniHand.from_pretrained()
        else:
            from unihand.config import model_config

            yield UniHand(model_config("small")).eval()  # untrained stand-in until a checkpoint ships


def test_demo_sequence_has_what_the_demo_promises() -> None:
    seq = make_demo_sequence(96, DEMO_INDEX, left=False, moving=True)  # the default demo
    assert seq.camera.moving and seq.is_right
    assert seq.occluders.count >= 1
    assert (~seq.conditions.frame_mask("kp2d")).sum() >= 1  # some frames without detection


def test_simulated_detector_matches_the_conditions() -> None:
    seq = make_demo_sequence(24, DEMO_INDEX, left=True, moving=True)
    c = seq.conditions
    det = SimulatedDetector(c, lambda kp: kp * np.array([100.0, 50.0]), right_prob=0.05)
    for t in range(24):
        out = det(None)
        m = c.kp2d_mask[t]
        if m.sum() < 2:
            assert out == []
            continue
        (d,) = out
        assert not d.is_right
        np.testing.assert_allclose(d.keypoints[m], c.kp2d[t][m] * [100, 50], rtol=1e-5)
        assert (d.confidence[~m] == 0).all()


def test_demo_end_to_end(model, tmp_path) -> None:
    rep = run_demo(tmp_path, frames=24, model=model, steps=2, detector="simulated", log=lambda m: None)
    names = {p.name for p in tmp_path.iterdir()}
    side = rep["sequence"]["hand"]
    expected = {f"{side}_motion.npz", f"{side}_summary.json", f"{side}_overlay.mp4", f"{side}_trajectory.png",
                f"{side}_viewer.html", f"{side}.bvh", "demo_input.mp4", "demo_metrics.json"}
    assert names == expected
    m = rep["metrics"]
    for key in ("mpjpe", "pa_mpjpe", "g_mpjpe", "acc_err"):
        assert np.isfinite(m[key])
    assert "by_missing" in m and "by_occlusion" in m
    assert rep["sequence"]["moving_camera"] and rep["sequence"]["infilled_frames"] >= 1
    saved = json.loads((tmp_path / "demo_metrics.json").read_text())
    assert saved["metrics"]["mpjpe"] == pytest.approx(m["mpjpe"])
    motion = Motion.load(tmp_path / f"{side}_motion.npz", require_joints=True)
    assert motion.num_frames == 24 and motion.K is not None and np.isfinite(motion.joints).all()
    assert motion.hand_pose.shape == (24, 45) and motion.joints_2d.shape == (24, 21, 2)
    assert motion.is_right == (side == "right")
    assert rep["reprojection_error_px"]["median"] is not None
    assert rep["detection"]["detector"] == "simulated"
    assert rep["detection"]["detected_frames"] == 24 - rep["sequence"]["infilled_frames"]


def test_demo_with_mediapipe(model, tmp_path) -> None:
    pytest.importorskip("mediapipe")
    logs = []
    rep = run_demo(tmp_path, frames=32, model=model, steps=2, render=False, log=logs.append)
    det = rep["detection"]
    assert det["detector"] == det["requested"] == "mediapipe"
    assert any("MediaPipe Hands" in m for m in logs)
    assert det["detected_frames"] >= 20  # the rendered hand is found on most frames (24 of 32)
    assert det["kp2d_error_px"]["median"] < 20
    saved = json.loads((tmp_path / "demo_metrics.json").read_text())
    assert saved["detection"]["detector"] == "mediapipe" and np.isfinite(rep["metrics"]["mpjpe"])


def test_detector_falls_back_only_without_mediapipe(monkeypatch) -> None:
    import sys

    seq = make_demo_sequence(8, DEMO_INDEX, left=False, moving=True)
    logs = []
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe -> ImportError
    det, name = make_detector("mediapipe", seq, lambda kp: kp, logs.append)
    assert name == "simulated" and isinstance(det, SimulatedDetector)
    assert len(logs) == 1 and "MediaPipe is not available" in logs[0]
    det, name = make_detector("simulated", seq, lambda kp: kp, logs.append)
    assert name == "simulated" and len(logs) == 1
    with pytest.raises(UserError, match="--detector"):
        make_detector("openpose", seq, lambda kp: kp)
