"""Distributed training: 2-process CPU DDP (gloo) through the real ``unihand train`` entry point.

One subprocess runs a small script (written below) that records, on every rank, the windows the
rank reads and the checkpoints it writes, then calls ``unihand.cli.main`` three times: VAE for 2 steps,
the same ``--out`` again for 4 steps (resume), diffusion for 2 steps. Lightning's ``ddp`` launcher
re-runs the script for rank 1, so both ranks run the same sequence (the second and third runs reuse
the process group, as ``trainer.fit`` then ``trainer.test`` in one script does). Meanwhile this process
runs the single-process reference of the same global batch.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils.data import WeightedRandomSampler, default_collate

from unihand.cli import main
from unihand.train.checkpoint_io import load_tree
from unihand.train.data import ShardSampler
from unihand.train.masking import BatchRandom, mask_conditions

REPO = Path(__file__).resolve().parents[1]
B, WORLD = 2, 2  # per-rank batch, ranks
# tests/test_training.py's TINY with dropout off: dropout draws from each process's global RNG, which
# cannot be split by window, so with dropout the two runs would differ. Every other random draw
# (masks, anchors, g, timesteps, noise) is a function of (seed, step, row of the global batch) whatever
# the number of ranks (masking.BatchRandom), and ShardSampler gives rank r the windows r, r + 2, ...:
# the 2 x 2 windows of a DDP step are the 4 windows of the single-process step, with the same draws.
TINY = [
    "--set", "model.vae={d_model: 32, layers: 1, heads: 2, ffn: 64, dropout: 0.0}",
    "--set", "model.diffusion={d_model: 32, layers: 1, heads: 2, ffn: 64, dropout: 0.0}",
    "--set", "data.frames=16", "--set", "data.epoch_size=64", "--set", "data.val_size=4",
    "--set", "train={num_workers: 0, log_every: 1, ckpt_every: 2, val_every: 100, lr: 0.001, warmup: 2}",
    "--set", "train.accelerator=cpu",
]
DDP = ["--set", f"train.batch_size={B}", "--set", f"train.devices={WORLD}", "--set", "train.strategy=ddp",
       "--set", "train.threads=1"]
ONE = ["--set", f"train.batch_size={B * WORLD}"]

RUNNER = textwrap.dedent('''
    """Record what each rank reads and saves, then run `unihand train` once per argv list of RUNS."""
    import json, os, sys
    import torch
    from unihand.cli import main
    from unihand.data.windows import SyntheticWindows
    from unihand.train.checkpoint_io import SafetensorsCheckpointIO

    runs = json.loads(open(sys.argv[1]).read())
    current = {"run": 0}

    def record(**entry):
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        with open(os.path.join(runs["records"], f"rank{rank}.jsonl"), "a") as f:
            f.write(json.dumps({"run": current["run"], "rank": rank, **entry}) + "\\n")

    get_items, save = SyntheticWindows.__getitems__, SafetensorsCheckpointIO.save_checkpoint

    def recorded_items(self, indices):
        record(seed=self.world.seed, windows=[int(i) for i in indices])
        return get_items(self, indices)

    def recorded_save(self, checkpoint, path, storage_options=None):
        record(save=os.path.basename(str(path)), step=int(checkpoint["global_step"]))
        return save(self, checkpoint, path, storage_options)

    SyntheticWindows.__getitems__, SafetensorsCheckpointIO.save_checkpoint = recorded_items, recorded_save
    for i, argv in enumerate(runs["argv"]):
        current["run"] = i
        if torch.distributed.is_initialized():
            torch.distributed.barrier()  # rank 0 has written the previous run's export
        if main(argv) != 0:
            sys.exit(1)
''')


def losses(run: Path, version: int = 0) -> dict[int, float]:
    with open(run / "logs" / f"version_{version}" / "metrics.csv") as fh:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(fh) if r.get("train/loss")}


def test_two_process_ddp_shards_checkpoints_resumes_and_matches_one_process(tmp_path: Path) -> None:
    vae_ddp, dif_ddp, vae_one, dif_one = (tmp_path / n for n in ("vae_ddp", "dif_ddp", "vae_one", "dif_one"))
    records = tmp_path / "records"
    records.mkdir()
    runs = {"records": str(records), "argv": [
        ["train", "vae", "--out", str(vae_ddp), *TINY, *DDP, "--set", "train.max_steps=2"],
        ["train", "vae", "--out", str(vae_ddp), *TINY, *DDP, "--set", "train.max_steps=4"],
        ["train", "diffusion", "--out", str(dif_ddp), *TINY, *DDP, "--set", "train.max_steps=2",
         "--set", f"vae={vae_ddp / 'export'}"],
    ]}
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    (tmp_path / "runner.py").write_text(RUNNER)
    launched = {"LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                "MASTER_PORT", "TORCHELASTIC_RUN_ID"}  # a launcher's variables (and SLURM's) would redirect Lightning
    env = {k: v for k, v in os.environ.items() if k not in launched and not k.startswith("SLURM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "runs.json")], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert main(["train", "vae", "--out", str(vae_one), *TINY, *ONE, "--set", "train.max_steps=2"]) == 0
        output, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, output[-4000:]

    entries = [json.loads(line) for f in sorted(records.glob("rank*.jsonl")) for line in f.read_text().splitlines()]
    # (a) every rank reads its own shard: rank r's batch k holds windows k*W*B + i*W + r, no window twice
    for run, steps in ((0, 2), (2, 2)):
        read = {r: [e["windows"] for e in entries if e["run"] == run and e["rank"] == r and e.get("seed") == 0]
                for r in range(WORLD)}
        for r in range(WORLD):
            assert read[r] == [[k * WORLD * B + i * WORLD + r for i in range(B)] for k in range(steps)], read
        flat = [w for r in range(WORLD) for batch in read[r] for w in batch]
        assert sorted(flat) == list(range(steps * WORLD * B))
        val = [{w for e in entries if (e["run"], e["rank"], e.get("seed")) == (run, r, 999) for w in e["windows"]}
               for r in range(WORLD)]
        assert val[0] and val[1] and not val[0] & val[1]

    # (b) rank 0 alone writes the checkpoint, once per ckpt_every steps; the second run resumes from it
    saves = [(e["run"], e["rank"], e["save"], e["step"]) for e in entries if "save" in e]
    assert saves == [(0, 0, "last.ckpt", 2), (1, 0, "last.ckpt", 4), (2, 0, "last.ckpt", 2)], saves
    assert load_tree(vae_ddp / "checkpoints" / "last.ckpt")["global_step"] == 4
    assert sorted(losses(vae_ddp, 0)) == [0, 1] and sorted(losses(vae_ddp, 1)) == [2, 3]  # global_step continued
    assert [p.name for p in (vae_ddp / "checkpoints").iterdir()] == ["last.ckpt"]

    # (c) the logged loss (mean over both ranks) is the single-process loss of the same 4 windows, step by step
    assert main(["train", "diffusion", "--out", str(dif_one), *TINY, *ONE, "--set", "train.max_steps=2",
                 "--set", f"vae={vae_ddp / 'export'}"]) == 0
    for ddp, one in ((vae_ddp, vae_one), (dif_ddp, dif_one)):
        two, single = losses(ddp, 0), losses(one, 0)
        assert sorted(two) == sorted(single) == [0, 1]
        for step in two:
            assert two[step] == pytest.approx(single[step], rel=1e-5), (ddp.name, step, two, single)


def test_shards_are_disjoint_and_cover_what_one_process_reads() -> None:
    for world in (1, 2, 3):
        shards = [list(ShardSampler(10, shard=(r, world))) for r in range(world)]
        assert {len(s) for s in shards} == {10 // world}
        assert sorted(sum(shards, [])) == list(range(10 - 10 % world))  # cut to a multiple of world, never padded
        assert all(s == list(range(r, 10 - 10 % world, world)) for r, s in enumerate(shards))
    # a mixture's weighted draws: the ranks split one sequence (its generator is alike on every rank)
    draws = [list(ShardSampler(0, WeightedRandomSampler(torch.ones(5), 12, generator=torch.Generator().manual_seed(3)),
                               shard=(r, 2))) for r in range(2)]
    whole = list(WeightedRandomSampler(torch.ones(5), 12, generator=torch.Generator().manual_seed(3)))
    assert draws == [whole[0::2], whole[1::2]]


def test_each_rank_draws_its_rows_of_the_global_batch() -> None:
    batch = {"mano": torch.zeros(3 * 4, 16, 61)}
    full = mask_conditions(batch, BatchRandom(torch.Generator().manual_seed(5)))
    noise = BatchRandom(torch.Generator().manual_seed(5)).normal_rows(12, 17, 8)
    for r in range(3):
        part = mask_conditions({"mano": torch.zeros(4, 16, 61)}, BatchRandom(torch.Generator().manual_seed(5), r, 3))
        for key in ("kp2d_mask", "kp3d_mask", "mano_mask"):
            assert torch.equal(part[key], full[key][r::3])
        mine = BatchRandom(torch.Generator().manual_seed(5), r, 3).normal_rows(4, 17, 8)
        torch.testing.assert_close(mine, noise[r::3])
    assert not torch.equal(full["kp2d_mask"][0::3], full["kp2d_mask"][1::3])  # ranks do not share draws


def test_every_trainable_parameter_gets_a_gradient(tmp_path: Path) -> None:
    """What DDP without find_unused_parameters needs, in each stage (vision: even when no frame has vision)."""
    from unihand.data.windows import SyntheticWindows
    from unihand.train.run import build_model, resolve_config
    from unihand.train.modules import DiffusionModule, VAEModule

    def unused(module, batch) -> list[str]:
        module._log = lambda *a, **k: None
        module._step(batch, "train").backward()
        return [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]

    sets = [t for t in TINY if t != "--set"]
    batch = default_collate(SyntheticWindows(2, seed=3, frames=16, render=True, size=64).__getitems__([0, 1]))
    cfg = resolve_config("vae", None, sets)
    vae = build_model("vae", cfg)
    assert unused(VAEModule(vae, cfg["train"]), batch) == []
    vae.save_pretrained(tmp_path / "vae", stage="vae")
    vision = "model.vision={enabled: true, small_dim: 16, input_size: 64, layers: 1, heads: 2}"
    for extra in ([], [vision, "train.perceptron_aux=1"]):
        cfg = resolve_config("diffusion", None, [*sets, f"vae={tmp_path / 'vae'}", *extra])
        module = DiffusionModule(build_model("diffusion", cfg), cfg["train"])
        module._vision_mask = lambda b, n: torch.zeros(b, n, dtype=torch.bool)
        assert unused(module, batch) == [], extra
