"""``unihand metrics PRED.npz GT.npz [--json]``: compare a predicted motion with the ground truth."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from unihand.errors import UserError

DEFAULT_FPS = 30.0
#: JSON key -> (table label, unit).
LABELS = {
    "mpjpe": ("MPJPE", "mm"),
    "pa_mpjpe": ("PA-MPJPE", "mm"),
    "auc_j": ("AUC_J", ""),
    "g_mpjpe": ("G-MPJPE", "mm"),
    "ga_mpjpe": ("GA-MPJPE", "mm"),
    "acc_err": ("AccEr", "m/s^2"),
    "f5": ("F@5", ""),
    "f15": ("F@15", ""),
}
BUCKET_COLUMNS = ("mpjpe", "pa_mpjpe", "auc_j", "f5", "f15")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "metrics",
        help="MPJPE, PA-MPJPE, AUC_J, G/GA-MPJPE, AccEr (and F@5/F@15 with meshes) of a predicted motion",
        description=(
            "Compare two motion files (.npz with joints (N,21,3) in metres; F@5/F@15 when both hold "
            "vertices (N,778,3)). fps comes from GT (30 if absent). If GT holds occlusion (N,) in [0,1], "
            "the per-frame metrics are also reported per occlusion bucket."
        ),
    )
    parser.add_argument("pred", type=Path, help="predicted motion .npz")
    parser.add_argument("gt", type=Path, help="ground-truth motion .npz")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a table")
    parser.set_defaults(func=run)


def _load(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The raw arrays of a motion file and its validated float64 joints (and vertices when present)."""
    from unihand.data.io import check_array, load_npz
    from unihand.hand.joints import MANO_SLICES

    raw = load_npz(path)
    if "joints" not in raw:
        if all(k in raw for k in MANO_SLICES):
            raise UserError(
                f"{path}: no field 'joints' (N,21,3), only MANO parameters; run `unihand fk` on it first to add joints"
            )
        raise UserError(f"{path}: missing field 'joints', expected shape (N,21,3) in metres")
    out = {"joints": check_array(path, "joints", raw["joints"], (None, 21, 3)).astype(np.float64)}
    n = out["joints"].shape[0]
    if n == 0:
        raise UserError(f"{path}: field 'joints' has 0 frames, expected (N,21,3) with N >= 1")
    if "vertices" in raw:
        out["vertices"] = check_array(path, "vertices", raw["vertices"], (n, 778, 3)).astype(np.float64)
    return raw, out


def _gt_extras(path: Path, raw: dict[str, np.ndarray], n: int) -> tuple[float | None, np.ndarray | None]:
    """fps (None when absent) and the optional occlusion (N,) of the GT file, validated."""
    from unihand.data.io import check_array

    fps = None
    if "fps" in raw:
        value = np.asarray(raw["fps"])
        ok = value.size == 1 and np.issubdtype(value.dtype, np.number) and np.isfinite(value).all() and value.item() > 0
        if not ok:
            raise UserError(f"{path}: field 'fps' is {value.tolist()}, expected one positive number")
        fps = float(value.item())
    occlusion = None
    if "occlusion" in raw:
        occlusion = check_array(path, "occlusion", raw["occlusion"], (n,)).astype(np.float64)
        if np.any((occlusion < 0) | (occlusion > 1)):
            raise UserError(f"{path}: field 'occlusion' has values outside [0, 1], expected ({n},) occluded fractions")
    return fps, occlusion


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _table(result: dict[str, Any], n: int, fps: float) -> str:
    lines = [f"{n} frames at {fps:g} fps", f"{'metric':<10} {'value':>10}  unit"]
    lines += [f"{LABELS[k][0]:<10} {_fmt(result[k]):>10}  {LABELS[k][1]}" for k in LABELS if k in result]
    if "by_occlusion" in result:
        cols = [c for c in BUCKET_COLUMNS if c in result]
        lines += ["", f"{'occlusion':<10} {'frames':>7} " + " ".join(f"{LABELS[c][0]:>10}" for c in cols)]
        for name, b in result["by_occlusion"].items():
            lines.append(f"{name + '%':<10} {b['num_frames']:>7} " + " ".join(f"{_fmt(b[c]):>10}" for c in cols))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from unihand.eval.metrics import evaluate_motion

    _, pred = _load(args.pred)
    gt_raw, gt = _load(args.gt)
    n = gt["joints"].shape[0]
    if pred["joints"].shape[0] != n:
        raise UserError(
            f"{args.pred}: field 'joints' has {pred['joints'].shape[0]} frames, expected shape ({n},21,3) to match {args.gt}"
        )
    fps, occlusion = _gt_extras(args.gt, gt_raw, n)
    if fps is None:
        fps = DEFAULT_FPS
        print(f"note: {args.gt} has no 'fps'; using {DEFAULT_FPS:g} fps for AccEr", file=sys.stderr)
    both_meshes = "vertices" in pred and "vertices" in gt
    if not both_meshes and ("vertices" in pred or "vertices" in gt):
        only = args.pred if "vertices" in pred else args.gt
        print(f"note: only {only} holds 'vertices'; F@5/F@15 skipped", file=sys.stderr)
    result = evaluate_motion(
        pred["joints"], gt["joints"], fps,
        pred_vertices=pred["vertices"] if both_meshes else None,
        gt_vertices=gt["vertices"] if both_meshes else None,
        occlusion=occlusion,
    )
    if result["acc_err"] is None:
        print("note: AccEr needs at least 3 frames; reported as n/a (null)", file=sys.stderr)
    if args.json:
        keys = [k for k in LABELS if k in result] + (["by_occlusion"] if "by_occlusion" in result else [])
        print(json.dumps({k: result[k] for k in keys}, allow_nan=False))
    else:
        print(_table(result, n, fps))
    return 0
