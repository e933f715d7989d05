"""BVH export: hierarchy from OPENPOSE_PARENTS, ZXY channels, positions reproduced when parsed back."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from unihand.hand.joints import OPENPOSE_JOINT_NAMES
from unihand.viz.bvh import (
    CV_TO_YUP,
    bvh_joint_positions,
    euler_to_matrix,
    matrix_to_euler_zxy,
    motion_to_bvh_text,
    read_bvh,
    write_bvh,
)


@pytest.fixture(scope="module", params=[True, False], ids=["right", "left"])
def motion(request):
    from unihand.data.synthetic.world import SynthConfig, SyntheticWorld

    cfg = SynthConfig(frames=40, left_p=0.0 if request.param else 1.0)
    return SyntheticWorld(seed=1000, config=cfg).sequence(2).motion


def test_euler_zxy_roundtrip() -> None:
    R = Rotation.random(200, random_state=0).as_matrix()
    e = matrix_to_euler_zxy(R)
    np.testing.assert_allclose(euler_to_matrix(e, "ZXY"), R, atol=1e-12)
    # same convention as scipy's intrinsic "ZXY" (R = Rz Rx Ry)
    np.testing.assert_allclose(Rotation.from_euler("ZXY", e, degrees=True).as_matrix(), R, atol=1e-12)
    # gimbal lock (x = +-90 degrees) still gives a valid decomposition
    G = euler_to_matrix(np.array([[30.0, 90.0, 10.0], [0.0, -90.0, 45.0]]))
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler_zxy(G)), G, atol=1e-9)


def test_hierarchy_and_channels(motion, tmp_path) -> None:
    path = write_bvh(tmp_path / "hand.bvh", motion.joints, motion.fps)
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
    assert text.startswith("HIERARCHY\nROOT wrist") and "MOTION\nFrames: 40\nFrame Time:" in text


def test_positions_reproduced(motion, tmp_path) -> None:
    data = read_bvh(write_bvh(tmp_path / "hand.bvh", motion.joints, motion.fps))
    back = bvh_joint_positions(data) @ CV_TO_YUP  # Y-up file frame -> OpenCV camera frame
    err = np.linalg.norm(back - motion.joints, axis=-1)
    assert err.max() < 1e-4  # 0.1 mm: the kinematic hand's palm is rigid, bones constant
    # the rest pose is a flat hand pointing up (+Y): fingertips above the wrist
    rest_tip = sum(data.offsets[data.names.index(n)] for n in ("middle_mcp", "middle_pip", "middle_dip", "middle_dip_end"))
    assert rest_tip[1] > 0.1


def test_angles_unwrapped_no_jumps(motion) -> None:
    data = read_bvh(motion_to_bvh_text(motion.joints, motion.fps))
    rot = data.motion[:, 3:]
    assert np.abs(np.diff(rot, axis=0)).max() < 90  # no 360-degree flips between frames


def test_rejects_bad_input(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"\(N, 21, 3\)"):
        motion_to_bvh_text(np.zeros((5, 20, 3)))
    bad = np.zeros((3, 21, 3))
    bad[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_bvh(tmp_path / "x.bvh", bad)
    assert not list(tmp_path.iterdir())


def test_blender_imports_it(motion, tmp_path) -> None:
    """Only where Blender's Python module is installed (``pip install bpy``, Python 3.11)."""
    bpy = pytest.importorskip("bpy")
    n = 10
    path = write_bvh(tmp_path / "hand.bvh", motion.joints[:n], motion.fps)
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
