"""`unihand fk`: joints (and vertices) filled in, atomic output, one-line errors with exit code 2."""

import numpy as np
import pytest
import torch

from unihand import cli
from unihand.data.io import Motion
from unihand.hand import KinematicHand, ManoHand
from unihand.hand.testing import write_random_mano


@pytest.fixture(autouse=True)
def only_fk(monkeypatch):
    """Other subcommands live in other modules; this file tests `fk` alone through the real entry point."""
    monkeypatch.setattr(cli, "SUBCOMMANDS", {"fk": "unihand.cli.fk"})


def write_motion(path, n=6, is_right=True, seed=0):
    rng = np.random.default_rng(seed)
    mano = np.concatenate([rng.normal(size=(n, 3)), 0.4 * rng.normal(size=(n, 45)),
                           rng.normal(size=(n, 10)), 0.2 * rng.normal(size=(n, 3))], 1)
    motion = Motion.from_mano(mano, is_right=is_right, fps=25.0, extra={"note": np.array([1, 2, 3])})
    motion.save(path)
    return motion


def expected_joints(hand, motion):
    p = {k: torch.from_numpy(v) for k, v in
         dict(global_orient=motion.global_orient, hand_pose=motion.hand_pose, betas=motion.betas,
              transl=motion.transl).items()}
    return hand(**p)


@pytest.mark.parametrize("is_right", [True, False])
def test_fk_kinematic(tmp_path, capsys, is_right):
    src = write_motion(tmp_path / "in.npz", is_right=is_right)
    assert cli.main(["fk", str(tmp_path / "in.npz"), "-o", str(tmp_path / "out" / "res.npz")]) == 0
    assert "6 frames, kinematic" in capsys.readouterr().out
    out = Motion.load(tmp_path / "out" / "res.npz", require_joints=True)
    assert out.vertices is None and out.is_right == is_right and out.fps == 25.0
    np.testing.assert_array_equal(out.extra["note"], [1, 2, 3])
    np.testing.assert_array_equal(out.hand_pose, src.hand_pose)
    ref = expected_joints(KinematicHand(is_right=is_right), src).joints.numpy()
    np.testing.assert_allclose(out.joints, ref, atol=1e-6)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["res.npz"]  # no temp file left


def test_fk_with_mano_writes_vertices(tmp_path):
    mano_dir = write_random_mano(tmp_path / "mano")
    src = write_motion(tmp_path / "in.npz", n=4, is_right=False)
    code = cli.main(["fk", str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npz"), "--mano-dir", str(mano_dir)])
    assert code == 0
    out = Motion.load(tmp_path / "out.npz")
    ref = expected_joints(ManoHand.from_dir(mano_dir, is_right=False), src)
    assert out.vertices.shape == (4, 778, 3)
    np.testing.assert_allclose(out.joints, ref.joints.numpy(), atol=1e-6)
    np.testing.assert_allclose(out.vertices, ref.vertices.numpy(), atol=1e-6)


def test_missing_mano_is_one_line_exit_2(tmp_path, capsys):
    write_motion(tmp_path / "in.npz")
    code = cli.main(["fk", str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npz"), "--mano-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("unihand fk: error: MANO model not found") and "MANO_RIGHT.pkl" in err
    assert not (tmp_path / "out.npz").exists()


def test_bad_motion_file_is_one_line_exit_2(tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", global_orient=np.zeros((3, 3)))
    assert cli.main(["fk", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing field(s)" in err
    assert cli.main(["fk", str(tmp_path / "absent.npz"), "-o", str(tmp_path / "out.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
