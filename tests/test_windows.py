"""Training windows: layout, determinism, batched fetching, left hands mirrored to right ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from unihand.data.synthetic import SynthConfig, SyntheticWorld
from unihand.data.windows import SyntheticWindows, make_item
from unihand.geometry.mirror import mirror_mano_vector

SHAPES = {
    "mano": (48, 61), "joints": (48, 21, 3), "kp2d": (48, 21, 2), "kp2d_mask": (48, 21), "kp2d_conf": (48, 21),
    "kp3d": (48, 21, 3), "kp3d_mask": (48, 21), "mano_mask": (48,), "occlusion": (48,), "K": (3, 3),
    "image_size": (2,), "T_cano_from_cam": (48, 4, 4), "is_left": (),
}


@pytest.fixture(scope="module")
def ds() -> SyntheticWindows:
    return SyntheticWindows(64, seed=0)


def _left_index(world: SyntheticWorld, start: int = 0) -> int:
    return next(i for i in range(start, start + 64) if not world.sequence(i).is_right)


def test_item_layout_and_dtypes(ds: SyntheticWindows) -> None:
    item = ds[0]
    assert set(item) == set(SHAPES) | {"kp2d_conf"}
    for k, shape in SHAPES.items():
        assert tuple(item[k].shape) == shape, k
        want = torch.bool if k.endswith("_mask") or k == "is_left" else torch.float32
        assert item[k].dtype == want, k
    assert len(ds) == 64
    with pytest.raises(IndexError):
        ds[64]


def test_items_are_deterministic_and_seeds_disjoint(ds: SyntheticWindows) -> None:
    a, b = ds[3], SyntheticWindows(64, seed=0)[3]
    assert all(torch.equal(a[k], b[k]) for k in a)
    test = SyntheticWindows(8, seed=1000)[3]
    assert not torch.allclose(a["mano"], test["mano"])
    shifted = SyntheticWindows(8, seed=0, offset=3)[0]
    assert all(torch.equal(a[k], shifted[k]) for k in a)


def test_dataloader_batches_through_getitems(ds: SyntheticWindows) -> None:
    loader = DataLoader(ds, batch_size=4, shuffle=False)
    batch = next(iter(loader))
    assert batch["kp2d"].shape == (4, 48, 21, 2) and batch["kp2d_mask"].dtype == torch.bool
    for i in range(4):
        one = ds[i]
        assert all(torch.equal(batch[k][i], one[k]) for k in one)


def test_left_windows_are_mirrored_to_right(ds: SyntheticWindows) -> None:
    world = ds.world
    i = _left_index(world)
    seq = world.sequence(i)
    item = ds[i]
    assert bool(item["is_left"])
    np.testing.assert_allclose(item["mano"].numpy(), mirror_mano_vector(seq.motion.mano()), atol=1e-6)
    np.testing.assert_allclose(item["joints"].numpy()[..., 0], -seq.motion.joints[..., 0], atol=1e-6)
    w = float(seq.motion.image_size[0])
    ok = item["kp2d_mask"].numpy()
    np.testing.assert_allclose(item["kp2d"].numpy()[..., 0][ok], (w - 1) / w - seq.conditions.kp2d[..., 0][ok], atol=1e-6)
    assert np.all(item["kp2d"].numpy()[~ok] == 0)
    np.testing.assert_allclose(item["K"][0, 2].item(), w - 1 - seq.motion.K[0, 2], atol=1e-3)
    # unmirrored on request
    raw = SyntheticWindows(64, seed=0, mirror_left=False)[i]
    np.testing.assert_allclose(raw["mano"].numpy(), seq.motion.mano(), atol=0)


def test_every_item_is_a_consistent_right_hand_scene(ds: SyntheticWindows) -> None:
    """After mirroring, projecting the canonical joints with each frame's camera gives kp2d."""
    world = ds.world
    for i in (_left_index(world), next(j for j in range(64) if world.sequence(j).is_right)):
        item = {k: v.numpy().astype(np.float64) for k, v in ds[i].items()}
        T = item["T_cano_from_cam"]
        R, t = np.swapaxes(T[:, :3, :3], 1, 2), -np.einsum("nji,nj->ni", T[:, :3, :3], T[:, :3, 3])
        cam = (R[:, None] @ item["joints"][..., None])[..., 0] + t[:, None]
        K = item["K"]
        px = cam[..., :2] / cam[..., 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
        ok = item["kp2d_mask"].astype(bool)
        err = np.linalg.norm(item["kp2d"] * item["image_size"] - px, axis=-1)[ok]
        assert np.median(err) < 0.05 * np.linalg.norm(item["image_size"])
        # the right-hand model reproduces the (mirrored) joints from the (mirrored) MANO
        from unihand.hand import fk_numpy, load_hand_model

        joints, _ = fk_numpy(load_hand_model(is_right=True), item["mano"])
        np.testing.assert_allclose(joints, item["joints"], atol=3e-5)


def test_rendered_windows_mirror_the_frames() -> None:
    cfg = SynthConfig(frames=8)
    world = SyntheticWorld(0, cfg)
    i = _left_index(world)
    item = SyntheticWindows(64, seed=0, frames=8, render=True, size=64)[i]
    raw = SyntheticWindows(64, seed=0, frames=8, render=True, size=64, mirror_left=False)[i]
    assert item["frames"].shape == (8, 3, 64, 64) and item["frames"].dtype == torch.uint8
    assert torch.equal(item["frames"], torch.flip(raw["frames"], dims=(-1,)))
    # frame_K maps the mirrored joints onto the mirrored frames: same pixel as the raw frame's flip
    T = raw["T_cano_from_cam"].double()
    cam = (T[:, :3, :3].transpose(1, 2) @ (raw["joints"].double() - T[:, None, :3, 3]).transpose(1, 2)).transpose(1, 2)
    uv_raw = cam[..., :2] / cam[..., 2:] * raw["frame_K"].double()[[0, 1], [0, 1]] + raw["frame_K"].double()[:2, 2]
    cam_m = cam * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    uv_m = cam_m[..., :2] / cam_m[..., 2:] * item["frame_K"].double()[[0, 1], [0, 1]] + item["frame_K"].double()[:2, 2]
    torch.testing.assert_close(uv_m[..., 0], 63 - uv_raw[..., 0], atol=1e-3, rtol=0)
    torch.testing.assert_close(uv_m[..., 1], uv_raw[..., 1], atol=1e-3, rtol=0)


def test_make_item_windows_a_longer_sequence() -> None:
    seq = SyntheticWorld(0, SynthConfig(frames=20)).sequence(1)
    item = make_item(seq.motion, seq.conditions, start=4, length=8, mirror_left=False)
    assert item["mano"].shape == (8, 61)
    np.testing.assert_array_equal(item["joints"].numpy(), seq.motion.joints[4:12])
    np.testing.assert_array_equal(item["kp2d_mask"].numpy(), seq.conditions.kp2d_mask[4:12])
