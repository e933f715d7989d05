"""``unihand evaluate``: run a checkpoint on a benchmark's sequences and write the paper's tables.

Protocol. Every track (one hand in one video, right-handed: left hands are mirrored, which
leaves every metric unchanged) is generated whole from the chosen conditions; metrics are
computed on its frames with ground truth, split into runs of consecutive such frames (so
G-MPJPE, GA-MPJPE and AccEr see contiguous motion). DexYCB and HO3D are scored in the camera
frame (their cameras are static, so the canonical frame is the camera frame). HOT3D is scored
in the canonical frame (camera of the first frame); it differs from the world frame by one
rigid transform per sequence, which changes none of PA-MPJPE, G-MPJPE, GA-MPJPE and AccEr.
2D keypoint conditions are the dataset's annotated (DexYCB) or ground-truth projected
(HOT3D, HO3D train) 2D joints, not a detector's; 3D/MANO conditions are the ground truth.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from unihand.data.datasets import load_tracks
from unihand.data.datasets.common import Track, canonical_window
from unihand.data.datasets.ho3d import frame_list, write_submission
from unihand.data.io import Conditions
from unihand.errors import UserError
from unihand.eval import tables
from unihand.eval.metrics import aggregate, evaluate_motion
from unihand.geometry.camera import normalize_keypoints
from unihand.geometry.canonical import rigid_inverse
from unihand.geometry.mirror import mirror_image

CONDITIONS = ("vision", "2d", "3d", "mano")
DATASETS = ("dexycb", "hot3d", "ho3d", "synthetic")
DEFAULT_SPLIT = {"dexycb": "test", "hot3d": "test", "ho3d": "evaluation", "synthetic": "test"}
#: Frames handed to the vision path are downscaled so that their longer side is at most this.
MAX_FRAME_SIDE = 512


@dataclass
class Prediction:
    """Predicted joints (T, 21, 3) and optional vertices (T, 778, 3) in the track's canonical frame."""

    joints: np.ndarray
    vertices: np.ndarray | None = None


Predictor = Callable[[Track, Sequence[str]], Prediction]


def parse_conditions(text: str) -> list[str]:
    """``"vision,2d"`` -> ``["vision", "2d"]`` (validated, order kept)."""
    names = [c.strip().lower() for c in text.split(",") if c.strip()]
    bad = [c for c in names if c not in CONDITIONS]
    if not names or bad:
        raise UserError(f"--conditions {text!r}: expected a comma-separated subset of {','.join(CONDITIONS)}")
    return names


def track_conditions(track: Track, conditions: Sequence[str]) -> Conditions:
    """The structured conditions of a whole track (canonical frame of its first frame)."""
    cano = canonical_window(track, 0, track.num_frames)
    valid = track.valid
    cond = Conditions(K=np.asarray(track.K, np.float32), image_size=np.asarray(track.image_size), fps=track.fps)
    if "2d" in conditions:
        cond.kp2d = normalize_keypoints(track.kp2d.astype(np.float64), track.image_size).astype(np.float32)
        cond.kp2d_mask = track.kp2d_mask.copy()
    if "3d" in conditions:
        cond.kp3d = np.where(valid[:, None, None], cano["joints"], 0.0).astype(np.float32)
        cond.kp3d_mask = np.repeat(valid[:, None], 21, axis=1)
    if "mano" in conditions:
        cond.mano = np.where(valid[:, None], cano["mano"], 0.0).astype(np.float32)
        cond.mano_mask = valid.copy()
    return cond


def track_frames(track: Track) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of a track as the right-handed model sees them, downscaled."""
    if track.frames is None:
        raise UserError(f"{track.name}: this dataset layout has no images here (vision needs the video frames)")
    images = track.frames(np.arange(track.num_frames))
    if not track.is_right:
        images = mirror_image(images, "HWC")
    h, w = images.shape[1:3]
    scale = MAX_FRAME_SIDE / max(h, w)
    if scale >= 1.0:
        return images
    size = (round(w * scale), round(h * scale))
    return np.stack([cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in images])


def model_predictor(model: Any, *, steps: int | None = None, cfg_scale: float | None = None, seed: int = 0,
                    refine: bool = True) -> Predictor:
    """Predictor running ``model.generate`` (a :class:`unihand.pipeline.UniHand`) on a track."""

    def predict(track: Track, conditions: Sequence[str]) -> Prediction:
        structured = [c for c in conditions if c != "vision"]
        cond = track_conditions(track, structured)
        extra = {"frames": track_frames(track)} if "vision" in conditions else {}
        if track.T_world_from_cam is not None:  # a moving camera: the 2D term through each frame's camera
            extra["camera_poses"] = rigid_inverse(track.T_world_from_cam[0]) @ track.T_world_from_cam
        motion = model.generate(cond if structured else None, num_frames=track.num_frames, steps=steps,
                                cfg_scale=cfg_scale, seed=seed, refine=refine, **extra)
        return Prediction(np.asarray(motion.joints, np.float64),
                          None if motion.vertices is None else np.asarray(motion.vertices, np.float64))

    return predict


def valid_runs(valid: np.ndarray) -> list[slice]:
    """Maximal runs of consecutive True frames."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], valid.astype(np.int8), [0]])))
    return [slice(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def evaluate_tracks(
    tracks: Sequence[Track], predict: Predictor, conditions: Sequence[str], *, with_vertices: bool = False,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], list[Prediction]]:
    """Run ``predict`` on every track and score it (module doc).

    Returns the metric groups of a run record (``all`` and, with occlusion ratios, the
    occlusion buckets), per-sequence results and the predictions. ``with_vertices`` adds
    F@5/F@15 where both meshes exist.
    """
    results, per_sequence, predictions = [], [], []
    camera: list[str] = []
    for track in tracks:
        pred = predict(track, conditions)
        predictions.append(pred)
        gt = canonical_window(track, 0, track.num_frames)["joints"].astype(np.float64)
        use_mesh = with_vertices and track.vertices is not None and pred.vertices is not None
        for run in valid_runs(track.valid):
            occ = track.occlusion[run]
            res = evaluate_motion(
                pred.joints[run], gt[run], track.fps,
                pred_vertices=pred.vertices[run] if use_mesh else None,
                gt_vertices=track.vertices[run] if use_mesh else None,
                occlusion=occ if np.all(np.isfinite(occ)) else None,
            )
            results.append(res)
            camera.append(_camera_kind(track))
            per_sequence.append({"name": track.name, "frames": [run.start, run.stop], **{
                k: v for k, v in res.items() if not k.startswith("by_")}})
    if not results:
        raise UserError("no frame with ground truth in the evaluated sequences")
    agg = aggregate(results)
    groups: dict[str, dict[str, Any]] = {"all": {k: v for k, v in agg.items() if not k.startswith("by_")}}
    groups.update(agg.get("by_occlusion", {}))
    for kind in ("static camera", "moving camera"):  # Table 3's world-space setting vs a fixed camera
        subset = [r for r, c in zip(results, camera) if c == kind]
        if subset and len(subset) < len(results):
            groups[kind] = {k: v for k, v in aggregate(subset).items() if not k.startswith("by_")}
    return groups, per_sequence, predictions


def _camera_kind(track: Track) -> str:
    """``moving camera`` when the track's camera poses change over time, else ``static camera``."""
    if track.T_world_from_cam is None:
        return "static camera"
    poses = np.asarray(track.T_world_from_cam)
    return "moving camera" if np.abs(poses - poses[:1]).max() > 1e-6 else "static camera"


def synthetic_tracks(count: int, seed: int, render_size: int | None = None) -> list[Track]:
    """``count`` generated test windows as tracks (canonical = world, with the windows' noisy observed
    2D keypoints; ground truth on every frame). Left hands are already mirrored into right ones, frames
    included, so every track is right-handed. ``render_size`` S adds the rendered S x S letterboxed
    frames (the vision condition)."""
    from unihand.data.windows import SyntheticWindows

    data = SyntheticWindows(count, seed=seed, render=render_size is not None, size=render_size or 224)
    tracks = []
    for i in range(count):
        it = {k: v.numpy() for k, v in data[i].items()}
        size = tuple(int(s) for s in it["image_size"])
        n = it["mano"].shape[0]
        frames = it.get("frames")
        tracks.append(Track(
            name=f"synthetic/{seed}/{i}", mano=it["mano"], joints=it["joints"], rest_root=np.zeros((n, 3)),
            valid=np.ones(n, bool), kp2d=it["kp2d"] * np.asarray(size, np.float32),
            kp2d_mask=it["kp2d_mask"].astype(bool), K=it["K"], image_size=size,
            occlusion=np.clip(it["occlusion"].astype(np.float64), 0.0, 1.0),
            is_right=True, T_world_from_cam=it["T_cano_from_cam"].astype(np.float64),
            frames=None if frames is None else (lambda idx, f=frames.transpose(0, 2, 3, 1): f[idx]),
        ))
    return tracks


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
    parser.add_argument("--dataset", required=True, choices=DATASETS)
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
    if args.dataset == "synthetic":
        return synthetic_tracks(args.num_sequences, seed=1000 + args.seed, render_size=render_size)
    kw: dict[str, Any] = {"mano_dir": args.mano_dir}
    if args.dataset != "ho3d":
        kw["cache_dir"] = args.cache_dir
    return load_tracks(args.dataset, args.root, split, **kw)


def run(args: argparse.Namespace) -> int:
    from unihand.flags import check_model_flags, check_positive, check_sampling_flags
    from unihand.pipeline import UniHand

    check_positive(args, "limit", "num_sequences")
    check_sampling_flags(args)
    conditions = parse_conditions(args.conditions)
    split = args.split or DEFAULT_SPLIT[args.dataset]
    model = UniHand.from_pretrained(args.checkpoint, device=args.device,
                                    mano_dir=None if args.mano_dir is None else str(args.mano_dir))
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
    predict = model_predictor(model, steps=args.steps, cfg_scale=args.cfg_scale, seed=args.seed,
                              refine=args.refine == "on")
    if args.refine == "off" and not args.label:  # its own row beside the refined run of the same conditions
        args.label = tables.run_label(conditions) + " (pure sampling)"
    with_gt = any(t.valid.any() for t in tracks)
    if with_gt:
        groups, per_sequence, predictions = evaluate_tracks(tracks, predict, conditions,
                                                            with_vertices=args.dataset == "ho3d")
    else:
        groups, per_sequence, predictions = {}, [], [predict(t, conditions) for t in tracks]
    notes = _notes(args.dataset, conditions)
    if args.dataset == "ho3d" and split == "evaluation":
        expected = len(frame_list(args.root.expanduser(), "evaluation"))
        notes.append(_write_ho3d(args.out, tables.run_label(conditions, args.label), predictions, expected))
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


def _write_ho3d(out: Path, label: str, predictions: Sequence[Prediction], expected: int) -> str:
    """pred.json / pred.zip for CodaLab (tracks follow evaluation.txt, whose ``expected`` lines all need a frame)."""
    got = sum(len(p.joints) for p in predictions)
    if got != expected:
        raise UserError(f"the HO3D submission must cover all {expected} lines of evaluation.txt, but {got} frames "
                        "were generated (skipped sequences or --limit)")
    if any(p.vertices is None for p in predictions):
        raise UserError("the HO3D submission needs mesh vertices: run with --mano-dir (the official MANO files)")
    folder = out / "ho3d_submission" / "".join(ch if ch.isalnum() else "_" for ch in label).strip("_").lower()
    pred = write_submission(folder / "pred.json", np.concatenate([p.joints for p in predictions]),
                            np.concatenate([p.vertices for p in predictions]))
    with zipfile.ZipFile(folder / "pred.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(pred, "pred.json")
    return f"HO3D CodaLab submission: {folder / 'pred.zip'} (upload it to obtain the evaluation-split scores)."
