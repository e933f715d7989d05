"""Two-stage training through the CLI: runs, resumes after interruption, exports usable checkpoints."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unihand.cli import main
from unihand.errors import UserError
from unihand.pipeline import UniHandModel
from unihand.train.checkpoint_io import load_tree, save_tree
from unihand.train.run import resolve_config

from sampling import sample

TINY = [
    "--set", "model.vae={d_model: 32, layers: 1, heads: 2, ffn: 64}",
    "--set", "model.diffusion={d_model: 32, layers: 1, heads: 2, ffn: 64}",
    "--set", "data.frames=16", "--set", "data.epoch_size=64", "--set", "data.val_size=4",
    "--set", "train={batch_size: 4, num_workers: 0, log_every: 1, ckpt_every: 2, val_every: 4, lr: 0.001, warmup: 2}",
]


def steps_logged(run: Path) -> int:
    rows = []
    for f in sorted(run.glob("logs/version_*/metrics.csv")):
        with open(f) as fh:
            rows += [r for r in csv.DictReader(fh) if r.get("train/loss")]
    return max(int(r["step"]) for r in rows) + 1


def test_vae_then_diffusion_train_resume_and_export(tmp_path: Path) -> None:
    vae_run, dif_run = tmp_path / "vae", tmp_path / "dif"
    assert main(["train", "vae", "--out", str(vae_run), *TINY, "--set", "train.max_steps=4"]) == 0
    first = load_tree(vae_run / "checkpoints" / "last.ckpt")
    assert first["global_step"] == 4
    # rerun with a larger budget: resumes from step 4 instead of starting over
    assert main(["train", "vae", "--out", str(vae_run), *TINY, "--set", "train.max_steps=6"]) == 0
    assert load_tree(vae_run / "checkpoints" / "last.ckpt")["global_step"] == 6
    assert steps_logged(vae_run) == 6
    assert (vae_run / "tb").exists()
    meta = json.loads((vae_run / "export" / "config.json").read_text())
    assert meta["stage"] == "vae"
    vae = UniHandModel.from_pretrained(vae_run / "export")
    assert not torch.allclose(vae.vae.codec.transl_std, torch.tensor([0.15, 0.15, 0.15]))  # statistics fitted

    assert main(["train", "diffusion", "--out", str(dif_run), *TINY, "--set", "train.max_steps=3",
                 "--set", f"vae={vae_run / 'export'}"]) == 0
    model = UniHandModel.from_pretrained(dif_run / "export")
    assert float(model.denoiser.latent_scale) != 1.0  # latent scale fitted on data
    for name, p in model.vae.state_dict().items():  # the VAE stayed frozen
        torch.testing.assert_close(p, vae.vae.state_dict()[name])
    motion = sample(model, None, num_frames=16, seed=0)
    assert np.all(np.isfinite(motion.joints))


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs the trained VAE"):
        resolve_config("diffusion", None, [])
    with pytest.raises(UserError, match="bogus: unknown setting"):
        resolve_config("vae", None, ["bogus=1"])
    with pytest.raises(UserError, match="key.sub=value"):
        resolve_config("vae", None, ["no-equals"])
    with pytest.raises(UserError, match="space after each colon"):
        resolve_config("vae", None, ["train.keep={kp2d:0.5}"])
    with pytest.raises(UserError, match=r"train.keep: .*'kp3d': 1.5"):
        resolve_config("vae", None, ["train.keep={kp2d: 0.5, kp3d: 1.5}"])
    with pytest.raises(UserError, match="train.perceptron_aux: expected a number >= 0"):
        resolve_config("vae", None, ["train.perceptron_aux=-1"])
    with pytest.raises(UserError, match="train.num_nodes: expected an integer >= 1"):
        resolve_config("vae", None, ["train.num_nodes=0"])
    # typos, wrong types and values out of range name the key, in every section
    with pytest.raises(UserError, match=r"train.max_step: unknown setting \(known: .*max_steps"):
        resolve_config("vae", None, ["train.max_step=3"])
    with pytest.raises(UserError, match="data.epoch_sise: unknown setting"):
        resolve_config("vae", None, ["data.epoch_sise=3"])
    with pytest.raises(UserError, match="train.lr: expected a number, got 'fast'"):
        resolve_config("vae", None, ["train.lr=fast"])
    with pytest.raises(UserError, match="train.max_steps: expected an integer, got 'abc'"):
        resolve_config("vae", None, ["train.max_steps=abc"])
    with pytest.raises(UserError, match="train.batch_size: expected an integer >= 1, got 0"):
        resolve_config("vae", None, ["train.batch_size=0"])
    with pytest.raises(UserError, match="train.ckpt_every: expected an integer >= 1"):
        resolve_config("vae", None, ["train.ckpt_every=0"])
    with pytest.raises(UserError, match="train: expected a mapping"):
        resolve_config("vae", None, ["train=5"])
    with pytest.raises(UserError, match="model.vae.d_model: expected an integer, got 'wide'"):
        resolve_config("vae", None, ["model.vae.d_model=wide"])
    with pytest.raises(UserError, match="not valid YAML"):
        resolve_config("vae", None, ["train.lr=[1,"])
    (tmp_path / "bin.yaml").write_bytes(bytes(range(128, 256)))
    with pytest.raises(UserError, match="bin.yaml: not a valid YAML config"):
        resolve_config("vae", str(tmp_path / "bin.yaml"), [])
    with pytest.raises(UserError, match="data.cache_dir: not a setting of the ho3d data"):
        from unihand.train.data import build_dataset

        build_dataset(resolve_config("vae", None, ["data={name: ho3d, root: x, cache_dir: y}"])["data"], "train")
    cfg = resolve_config("vae", None, ["train.keep={kp2d: 0.5}", "train.lr=1"])
    assert cfg["train"]["keep"] == {"kp2d": 0.5} and isinstance(cfg["train"]["lr"], float)
    assert cfg["train"]["max_steps"] == 2000 and cfg["data"]["name"] == "synthetic"


def test_safetensors_tree_round_trip(tmp_path: Path) -> None:
    tree = {"state_dict": {"w": torch.arange(6.0).view(2, 3)}, "epoch": 3, "loops": {"a": [1, 2.5, None, "x"]},
            "optimizer_states": [{"param_groups": [{"betas": (0.9, 0.999), "lr": 1e-3}]}]}
    save_tree(tree, tmp_path / "c.ckpt")
    back = load_tree(tmp_path / "c.ckpt")
    assert torch.equal(back["state_dict"]["w"], tree["state_dict"]["w"])
    assert back["epoch"] == 3 and back["loops"] == {"a": [1, 2.5, None, "x"]}
    assert back["optimizer_states"][0]["param_groups"][0]["betas"] == [0.9, 0.999]
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="unreadable"):
        load_tree(tmp_path / "bad.ckpt")


def test_vision_diffusion_trains_on_rendered_frames(tmp_path: Path) -> None:
    vae_run, dif_run = tmp_path / "vae", tmp_path / "dif"
    assert main(["train", "vae", "--out", str(vae_run), *TINY, "--set", "train.max_steps=1"]) == 0
    vision = ["--set", "model.vision={enabled: true, small_dim: 16, input_size: 64, layers: 1, heads: 2}",
              "--set", "data.render_size=64"]
    assert main(["train", "diffusion", "--out", str(dif_run), *TINY, *vision, "--set", "train.max_steps=2",
                 "--set", f"vae={vae_run / 'export'}"]) == 0
    model = UniHandModel.from_pretrained(dif_run / "export")
    assert model.cfg.vision.enabled
    # one training step reaches the perceptron and the small backbone through the denoiser
    from torch.utils.data import default_collate

    from unihand.data.windows import SyntheticWindows
    from unihand.train.modules import DiffusionModule

    module = DiffusionModule(model.train(), {"lr": 1e-3, "max_steps": 1, "keep": {"kp2d": 1.0}})
    module.log = module.log_dict = lambda *a, **k: None
    batch = default_collate(SyntheticWindows(2, seed=3, frames=16, render=True, size=64).__getitems__([0, 1]))
    module._vision_mask = lambda b, n: torch.ones(b, n, dtype=torch.bool)
    module._step(batch, "train").backward()
    for part in (model.perceptron, model.backbone):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    frames = np.random.default_rng(0).integers(0, 255, (16, 48, 64, 3), dtype=np.uint8)
    assert np.all(np.isfinite(sample(model, None, frames=frames, seed=0).joints))


def test_min_snr_weights_follow_the_schedule() -> None:
    """``train.min_snr_gamma``: weights min(SNR_t, gamma), normalised to mean 1; 0 keeps the uniform loss."""
    from unihand.diffusion.sampling import train_scheduler
    from unihand.config import model_config
    from unihand.train.modules import min_snr_weights

    ac = train_scheduler(model_config("small").diffusion).alphas_cumprod
    assert min_snr_weights(ac, 0.0) is None
    w = min_snr_weights(ac, 5.0)
    snr = (ac / (1 - ac)).float()
    torch.testing.assert_close(w.mean(), torch.tensor(1.0))
    torch.testing.assert_close(w / w[-1], torch.clamp(snr, max=5.0) / snr[-1])  # proportional to min(SNR, 5)
    assert (w[snr >= 5.0] == w.max()).all() and w[-1] < 0.01 * w.max()  # capped at low noise, small at pure noise
