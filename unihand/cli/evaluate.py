"""``unihand evaluate``: run a checkpoint on a benchmark's sequences and write the paper's tables
(the protocol: :mod:`unihand.eval.evaluate`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from unihand.cli.flags import DATASET_NAMES
from unihand.errors import UserError

if TYPE_CHECKING:
    from unihand.data.datasets.common import Track


def _notes(dataset: str, conditions: Sequence[str]) -> list[str]:
    notes = []
    if "2d" in conditions and dataset != "synthetic":
        notes.append("2D keypoint conditions are ground-truth 2D joints (oracle), not a detector's (the paper uses HaMeR's ViT).")
    if dataset == "hot3d":
        notes.append("HOT3D: scored in the canonical frame, equal to world-frame scores (one rigid transform per sequence).")
    return notes


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="run a checkpoint on DexYCB / HOT3D / HO3D / synthetic data and write the paper's tables",
        description=(
            "Generate every test sequence of a benchmark from the chosen conditions, score it (DexYCB: "
            "PA-MPJPE and AUC_J by occlusion level, Table 1; HO3D: with F@5/F@15, Table 2; HOT3D: PA-MPJPE, "
            "G-MPJPE, GA-MPJPE, AccEr, Table 3; every run also fills Table 4) and write runs/*.json, tables.md "
            "and tables.json in --out, the paper's numbers beside ours. Runs accumulate in --out. HO3D "
            "evaluation: also pred.json / pred.zip for the CodaLab server."
        ),
    )
    parser.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    parser.add_argument("--root", type=Path, help="dataset folder (not used for synthetic)")
    parser.add_argument("--split", help="dexycb/hot3d: test (default), train, val/all; ho3d: evaluation (default) or train")
    parser.add_argument("--checkpoint", type=Path, help="UniHand checkpoint folder (default: the shipped small model)")
    parser.add_argument("--conditions", default="vision,2d", help="comma-separated subset of vision,2d,3d,mano (default vision,2d)")
    parser.add_argument("--label", help="row label in the tables (default: the paper's name of the condition set)")
    parser.add_argument("--mano-dir", type=Path, help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl (needed by DexYCB and HOT3D)")
    parser.add_argument("--out", type=Path, default=Path("outputs/eval"), help="output folder (default outputs/eval)")
    parser.add_argument("--steps", type=int, help="DDIM steps (default: the checkpoint's)")
    parser.add_argument("--cfg-scale", type=float, help="classifier-free guidance scale (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refine", choices=("on", "off"), default="on",
                        help="refine each estimate against its conditions (off: the paper's pure sampling)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N sequences (a quick check)")
    parser.add_argument("--num-sequences", type=int, default=64, help="synthetic: number of generated test windows")
    parser.add_argument("--cache-dir", type=Path, help="where parsed dataset files are cached (default ~/.cache/unihand)")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def _load(args: argparse.Namespace, split: str, render_size: int | None = None) -> list[Track]:
    from unihand.data.datasets import load_tracks
    from unihand.eval.evaluate import synthetic_tracks

    if args.dataset == "synthetic":
        return synthetic_tracks(args.num_sequences, seed=1000 + args.seed, render_size=render_size)
    kw: dict[str, Any] = {"mano_dir": args.mano_dir}
    if args.dataset != "ho3d":
        kw["cache_dir"] = args.cache_dir
    return load_tracks(args.dataset, args.root, split, **kw)


def run(args: argparse.Namespace) -> int:
    from unihand.cli.flags import check_model_flags, check_positive, check_sampling_flags
    from unihand.data.datasets.ho3d import frame_list
    from unihand.eval import tables
    from unihand.eval.evaluate import (DEFAULT_SPLIT, evaluate_tracks, model_predictor, parse_conditions,
                                       write_ho3d_submission)
    from unihand.pipeline import UniHandPipeline
    from unihand.progress import Progress

    check_positive(args, "limit", "num_sequences")
    check_sampling_flags(args)
    conditions = parse_conditions(args.conditions)
    split = args.split or DEFAULT_SPLIT[args.dataset]
    pipe = UniHandPipeline.from_pretrained(args.checkpoint, device=args.device,
                                           mano_dir=None if args.mano_dir is None else str(args.mano_dir))
    model = pipe.model
    check_model_flags(model, args)
    if "vision" in conditions and not model.cfg.vision.enabled:
        raise UserError(f"checkpoint {args.checkpoint or 'shipped'} has no vision path (trained without video "
                        "frames); choose conditions without 'vision', e.g. --conditions 2d")
    # synthetic frames are rendered at the backbone's input size, as in training
    tracks = _load(args, split, model.cfg.vision.input_size if "vision" in conditions else None)
    if args.limit is not None:
        tracks = tracks[: args.limit]
    print(f"evaluate: {args.dataset}/{split}: {len(tracks)} sequence(s), conditions {','.join(conditions)}",
          file=sys.stderr)
    bar = Progress(len(tracks), "evaluate", "sequence")
    model_predict = model_predictor(pipe, steps=args.steps, cfg_scale=args.cfg_scale, seed=args.seed,
                                    refine=args.refine == "on")

    def predict(track: Track, conds: Sequence[str]) -> Any:
        out = model_predict(track, conds)
        bar.update()
        return out

    if args.refine == "off" and not args.label:  # its own row beside the refined run of the same conditions
        args.label = tables.run_label(conditions) + " (pure sampling)"
    with_gt = any(t.valid.any() for t in tracks)
    if with_gt:
        groups, per_sequence, predictions = evaluate_tracks(tracks, predict, conditions,
                                                            with_vertices=args.dataset == "ho3d")
    else:
        groups, per_sequence, predictions = {}, [], [predict(t, conditions) for t in tracks]
    bar.close()
    notes = _notes(args.dataset, conditions)
    if args.dataset == "ho3d" and split == "evaluation":
        expected = len(frame_list(args.root.expanduser(), "evaluation"))
        notes.append(write_ho3d_submission(args.out, tables.run_label(conditions, args.label), predictions, expected))
    record = tables.run_record(
        args.dataset, conditions, groups, label=args.label, split=split, checkpoint=str(args.checkpoint or "shipped"),
        num_sequences=len(tracks), notes=notes + [f"refinement {args.refine}"], sequences=per_sequence,
    )
    tables.save_run(args.out, record)
    written = tables.write_tables(args.out)
    for line in notes:
        print(f"evaluate: note: {line}", file=sys.stderr)
    if groups:
        summary = ", ".join(f"{k} {v:.4g}" for k, v in groups["all"].items() if isinstance(v, float))
        print(f"evaluate: {args.dataset} all: {summary}")
    print("evaluate: wrote " + ", ".join(str(p) for p in written))
    return 0
