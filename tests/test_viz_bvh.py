"""BVH export: hierarchy from OPENPOSE_PARENTS, ZXY channels, the hand model's rest skeleton and
MANO rotations, positions reproduced when parsed back (by our parser and two third-party ones)."""

import logging
import warnings

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from unihand.data.io import Motion
from unihand.errors import UserError
from unihand.hand import KinematicHand
from unihand.hand.joints import MANO_TO_OPENPOSE, OPENPOSE_JOINT_NAMES, OPENPOSE_PARENTS
from unihand.viz.bvh import (
    CV_TO_YUP,
    _euler_zxy,
    bvh_joint_positions,
    channel_joints,
    motion_to_bvh_text,
    read_bvh,
    rest_skeleton,
    write_bvh,
)


def make_motion(n: int, is_right: bool = True, seed: int = 0) -> Motion:
    """A smooth random MANO motion with its kinematic-hand joints and per-frame camera poses."""
    from scipy.spatial.transform import Rotation

    from unihand.hand import KinematicHand
    from unihand.hand.model import fk_numpy

    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, n)[:, None]
    go = np.array([0.4, -2.2, 0.3]) + 0.5 * np.sin(2 * np.pi * t * np.array([1.0, 0.7, 1.3]))
    hp = 0.25 * np.sin(2 * np.pi * t + rng.uniform(0, 6, 45)) + rng.normal(0, 0.2, 45)
    betas = np.tile(rng.normal(0, 0.8, 10), (n, 1))
    transl = np.array([0.02, 0.05, 0.45]) + 0.05 * np.sin(2 * np.pi * t * np.array([0.5, 1.0, 0.8]))
    mano = np.concatenate([go, hp, betas, transl], axis=1)
    joints = fk_numpy(KinematicHand(is_right=is_right), mano)[0]
    T = np.repeat(np.eye(4)[None], n, axis=0)
    T[:, :3, :3] = Rotation.from_euler("y", 20 * t, degrees=True).as_matrix()
    T[:, :3, 3] = 0.1 * t * np.array([1.0, 0.0, 0.2])
    return Motion.from_mano(mano, joints=joints, is_right=is_right, fps=30.0,
                            K=np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), image_size=np.array([640, 480]),
                            extra={"T_cano_from_cam": T.astype(np.float32)})


@pytest.fixture(scope="module", params=[True, False], ids=["right", "left"])
def motion(request):
    return make_motion(16, is_right=request.param, seed=3)


def test_euler_zxy_is_rz_rx_ry_and_survives_gimbal_lock() -> None:
    z, x, y = np.deg2rad([30.0, -50.0, 70.0])
    e = np.eye(3)
    Rz, Rx, Ry = (Rotation.from_rotvec(a * e[i]).as_matrix() for a, i in ((z, 2), (x, 0), (y, 1)))
    np.testing.assert_allclose(_euler_zxy(Rz @ Rx @ Ry), [z, x, y], atol=1e-12)
    R = Rotation.random(200, random_state=0).as_matrix().reshape(4, 50, 3, 3)
    np.testing.assert_allclose(Rotation.from_euler("ZXY", _euler_zxy(R).reshape(-1, 3)).as_matrix(),
                               R.reshape(-1, 3, 3), atol=1e-12)
    # gimbal lock (x = +-90 degrees): a valid decomposition with y = 0, and no warning
    G = Rotation.from_euler("ZXY", [[30.0, 90.0, 10.0], [0.0, -90.0, 45.0]], degrees=True).as_matrix()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = _euler_zxy(G)
    np.testing.assert_allclose(Rotation.from_euler("ZXY", g).as_matrix(), G, atol=1e-9)
    assert np.all(g[:, 2] == 0.0)


def test_hierarchy_and_channels(motion, tmp_path) -> None:
    path = write_bvh(tmp_path / "hand.bvh", motion)
    data = read_bvh(path)
    joints = [n for n in data.names if not n.endswith("_end")]
    ends = [n for n in data.names if n.endswith("_end")]
    assert joints[0] == "wrist" and data.parents[0] == -1
    assert len(joints) == 16 and len(ends) == 5  # the MANO joints + fingertips as end sites
    assert set(joints) == set(OPENPOSE_JOINT_NAMES) - {n for n in OPENPOSE_JOINT_NAMES if n.endswith("_tip")}
    assert data.channels[0] == ["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"]
    assert all(c == ["Zrotation", "Xrotation", "Yrotation"] for n, c in zip(data.names[1:], data.channels[1:])
               if not n.endswith("_end"))
    assert data.motion.shape == (motion.num_frames, 6 + 15 * 3)
    assert data.frame_time == pytest.approx(1 / motion.fps)
    # parents follow the OpenPose tree: thumb_mcp's parent is thumb_cmc, index_mcp's is the wrist
    name_parent = {n: (data.names[p] if p >= 0 else None) for n, p in zip(data.names, data.parents)}
    assert name_parent["thumb_mcp"] == "thumb_cmc" and name_parent["index_mcp"] == "wrist"
    assert name_parent["little_dip_end"] == "little_dip"
    text = path.read_text()
    assert text.startswith("HIERARCHY\nROOT wrist") and "MOTION\nFrames: 16\nFrame Time:" in text


def test_positions_reproduced(motion, tmp_path) -> None:
    data = read_bvh(write_bvh(tmp_path / "hand.bvh", motion))
    back = bvh_joint_positions(data) @ CV_TO_YUP  # Y-up file frame -> OpenCV camera frame
    err = np.linalg.norm(back - motion.joints, axis=-1)
    assert err.max() < 1e-5  # 0.01 mm: float32 joints, 6 printed decimals
    # the rest pose is a flat hand pointing up (+Y): fingertips above the wrist
    rest_tip = sum(data.offsets[data.names.index(n)] for n in ("middle_mcp", "middle_pip", "middle_dip", "middle_dip_end"))
    assert rest_tip[1] > 0.1


def test_angles_unwrapped_no_jumps(motion) -> None:
    data = read_bvh(motion_to_bvh_text(motion))
    rot = data.motion[:, 3:]
    assert np.abs(np.diff(rot, axis=0)).max() < 90  # no 360-degree flips between frames


def _fk_from_parsed(mocap) -> dict[str, np.ndarray]:
    """World positions (N, 3) of every joint and end site of a file parsed by the ``bvh`` package,
    from its offsets and channels alone (BVH's rule: child = parent + R_parent @ offset)."""
    n = mocap.nframes
    pos, rot = {}, {}

    def visit(node, parent):
        name = node.name
        off = np.array([float(v) for v in next(node.filter("OFFSET")).value[1:]])
        if node.value[0] == "End":
            pname = parent
            pos[f"{pname}_end"] = pos[pname] + np.einsum("nij,j->ni", rot[pname], off)
            return
        chans = mocap.joint_channels(name)
        vals = np.array(mocap.frames_joint_channels(name, chans), float)  # (N, C)
        R = np.repeat(np.eye(3)[None], n, axis=0)
        t = np.tile(off, (n, 1))
        for k, c in enumerate(chans):
            if c.endswith("position"):
                t[:, "XYZ".index(c[0])] = vals[:, k]
            else:
                R = R @ Rotation.from_euler(c[0].lower(), vals[:, k:k + 1], degrees=True).as_matrix()
        if parent is None:
            pos[name], rot[name] = t, R
        else:
            pos[name] = pos[parent] + np.einsum("nij,nj->ni", rot[parent], t)
            rot[name] = rot[parent] @ R
        for child in node.children:
            if child.value and child.value[0] in ("JOINT", "End"):
                visit(child, name)

    visit(next(mocap.root.filter("ROOT")), None)
    return pos


def _as_openpose(pos: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([pos[n] if n in pos else pos[OPENPOSE_JOINT_NAMES[OPENPOSE_PARENTS[j]] + "_end"]
                     for j, n in enumerate(OPENPOSE_JOINT_NAMES)], axis=1)


def test_third_party_parsers_round_trip(motion, tmp_path) -> None:
    """``bvh`` (PyPI) parses the file, FK from its offsets + channels gives the motion's joints;
    ``bvhio`` (its own FK) agrees: within 1 micrometre-ish, far below the 1 mm asked for."""
    bvh = pytest.importorskip("bvh")
    path = write_bvh(tmp_path / "hand.bvh", motion)
    mocap = bvh.Bvh(path.read_text())
    assert mocap.nframes == motion.num_frames and mocap.frame_time == pytest.approx(1 / motion.fps, rel=1e-6)
    back = _as_openpose(_fk_from_parsed(mocap)) @ CV_TO_YUP
    err = np.linalg.norm(back - motion.joints, axis=-1)
    assert err.max() < 1e-5
    bvhio = pytest.importorskip("bvhio")
    root = bvhio.readAsHierarchy(str(path))
    for f in (0, motion.num_frames // 2, motion.num_frames - 1):
        root.loadPose(f)
        got = {j.Name: np.array(j.PositionWorld) for j, _, _ in root.layout()}
        assert len(got) == 16
        for j, name in enumerate(OPENPOSE_JOINT_NAMES):
            if name in got:
                np.testing.assert_allclose(got[name] @ CV_TO_YUP, motion.joints[f, j], atol=1e-5)


def test_rest_skeleton_depends_on_the_shape_only(motion, tmp_path) -> None:
    """Two files of one hand shape share the rest skeleton whatever the motion; another shape differs."""
    half = Motion.from_mano(motion.mano()[::-1][:5], is_right=motion.is_right, fps=motion.fps)
    a, b = read_bvh(motion_to_bvh_text(motion)), read_bvh(motion_to_bvh_text(half))
    np.testing.assert_array_equal(a.offsets, b.offsets)
    other = motion.mano()
    other[:, 48:58] = 1.5  # a bigger hand
    c = read_bvh(motion_to_bvh_text(Motion.from_mano(other, is_right=motion.is_right, fps=motion.fps)))
    assert np.abs(c.offsets - a.offsets).max() > 1e-3
    # the skeleton is the hand model's rest joints for that shape, stood upright
    hand = KinematicHand(is_right=motion.is_right)
    skel = rest_skeleton(hand, motion.betas[0])
    np.testing.assert_allclose(a.offsets[a.names.index("index_pip")], skel.offsets[6], atol=1e-6)
    length = np.linalg.norm(hand.offsets(None, hand.rest_offsets)[2].numpy())  # index MCP -> PIP bone, mean shape
    assert np.linalg.norm(rest_skeleton(hand).offsets[6]) == pytest.approx(length, rel=1e-9)


def test_rotations_are_the_models_twist_included(motion) -> None:
    """Each joint's channels give the model's MANO rotation (twist about the bone included),
    expressed in the file's frame: local = A @ L_mano @ A.T."""
    mano = motion.mano().astype(np.float64)
    mano[:, 3 + 3 * 0 : 3 + 3 * 1] = [0.6, 0.0, 0.0]  # index1 (MANO joint 1): twist about the bone (+-x)
    m = Motion.from_mano(mano, is_right=motion.is_right, fps=motion.fps)
    data = read_bvh(motion_to_bvh_text(m))
    hand = KinematicHand(is_right=motion.is_right)
    A = rest_skeleton(hand, m.betas[0]).upright
    order = channel_joints()
    j = OPENPOSE_JOINT_NAMES.index("index_mcp")
    k = order.index(j)
    local = Rotation.from_euler("ZXY", data.motion[:, 6 + 3 * (k - 1) : 9 + 3 * (k - 1)], degrees=True).as_matrix()
    L = Rotation.from_rotvec(mano[:, 3:6]).as_matrix()
    assert MANO_TO_OPENPOSE[j] == 1
    np.testing.assert_allclose(local, A @ L @ A.T, atol=1e-6)
    angle = np.degrees(np.arccos((np.trace(local, axis1=1, axis2=2) - 1) / 2))
    np.testing.assert_allclose(angle, np.degrees(0.6), atol=1e-4)  # the twist is there


def test_mano_skeleton(motion, tmp_path) -> None:
    """With MANO files: MANO's rest joints and rotations; the 16 joints come back exactly."""
    from unihand.hand.model import fk_numpy, load_hand_model
    from unihand.hand.testing import write_random_mano

    mano_dir = write_random_mano(tmp_path / "mano")
    hand = load_hand_model(mano_dir, is_right=motion.is_right)
    joints = fk_numpy(hand, motion.mano().astype(np.float64))[0]
    m = Motion.from_mano(motion.mano(), joints=joints, is_right=motion.is_right, fps=motion.fps)
    back = bvh_joint_positions(read_bvh(motion_to_bvh_text(m, mano_dir=mano_dir))) @ CV_TO_YUP
    inner = [j for j in range(21) if MANO_TO_OPENPOSE[j] < 16]
    assert np.linalg.norm(back[:, inner] - joints[:, inner], axis=-1).max() < 1e-5


def test_warns_when_joints_come_from_another_model(motion, caplog) -> None:
    m = Motion.from_mano(motion.mano(), joints=motion.joints + np.array([0.0, 0.01, 0.0], np.float32),
                         is_right=motion.is_right, fps=motion.fps)
    with caplog.at_level(logging.WARNING, logger="unihand.viz.bvh"):
        motion_to_bvh_text(m)
    assert "differs from the motion's joints by up to 10.0 mm" in caplog.text


def test_rejects_bad_input(motion, tmp_path) -> None:
    bad = Motion.from_mano(motion.mano(), is_right=motion.is_right, fps=motion.fps)
    bad.hand_pose[1, 3] = np.nan
    with pytest.raises(UserError, match=r"x\.bvh: field 'hand_pose' contains NaN"):
        write_bvh(tmp_path / "x.bvh", bad)
    assert not list(tmp_path.iterdir())


def test_blender_imports_it(motion, tmp_path) -> None:
    """Only where Blender's Python module is installed (``pip install bpy``, Python 3.11)."""
    bpy = pytest.importorskip("bpy")
    n = 10
    short = Motion.from_mano(motion.mano()[:n], joints=motion.joints[:n], is_right=motion.is_right, fps=motion.fps)
    path = write_bvh(tmp_path / "hand.bvh", short)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=str(path), global_scale=1.0, frame_start=1, use_fps_scale=False)
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    assert len(arm.data.bones) == 16  # one bone per joint with channels; fingertips are bone tails
    for f in range(n):
        bpy.context.scene.frame_set(f + 1)
        pos = np.zeros((21, 3))
        for j, name in enumerate(OPENPOSE_JOINT_NAMES):
            if name.endswith("_tip"):
                pos[j] = arm.matrix_world @ arm.pose.bones[OPENPOSE_JOINT_NAMES[j - 1]].tail
            else:
                pos[j] = arm.matrix_world @ arm.pose.bones[name].head
        # Blender is Z-up (the importer maps the file's Y up to Z, -Z forward to Y): back to OpenCV
        cam = np.stack([pos[:, 0], -pos[:, 2], pos[:, 1]], axis=-1)
        np.testing.assert_allclose(cam, motion.joints[f], atol=1e-4)
