"""HO3D adapter: OpenGL -> OpenCV, joint order, restricted pickles, submission format."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from unihand.data.datasets import ho3d
from unihand.errors import UserError
from unihand.hand import fk_numpy, load_hand_model
from unihand.hand.joints import OPENPOSE_JOINT_NAMES

from test_dexycb import make_mano_dir

K = np.array([[614.0, 0.0, 312.0], [0.0, 614.0, 241.0], [0.0, 0.0, 1.0]])
HO3D_NAMES = ("wrist", "index1", "index2", "index3", "middle1", "middle2", "middle3", "little1", "little2",
              "little3", "ring1", "ring2", "ring3", "thumb1", "thumb2", "thumb3",
              "thumb_tip", "index_tip", "middle_tip", "ring_tip", "little_tip")


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mano_dir(tmp_path_factory.mktemp("mano"))


def test_opengl_flip_and_joint_order() -> None:
    np.testing.assert_array_equal(ho3d.gl_to_cv(np.array([1.0, 2.0, -3.0])), [1.0, -2.0, 3.0])
    # OpenPose joint 1 (thumb CMC) is HO3D's thumb1; 4 (thumb tip) is HO3D's thumb_tip; round trip.
    assert HO3D_NAMES[ho3d.HO3D_TO_OPENPOSE[1]] == "thumb1" and HO3D_NAMES[ho3d.HO3D_TO_OPENPOSE[4]] == "thumb_tip"
    assert [HO3D_NAMES[i].split("_")[0][:3] for i in ho3d.HO3D_TO_OPENPOSE[17:]] == ["lit"] * 4
    assert OPENPOSE_JOINT_NAMES[ho3d.OPENPOSE_TO_HO3D[13]] == "thumb_cmc"
    np.testing.assert_array_equal(np.arange(21)[ho3d.HO3D_TO_OPENPOSE][ho3d.OPENPOSE_TO_HO3D], np.arange(21))


def test_mano_moves_with_the_flip(mano_dir: Path) -> None:
    rng = np.random.default_rng(0)
    hand = load_hand_model(str(mano_dir))
    mano = np.concatenate([rng.normal(scale=0.4, size=(4, 48)), rng.normal(scale=0.5, size=(4, 10)),
                           np.tile([0.05, -0.02, -0.5], (4, 1))], 1)
    j_gl, _ = fk_numpy(hand, mano)
    root = hand.rest_root(__import__("torch").from_numpy(mano[:, 48:58])).numpy()
    j_cv, _ = fk_numpy(hand, ho3d.mano_gl_to_cv(mano, root).astype(np.float64))
    np.testing.assert_allclose(j_cv, j_gl * [1.0, -1.0, -1.0], atol=1e-5)


def _pkl(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(data, protocol=2))


def make_tree(root: Path, mano_dir: Path, frames: int = 5) -> dict:
    """Train sequence ABF10 and evaluation sequence SM1 in the official layout (OpenGL frame)."""
    rng = np.random.default_rng(1)
    hand = load_hand_model(str(mano_dir))
    pose = rng.normal(scale=0.3, size=(frames, 48))
    beta = rng.normal(scale=0.5, size=10)
    trans = np.tile([0.02, 0.05, -0.45], (frames, 1))
    mano = np.concatenate([pose, np.tile(beta, (frames, 1)), trans], 1)
    joints_mano_order, _ = fk_numpy(hand, mano)  # OpenPose order; HO3D stores MANO order
    ho3d_joints = joints_mano_order[:, ho3d.OPENPOSE_TO_HO3D]
    for f in range(frames):
        _pkl(root / "train" / "ABF10" / "meta" / f"{f:04d}.pkl",
             {"handPose": pose[f], "handBeta": beta, "handTrans": trans[f], "handJoints3D": ho3d_joints[f],
              "camMat": K, "objName": "021_bleach_cleanser", "objRot": np.zeros((3, 1))})
        _pkl(root / "evaluation" / "SM1" / "meta" / f"{f:04d}.pkl",
             {"handJoints3D": ho3d_joints[f, 0], "handBoundingBox": [1, 2, 3, 4], "camMat": K})
    (root / "train.txt").write_text("".join(f"ABF10/{f:04d}\n" for f in range(frames)))
    (root / "evaluation.txt").write_text("".join(f"SM1/{f:04d}\n" for f in range(frames)))
    return {"mano": mano, "joints_gl_openpose": joints_mano_order, "ho3d_joints": ho3d_joints}


def test_train_split(tmp_path: Path, mano_dir: Path) -> None:
    truth = make_tree(tmp_path, mano_dir)
    (t,) = ho3d.load_tracks(tmp_path, "train", mano_dir=mano_dir)
    assert t.name == "ABF10" and t.valid.all() and t.is_right and t.image_size == (640, 480)
    expected = truth["joints_gl_openpose"] * [1.0, -1.0, -1.0]
    np.testing.assert_allclose(t.joints, expected, atol=1e-6)
    assert np.all(t.joints[..., 2] > 0)  # in front of an OpenCV camera
    uv = expected @ K.T
    np.testing.assert_allclose(t.kp2d, uv[..., :2] / uv[..., 2:], atol=1e-3)
    j, v = fk_numpy(load_hand_model(str(mano_dir)), t.mano.astype(np.float64))
    np.testing.assert_allclose(j, expected, atol=1e-5)
    np.testing.assert_allclose(t.vertices, v, atol=1e-5)
    (kin,) = ho3d.load_tracks(tmp_path, "train")  # without MANO: kinematic rest root, no vertices
    assert kin.vertices is None
    np.testing.assert_allclose(kin.joints, expected, atol=1e-6)


def test_evaluation_split_and_reference(tmp_path: Path, mano_dir: Path) -> None:
    truth = make_tree(tmp_path, mano_dir)
    (t,) = ho3d.load_tracks(tmp_path, "evaluation", mano_dir=mano_dir)
    assert t.name == "SM1" and not t.valid.any() and not t.kp2d_mask.any()
    (tmp_path / "evaluation_xyz.json").write_text(json.dumps(truth["ho3d_joints"].tolist()))
    (t,) = ho3d.load_tracks(tmp_path, "evaluation", mano_dir=mano_dir)
    assert t.valid.all() and t.vertices is not None
    np.testing.assert_allclose(t.joints, truth["joints_gl_openpose"] * [1.0, -1.0, -1.0], atol=1e-6)


def test_submission_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    joints = rng.normal(scale=0.05, size=(3, 21, 3)) + [0, 0, 0.5]
    verts = rng.normal(scale=0.05, size=(3, 778, 3)) + [0, 0, 0.5]
    path = ho3d.write_submission(tmp_path / "pred.json", joints, verts)
    xyz, vv = json.loads(path.read_text())
    xyz, vv = np.asarray(xyz), np.asarray(vv)
    assert xyz.shape == (3, 21, 3) and vv.shape == (3, 778, 3)
    assert np.all(xyz[..., 2] < 0)  # OpenGL: the hand is along -z, as pred.py checks
    np.testing.assert_allclose(xyz[:, ho3d.HO3D_TO_OPENPOSE] * [1, -1, -1], joints)
    np.testing.assert_allclose(vv * [1, -1, -1], verts)
    with pytest.raises(UserError, match="needs joints"):
        ho3d.write_submission(tmp_path / "bad.json", joints, verts[:2])


class _Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def test_bad_inputs(tmp_path: Path, mano_dir: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(UserError, match="HO3D root not found"):
        ho3d.load_tracks(tmp_path / "nope")
    make_tree(tmp_path, mano_dir)
    (tmp_path / "evaluation.txt").unlink()
    with pytest.raises(UserError, match="missing .*evaluation.txt"):
        ho3d.load_tracks(tmp_path, "evaluation")
    bad = tmp_path / "train" / "ABF10" / "meta" / "0002.pkl"
    bad.write_bytes(pickle.dumps({"handPose": _Evil()}, protocol=2))
    with pytest.raises(UserError, match="no usable sequence"):
        ho3d.load_tracks(tmp_path, "train")
    err = capsys.readouterr().err
    assert "skipped ABF10: ValueError: unreadable annotation 0002.pkl" in err and "refusing" in err
    assert "pwned" not in err
