"""Vision benchmark on held-out rendered synthetic windows (seed 1000, disjoint from training).

Each checkpoint generates every test window from each condition set (vision, 2D, vision + 2D,
vision + 3D; ``none`` = no condition at all, the same model's unconditional samples, what vision
alone must beat); frames are rendered at the checkpoint's backbone input size, as in training. Per
occlusion bucket (GT occlusion ratio of the frame, paper eq. 17): PA-MPJPE and AUC_J (per frame,
after Procrustes), G-MPJPE (per frame, after one similarity fitted on the window's first two frames,
as the sequence metric G-MPJPE). Units: mm.

    .venv/bin/python bench/eval_vision.py --checkpoint NAME=DIR [--checkpoint NAME=DIR ...] \
        [--conditions none vision 2d vision,2d vision,3d] [--num 64] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from unihand.data.synthetic.world import TEST_SEED
from unihand.eval.evaluate import model_predictor, synthetic_tracks
from unihand.eval.metrics import BUCKETS, auc_per_frame, bucket_masks, global_aligned_errors, pa_joint_errors
from unihand.pipeline import UniHandPipeline


def score(tracks: list, predict: Any, conditions: list[str]) -> dict[str, dict[str, float]]:
    """Frame-pooled metrics per occlusion bucket and overall."""
    pa, auc, g, occ = [], [], [], []
    for track in tracks:
        pred = predict(track, conditions).joints
        errors = pa_joint_errors(pred, track.joints)
        pa.append(errors.mean(-1))
        auc.append(auc_per_frame(errors))
        g.append(global_aligned_errors(pred, track.joints, 2).mean(-1))
        occ.append(track.occlusion)
    pa, auc, g, occ = (np.concatenate(x) for x in (pa, auc, g, occ))
    groups = {"all": np.ones_like(occ, bool), **bucket_masks(occ)}
    return {name: {"frames": int(m.sum()), "pa_mpjpe": float(pa[m].mean()), "auc_j": float(auc[m].mean()),
                   "g_mpjpe": float(g[m].mean())} for name, m in groups.items() if m.any()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--conditions", nargs="+", default=["vision", "2d", "vision,2d", "vision,3d"])
    parser.add_argument("--num", type=int, default=64)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {}
    tracks_by_size: dict[int, list] = {}
    for spec in args.checkpoint:
        name, path = spec.split("=", 1)
        pipe = UniHandPipeline.from_pretrained(path)
        model = pipe.model
        size = model.cfg.vision.input_size
        if size not in tracks_by_size:
            tracks_by_size[size] = synthetic_tracks(args.num, seed=TEST_SEED, render_size=size)
        tracks = tracks_by_size[size]
        predict = model_predictor(pipe, steps=args.steps, seed=0)
        for text in args.conditions:
            conditions = [] if text == "none" else text.split(",")
            if "vision" in conditions and not model.cfg.vision.enabled:
                continue
            t0 = time.perf_counter()
            results[f"{name}|{text}"] = score(tracks, predict, conditions)
            print(f"{name:>12} {text:>10}  " + "  ".join(
                f"{b} {v['pa_mpjpe']:.2f}/{v['auc_j']:.3f}/{v['g_mpjpe']:.1f}" for b, v in results[f"{name}|{text}"].items())
                + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    print("\n| checkpoint | conditions | " + " | ".join(["all", *BUCKETS]) + " |")
    print("|---|---|" + "---|" * (1 + len(BUCKETS)))
    for key, groups in results.items():
        name, text = key.split("|")
        cells = [f"{groups[b]['pa_mpjpe']:.2f} / {groups[b]['auc_j']:.3f} / {groups[b]['g_mpjpe']:.1f}"
                 if b in groups else "-" for b in ["all", *BUCKETS]]
        print(f"| {name} | {text.replace(',', ' + ')} | " + " | ".join(cells) + " |")
    counts = next(iter(results.values()))
    print("\nframes per bucket: " + ", ".join(f"{b} {v['frames']}" for b, v in counts.items()))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
