"""``UniHandPipeline``: batched samples, swappable schedulers, the legacy alias, checkpoints from the
local Hugging Face cache, and the ``generate`` command's ``--scheduler`` / ``--num-samples``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from unihand.cli import main as cli_main
from unihand.data.io import Conditions, Motion
from unihand.data.synthetic.world import SynthConfig, SyntheticWorld
from unihand.errors import UserError
from unihand.models.unihand_model import UniHandModel, shipped_checkpoint
from unihand.pipeline import UniHand, UniHandPipeline, make_scheduler


@pytest.fixture(scope="module")
def pipe() -> UniHandPipeline:
    return UniHandPipeline.from_pretrained()


@pytest.fixture(scope="module")
def cond() -> Conditions:
    c = SyntheticWorld(seed=1000, config=SynthConfig(frames=40)).sequence(2).conditions
    return Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask, K=c.K, image_size=c.image_size, fps=c.fps,
                      is_right=c.is_right)


def test_samples_come_from_one_batched_pass_and_differ(pipe: UniHandPipeline) -> None:
    one, = pipe(None, num_frames=32, generator=torch.Generator().manual_seed(3), refine=False)
    three = pipe(None, num_samples=3, num_frames=32, generator=torch.Generator().manual_seed(3), refine=False)
    assert len(three) == 3 and all(m.num_frames == 32 for m in three)
    # the first of a batch is the single sample (the same noise; batched matmuls round differently)
    np.testing.assert_allclose(three[0].joints, one.joints, atol=1e-4)
    spread = [np.linalg.norm(three[i].joints - three[j].joints, axis=-1).mean() for i, j in ((0, 1), (0, 2), (1, 2))]
    assert min(spread) > 0.01  # unconditional samples differ by centimetres


def test_conditioned_samples_agree_with_their_evidence(pipe: UniHandPipeline, cond: Conditions) -> None:
    motions = pipe(cond, num_samples=2, generator=torch.Generator().manual_seed(0))
    for m in motions:
        assert m.is_right == cond.is_right and m.num_frames == cond.num_frames
        assert np.isfinite(m.joints).all() and np.ptp(m.betas, axis=0).max() < 1e-6  # one shape each


def test_scheduler_swapped_through_from_config(pipe: UniHandPipeline, cond: Conditions) -> None:
    swapped = UniHandPipeline(pipe.model, DPMSolverMultistepScheduler.from_config(pipe.scheduler.config))
    named = UniHandPipeline(pipe.model, "dpm")
    kw = dict(num_inference_steps=5, refine=False)
    a, = swapped(cond, generator=torch.Generator().manual_seed(1), **kw)
    b, = named(cond, generator=torch.Generator().manual_seed(1), **kw)
    c, = pipe(cond, generator=torch.Generator().manual_seed(1), **kw)
    np.testing.assert_allclose(a.joints, b.joints, atol=1e-6)
    assert np.abs(a.joints - c.joints).max() > 1e-4  # DPM-Solver is not DDIM
    with pytest.raises(UserError, match="scheduler='lms'"):
        make_scheduler(pipe.model, "lms")


def test_legacy_alias_runs_the_pipeline(pipe: UniHandPipeline, cond: Conditions) -> None:
    legacy = UniHand.from_pretrained()
    assert isinstance(legacy, UniHandModel)
    old = legacy.generate(cond, seed=4, refine=False)
    new, = UniHandPipeline(legacy)(cond, generator=torch.Generator().manual_seed(4), refine=False)
    np.testing.assert_array_equal(old.joints, new.joints)


def test_checkpoint_from_the_local_hugging_face_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``from_pretrained("owner/name")`` finds a model already in the cache, offline; a missing one is
    a one-line error that says nothing is downloaded."""
    snap = tmp_path / "hub" / "models--unihand--small" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    for f in ("config.json", "model.safetensors"):
        shutil.copy(shipped_checkpoint() / f, snap / f)
    (tmp_path / "hub" / "models--unihand--small" / "refs").mkdir()
    (tmp_path / "hub" / "models--unihand--small" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    model = UniHandModel.from_pretrained("unihand/small")
    ref = UniHandModel.from_pretrained()
    for (k, a), (_, b) in zip(model.state_dict().items(), ref.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    with pytest.raises(UserError, match="nothing is downloaded"):
        UniHandModel.from_pretrained("unihand/missing")


def test_generate_cli_scheduler_and_samples(tmp_path: Path, cond: Conditions, capsys: pytest.CaptureFixture) -> None:
    cond.save(tmp_path / "c.npz")
    out = tmp_path / "m.npz"
    assert cli_main(["generate", str(tmp_path / "c.npz"), "-o", str(out), "--scheduler", "dpm", "--steps", "5",
                     "--num-samples", "2", "--refine", "off"]) == 0
    a, b = Motion.load(tmp_path / "m_0.npz"), Motion.load(tmp_path / "m_1.npz")
    assert a.num_frames == b.num_frames == cond.num_frames and not out.exists()
    assert np.abs(a.joints - b.joints).max() > 1e-4
    assert cli_main(["generate", "-o", str(out), "--num-samples", "0"]) == 2
    assert "--num-samples 0" in capsys.readouterr().err
