"""``UniHandPipeline``: the output object, batched samples, swappable schedulers, save/load, devices, the
deprecated alias, checkpoints from the local Hugging Face cache, the top-level imports, and the
``generate`` command's ``--scheduler`` / ``--num-samples``."""

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
from unihand.pipeline import UniHand, UniHandPipeline, UniHandPipelineOutput, make_scheduler
from unihand.refine.objective import RefineConfig


@pytest.fixture(scope="module")
def pipe() -> UniHandPipeline:
    return UniHandPipeline.from_pretrained()


@pytest.fixture(scope="module")
def cond() -> Conditions:
    c = SyntheticWorld(seed=1000, config=SynthConfig(frames=40)).sequence(2).conditions
    return Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask, K=c.K, image_size=c.image_size, fps=c.fps,
                      is_right=c.is_right)


def test_the_output_object_is_indexed_like_diffusers_outputs(pipe: UniHandPipeline) -> None:
    out = pipe(None, num_frames=16, generator=torch.Generator().manual_seed(3), refine=False)
    assert isinstance(out, UniHandPipelineOutput)
    assert out[0] is out["motions"] is out.motions and out.to_tuple() == (out.motions,)
    assert len(out.motions) == 1 and isinstance(out.motions[0], Motion)
    motions, = pipe(None, num_frames=16, generator=torch.Generator().manual_seed(3), refine=False, return_dict=False)
    np.testing.assert_array_equal(motions[0].joints, out.motions[0].joints)


def test_samples_come_from_one_batched_pass_and_differ(pipe: UniHandPipeline) -> None:
    one = pipe(None, num_frames=32, generator=torch.Generator().manual_seed(3), refine=False).motions[0]
    three = pipe(None, num_samples=3, num_frames=32, generator=torch.Generator().manual_seed(3), refine=False).motions
    assert len(three) == 3 and all(m.num_frames == 32 for m in three)
    # the first of a batch is the single sample (the same noise; batched matmuls round differently)
    np.testing.assert_allclose(three[0].joints, one.joints, atol=1e-4)
    spread = [np.linalg.norm(three[i].joints - three[j].joints, axis=-1).mean() for i, j in ((0, 1), (0, 2), (1, 2))]
    assert min(spread) > 0.01  # unconditional samples differ by centimetres


def test_conditioned_samples_agree_with_their_evidence(pipe: UniHandPipeline, cond: Conditions) -> None:
    motions = pipe(cond, num_samples=2, generator=torch.Generator().manual_seed(0)).motions
    for m in motions:
        assert m.is_right == cond.is_right and m.num_frames == cond.num_frames
        assert np.isfinite(m.joints).all() and np.ptp(m.betas, axis=0).max() < 1e-6  # one shape each


def test_scheduler_swapped_through_from_config(pipe: UniHandPipeline, cond: Conditions) -> None:
    swapped = UniHandPipeline(pipe.model, DPMSolverMultistepScheduler.from_config(pipe.scheduler.config))
    named = UniHandPipeline(pipe.model, "dpm")
    kw = dict(num_inference_steps=5, refine=False)
    a = swapped(cond, generator=torch.Generator().manual_seed(1), **kw).motions[0]
    b = named(cond, generator=torch.Generator().manual_seed(1), **kw).motions[0]
    c = pipe(cond, generator=torch.Generator().manual_seed(1), **kw).motions[0]
    np.testing.assert_allclose(a.joints, b.joints, atol=1e-6)
    assert np.abs(a.joints - c.joints).max() > 1e-4  # DPM-Solver is not DDIM
    with pytest.raises(UserError, match="scheduler='lms'"):
        make_scheduler(pipe.model, "lms")


def test_save_pretrained_round_trip(pipe: UniHandPipeline, cond: Conditions, tmp_path: Path) -> None:
    """The model, the scheduler and the refinement settings come back; the folder is also a model checkpoint."""
    mine = UniHandPipeline.from_pretrained(scheduler="dpm", refine_config=RefineConfig(iterations=3))
    mine.save_pretrained(tmp_path / "p")
    assert (tmp_path / "p" / "scheduler" / "scheduler_config.json").is_file()
    back = UniHandPipeline.from_pretrained(tmp_path / "p")
    assert type(back.scheduler) is DPMSolverMultistepScheduler and back.refiner.config == RefineConfig(iterations=3)
    for (k, a), (_, b) in zip(mine.model.state_dict().items(), back.model.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    kw = dict(num_inference_steps=5)
    a = mine(cond, generator=torch.Generator().manual_seed(2), **kw).motions[0]
    b = back(cond, generator=torch.Generator().manual_seed(2), **kw).motions[0]
    np.testing.assert_array_equal(a.joints, b.joints)
    assert UniHandModel.from_pretrained(tmp_path / "p").cfg == pipe.model.cfg
    # the arguments win over what was saved
    assert type(UniHandPipeline.from_pretrained(tmp_path / "p", scheduler="ddim").scheduler).__name__ == "DDIMScheduler"
    bad = tmp_path / "p" / "scheduler" / "scheduler_config.json"
    bad.write_text(bad.read_text().replace("DPMSolverMultistepScheduler", "PNDMScheduler"))
    with pytest.raises(UserError, match="PNDMScheduler.*is not one UniHand samples with"):
        UniHandPipeline.from_pretrained(tmp_path / "p")


def test_to_moves_the_networks_and_checks_the_device(pipe: UniHandPipeline) -> None:
    assert pipe.to("cpu") is pipe and pipe.device == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device"):
            pipe.to("cuda")


def test_the_refiner_is_built_once(pipe: UniHandPipeline, cond: Conditions, monkeypatch: pytest.MonkeyPatch) -> None:
    import unihand.pipeline.pipeline as module

    built, real = [], module.Refiner
    monkeypatch.setattr(module, "Refiner", lambda *a, **k: built.append(a) or real(*a, **k))
    p = UniHandPipeline(pipe.model)
    for seed in range(2):
        p(cond, num_inference_steps=2, generator=torch.Generator().manual_seed(seed))
    assert len(built) == 1


def test_the_deprecated_alias_warns_and_runs_the_pipeline(pipe: UniHandPipeline, cond: Conditions) -> None:
    with pytest.warns(FutureWarning, match="UniHand is deprecated"):
        legacy = UniHand.from_pretrained()
    assert isinstance(legacy, UniHandModel)
    old = legacy.generate(cond, seed=4, refine=False)
    new = UniHandPipeline(legacy)(cond, generator=torch.Generator().manual_seed(4), refine=False).motions[0]
    np.testing.assert_array_equal(old.joints, new.joints)
    assert len(legacy._pipes) == 1 and legacy.generate(cond, seed=4, refine=False) is not None
    assert len(legacy._pipes) == 1  # one pipeline (one refiner) for every call


def test_top_level_imports_are_lazy() -> None:
    """``import unihand`` imports no torch; the public names come on first use."""
    import subprocess
    import sys

    code = ("import sys, unihand; assert 'torch' not in sys.modules, 'torch at import'; "
            "from unihand import UniHandPipeline, Conditions, Motion; "
            "import unihand.pipeline.pipeline as p, unihand.data.io as io; "
            "assert UniHandPipeline is p.UniHandPipeline and Conditions is io.Conditions and Motion is io.Motion")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


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
