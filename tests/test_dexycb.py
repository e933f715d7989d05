"""DexYCB adapter on tiny trees in the official layout; occlusion (eq. 17); windows and mixing.

Also home of :func:`make_mano_dir` (random MANO files with mirror-symmetric hands), which the
other dataset tests import.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from unihand.data.datasets import common, dexycb
from unihand.data.datasets.common import WINDOW, TrackWindows, mix, usable_tracks
from unihand.data.datasets.occlusion import hand_silhouette, occlusion_ratio
from unihand.errors import UserError
from unihand.hand import fk_numpy, load_hand_model
from unihand.hand.testing import random_mano_arrays

SUBJECT = dexycb.SUBJECTS[2]  # a test-split subject of s0
SERIAL = dexycb.SERIALS[0]
K = np.array([[615.0, 0.0, 318.0], [0.0, 614.0, 242.0], [0.0, 0.0, 1.0]])


def make_mano_dir(path: Path, seed: int = 0) -> Path:
    """Random MANO files (``unihand.hand.testing``) whose left hand is the x-mirror of the right,
    stored with the official left file's shapedirs sign bug (which the loader undoes)."""
    path.mkdir(parents=True, exist_ok=True)
    right = random_mano_arrays(seed)
    flip = np.array([-1.0, 1.0, 1.0])
    left = dict(right, v_template=right["v_template"] * flip, shapedirs=right["shapedirs"] * flip[None, :, None])
    left["shapedirs"][:, 0, :] *= -1
    for side, arrays in (("RIGHT", right), ("LEFT", left)):
        (path / f"MANO_{side}.pkl").write_bytes(pickle.dumps(arrays, protocol=2))
    return path


def _write_yaml(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))


def make_tree(root: Path, mano_dir: Path, *, frames: int = 50, side: str = "right", n_seq: int = 5,
              filled: tuple[int, ...] = (4,), hidden_half: bool = True, seed: int = 1) -> dict:
    """A DexYCB tree: one subject with ``n_seq`` sequence folders (index 4 is s0-test) of which
    those in ``filled`` hold one camera's label files.

    Frame 0 has no annotation. The visible-hand mask ``seg`` is the rendered silhouette with
    its left image half removed when ``hidden_half``. Returns the per-frame truths written.
    """
    rng = np.random.default_rng(seed)
    for s in dexycb.SERIALS:
        _write_yaml(root / "calibration" / "intrinsics" / f"{s}_640x480.yml",
                    {"color": {"fx": float(K[0, 0]), "fy": float(K[1, 1]), "ppx": float(K[0, 2]), "ppy": float(K[1, 2])}})
    betas = rng.normal(scale=0.5, size=10)
    _write_yaml(root / "calibration" / "mano_subject" / "mano.yml", {"betas": betas.tolist()})
    hand = load_hand_model(str(mano_dir), is_right=side == "right")
    truth = {}
    for q in range(n_seq):
        seq = root / SUBJECT / f"20200820_1430{q:02d}"
        seq.mkdir(parents=True)
        if q not in filled:
            continue
        _write_yaml(seq / "meta.yml", {"num_frames": frames, "mano_sides": [side], "mano_calib": ["subject"],
                                       "ycb_ids": [1], "ycb_grasp_ind": 0})
        pose_m = np.zeros((frames, 51))
        pose_m[:, :3] = rng.normal(scale=0.3, size=3)
        pose_m[:, 3:48] = rng.normal(scale=0.5, size=(frames, 45))
        pose_m[:, 48:51] = [0.02, -0.01, 0.5]
        pose_m[0] = 0.0
        full = pose_m[:, 3:48] @ hand.hands_components.numpy() + hand.hands_mean.numpy()
        mano = np.concatenate([pose_m[:, :3], full, np.tile(betas, (frames, 1)), pose_m[:, 48:]], 1)
        joints, verts = fk_numpy(hand, mano)
        uv = joints @ K.T
        joint_2d = uv[..., :2] / uv[..., 2:]
        cam = seq / SERIAL
        cam.mkdir(parents=True)
        for f in range(frames):
            sil = hand_silhouette(verts[f], hand.faces, K, dexycb.IMAGE_SIZE)
            vis = sil.copy()
            if hidden_half:
                vis[:, :320] = False
            seg = np.where(vis, dexycb.HAND_LABEL, 0).astype(np.uint8)
            j3, j2 = (joints[f], joint_2d[f]) if f else (-np.ones((21, 3)), -np.ones((21, 2)))
            np.savez_compressed(cam / f"labels_{f:06d}.npz", seg=seg, pose_y=np.zeros((1, 3, 4)),
                                pose_m=pose_m[f][None], joint_3d=j3[None], joint_2d=j2[None])
        truth[seq.name] = {"pose_m": pose_m, "mano": mano, "joints": joints, "joint_2d": joint_2d, "verts": verts}
    return truth


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mano_dir(tmp_path_factory.mktemp("mano"))


def test_split_indices_follow_toolkit() -> None:
    subjects, serials, seqs = dexycb.split_indices("s0", "test")
    assert subjects == [2, 3, 4, 5, 6, 7, 8, 9] and serials == list(range(8))
    assert seqs[:3] == [4, 9, 14] and len(seqs) == 20
    assert dexycb.split_indices("s0", "train")[2][:5] == [0, 1, 2, 3, 5]
    assert dexycb.split_indices("s0", "val")[0] == [0, 1]
    with pytest.raises(UserError, match="unknown setup"):
        dexycb.split_indices("s0", "dev")


def test_occlusion_ratio_eq17() -> None:
    full = np.zeros((4, 4), bool)
    full[:2] = True  # 8 pixels
    vis = np.zeros((4, 4), bool)
    vis[0] = True  # 4 of them visible
    vis[3] = True  # visible pixels outside the full mask do not count
    assert occlusion_ratio(full, vis) == pytest.approx(0.5)
    assert occlusion_ratio(full, full) == 0.0
    assert occlusion_ratio(np.zeros((4, 4), bool), vis) == 1.0  # hand outside the image


def test_silhouette_of_a_square() -> None:
    # Two triangles spanning a 0.1 m square at 1 m, f = 100: pixels 0..10 around the centre.
    v = np.array([[-0.05, -0.05, 1.0], [0.05, -0.05, 1.0], [0.05, 0.05, 1.0], [-0.05, 0.05, 1.0]])
    f = np.array([[0, 1, 2], [0, 2, 3]])
    Kc = np.array([[100.0, 0, 20], [0, 100.0, 20], [0, 0, 1]])
    mask = hand_silhouette(v, f, Kc, (40, 40))
    ys, xs = np.nonzero(mask)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (15, 25, 15, 25)
    assert not hand_silhouette(v - [0, 0, 2.0], f, Kc, (40, 40)).any()  # behind the camera


def test_load_right_hand_sequence(tmp_path: Path, mano_dir: Path, capsys: pytest.CaptureFixture) -> None:
    truth = make_tree(tmp_path / "dexycb", mano_dir)
    tracks = dexycb.load_tracks(tmp_path / "dexycb", "test", mano_dir=mano_dir, cache_dir=tmp_path / "cache")
    assert len(tracks) == 1
    t = tracks[0]
    gt = truth["20200820_143004"]
    assert t.name == f"{SUBJECT}/20200820_143004/{SERIAL}" and t.is_right and t.T_world_from_cam is None
    assert not t.valid[0] and t.valid[1:].all()
    # PCA (flat_hand_mean=False) -> full axis-angle: pose @ components + mean, by hand.
    np.testing.assert_allclose(t.mano[1:], gt["mano"][1:], atol=1e-5)
    np.testing.assert_allclose(t.joints[1:], gt["joints"][1:], atol=1e-6)
    np.testing.assert_allclose(t.kp2d[1:], gt["joint_2d"][1:], atol=1e-3)
    np.testing.assert_allclose(t.K, K)
    # Half of the image is hidden in seg: eq. 17 gives the hidden share of the silhouette.
    hand = load_hand_model(str(mano_dir))
    sil = hand_silhouette(gt["verts"][5], hand.faces, K, dexycb.IMAGE_SIZE)
    assert t.occlusion[5] == pytest.approx(sil[:, :320].sum() / sil.sum())
    assert np.isnan(t.occlusion[0])
    err = capsys.readouterr().err
    assert "loaded 1 sequence(s), skipped 14" in err  # 7 subject and 7 camera folders not in the tree
    # The cache gives the same track without the label files.
    for p in (tmp_path / "dexycb" / SUBJECT).rglob("labels_*.npz"):
        p.unlink()
    again = dexycb.load_tracks(tmp_path / "dexycb", "test", mano_dir=mano_dir, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again[0].mano, t.mano)
    np.testing.assert_array_equal(again[0].occlusion, t.occlusion)


def test_left_hand_is_mirrored(tmp_path: Path, mano_dir: Path) -> None:
    truth = make_tree(tmp_path / "dexycb", mano_dir, side="left", hidden_half=False)
    t = dexycb.load_tracks(tmp_path / "dexycb", "test", mano_dir=mano_dir, use_cache=False)[0]
    gt = truth["20200820_143004"]
    assert not t.is_right
    flip_aa = np.tile([1.0, -1.0, -1.0], 16)
    np.testing.assert_allclose(t.mano[1:, :48], gt["mano"][1:, :48] * flip_aa, atol=1e-5)
    np.testing.assert_allclose(t.mano[1:, 58:], gt["mano"][1:, 58:] * [-1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(t.joints[1:], gt["joints"][1:] * [-1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(t.kp2d[1:, :, 0], 639.0 - gt["joint_2d"][1:, :, 0], atol=1e-3)
    assert t.K[0, 2] == pytest.approx(639.0 - K[0, 2])
    np.testing.assert_allclose(t.occlusion[1:], 0.0, atol=1e-3)  # float32 vs float64 FK: a pixel at most
    # The mirrored MANO parameters drive the RIGHT model onto the mirrored joints (up to the
    # fingertips' vertex ids, which are side-independent): compare the 16 skeleton joints.
    right = load_hand_model(str(mano_dir))
    j_right, _ = fk_numpy(right, t.mano[1:].astype(np.float64))
    np.testing.assert_allclose(j_right[:, [0, 1, 2, 3, 5, 6, 7]], t.joints[1:, [0, 1, 2, 3, 5, 6, 7]], atol=1e-6)


def test_bad_inputs(tmp_path: Path, mano_dir: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "dexycb"
    with pytest.raises(UserError, match="DexYCB root not found"):
        dexycb.load_tracks(root, mano_dir=mano_dir)
    root.mkdir()
    with pytest.raises(UserError, match="calibration folder not found"):
        dexycb.load_tracks(root, mano_dir=mano_dir)
    make_tree(root, mano_dir, frames=6, n_seq=10, filled=(4, 9))
    with pytest.raises(UserError, match="--mano-dir"):
        dexycb.load_tracks(root)
    # Sequence 4 has a truncated label file, sequence 9 a missing one: both skipped, none left.
    label = root / SUBJECT / "20200820_143004" / SERIAL / "labels_000003.npz"
    label.write_bytes(label.read_bytes()[:100])
    (root / SUBJECT / "20200820_143009" / SERIAL / "labels_000002.npz").unlink()
    with pytest.raises(UserError, match="no usable sequence"):
        dexycb.load_tracks(root, mano_dir=mano_dir, use_cache=False)
    err = capsys.readouterr().err
    assert "unreadable labels_000003.npz" in err and "missing labels_000002.npz" in err
    assert "skipped 23" in err and "subject folder" in err  # 7 subjects, 2 x 7 cameras, 2 broken
    # A left hand without MANO_LEFT.pkl: one message naming the file.
    lonely = tmp_path / "right_only"
    lonely.mkdir()
    (lonely / "MANO_RIGHT.pkl").write_bytes((mano_dir / "MANO_RIGHT.pkl").read_bytes())
    left_root = tmp_path / "left"
    make_tree(left_root, mano_dir, frames=4, side="left")
    with pytest.raises(UserError, match="MANO_LEFT.pkl"):
        dexycb.load_tracks(left_root, mano_dir=lonely, use_cache=False)


def test_windows_and_mixing(tmp_path: Path, mano_dir: Path, capsys: pytest.CaptureFixture) -> None:
    make_tree(tmp_path / "a", mano_dir, frames=WINDOW + 2, n_seq=5)
    make_tree(tmp_path / "b", mano_dir, frames=10, n_seq=5, seed=3)
    long = dexycb.load_tracks(tmp_path / "a", "test", mano_dir=mano_dir, use_cache=False)
    short = dexycb.load_tracks(tmp_path / "b", "test", mano_dir=mano_dir, use_cache=False)
    report = common.SkipReport("test")
    assert usable_tracks(short, report) == [] and "shorter than the 48-frame window" in report.skipped[0][1]
    kept = usable_tracks(long, report)
    # Frame 0 has no ground truth: valid starts are 1 and 2 only.
    np.testing.assert_array_equal(common.window_starts(kept[0]), [1, 2])
    ds = TrackWindows(kept)
    torch.manual_seed(0)
    starts = set()
    for _ in range(20):
        item = ds[0]
        first = item["joints"][0].numpy()
        starts.add(next(s for s in range(3) if np.allclose(kept[0].joints[s], first)))
    assert starts == {1, 2}
    shapes = {k: tuple(v.shape) for k, v in item.items()}
    assert shapes == {"mano": (48, 61), "joints": (48, 21, 3), "kp2d": (48, 21, 2), "kp2d_mask": (48, 21),
                      "kp2d_conf": (48, 21), "kp3d": (48, 21, 3), "kp3d_mask": (48, 21), "mano_mask": (48,),
                      "occlusion": (48,), "K": (3, 3), "image_size": (2,), "T_cano_from_cam": (48, 4, 4),
                      "is_left": ()}
    assert item["kp2d_mask"].dtype == torch.bool and item["mano"].dtype == torch.float32
    tiles = TrackWindows(kept, random_start=False)
    assert len(tiles) == 2 and not tiles[0]["mano_mask"][0] and tiles[1]["mano_mask"].all()
    both, sampler = mix([ds, tiles], weights=[1.0, 3.0], generator=torch.Generator().manual_seed(0))
    picks = np.array(list(iter(sampler)))
    assert len(both) == 3 and len(picks) == 3
    _, sampler = mix([ds, tiles], weights=[0.0, 1.0], num_samples=50)
    assert all(i >= len(ds) for i in sampler)
    with pytest.raises(UserError, match="non-negative"):
        mix([ds], weights=[-1.0])
