"""``unihand evaluate``: scoring protocol (ground truth as prediction, known perturbations),
the paper-table writers, and the command end to end on tiny DexYCB / HO3D trees."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from unihand.cli import main
from unihand.data.datasets import dexycb
from unihand.data.datasets.common import Track, canonical_window
from unihand.errors import UserError
from unihand.eval import tables
from unihand.eval.evaluate import (
    Prediction,
    evaluate_tracks,
    parse_conditions,
    track_conditions,
    valid_runs,
)

from test_dexycb import K, make_mano_dir, make_tree
from test_ho3d import make_tree as make_ho3d_tree

FPS = 30.0


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mano_dir(tmp_path_factory.mktemp("mano"))


def gt_predictor(track: Track, conditions: list[str]) -> Prediction:
    return Prediction(canonical_window(track, 0, track.num_frames)["joints"].astype(np.float64), track.vertices)


def walking_track(n: int = 40, valid: np.ndarray | None = None, occlusion: float = 0.6) -> Track:
    rng = np.random.default_rng(0)
    joints = rng.normal(scale=0.03, size=(1, 21, 3)) + np.linspace([0, 0, 0.5], [0.1, 0, 0.6], n)[:, None]
    kp = joints @ K.T
    return Track(name="walk", mano=np.zeros((n, 61), np.float32), joints=joints.astype(np.float32),
                 rest_root=np.zeros((n, 3)), valid=np.ones(n, bool) if valid is None else valid,
                 kp2d=(kp[..., :2] / kp[..., 2:]).astype(np.float32), kp2d_mask=np.ones((n, 21), bool), K=K,
                 image_size=(640, 480), occlusion=np.full(n, occlusion), fps=FPS)


def test_ground_truth_scores_perfectly(tmp_path: Path, mano_dir: Path) -> None:
    make_tree(tmp_path / "dexycb", mano_dir)
    tracks = dexycb.load_tracks(tmp_path / "dexycb", "test", mano_dir=mano_dir, use_cache=False)
    groups, per_seq, _ = evaluate_tracks(tracks, gt_predictor, ["2d"])
    assert groups["all"]["num_frames"] == 49  # frame 0 has no annotation
    assert groups["all"]["pa_mpjpe"] == pytest.approx(0.0, abs=1e-6)
    assert groups["all"]["mpjpe"] == pytest.approx(0.0, abs=1e-6)
    assert groups["all"]["auc_j"] == pytest.approx(1.0)
    assert groups["all"]["acc_err"] == pytest.approx(0.0, abs=1e-6)
    # Half the image is hidden: every frame lands in one middle bucket, the others are empty.
    counts = {b: groups[b]["num_frames"] for b in ("0-25", "25-50", "50-75", "75-100")}
    assert sum(counts.values()) == 49 and counts["0-25"] == 0 and counts["75-100"] == 0
    assert per_seq[0]["frames"] == [1, 50]


def test_known_perturbations() -> None:
    track = walking_track()
    offset = np.array([0.003, -0.004, 0.0])  # 5 mm
    t = np.arange(track.num_frames) / FPS
    accel = np.array([0.0, 2.0, 0.0])  # m/s^2, as a quadratic drift

    def shifted(tr: Track, conditions: list[str]) -> Prediction:
        return Prediction(tr.joints.astype(np.float64) + offset)

    def drifting(tr: Track, conditions: list[str]) -> Prediction:
        return Prediction(tr.joints.astype(np.float64) + 0.5 * accel * t[:, None, None] ** 2)

    g, _, _ = evaluate_tracks([track], shifted, ["2d"])
    assert g["all"]["mpjpe"] == pytest.approx(5.0)
    for key in ("pa_mpjpe", "g_mpjpe", "ga_mpjpe", "acc_err"):
        assert g["all"][key] == pytest.approx(0.0, abs=1e-6), key
    assert g["50-75"]["num_frames"] == 40 and g["50-75"]["mpjpe"] == pytest.approx(5.0)
    g, _, _ = evaluate_tracks([track], drifting, ["2d"])
    assert g["all"]["acc_err"] == pytest.approx(2.0)
    assert g["all"]["pa_mpjpe"] == pytest.approx(0.0, abs=1e-6) and g["all"]["ga_mpjpe"] > 0


def test_invalid_frames_split_runs() -> None:
    valid = np.ones(40, bool)
    valid[[0, 20, 21]] = False
    np.testing.assert_array_equal([(r.start, r.stop) for r in valid_runs(valid)], [(1, 20), (22, 40)])
    g, per_seq, _ = evaluate_tracks([walking_track(valid=valid)], gt_predictor, ["2d"])
    assert g["all"]["num_sequences"] == 2 and g["all"]["num_frames"] == 37
    assert [p["frames"] for p in per_seq] == [[1, 20], [22, 40]]


def test_track_conditions() -> None:
    track = walking_track()
    cond = track_conditions(track, ["2d", "3d"])
    np.testing.assert_allclose(cond.kp2d * [640, 480], track.kp2d, rtol=1e-6)
    np.testing.assert_allclose(cond.kp3d, track.joints)
    assert cond.mano is None and cond.kp3d_mask.all()
    assert parse_conditions("Vision, 2d") == ["vision", "2d"]
    with pytest.raises(UserError, match="subset of vision,2d,3d,mano"):
        parse_conditions("2d,depth")


def test_tables_layout(tmp_path: Path) -> None:
    run = tables.run_record("dexycb", ["vision", "2d"], {"all": {"pa_mpjpe": 5.5, "auc_j": 0.89},
                                                          "75-100": {"pa_mpjpe": 6.25, "auc_j": 0.876}})
    hot = tables.run_record("hot3d", ["2d", "vision"], {"all": {"pa_mpjpe": 7.0, "g_mpjpe": 80.0, "ga_mpjpe": 30.0,
                                                                "acc_err": 5.0}}, notes=["a note"])
    tables.save_run(tmp_path, run)
    tables.save_run(tmp_path, hot)
    paths = tables.write_tables(tmp_path)
    md = paths[0].read_text()
    assert "### Table 1" in md and "### Table 3" in md and "### Table 4" in md and "### Table 2" not in md
    assert "| UniHand (paper) | 4.08 | 0.918 | 4.22 | 0.913 | 4.25 | 0.912 | 4.26 | 0.912 |" in md
    assert "| **Ours (w. c_vision and c_2D) (ours)** | 5.50 | 0.890 | - | - | - | - | 6.25 | 0.876 |" in md
    assert "| HaWoR | 5.47 | 47.35 | 18.14 | 5.88 |" in md and "> a note" in md
    t4 = json.loads(paths[1].read_text())["table4"]
    ours = [r for r in t4["rows"] if r["source"] == "ours"]
    assert len(ours) == 1  # DexYCB and HOT3D runs of one setup share a row
    assert list(ours[0]["values"].values()) == [5.5, 0.89, 6.25, 0.876, 7.0, 80.0, 30.0]
    assert tables.run_label(["3d"]) == "w. c_3D" and tables.run_label(["2d"], "w/o. 3D RoPE") == "w/o. 3D RoPE"


def _tiny_checkpoint(path: Path) -> Path:
    from unihand.config import model_config
    from unihand.pipeline import UniHandModel

    small = {"d_model": 32, "layers": 1, "heads": 2, "ffn": 64}
    return UniHandModel(model_config("small", {"vae": small, "diffusion": small})).save_pretrained(path)


def test_command_end_to_end(tmp_path: Path, mano_dir: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = _tiny_checkpoint(tmp_path / "ckpt")
    make_tree(tmp_path / "dexycb", mano_dir, frames=16)
    out = tmp_path / "eval"
    argv = ["evaluate", "--dataset", "dexycb", "--root", str(tmp_path / "dexycb"), "--checkpoint", str(ckpt),
            "--mano-dir", str(mano_dir), "--conditions", "2d", "--steps", "1", "--out", str(out),
            "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    record = json.loads((out / "runs" / "dexycb__w__c_2d.json").read_text())
    assert record["conditions"] == ["2d"] and record["metrics"]["all"]["num_frames"] == 15
    md = (out / "tables.md").read_text()
    assert "**w. c_2D (ours)**" in md and "oracle" in md
    # HO3D evaluation split: no ground truth here, a CodaLab submission instead.
    make_ho3d_tree(tmp_path / "ho3d", mano_dir)
    argv = ["evaluate", "--dataset", "ho3d", "--root", str(tmp_path / "ho3d"), "--checkpoint", str(ckpt),
            "--mano-dir", str(mano_dir), "--conditions", "3d", "--steps", "1", "--out", str(out)]
    assert main(argv) == 0
    sub = out / "ho3d_submission" / "w__c_3d"
    xyz, verts = json.loads((sub / "pred.json").read_text())
    assert np.shape(xyz) == (5, 21, 3) and np.shape(verts) == (5, 778, 3)
    assert zipfile.ZipFile(sub / "pred.zip").namelist() == ["pred.json"]
    md = (out / "tables.md").read_text()
    assert "| **w. c_3D (ours)** | - | - | - | - |" in md and "CodaLab submission" in md  # Table 2, no GT here
    assert main(argv[:-2] + ["--out", str(out), "--conditions", "2d,depth"]) == 2
    assert "subset of vision,2d,3d,mano" in capsys.readouterr().err
    assert main(argv[:-2] + ["--out", str(out), "--conditions", "vision,2d"]) == 2
    assert "has no vision path" in capsys.readouterr().err
    # Synthetic test windows need no root; they get their own table.
    argv = ["evaluate", "--dataset", "synthetic", "--num-sequences", "2", "--checkpoint", str(ckpt),
            "--conditions", "2d", "--steps", "1", "--out", str(out)]
    assert main(argv) == 0
    synthetic = json.loads((out / "tables.json").read_text())["synthetic"]
    assert [r["method"] for r in synthetic["rows"]] == ["w. c_2D (ours)"]
    # the pure diffusion sample (--refine off) gets its own row beside the refined one
    assert main(argv + ["--refine", "off"]) == 0
    rows = json.loads((out / "tables.json").read_text())["synthetic"]["rows"]
    assert sorted(r["method"] for r in rows) == ["w. c_2D (ours)", "w. c_2D (pure sampling) (ours)"]


def test_static_and_moving_cameras_are_reported_apart() -> None:
    from unihand.eval.evaluate import _camera_kind, synthetic_tracks

    tracks = synthetic_tracks(6, seed=1000)
    kinds = [_camera_kind(t) for t in tracks]
    moving = [bool(np.abs(t.T_world_from_cam - t.T_world_from_cam[:1]).max() > 1e-6) for t in tracks]
    assert kinds == ["moving camera" if m else "static camera" for m in moving]
    assert set(kinds) == {"static camera", "moving camera"}  # the synthetic stream has both

    def perfect(track: Track, conditions):  # ground truth as the prediction
        return Prediction(canonical_window(track, 0, track.num_frames)["joints"].astype(np.float64), None)

    groups, _, _ = evaluate_tracks(tracks, perfect, ["2d"])
    assert groups["static camera"]["pa_mpjpe"] == pytest.approx(0.0, abs=1e-6)
    assert groups["moving camera"]["g_mpjpe"] == pytest.approx(0.0, abs=1e-6)


def test_synthetic_tracks_carry_the_rendered_frames_for_vision() -> None:
    from unihand.data.windows import SyntheticWindows
    from unihand.eval.evaluate import synthetic_tracks, track_frames

    tracks = synthetic_tracks(3, seed=1000, render_size=64)
    windows = SyntheticWindows(3, seed=1000, render=True, size=64)
    for i, track in enumerate(tracks):
        assert track.is_right  # left hands arrive mirrored, frames included: no second mirroring
        frames = track_frames(track)
        assert frames.shape == (48, 64, 64, 3) and frames.dtype == np.uint8
        np.testing.assert_array_equal(frames, windows[i]["frames"].numpy().transpose(0, 2, 3, 1))
    assert synthetic_tracks(1, seed=1000)[0].frames is None
