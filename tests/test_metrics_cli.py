"""`unihand metrics`: JSON output, table, notes on stderr, one-line errors with exit code 2."""

import json
from pathlib import Path

import numpy as np
import pytest

import unihand.cli as cli

N = 10


@pytest.fixture(autouse=True)
def only_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse with this subcommand only, so the test does not depend on the others' modules."""
    monkeypatch.setattr(cli, "SUBCOMMANDS", {"metrics": "unihand.cli.metrics"})


@pytest.fixture
def gt_joints() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(N, 21, 3)).astype(np.float32) * 0.05


def _save(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _run(capsys: pytest.CaptureFixture, *argv: str | Path) -> tuple[int, str, str]:
    code = cli.main(["metrics", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_keys_and_values(tmp_path: Path, capsys: pytest.CaptureFixture, gt_joints: np.ndarray) -> None:
    gt = _save(tmp_path / "gt.npz", joints=gt_joints, fps=np.float32(30))
    pred = _save(tmp_path / "pred.npz", joints=gt_joints + np.float32(0.004))
    code, out, err = _run(capsys, pred, gt, "--json")
    assert code == 0 and err == ""
    res = json.loads(out)
    assert list(res) == ["mpjpe", "pa_mpjpe", "auc_j", "g_mpjpe", "ga_mpjpe", "acc_err"]
    assert res["mpjpe"] == pytest.approx(4.0 * np.sqrt(3), rel=1e-5)
    assert res["pa_mpjpe"] == pytest.approx(0.0, abs=1e-3)


def test_meshes_occlusion_and_default_fps(tmp_path: Path, capsys: pytest.CaptureFixture, gt_joints: np.ndarray) -> None:
    verts = np.random.default_rng(1).normal(size=(N, 778, 3)).astype(np.float32) * 0.03
    occ = np.linspace(0, 1, N)
    gt = _save(tmp_path / "gt.npz", joints=gt_joints, vertices=verts, occlusion=occ)
    pred = _save(tmp_path / "pred.npz", joints=gt_joints, vertices=verts)
    code, out, err = _run(capsys, pred, gt, "--json")
    assert code == 0 and "30 fps" in err
    res = json.loads(out)
    assert list(res) == ["mpjpe", "pa_mpjpe", "auc_j", "g_mpjpe", "ga_mpjpe", "acc_err", "f5", "f15", "by_occlusion"]
    assert res["f5"] == res["f15"] == 1.0
    assert list(res["by_occlusion"]) == ["0-25", "25-50", "50-75", "75-100"]
    assert sum(b["num_frames"] for b in res["by_occlusion"].values()) == N
    code, out, _ = _run(capsys, pred, gt)
    assert code == 0 and "PA-MPJPE" in out and "F@15" in out and "75-100%" in out


def test_only_one_mesh_and_short_sequence_notes(tmp_path: Path, capsys: pytest.CaptureFixture, gt_joints: np.ndarray) -> None:
    gt = _save(tmp_path / "gt.npz", joints=gt_joints[:2], fps=np.array([60.0]))
    pred = _save(tmp_path / "pred.npz", joints=gt_joints[:2], vertices=np.zeros((2, 778, 3), np.float32))
    code, out, err = _run(capsys, pred, gt, "--json")
    assert code == 0 and "F@5/F@15 skipped" in err and "3 frames" in err
    res = json.loads(out)
    assert "f5" not in res and res["acc_err"] is None


def _bad_cases(tmp: Path, j: np.ndarray) -> list[tuple[Path, Path, str]]:
    gt = _save(tmp / "gt.npz", joints=j)
    nan = j.copy()
    nan[3, 4, 0] = np.nan
    (tmp / "notnpz.npz").write_text("hello")
    mano = {"global_orient": np.zeros((N, 3)), "hand_pose": np.zeros((N, 45)), "betas": np.zeros((N, 10)), "transl": np.zeros((N, 3))}
    return [
        (_save(tmp / "short.npz", joints=j[:7]), gt, "'joints' has 7 frames, expected shape (10,21,3)"),
        (_save(tmp / "nan.npz", joints=nan), gt, "'joints' contains NaN"),
        (_save(tmp / "mano.npz", **mano), gt, "unihand fk"),
        (_save(tmp / "empty.npz", other=np.zeros(3)), gt, "missing field 'joints', expected shape (N,21,3)"),
        (tmp / "notnpz.npz", gt, "not an .npz file"),
        (tmp / "absent.npz", gt, "no such file"),
        (_save(tmp / "shape.npz", joints=j[..., :2]), gt, "'joints' has shape (10, 21, 2), expected (N, 21, 3)"),
        (_save(tmp / "verts.npz", joints=j, vertices=np.zeros((N, 700, 3))), gt, "'vertices' has shape (10, 700, 3), expected (10, 778, 3)"),
        (gt, _save(tmp / "occ_len.npz", joints=j, occlusion=np.zeros(4)), "'occlusion' has shape (4,), expected (10,)"),
        (gt, _save(tmp / "occ_range.npz", joints=j, occlusion=np.full(N, 1.5)), "'occlusion' has values outside [0, 1]"),
        (gt, _save(tmp / "fps.npz", joints=j, fps=np.float32(-1)), "'fps' is -1.0, expected one positive number"),
    ]


def test_bad_inputs_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, gt_joints: np.ndarray) -> None:
    for pred, gt, message in _bad_cases(tmp_path, gt_joints):
        code, out, err = _run(capsys, pred, gt, "--json")
        assert code == 2, message
        assert out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("unihand metrics: error: "), err
        assert message in lines[0], (message, lines[0])
        bad_file = pred if pred.name != "gt.npz" else gt
        assert str(bad_file) in lines[0]
