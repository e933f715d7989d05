"""``unihand demo``: synthetic video -> the estimate path (camera stage included) -> metrics against the
ground truth; the figures the README states for the default demo, within a tolerance."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from unihand.cli.demo import DEMO_INDEX, make_demo_sequence, make_detector, run_demo
from unihand.data.io import Motion
from unihand.errors import UserError
from unihand.video.detect import SimulatedDetector

README = Path(__file__).resolve().parents[1] / "README.md"

#: What ``unihand demo`` prints for the default video (96 frames, MediaPipe, the shipped checkpoint, the
#: camera estimated from the video), and how the README states it. When the refinement, the camera
#: stage, the detector settings or the checkpoint change, these move: run ``unihand demo``, then update
#: this table and the README's demo paragraph together (``test_the_readme_states_the_demo_figures``
#: checks they agree). name: (value, tolerance, the README's wording of the value)
DEMO_FIGURES = {
    "detected_frames": (82, 2, "{:.0f} of the 96 frames"),
    "kp2d_median_px": (4.7, 0.3, "keypoints lie {:.1f} px"),
    "camera_rotation_mean_deg": (0.06, 0.05, "rotation error of {:.2f}°"),
    "camera_position_mean_cm": (2.1, 0.5, "position error of {:.1f} cm"),
    "mpjpe_mm": (33, 4, "MPJPE {:.0f} mm"),
    "pa_mpjpe_mm": (7.6, 0.6, "PA-MPJPE {:.1f} mm"),
    "g_mpjpe_mm": (36, 4, "G-MPJPE {:.0f} mm"),
    "depth_error_percent": (4, 3, "{:.0f} % too far"),
}


def figures(rep: dict) -> dict[str, float]:
    """The :data:`DEMO_FIGURES` of a demo report (``demo_metrics.json``)."""
    m, c = rep["metrics"], rep["camera"]
    return {"detected_frames": rep["detection"]["detected_frames"],
            "kp2d_median_px": rep["detection"]["kp2d_error_px"]["median"],
            "camera_rotation_mean_deg": c["rotation_mean_deg"], "camera_position_mean_cm": c["position_mean_cm"],
            "mpjpe_mm": m["mpjpe"], "pa_mpjpe_mm": m["pa_mpjpe"], "g_mpjpe_mm": m["g_mpjpe"],
            "depth_error_percent": rep["depth_error"]["mean_percent"]}


@pytest.fixture(scope="module")
def pipe():
    from unihand.cli.flags import torch_threads
    from unihand.pipeline import UniHandPipeline

    with torch_threads(1):  # as the demo runs (restored afterwards for the other tests)
        yield UniHandPipeline.from_pretrained()


def test_demo_sequence_has_what_the_demo_promises() -> None:
    seq = make_demo_sequence(96, DEMO_INDEX, left=False, moving=True)  # the default demo
    assert seq.camera.moving and seq.is_right and seq.background == "room"
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


def test_demo_end_to_end(pipe, tmp_path) -> None:
    rep = run_demo(tmp_path, frames=24, model=pipe, steps=2, detector="simulated", log=lambda m: None)
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
    assert saved["camera"]["rotation_mean_deg"] == pytest.approx(rep["camera"]["rotation_mean_deg"])
    motion = Motion.load(tmp_path / f"{side}_motion.npz", require_joints=True)
    assert motion.num_frames == 24 and motion.K is not None and np.isfinite(motion.joints).all()
    assert motion.hand_pose.shape == (24, 45) and motion.joints_2d.shape == (24, 21, 2)
    assert motion.is_right == (side == "right")
    assert rep["reprojection_error_px"]["median"] is not None
    assert rep["detection"]["detector"] == "simulated"
    assert rep["detection"]["detected_frames"] == 24 - rep["sequence"]["infilled_frames"]


@pytest.fixture(scope="module")
def default_demo(pipe, tmp_path_factory):
    """The default demo as ``unihand demo`` runs it (MediaPipe on the rendered frames), outputs not rendered."""
    pytest.importorskip("mediapipe")
    logs: list[str] = []
    rep = run_demo(tmp_path_factory.mktemp("demo"), model=pipe, render=False, log=logs.append)
    return rep, logs


def test_the_default_demo_gives_the_stated_figures(default_demo) -> None:
    rep, logs = default_demo
    assert rep["detection"]["detector"] == "mediapipe" and any("MediaPipe Hands" in m for m in logs)
    # the real camera stage ran on the video and found it moving (no true poses given)
    assert rep["camera"]["source"].startswith("estimated from the video")
    assert any(m.startswith("camera: moving, estimated from the video") for m in logs)
    assert rep["camera"]["true_rotation_max_deg"] > 10  # a head-mounted camera, not a still one
    got = figures(rep)
    off = {k: (round(got[k], 3), v) for k, (v, tol, _) in DEMO_FIGURES.items() if abs(got[k] - v) > tol}
    assert not off, f"the demo's figures moved (got, stated): {off}; update DEMO_FIGURES and the README together"


def test_the_readme_states_the_demo_figures() -> None:
    text = " ".join(README.read_text().split())  # line breaks as spaces
    missing = [fmt.format(v) for v, _, fmt in DEMO_FIGURES.values() if fmt.format(v) not in text]
    assert not missing, f"the README does not state these demo figures: {missing}"
    assert re.search(r"unihand demo|run\.sh demo", text)


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
