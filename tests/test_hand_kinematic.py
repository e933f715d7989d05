"""Built-in kinematic hand: rest layout, rigid bones, betas, dtypes, gradients, mirror identity."""

import numpy as np
import pytest
import roma
import torch

from unihand.hand import HandOutput, KinematicHand, fk_numpy, load_hand_model
from unihand.hand.joints import OPENPOSE_FINGERS, OPENPOSE_PARENTS
from unihand.hand.kinematic import BETA_BASIS, FINGER_DIRECTION, PALM_NORMAL, REST_ROOT, THUMB_SIDE

BONES = [(p, c) for c, p in enumerate(OPENPOSE_PARENTS) if p >= 0]
MIRROR = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
THUMB, INDEX, MIDDLE, RING, LITTLE = OPENPOSE_FINGERS


def params(*lead, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return dict(
        global_orient=torch.randn(*lead, 3, generator=g, dtype=dtype),
        hand_pose=0.5 * torch.randn(*lead, 45, generator=g, dtype=dtype),
        betas=torch.randn(*lead, 10, generator=g, dtype=dtype),
        transl=0.3 * torch.randn(*lead, 3, generator=g, dtype=dtype),
    )


def bone_lengths(joints: torch.Tensor) -> torch.Tensor:
    return torch.stack([(joints[..., c, :] - joints[..., p, :]).norm(dim=-1) for p, c in BONES], -1)


def test_rest_layout_is_mano_like():
    out = KinematicHand()()
    assert isinstance(out, HandOutput) and out.vertices is None
    j = out.joints.double()
    assert out.joints.shape == (21, 3) and out.joints16.shape == (16, 3)
    np.testing.assert_allclose(j[0], REST_ROOT, atol=1e-7)
    rel = j - j[0]
    along, side, palm = (torch.tensor(d, dtype=torch.float64) for d in (FINGER_DIRECTION, THUMB_SIDE, PALM_NORMAL))
    assert torch.equal(torch.linalg.cross(side, along), palm)  # a right hand: palm = thumb side x fingers
    # Fingers point along FINGER_DIRECTION (-x) from the wrist, one joint after the other.
    for finger in (INDEX, MIDDLE, RING, LITTLE):
        d = rel[list(finger)] @ along
        assert (d > 0.05).all() and (d.diff() > 0).all()
    # Thumb toward +z, little finger toward -z; fingers ordered across the palm.
    assert rel[THUMB[-1]] @ side > 0.08 and rel[LITTLE[-1]] @ side < -0.07
    mcp_z = [rel[f[0]] @ side for f in (INDEX, MIDDLE, RING, LITTLE)]
    assert mcp_z == sorted(mcp_z, reverse=True)
    # Adult hand: wrist to middle fingertip 18-19 cm; the MCPs sit where MANO's mean hand has them.
    assert 0.18 < rel[MIDDLE[-1]].norm() < 0.19
    np.testing.assert_allclose(j[INDEX[0]], [0.0076, 0.0012, 0.0269], atol=1e-3)
    np.testing.assert_allclose(j[LITTLE[0]], [0.0269, -0.0036, -0.0370], atol=1e-3)


def test_bone_lengths_do_not_depend_on_pose():
    hand = KinematicHand()
    p = params(64)
    rest = bone_lengths(hand(betas=p["betas"]).joints)
    posed = bone_lengths(hand(**p).joints)
    assert torch.allclose(posed, rest, atol=1e-12)


def test_global_orient_rotates_about_the_wrist_and_transl_shifts():
    hand = KinematicHand()
    p = params(8)
    base = hand(hand_pose=p["hand_pose"], betas=p["betas"]).joints
    out = hand(**p).joints
    rot = roma.rotvec_to_rotmat(p["global_orient"])
    root = hand.rest_root(p["betas"])
    expected = ((base - root[:, None]) @ rot.transpose(-1, -2)) + root[:, None] + p["transl"][:, None]
    assert torch.allclose(out, expected, atol=1e-12)
    assert torch.allclose(out[:, 0], root + p["transl"], atol=1e-12)


def test_rigid_transform_of_parameters_via_rest_root():
    """new_transl = R (root + t) + T - root moves the whole hand rigidly (what other code relies on)."""
    hand = KinematicHand()
    p = params(5)
    rot_a = roma.rotvec_to_rotmat(torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64))
    shift = torch.tensor([0.1, -0.2, 0.5], dtype=torch.float64)
    root = hand.rest_root(p["betas"])
    moved = dict(p, global_orient=roma.rotmat_to_rotvec(rot_a @ roma.rotvec_to_rotmat(p["global_orient"])),
                 transl=(root + p["transl"]) @ rot_a.T + shift - root)
    assert torch.allclose(hand(**moved).joints, hand(**p).joints @ rot_a.T + shift, atol=1e-12)


def test_betas_change_bone_lengths_linearly():
    hand = KinematicHand()
    b1, b2 = params(2)["betas"]
    length = lambda b: bone_lengths(hand(betas=b).joints)  # noqa: E731
    rest = length(torch.zeros(10, dtype=torch.float64))
    assert torch.allclose(length(b1 + 2 * b2) - rest, (length(b1) - rest) + 2 * (length(b2) - rest), atol=1e-12)
    # betas[0] is an overall scale: every bone grows by the same ratio.
    ratio = length(torch.eye(10, dtype=torch.float64)[0]) / rest
    assert torch.allclose(ratio, torch.full_like(ratio, 1 + BETA_BASIS[1, 0]))
    assert not torch.allclose(length(torch.eye(10, dtype=torch.float64)[1]) / rest, ratio)


def test_broadcasting_over_leading_dims():
    hand = KinematicHand()
    p = params(4, 6)
    out = hand(global_orient=p["global_orient"][:, :1], hand_pose=p["hand_pose"], betas=p["betas"][0, 0])
    assert out.joints.shape == (4, 6, 21, 3)
    single = hand(global_orient=p["global_orient"][2, 0], hand_pose=p["hand_pose"][2, 3], betas=p["betas"][0, 0])
    assert torch.allclose(out.joints[2, 3], single.joints, atol=1e-12)


def test_float32_matches_float64_and_dtype_follows_inputs():
    hand = KinematicHand()
    p64 = params(16)
    p32 = {k: v.float() for k, v in p64.items()}
    j32, j64 = hand(**p32).joints, hand(**p64).joints
    assert j32.dtype == torch.float32 and j64.dtype == torch.float64
    assert torch.allclose(j32.double(), j64, atol=1e-6)


def test_gradients_flow_to_every_parameter():
    p = {k: v.requires_grad_() for k, v in params(3).items()}
    KinematicHand()(**p).joints.square().sum().backward()
    for name, value in p.items():
        assert value.grad is not None and value.grad.abs().sum() > 0, name


def test_left_hand_is_the_exact_mirror():
    p = params(32)
    right = KinematicHand(is_right=True)(**p).joints
    mirrored = dict(p, transl=p["transl"] * MIRROR)
    for key in ("global_orient", "hand_pose"):
        mirrored[key] = (p[key].unflatten(-1, (-1, 3)) * MIRROR.neg()).flatten(-2)
    left = KinematicHand(is_right=False)(**mirrored).joints
    assert (left - right * MIRROR).abs().max() < 1e-12


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_device_follows_inputs():
    p = {k: v.cuda() for k, v in params(4).items()}
    out = KinematicHand()(**p)
    assert out.joints.is_cuda
    assert torch.allclose(out.joints.cpu(), KinematicHand()(**params(4)).joints, atol=1e-10)


def test_load_hand_model_and_fk_numpy():
    hand = load_hand_model()
    assert isinstance(hand, KinematicHand) and hand.kind == "kinematic" and hand.faces is None
    p = params(7, dtype=torch.float32)
    mano = torch.cat([p["global_orient"], p["hand_pose"], p["betas"], p["transl"]], -1).numpy()
    joints, vertices = fk_numpy(hand, mano, chunk=3)
    assert vertices is None and joints.shape == (7, 21, 3) and joints.dtype == np.float32
    np.testing.assert_allclose(joints, hand(**p).joints.numpy(), atol=1e-6)
    assert not load_hand_model(is_right=False).is_right
