"""Machinery check for the vision path, not a result: can the hand perceptron and the denoiser
learn, in a CPU-length run, to use vision tokens that do hold each frame's hand pose?

ORACLE dense tokens replace the backbone's: on an 8 x 8 grid, one token per frame, picked by the wrist's
place in the camera image (its pixel position x 128 / max(W, H), counted from the top-left corner; not
exactly the token of the rendered letterboxed frame, whose bars are centred, and no frame is rendered
here), holds the frame's ground-truth pose targets (``window_pose_targets``: 2D joints, wrist-relative
3D joints, log wrist depth; 106 of 160 channels), and every token gets N(0, 0.3) noise.
The model trains from the structured one as the ``vision_small`` config does (no backbone, no cache),
then generates the held-out windows (seed 1000) with oracle tokens for "vision". If vision alone stays
at the level of no condition here, the machinery, not the image model, is what keeps vision unused.

    .venv/bin/python bench/vision_oracle.py --out runs/oracle_vision [--steps 400] [--aux 0] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import default_collate

from unihand.data.synthetic.world import TEST_SEED
from unihand.data.windows import SyntheticWindows
from unihand.eval.evaluate import model_predictor, synthetic_tracks
from unihand.eval.metrics import bucket_masks, global_aligned_errors, pa_joint_errors
from unihand.models.backbones import DenseTokens
from unihand.pipeline import UniHandModel, UniHandPipeline
from unihand.train.backbone import POSE_DIMS, window_pose_targets
from unihand.train.run import build_model, resolve_config
from unihand.train.modules import DiffusionModule

GRID, DIM, SIZE = 8, 160, 128


def oracle_tokens(batch: dict[str, Tensor], gen: torch.Generator) -> Tensor:
    """(B, N, 8, 8, 160): the frame's pose targets at the wrist's token (module doc), noise everywhere."""
    t = window_pose_targets(batch)
    b, n = t.shape[:2]
    size = batch["image_size"]  # (B, 2): W, H
    scale = SIZE / size.max(dim=1).values
    cell = (t[..., :2] * size[:, None] * scale[:, None, None] / (SIZE / GRID)).floor().long().clamp(0, GRID - 1)
    tokens = torch.randn(b, n, GRID, GRID, DIM, generator=gen) * 0.3
    bi, ni = torch.meshgrid(torch.arange(b), torch.arange(n), indexing="ij")
    tokens[bi, ni, cell[..., 1], cell[..., 0], :POSE_DIMS] += t
    return tokens


def train(out: Path, steps: int, aux: float) -> UniHandModel:
    """The vision_small recipe on oracle tokens; a plain loop (no Lightning: no data loader to wrap)."""
    cfg = resolve_config("diffusion", "vision_small", ["backbone=null", "train.feature_cache=null"])
    tc = {**cfg["train"], "max_steps": steps, "perceptron_aux": aux, "vision_lr_mult": 3,
          "keep": {"kp2d": 0.5, "kp3d": 0.35, "mano": 0.3}}
    model = build_model("diffusion", cfg)
    module = DiffusionModule(model, tc)
    module.log = module.log_dict = lambda *a, **k: None
    opt = module.configure_optimizers()
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    data, gen = SyntheticWindows(steps * 32, seed=0, frames=48), torch.Generator().manual_seed(0)
    valid, t0 = torch.ones(32, GRID, GRID, dtype=torch.bool), time.perf_counter()
    model.train()
    model.vae.eval()
    for step in range(steps):
        batch = default_collate(data.__getitems__(list(range(step * 32, step * 32 + 32))))
        batch.update(tokens=oracle_tokens(batch, gen), token_valid=valid)
        loss = module._step(batch, "train")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    model.eval().save_pretrained(out, stage="diffusion")
    return model


def evaluate(model: UniHandModel, num: int) -> None:
    """PA-MPJPE / G-MPJPE (mm) per occlusion bucket, with oracle tokens standing in for the frames."""
    data = SyntheticWindows(num, seed=TEST_SEED, frames=48)
    tracks = synthetic_tracks(num, seed=TEST_SEED, render_size=SIZE)
    gen, predict = torch.Generator().manual_seed(1), model_predictor(UniHandPipeline(model), seed=0)
    valid = torch.ones(GRID, GRID, dtype=torch.bool)
    for conditions in ([], ["vision"], ["2d"], ["vision", "2d"]):
        pa, g, occ = [], [], []
        for i, track in enumerate(tracks):
            tokens = oracle_tokens(default_collate([data[i]]), gen)[0]
            model.backbone.encode = lambda frames, batch_size=64, t=tokens: DenseTokens(t, valid)
            joints = predict(track, conditions).joints
            pa.append(pa_joint_errors(joints, track.joints).mean(-1))
            g.append(global_aligned_errors(joints, track.joints, 2).mean(-1))
            occ.append(track.occlusion)
        pa, g, occ = (np.concatenate(x) for x in (pa, g, occ))
        groups = {"all": np.ones_like(occ, bool), **bucket_masks(occ)}
        print(f"{' + '.join(conditions) or 'none':>12}  " + "  ".join(
            f"{k} {pa[m].mean():.2f}/{g[m].mean():.1f}" for k, m in groups.items() if m.any()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--aux", type=float, default=0.0, help="train.perceptron_aux weight")
    parser.add_argument("--num", type=int, default=64, help="held-out windows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-only", action="store_true", help="score the model already in --out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = UniHandModel.from_pretrained(args.out) if args.eval_only else train(args.out, args.steps, args.aux)
    evaluate(model, args.num)


if __name__ == "__main__":
    main()
