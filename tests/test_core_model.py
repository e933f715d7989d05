"""Joint VAE, denoiser, guided sampling and the UniHand pipeline (random weights, tiny preset)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unihand.config import model_config
from unihand.data.io import Conditions
from unihand.diffusion.sampling import guided_sample, sample_scheduler
from unihand.errors import UserError
from unihand.geometry.mirror import mirror_points
from unihand.models.rope import apply_rope, rope_angles
from unihand.pipeline import UniHandModel

from sampling import sample

TINY = {"vae": {"d_model": 32, "layers": 1, "heads": 2, "ffn": 64},
        "diffusion": {"d_model": 32, "layers": 2, "heads": 2, "ffn": 64}}
K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]], np.float32)


@pytest.fixture(scope="module")
def model() -> UniHandModel:
    torch.manual_seed(0)
    m = UniHandModel(model_config("small", TINY)).eval()
    # non-trivial nulls/modulation so the tests see real signal paths
    for p in m.parameters():
        if p.dim() == 2 and p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.02)
    return m


def kp2d_conditions(n: int, seed: int = 0) -> Conditions:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(0.3, 0.7, (n, 21, 2)).astype(np.float32)
    return Conditions(kp2d=kp, kp2d_mask=np.ones((n, 21), bool), K=K, image_size=np.array([640, 480]))


def test_rope_scores_depend_only_on_relative_time() -> None:
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    def score(m: int, n: int) -> float:
        return float((apply_rope(q, rope_angles(torch.tensor([m]), 16)) * apply_rope(k, rope_angles(torch.tensor([n]), 16))).sum())
    assert score(3, 1) == pytest.approx(score(10, 8), abs=1e-5)
    assert score(3, 1) != pytest.approx(score(3, 2), abs=1e-3)


def test_decoder_is_autoregressive_over_segments(model: UniHandModel) -> None:
    vae = model.vae
    g, z = torch.randn(1, 32), torch.randn(1, 16, 32)
    out = vae.decode(g, z)
    z2 = z.clone()
    z2[:, 8:] += 1.0  # change only the second segment's latents
    out2 = vae.decode(g, z2)
    assert torch.allclose(out[:, :8], out2[:, :8])  # earlier segment untouched
    assert not torch.allclose(out[:, 8:], out2[:, 8:])
    first = torch.randn(1, 109)
    assert not torch.allclose(vae.decode(g, z, first), out)  # the anchor matters
    with pytest.raises(ValueError, match="multiple"):
        vae.decode(g, torch.randn(1, 12, 32))


def test_masked_frames_take_the_null_token(model: UniHandModel) -> None:
    den = model.denoiser
    zc = torch.randn(1, 8, 32)
    mask = torch.tensor([[True, False] * 4])
    fused = den.fuse({"kp2d": (zc, mask)}, 1, 8)
    empty = den.null_conditions(1, 8)
    kp = slice(0, 32)
    assert torch.equal(fused[0, 1:][~mask[0]], empty[0, 1:][~mask[0]])  # masked -> null
    assert torch.equal(fused[0, 1:][mask[0]][:, kp], zc[0][mask[0]])  # kept -> latent
    assert torch.equal(fused[:, :, 32:], empty[:, :, 32:])  # absent modalities -> null


def test_batched_cfg_equals_separate_passes(model: UniHandModel) -> None:
    den = model.denoiser
    tokens = den.fuse({"kp2d": (torch.randn(1, 8, 32), torch.ones(1, 8, dtype=torch.bool))}, 1, 8)
    z_init = torch.randn(1, 9, 32)
    w = 2.0
    got = guided_sample(den, sample_scheduler(model.cfg.diffusion), tokens, steps=4, cfg_scale=w, z_init=z_init.clone())
    sched = sample_scheduler(model.cfg.diffusion)
    sched.set_timesteps(4)
    z = z_init.clone()
    null = den.null_conditions(1, 8)
    with torch.no_grad():
        for t in sched.timesteps:
            tt = t.expand(1)
            pc, pu = den(z, tt, tokens), den(z, tt, null)
            z = sched.step(pu + w * (pc - pu), t, z, eta=0.0).prev_sample
    torch.testing.assert_close(got, z, atol=1e-5, rtol=1e-4)


def test_generate_is_seeded_and_any_length(model: UniHandModel) -> None:
    cond = kp2d_conditions(13)
    a, b = sample(model, cond, seed=5), sample(model, cond, seed=5)
    c = sample(model, cond, seed=6)
    assert a.joints.shape == (13, 21, 3) and a.hand_pose.shape == (13, 45)
    np.testing.assert_array_equal(a.joints, b.joints)
    assert np.abs(a.joints - c.joints).max() > 1e-4
    assert np.all(np.isfinite(a.joints))


def test_long_sequences_are_windowed_and_continuous(model: UniHandModel) -> None:
    cond = kp2d_conditions(70)
    m = sample(model, cond, seed=0, window=24, overlap=8)
    assert m.joints.shape == (70, 21, 3)
    steps = np.linalg.norm(np.diff(m.transl, axis=0), axis=-1)
    assert np.all(np.isfinite(steps))


def test_left_hand_is_mirrored_in_and_out(model: UniHandModel) -> None:
    right = kp2d_conditions(8)
    left = kp2d_conditions(8)
    left.kp2d = np.concatenate([639.0 / 640.0 - right.kp2d[..., :1], right.kp2d[..., 1:]], -1).astype(np.float32)
    left.K = K.copy()
    left.K[0, 2] = 639.0 - K[0, 2]
    left.is_right = False
    r, l = sample(model, right, seed=1), sample(model, left, seed=1)
    np.testing.assert_allclose(l.joints, mirror_points(r.joints), atol=2e-4)
    assert not l.is_right


def test_nan_keypoints_are_masked_and_all_masked_is_unconditional(model: UniHandModel, caplog) -> None:
    cond = kp2d_conditions(8)
    cond.kp2d[2, 5] = np.nan
    m = sample(model, cond, seed=0)
    assert np.all(np.isfinite(m.joints))
    assert not cond.kp2d_mask[2, 5] and cond.kp2d_mask[2, 4]
    off = kp2d_conditions(8)
    off.kp2d_mask[:] = False
    with caplog.at_level("WARNING", logger="unihand"):
        sample(model, off, seed=0)
    assert "unconditionally" in caplog.text


def test_bad_conditions_are_user_errors(model: UniHandModel) -> None:
    cond = kp2d_conditions(8)
    cond.kp3d = np.zeros((9, 21, 3), np.float32)
    with pytest.raises(UserError, match="frames"):
        sample(model, cond)
    with pytest.raises(UserError, match="num_frames=0: expected a positive"):
        sample(model, None, num_frames=0)
    for kw, msg in (({"num_inference_steps": 0}, "steps=0"), ({"num_inference_steps": 2000}, "from 1 to 50"),
                    ({"guidance_scale": float("nan")}, "finite"), ({"guidance_scale": float("inf")}, "finite"),
                    ({"overlap": 48}, "overlap=48"), ({"window": 12}, "multiple of the decoder segment")):
        with pytest.raises(UserError, match=msg):
            sample(model, kp2d_conditions(8), **kw)


def test_checkpoint_round_trip_and_incompatible(model: UniHandModel, tmp_path) -> None:
    model.save_pretrained(tmp_path / "ck")
    loaded = UniHandModel.from_pretrained(tmp_path / "ck")
    cond = kp2d_conditions(8)
    np.testing.assert_array_equal(sample(model, cond, seed=2).joints, sample(loaded, cond, seed=2).joints)
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    meta["model"]["diffusion"]["layers"] = 3
    (tmp_path / "ck" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="do not fit"):
        UniHandModel.from_pretrained(tmp_path / "ck")
    with pytest.raises(UserError, match="not a UniHand checkpoint"):
        UniHandModel.from_pretrained(tmp_path / "nothing")
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"garbage")
    meta["model"]["diffusion"]["layers"] = 2
    (tmp_path / "ck" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="unreadable"):
        UniHandModel.from_pretrained(tmp_path / "ck")


def test_vision_condition_flows_into_generation(tmp_path) -> None:
    torch.manual_seed(0)
    cfg = model_config("small", {**TINY, "vision": {"enabled": True, "small_dim": 16, "input_size": 64,
                                                    "layers": 1, "heads": 2}})
    m = UniHandModel(cfg).eval()
    for p in m.parameters():  # adaLN gates start at zero: open them so vision reaches the output
        if p.dim() == 2 and p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (8, 48, 64, 3), dtype=np.uint8)
    cond = kp2d_conditions(8)
    a = sample(m, cond, seed=0, frames=frames)
    b = sample(m, cond, seed=0, frames=frames[::-1].copy())
    c = sample(m, cond, seed=0, frames=frames, vision_mask=np.zeros(8, bool))
    d = sample(m, cond, seed=0)
    assert np.abs(a.joints - b.joints).max() > 1e-6  # the frames matter
    np.testing.assert_allclose(c.joints, d.joints, atol=1e-5)  # all frames masked == no vision
    with pytest.raises(UserError, match="video frames"):
        sample(m, cond, frames=frames[:5])
    m.save_pretrained(tmp_path / "v")
    np.testing.assert_array_equal(sample(UniHandModel.from_pretrained(tmp_path / "v"), cond, seed=0, frames=frames).joints,
                                  a.joints)
    plain = UniHandModel(model_config("small", TINY)).eval()
    with pytest.raises(UserError, match="without the vision"):
        sample(plain, cond, frames=frames)


def test_denoiser_reads_each_frames_hand_token_within_its_window() -> None:
    from unihand.config import DiffusionConfig
    from unihand.models.denoiser import Denoiser

    torch.manual_seed(0)
    den = Denoiser(DiffusionConfig(d_model=16, layers=1, heads=2, ffn=32), latent_dim=4, vision=True,
                   vision_window=1).eval()
    for p in den.parameters():  # zero-initialised gates and cross-attention outputs: open them
        if p.dim() == 2 and p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.2)
    n = 12
    z, cond = torch.randn(1, n + 1, 4), den.null_conditions(1, n)
    t, vision = torch.tensor([500]), torch.randn(1, n, 16)
    base = den(z, t, cond, vision)
    moved = vision.clone()
    moved[0, 5] += 1.0  # frame 5 (0-based) is latent token 6
    diff = (den(z, t, cond, moved) - base).abs().amax(-1)[0]
    # one layer: only the global token and latent tokens 5..7 read frame 5's hand token
    assert set(torch.nonzero(diff > 1e-6).flatten().tolist()) == {0, 5, 6, 7}
    # a frame without vision reads the null token, exactly like no vision at all
    mask = torch.ones(1, n, dtype=torch.bool)
    mask[0, 5] = False
    null_frame = vision.clone()
    null_frame[0, 5] = den.vision_null
    torch.testing.assert_close(den(z, t, cond, moved, mask), den(z, t, cond, null_frame))
    torch.testing.assert_close(den(z, t, cond, vision, torch.zeros(1, n, dtype=torch.bool)), den(z, t, cond))
    # the band: the global token reads every frame, latent token 6 frames 5..7 (with its null slot at key 0 off)
    _, band = den.vision_context(1, n + 1, vision, None)
    assert band.shape == (1, n + 1, n + 1) and bool(band[0, 0].all()) and band[0, 6].nonzero().flatten().tolist() == [5, 6, 7]


def test_given_mano_frames_come_back_and_3d_keypoints_are_met(model: UniHandModel) -> None:
    from unihand.data.synthetic.world import SyntheticWorld, SynthConfig

    seq = SyntheticWorld(1000, SynthConfig(left_p=0.0, frames=16)).sequence(0)
    known = np.zeros(16, bool)
    known[[0, 1, 14, 15]] = True
    cond = Conditions(mano=seq.motion.mano(), mano_mask=known, K=K, image_size=np.array([640, 480]))
    out = sample(model, cond, seed=0)
    np.testing.assert_allclose(out.mano()[known], seq.motion.mano()[known], atol=1e-4)
    free = sample(model, cond, seed=0, refine=False)
    assert np.abs(free.mano()[known] - seq.motion.mano()[known]).max() > 1e-2  # random weights miss them
    steps = np.linalg.norm(np.diff(out.joints, axis=0), axis=-1).max(axis=-1)
    assert steps.max() < 4 * np.median(steps) + 1e-3  # no jump at the edges of the gap

    lift = Conditions(kp3d=seq.motion.joints, kp3d_mask=np.ones((16, 21), bool), K=K, image_size=np.array([640, 480]))
    err_fit = np.linalg.norm(sample(model, lift, seed=0).joints - seq.motion.joints, axis=-1).mean()
    err_raw = np.linalg.norm(sample(model, lift, seed=0, refine=False).joints - seq.motion.joints, axis=-1).mean()
    assert err_fit < 0.5 * err_raw


def _split(mano: np.ndarray) -> dict[str, torch.Tensor]:
    t = torch.from_numpy(mano)
    return {"global_orient": t[:, :3], "hand_pose": t[:, 3:48], "betas": t[:, 48:58], "transl": t[:, 58:]}


def test_swapped_schedulers(model: UniHandModel) -> None:
    cond = kp2d_conditions(16)
    ddim = sample(model, cond, seed=3, num_inference_steps=10, refine=False).mano()
    # DDIM (eta 0) is the Euler step of the same probability-flow ODE: the same samples
    euler = sample(model, cond, seed=3, num_inference_steps=10, scheduler="euler", refine=False).mano()
    np.testing.assert_allclose(euler, ddim, atol=1e-3)
    dpm = sample(model, cond, seed=3, num_inference_steps=5, scheduler="dpm", refine=False).mano()
    assert np.isfinite(dpm).all() and np.abs(dpm - ddim).max() > 1e-4
    with pytest.raises(UserError, match="scheduler='plms'"):
        sample(model, cond, scheduler="plms")
