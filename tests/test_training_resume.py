"""A training run killed (SIGKILL) after a checkpoint resumes where it stopped: same data, same weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

from unihand.files import temp_path
from unihand.train.checkpoint_io import load_tree

ARGS = [
    "--set", "model.vae={d_model: 32, layers: 1, heads: 2, ffn: 64}",
    "--set", "data.frames=16", "--set", "data.epoch_size=64", "--set", "data.val_size=4",
    "--set", "train={batch_size: 4, num_workers: 0, log_every: 1, ckpt_every: 3, val_every: 100, lr: 0.001, "
             "warmup: 2, max_steps: 6, threads: 1}",
]

# Runs the CLI; with KILL_AT=k the process SIGKILLs itself when training step k starts (after the
# step-3 checkpoint), leaving a half-written checkpoint temp file behind as a kill mid-write would.
RUNNER = """
import os, signal, sys
from pathlib import Path
kill_at = int(os.environ.get("KILL_AT", "0"))
if kill_at:
    from unihand.train import modules
    from unihand.files import temp_path
    step = modules.VAEModule.training_step
    def killing_step(self, batch, batch_idx):
        if self.global_step == kill_at:
            temp_path(Path(sys.argv[sys.argv.index("--out") + 1]) / "checkpoints" / "last.ckpt")
            os.kill(os.getpid(), signal.SIGKILL)
        return step(self, batch, batch_idx)
    modules.VAEModule.training_step = killing_step
from unihand.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _train(out: Path, kill_at: int = 0, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "KILL_AT": str(kill_at)}
    return subprocess.run([sys.executable, "-c", RUNNER, "train", "vae", "--out", str(out), *ARGS, *extra],
                          env=env, capture_output=True, text=True, timeout=600)


def test_killed_run_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _train(whole).returncode == 0
    proc = _train(killed, kill_at=4)
    assert proc.returncode == -signal.SIGKILL
    ckpts = killed / "checkpoints"
    assert load_tree(ckpts / "last.ckpt")["global_step"] == 3
    assert load_tree(ckpts / "last.ckpt")["data_stream"]["next_window"] == 12  # 3 steps x batch 4
    assert [p for p in ckpts.iterdir() if p.name.startswith(".last.ckpt")]  # the orphaned temp file
    resumed = _train(killed)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "left by an interrupted run" in resumed.stderr
    assert not [p for p in ckpts.iterdir() if p.name.startswith(".")]  # cleaned on the next run
    a = load_tree(whole / "checkpoints" / "last.ckpt")
    b = load_tree(ckpts / "last.ckpt")
    assert a["global_step"] == b["global_step"] == 6
    assert a["data_stream"]["next_window"] == b["data_stream"]["next_window"] == 24
    for name, w in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], w, rtol=1e-5, atol=1e-6, msg=name)


def test_temp_files_of_live_processes_are_kept(tmp_path: Path) -> None:
    from unihand.files import clean_stale_temps

    mine = Path(temp_path(tmp_path / "x.ckpt"))
    assert clean_stale_temps(tmp_path) == [] and mine.exists()


def test_moving_average_resumes_and_is_exported(tmp_path: Path) -> None:
    """``train.ema``: the average survives a kill (the resumed run exports the uninterrupted run's
    averaged weights), and the export holds the average, not the last step's weights."""
    from safetensors.torch import load_file

    ema = ("--set", "train.ema=0.5")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _train(whole, extra=ema).returncode == 0
    assert _train(killed, kill_at=4, extra=ema).returncode == -signal.SIGKILL
    resumed = _train(killed, extra=ema)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = (load_file(run / "export" / "model.safetensors") for run in (whole, killed))
    for name, w in a.items():
        torch.testing.assert_close(b[name], w, rtol=1e-5, atol=1e-6, msg=name)
    tree = load_tree(whole / "checkpoints" / "last.ckpt")  # the average, and the raw weights beside it
    raw = {k.removeprefix("model."): v for k, v in tree["current_model_state"].items()}
    avg = {k.removeprefix("model."): v for k, v in tree["state_dict"].items()}
    vae = [k for k in a if k.startswith("vae.") and k in raw]
    assert vae and all(torch.equal(avg[k], a[k]) for k in vae)  # the export is the average ...
    assert any(not torch.allclose(raw[k], a[k]) for k in vae)  # ... not the last step's weights
