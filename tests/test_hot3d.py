"""HOT3D adapter: HOT3D-Clips tars and raw recordings made here, the real sample when present,
the fisheye model, the canonical transform of a moving camera and the clip split."""

from __future__ import annotations

import csv
import io
import json
import os
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from unihand.data.datasets import hot3d
from unihand.data.datasets.common import TrackWindows, canonical_window
from unihand.errors import UserError
from unihand.geometry.camera import project
from unihand.geometry.rotations import axis_angle_to_matrix, matrix_to_quat_wxyz
from unihand.hand import fk_numpy, load_hand_model
from unihand.hand.kinematic import REST_ROOT

from test_dexycb import make_mano_dir

#: A trimmed real HOT3D recording (facebookresearch/hot3d's test sample). Its data licence keeps it out of
#: this repository, so the test that reads it runs where a copy is at hand: UNIHAND_HOT3D_SAMPLE, or the
#: development machine's shared fixtures.
SAMPLE = Path(os.environ.get("UNIHAND_HOT3D_SAMPLE",
                             Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "hot3d_sample"))
FX, CX, SIZE = 30.0, 31.5, 64  # a small fisheye image keeps the test fast
PARAMS16 = [FX, FX, CX, CX] + [0.0] * 12
K = np.array([[FX, 0.0, CX], [0.0, FX, CX], [0.0, 0.0, 1.0]])
N = 50


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mano_dir(tmp_path_factory.mktemp("mano"))


def camera_pose(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Known moving camera: yaw 0.01 rad per frame about +y, sliding along +x, looking along +z."""
    R = axis_angle_to_matrix(np.array([0.0, 0.01 * i, 0.0]))
    return R, np.array([0.002 * i, 0.0, -0.4])


def hand_params(rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for side, x in (("left", -0.1), ("right", 0.1)):
        out[side] = {"thetas": rng.normal(scale=0.5, size=(N, 15)),
                     "xform": np.concatenate([rng.normal(scale=0.2, size=(N, 3)),
                                              np.tile([x, 0.0, 0.0], (N, 1)) + rng.normal(scale=0.01, size=(N, 3))], 1)}
    return out


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_clip(path: Path, params: dict, betas: np.ndarray, *, drop_left: tuple[int, ...] = ()) -> None:
    """A HOT3D-Clips tar in the official per-frame layout (Aria: stream 214-1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        _add(tar, "__hand_shapes.json__", json.dumps({"mano": betas.tolist(), "umetrack": {}}).encode())
        for i in range(N):
            R, t = camera_pose(i)
            cams = {"214-1": {"calibration": {"label": "camera-rgb", "stream_id": "214-1", "image_width": SIZE,
                                              "image_height": SIZE, "projection_model_type": "CameraModelType.FISHEYE624",
                                              "projection_params": PARAMS16},
                              "T_world_from_camera": {"translation_xyz": t.tolist(),
                                                      "quaternion_wxyz": matrix_to_quat_wxyz(R).tolist()}}}
            hands = {side: {"mano_pose": {"thetas": p["thetas"][i].tolist(), "wrist_xform": p["xform"][i].tolist()},
                            "visibilities_modeled": {"214-1": 0.75}}
                     for side, p in params.items() if not (side == "left" and i in drop_left)}
            key = f"{i:06d}"
            _add(tar, f"{key}.cameras.json", json.dumps(cams).encode())
            _add(tar, f"{key}.hands.json", json.dumps(hands).encode())
            _add(tar, f"{key}.info.json", b"{}")
            image = np.full((SIZE, SIZE, 3), i, np.uint8)
            _add(tar, f"{key}.image_214-1.jpg", cv2.imencode(".jpg", image)[1].tobytes())


def test_fisheye_projection_by_hand() -> None:
    p = np.array([0.3, -0.4, 1.0])  # r = 0.5, theta = atan(0.5)
    theta = np.arctan(0.5)
    np.testing.assert_allclose(hot3d.fisheye624_project(p, PARAMS16), [FX * theta * 0.6 + CX, -FX * theta * 0.8 + CX])
    k1 = [FX, CX, CX, 0.1] + [0.0] * 11  # Aria's 15-parameter form, one radial term
    np.testing.assert_allclose(hot3d.fisheye624_project(p, k1),
                               [FX * theta * (1 + 0.1 * theta**2) * 0.6 + CX, -FX * theta * (1 + 0.1 * theta**2) * 0.8 + CX])
    np.testing.assert_allclose(hot3d.pinhole_K(k1), [[FX, 0, CX], [0, FX, CX], [0, 0, 1]])


def test_clip_split_sizes() -> None:
    ids = list(range(5000, 5000 + 1516))
    train, test = hot3d.clip_split(ids, "train"), hot3d.clip_split(ids, "test")
    assert (len(train), len(test)) == (1272, 244) and max(train) < min(test)
    assert sorted(train + test) == ids == hot3d.clip_split(ids[::-1], "all")
    assert len(hot3d.clip_split(list(range(10)), "test")) == 2
    with pytest.raises(UserError, match="unknown split"):
        hot3d.clip_split(ids, "val")


def test_clip_tracks_and_canonical_frame(tmp_path: Path, mano_dir: Path) -> None:
    rng = np.random.default_rng(0)
    params, betas = hand_params(rng), rng.normal(scale=0.5, size=10)
    make_clip(tmp_path / "clips" / "train_aria" / "clip-001849.tar", params, betas, drop_left=(3,))
    tracks = hot3d.load_tracks(tmp_path / "clips", "all", mano_dir=mano_dir, cache_dir=tmp_path / "cache")
    left, right = tracks
    assert (left.name, right.name) == ("clip-001849/left", "clip-001849/right")
    assert right.is_right and not left.is_right and not left.valid[3] and right.valid.all()
    np.testing.assert_allclose(right.occlusion, 0.25)
    # World MANO: PCA (flat_hand_mean=False) + smplx wrist transform, by hand.
    hand = load_hand_model(str(mano_dir))
    full = params["right"]["thetas"] @ hand.hands_components.numpy()[:15] + hand.hands_mean.numpy()
    np.testing.assert_allclose(right.mano[:, 3:48], full, atol=1e-5)
    np.testing.assert_allclose(right.mano[:, :3], params["right"]["xform"][:, :3], atol=1e-6)
    np.testing.assert_allclose(right.mano[:, 58:], params["right"]["xform"][:, 3:], atol=1e-6)
    np.testing.assert_allclose(right.mano[:, 48:58], np.tile(betas, (N, 1)), atol=1e-6)
    # The canonical frame of a window is the camera of its first frame: p = R0^T (p_world - t0).
    start = 5
    R0, t0 = camera_pose(start)
    cano = canonical_window(right, start, 48)
    np.testing.assert_allclose(cano["joints"], (right.joints[start:start + 48] - t0) @ R0, atol=1e-5)
    j, _ = fk_numpy(hand, cano["mano"].astype(np.float64))  # MANO moved about its root joint agrees
    np.testing.assert_allclose(j, cano["joints"], atol=1e-5)
    # 2D: each frame's camera, undistorted to the pinhole camera with the fisheye's f and c.
    Ri, ti = camera_pose(10)
    np.testing.assert_allclose(right.K, K)
    np.testing.assert_allclose(right.kp2d[10], project((right.joints[10] - ti) @ Ri, K), atol=1e-4)
    # The left hand is mirrored with its world and cameras: canonical joints are the x-mirror.
    left_hand = load_hand_model(str(mano_dir), is_right=False)
    lfull = params["left"]["thetas"] @ left_hand.hands_components.numpy()[:15] + left_hand.hands_mean.numpy()
    lmano = np.concatenate([params["left"]["xform"][:, :3], lfull, np.tile(betas, (N, 1)), params["left"]["xform"][:, 3:]], 1)
    lj, _ = fk_numpy(left_hand, lmano)
    np.testing.assert_allclose(canonical_window(left, start, 48)["joints"][:2],
                               ((lj[start:start + 2] - t0) @ R0) * [-1.0, 1.0, 1.0], atol=1e-5)
    kp = project((lj[10] - ti) @ Ri, K)
    np.testing.assert_allclose(left.kp2d[10, :, 0], SIZE - 1 - kp[:, 0], atol=1e-4)
    np.testing.assert_allclose(left.kp2d[10, :, 1], kp[:, 1], atol=1e-4)
    # Windows: canonical camera poses; frames from the tar, undistorted and letterboxed.
    item = TrackWindows([right], random_start=False, render_size=16).item(right, 2)
    np.testing.assert_allclose(item["T_cano_from_cam"][0].numpy(), np.eye(4), atol=1e-6)
    R3, _ = camera_pose(3)
    np.testing.assert_allclose(item["T_cano_from_cam"][1, :3, :3].numpy(), camera_pose(2)[0].T @ R3, atol=1e-6)
    assert item["frames"].shape == (48, 3, 16, 16) and item["frames"].dtype == torch.uint8
    assert abs(int(item["frames"][0, 0, 8, 8]) - 2) <= 1  # frame 2's grey level, through JPEG
    np.testing.assert_allclose(item["frame_K"].numpy(), [[7.5, 0, 7.5], [0, 7.5, 7.5], [0, 0, 1]])  # 64 px -> 16 px
    assert not bool(item["is_left"])


def test_bad_clips(tmp_path: Path, mano_dir: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(UserError, match="HOT3D root not found"):
        hot3d.load_tracks(tmp_path / "nope", mano_dir=mano_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no clips"):
        hot3d.load_tracks(tmp_path / "empty", mano_dir=mano_dir)
    rng = np.random.default_rng(1)
    clips = tmp_path / "clips"
    make_clip(clips / "clip-000001.tar", hand_params(rng), np.zeros(10))
    good = (clips / "clip-000001.tar").read_bytes()
    (clips / "clip-000002.tar").write_bytes(good[: len(good) // 3])  # truncated download
    with pytest.raises(UserError, match="--mano-dir"):
        hot3d.load_tracks(clips, "all")
    tracks = hot3d.load_tracks(clips, "all", mano_dir=mano_dir, use_cache=False)
    assert [t.name for t in tracks] == ["clip-000001/left", "clip-000001/right"]
    err = capsys.readouterr().err
    assert "skipped clip-000002: truncated clip" in err and "loaded 2 sequence(s), skipped 1" in err


def _write_raw(rec: Path, params: dict, betas: np.ndarray, headset: str = "Aria") -> None:
    """A raw HOT3D recording with an identity device-to-camera calibration."""
    (rec / "masks").mkdir(parents=True)
    (rec / "mps" / "slam").mkdir(parents=True)
    (rec / "metadata.json").write_text(json.dumps({"headset": headset}))
    ts = [1000 + 33 * i for i in range(N)]
    with open(rec / "masks" / "mask_hand_pose_available.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp[ns]", "stream_id", "mask"])
        for t in ts:
            w.writerows([[t, "214-1", "True"], [t + 1, "1201-1", "True"]])
    with open(rec / "headset_trajectory.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["object_uid", "timestamp[ns]", "t_wo_x[m]", "t_wo_y[m]", "t_wo_z[m]", "q_wo_w", "q_wo_x", "q_wo_y", "q_wo_z"])
        for i, t in enumerate(ts):
            R, tr = camera_pose(i)
            w.writerow([1, t, *tr, *matrix_to_quat_wxyz(R)])
    with open(rec / "mano_hand_pose_trajectory.jsonl", "w") as fh:
        for i, t in enumerate(ts):
            poses = {key: {"pose": params[side]["thetas"][i].tolist(), "betas": betas.tolist(),
                           "wrist_xform": {"t_xyz": params[side]["xform"][i, 3:].tolist(),
                                           "q_wxyz": matrix_to_quat_wxyz(axis_angle_to_matrix(params[side]["xform"][i, :3])).tolist()}}
                     for side, key in (("left", "0"), ("right", "1"))}
            fh.write(json.dumps({"timestamp_ns": t, "hand_poses": poses}) + "\n")
    calib = {"CameraCalibrations": [{"Label": "camera-rgb", "Projection": {"Params": [FX, CX, CX] + [0.0] * 12},
                                     "T_Device_Camera": {"Translation": [0, 0, 0], "UnitQuaternion": [1.0, [0, 0, 0]]}}]}
    (rec / "mps" / "slam" / "online_calibration.jsonl").write_text(json.dumps(calib) + "\n")


def test_raw_recording_matches_clip(tmp_path: Path, mano_dir: Path) -> None:
    rng = np.random.default_rng(2)
    params, betas = hand_params(rng), rng.normal(scale=0.5, size=10)
    make_clip(tmp_path / "clips" / "clip-000007.tar", params, betas)
    _write_raw(tmp_path / "raw" / "P0001_aaaa", params, betas)
    _write_raw(tmp_path / "raw" / "P0002_bbbb", params, betas, headset="Quest3")
    clip = hot3d.load_tracks(tmp_path / "clips", "all", mano_dir=mano_dir, use_cache=False)
    raw = hot3d.load_tracks(tmp_path / "raw", "all", mano_dir=mano_dir, use_cache=False)
    assert [t.name for t in raw] == ["P0001_aaaa/left", "P0001_aaaa/right"]
    for a, b in zip(clip, raw):
        np.testing.assert_allclose(b.mano, a.mano, atol=1e-5)
        np.testing.assert_allclose(b.T_world_from_cam, a.T_world_from_cam, atol=1e-6)
        u = [t.kp2d[..., 0] if t.is_right else t.image_size[0] - 1 - t.kp2d[..., 0] for t in (a, b)]
        np.testing.assert_allclose(u[1], u[0], atol=1e-3)  # raw recordings assume 1408 px images
        np.testing.assert_allclose(b.kp2d[..., 1], a.kp2d[..., 1], atol=1e-3)
    with pytest.raises(UserError, match="split 'all'"):
        hot3d.load_tracks(tmp_path / "raw", "test", mano_dir=mano_dir)


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="the real HOT3D sample is not in the repository (its licence); "
                                               "set UNIHAND_HOT3D_SAMPLE to a copy")
def test_real_sample(tmp_path: Path, mano_dir: Path, capsys: pytest.CaptureFixture) -> None:
    tracks = hot3d.load_tracks(SAMPLE, "all", mano_dir=mano_dir, use_cache=False)
    assert [t.name for t in tracks] == ["Aria_P0003_c701bd11/left", "Aria_P0003_c701bd11/right"]
    assert all(t.num_frames == 34 and t.valid.all() for t in tracks)
    assert "Quest3_P0002_273c2819: headset 'Quest3'" in capsys.readouterr().err
    # Same poses as the sample's plain arrays, RGB timestamps only.
    ref = np.load(SAMPLE / "Aria_P0003_c701bd11_mano.npz")
    rgb = ref["stream_id"] == "214-1"
    np.testing.assert_allclose(tracks[1].mano[:, 58:], ref["wrist_t_world_m"][rgb, 1], atol=1e-6)
    np.testing.assert_allclose(tracks[1].mano[:, 48:58], ref["betas"][rgb, 1], atol=1e-6)
    # Camera, quaternion order and fisheye check: the wrist (MANO mean-hand rest root + transl)
    # projects inside the dataset's own 2D hand boxes of stream 214-1, 25-40 cm in front.
    rec = SAMPLE / "Aria_P0003_c701bd11"
    boxes = {(int(r["timestamp[ns]"]), r["hand_index"]): r for r in csv.DictReader(open(rec / "box2d_hands.csv"))
             if r["stream_id"] == "214-1"}
    ts = ref["timestamp_ns"][rgb]
    _, params = hot3d._rgb_calibration(rec)
    for track, idx, sign in ((tracks[1], "1", 1.0), (tracks[0], "0", -1.0)):
        M = np.diag([-1.0, 1.0, 1.0, 1.0])  # tracks are stored right-handed: un-mirror the left camera
        T = track.T_world_from_cam if track.is_right else M @ track.T_world_from_cam @ M
        wrist = ref["wrist_t_world_m"][rgb, int(idx)] + np.array(REST_ROOT) * [sign, 1.0, 1.0]
        cam = np.einsum("nij,nj->ni", np.linalg.inv(T)[:, :3, :3], wrist) + np.linalg.inv(T)[:, :3, 3]
        assert np.all((cam[:, 2] > 0.2) & (cam[:, 2] < 0.4))
        uv = hot3d.fisheye624_project(cam, params)
        for t, (u, v) in zip(ts, uv):
            b = boxes[(int(t), idx)]
            assert float(b["x_min[pixel]"]) - 20 < u < float(b["x_max[pixel]"]) + 20
            assert float(b["y_min[pixel]"]) - 20 < v < float(b["y_max[pixel]"]) + 20
