"""Vision training on CPU: backbone pretraining (stage 0), cached frozen-backbone tokens, init from a model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from unihand.cli import main
from unihand.data.windows import SyntheticWindows
from unihand.errors import UserError
from unihand.models.backbones import SmallBackbone
from unihand.pipeline import UniHandModel
from unihand.train.backbone import PoseProbe, RenderedFrames, load_backbone, pose_targets, save_backbone
from unihand.train.vision_cache import CachedTokenWindows

from sampling import sample

from test_training import TINY


def test_pose_targets_project_and_measure_relative_to_the_wrist() -> None:
    K = torch.tensor([[100.0, 0, 64], [0, 100, 32], [0, 0, 1]])
    joints = torch.zeros(1, 21, 3)
    joints[..., 2] = 2.0
    joints[0, 1] = torch.tensor([0.2, -0.1, 2.0])
    t = pose_targets(joints, K, 128)
    uv = t[0, :42].view(21, 2)
    torch.testing.assert_close(uv[0], torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(uv[1], torch.tensor([(64 + 10) / 128, (32 - 5) / 128]))
    rel = t[0, 42:105].view(21, 3)
    torch.testing.assert_close(rel[1], torch.tensor([2.0, -1.0, 0.0]))  # decimetres
    assert rel[0].abs().max() == 0
    assert math.isclose(float(t[0, 105]), math.log(2.0), rel_tol=1e-6)


def test_probe_soft_argmax_finds_the_token_a_joint_points_to() -> None:
    probe = PoseProbe(dim=4, grid=8)
    with torch.no_grad():
        probe.logits.weight.zero_()
        probe.logits.bias.zero_()
    tokens = torch.zeros(1, 8, 8, 4)
    uv = probe(tokens)[0, :42].view(21, 2)
    torch.testing.assert_close(uv, torch.full((21, 2), 0.5))  # uniform: the grid's centre
    with torch.no_grad():
        probe.logits.weight[3, 0] = 50.0  # joint 3 looks for channel 0
    tokens[0, 2, 5, 0] = 1.0  # row 2, column 5
    uv = probe(tokens)[0, :42].view(21, 2)
    torch.testing.assert_close(uv[3], torch.tensor([5.5 / 8, 2.5 / 8]), atol=1e-3, rtol=0)


def test_rendered_frames_are_deterministic_and_targets_lie_in_the_frame() -> None:
    data = RenderedFrames(3, seed=0, size=64, per_window=3, frames=16)
    a, b = data.__getitems__([0, 1, 2]), data.__getitems__([0, 1, 2])
    assert a[0]["frames"].shape == (3, 3, 64, 64) and a[0]["frames"].dtype == torch.uint8
    assert a[0]["target"].shape == (3, 106)
    for x, y in zip(a, b):
        assert torch.equal(x["frames"], y["frames"]) and torch.equal(x["target"], y["target"])
    wrists = torch.cat([it["target"][:, :2] for it in a])
    assert ((wrists > -0.5) & (wrists < 1.5)).all()  # near the frame (hands may leave it partly)
    assert not torch.equal(a[0]["frames"], a[1]["frames"])


def test_backbone_save_load_round_trip_and_mismatch(tmp_path: Path) -> None:
    net = SmallBackbone(dim=16, input_size=64)
    path = save_backbone(net, tmp_path / "bb" / "backbone.safetensors")
    other = SmallBackbone(dim=16, input_size=64)
    load_backbone(other, tmp_path / "bb")
    for k, v in net.state_dict().items():
        assert torch.equal(v, other.state_dict()[k])
    with pytest.raises(UserError, match="does not match"):
        load_backbone(SmallBackbone(dim=32, input_size=64), path)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(UserError, match="not a backbone"):
        load_backbone(net, tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a readable backbone"):
        load_backbone(net, tmp_path / "junk.safetensors")


def test_cached_tokens_match_the_backbone_and_follow_its_weights(tmp_path: Path) -> None:
    data = SyntheticWindows(3, seed=5, frames=16, render=True, size=64)
    backbone = SmallBackbone(dim=16, input_size=64).freeze()
    cache = CachedTokenWindows(data, backbone, tmp_path)
    assert cache.prepare() == 3 and cache.prepare() == 0
    item = cache[1]
    assert "frames" not in item and item["tokens"].shape == (16, 4, 4, 16)
    expected = backbone.encode(data[1]["frames"]).tokens
    torch.testing.assert_close(item["tokens"], expected, atol=2e-2, rtol=1e-2)  # stored as float16
    for k in ("mano", "kp2d", "kp2d_mask"):
        assert torch.equal(item[k], data[1][k])
    with torch.no_grad():
        backbone.stem[0].weight.mul_(1.5)  # new weights: new entries, never stale tokens
    assert CachedTokenWindows(data, backbone, tmp_path).prepare() == 3
    with pytest.raises(UserError, match="frozen backbone"):
        CachedTokenWindows(data, SmallBackbone(dim=16, input_size=64), tmp_path)
    with pytest.raises(UserError, match="rendered synthetic"):
        CachedTokenWindows(data.without_frames(), backbone, tmp_path)


def test_backbone_stage_then_vision_diffusion_from_a_model(tmp_path: Path) -> None:
    bb_run, vae_run, dif_run, vis_run = (tmp_path / n for n in ("bb", "vae", "dif", "vis"))
    vis = "{enabled: true, small_dim: 16, input_size: 64, layers: 1, heads: 2, frozen: true}"
    assert main(["train", "backbone", "--out", str(bb_run), *TINY, "--set", f"model.vision={vis}",
                 "--set", "data.render_size=64", "--set", "train.max_steps=2", "--set", "train.frames_per_window=2"]) == 0
    assert (bb_run / "export" / "backbone.safetensors").exists()
    assert main(["train", "vae", "--out", str(vae_run), *TINY, "--set", "train.max_steps=1"]) == 0
    assert main(["train", "diffusion", "--out", str(dif_run), *TINY, "--set", "train.max_steps=1",
                 "--set", f"vae={vae_run / 'export'}"]) == 0
    base = UniHandModel.from_pretrained(dif_run / "export")
    assert main(["train", "diffusion", "--out", str(vis_run), *TINY, "--set", f"model.vision={vis}",
                 "--set", "data.render_size=64", "--set", "data.epoch_size=8", "--set", "train.max_steps=2",
                 "--set", f"init={dif_run / 'export'}", "--set", f"backbone={bb_run / 'export'}",
                 "--set", f"train.feature_cache={tmp_path / 'cache'}"]) == 0
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 8 + 4  # training + validation windows
    model = UniHandModel.from_pretrained(vis_run / "export")
    pretrained = SmallBackbone(dim=16, input_size=64)
    load_backbone(pretrained, bb_run / "export")
    for k, v in pretrained.state_dict().items():  # frozen through the diffusion stage
        assert torch.equal(model.backbone.state_dict()[k], v)
    for k, v in base.vae.state_dict().items():  # the init model's VAE, frozen
        assert torch.equal(model.vae.state_dict()[k], v)
    assert float(model.denoiser.latent_scale) == float(base.denoiser.latent_scale)  # kept from the init model
    frames = np.random.default_rng(0).integers(0, 255, (16, 64, 64, 3), dtype=np.uint8)
    assert np.all(np.isfinite(sample(model, None, frames=frames, seed=0).joints))


def test_vision_parameters_get_their_own_learning_rate() -> None:
    from unihand.config import model_config
    from unihand.train.modules import DiffusionModule

    cfg = model_config("small", {"vision": {"enabled": True, "small_dim": 16, "input_size": 64, "frozen": True}})
    module = DiffusionModule(UniHandModel(cfg), {"lr": 1e-3, "max_steps": 10, "warmup": 1, "vision_lr_mult": 10})
    base, fast = module.configure_optimizers()["optimizer"].param_groups
    assert fast["initial_lr"] == pytest.approx(10 * base["initial_lr"])
    fast_ids = {id(p) for p in fast["params"]}
    assert all(id(p) in fast_ids for p in module.model.perceptron.parameters())
    assert not any(id(p) in fast_ids for p in module.model.denoiser.stack.blocks[0].attn.parameters())
    assert not any(p.requires_grad for p in module.model.backbone.parameters())  # frozen: in no group
    assert sum(p.numel() for g in (base, fast) for p in g["params"]) == sum(
        p.numel() for p in module.model.parameters() if p.requires_grad)


def test_window_pose_targets_agree_with_the_observed_2d_keypoints() -> None:
    from torch.utils.data import default_collate

    from unihand.train.backbone import window_pose_targets

    data = SyntheticWindows(8, seed=5, frames=16)
    batch = default_collate(data.__getitems__(list(range(8))))
    assert batch["is_left"].any() and not batch["is_left"].all()  # mirrored windows included
    t = window_pose_targets(batch)
    assert t.shape == (8, 16, 106)
    px = ((t[..., :42].view(8, 16, 21, 2) - batch["kp2d"]) * batch["image_size"][:, None, None]).norm(dim=-1)
    assert px[batch["kp2d_mask"]].median() < 8.0  # the synthetic detector's noise, in pixels
    torch.testing.assert_close(t[..., 42:45], torch.zeros(8, 16, 3))  # the wrist is its own origin
    bone = t[..., 42:105].view(8, 16, 21, 3)[..., 9, :].norm(dim=-1) / 10  # wrist -> middle MCP, metres
    torch.testing.assert_close(bone, (batch["joints"][..., 9, :] - batch["joints"][..., 0, :]).norm(dim=-1))


def test_perceptron_aux_loss_trains_a_probe_on_the_hand_tokens() -> None:
    from torch.utils.data import default_collate

    from unihand.config import model_config
    from unihand.train.modules import DiffusionModule, token_spread

    cfg = model_config("small", {"vision": {"enabled": True, "small_dim": 16, "input_size": 64, "frozen": True,
                                            "layers": 1}})
    torch.manual_seed(0)
    module = DiffusionModule(UniHandModel(cfg), {"lr": 1e-3, "max_steps": 1, "perceptron_aux": 0.5, "vision_lr_mult": 2})
    logged: dict[str, torch.Tensor] = {}
    module.log = lambda *a, **k: None
    module.log_dict = lambda d, **k: logged.update(d)
    module._vision_mask = lambda b, n: torch.ones(b, n, dtype=torch.bool)
    batch = default_collate(SyntheticWindows(2, seed=3, frames=16, render=True, size=64).__getitems__([0, 1]))
    loss = module._step(batch, "train")
    loss.backward()
    parts = ("simple", "rec", "perceptron_aux")
    expected = logged["train/simple"] + module.model.cfg.diffusion.w_rec * logged["train/rec"]
    torch.testing.assert_close(loss.detach(), expected + 0.5 * logged["train/perceptron_aux"])
    assert all(f"train/{p}" in logged for p in parts) and 0 <= float(logged["train/token_spread"]) < 2
    assert module.token_probe.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.model.perceptron.parameters())
    fast = {id(p) for p in module.configure_optimizers()["optimizer"].param_groups[1]["params"]}
    assert id(module.token_probe.weight) in fast
    assert "token_probe.weight" not in module.model.state_dict()  # the probe is not exported
    # token_spread: 0 for identical tokens, the relative deviation otherwise
    same = torch.ones(1, 4, 3)
    assert float(token_spread(same, torch.ones(1, 4, dtype=torch.bool))) == 0.0
    two = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [5.0, 5.0]]])
    assert float(token_spread(two, torch.tensor([[True, True, False]]))) == pytest.approx(1.0)
    with pytest.raises(UserError, match="vision model"):
        DiffusionModule(UniHandModel(model_config("small", {})), {"lr": 1e-3, "max_steps": 1, "perceptron_aux": 1.0})
