"""Camera engines compared: the project's engine against pycolmap's own SfM pipeline.

Both get the same rendered synthetic videos (:mod:`camera_data`: test stream 2000, realistic head
motion, 3D room background, 1280x720 at 90 degrees, 96 frames, H.264 CRF 20), downscaled so the
longer side is 640 px, with the hands masked out by the same mask (:func:`unihand.camera.engine.hand_mask`
of the true 2D hand keypoints of every frame):

(a) ``engine``: :class:`~unihand.camera.engine.BackgroundTracker` fed every decoded frame and its
    true hand keypoints, then ``solve_camera(tracker, "estimate")`` (LK tracks, essential matrix,
    PnP, pycolmap bundle adjustment);
(b) ``colmap``: the frames (and one mask file per frame) written to a temporary folder, then
    ``pycolmap.extract_features`` (SIFT on the CPU, one PINHOLE camera with the known intrinsics),
    ``pycolmap.match_sequential`` and ``pycolmap.incremental_mapping`` with the intrinsics held
    fixed; the poses are those of the largest reconstruction. COLMAP's initial pair needs a
    median triangulation angle of ``--colmap-init-angle`` degrees (COLMAP's default 16, halved once
    by COLMAP when no model starts; the project's engine starts at 2).

Reported per engine and sequence: registered frames (the engine gives every frame a pose; COLMAP
leaves out the frames it cannot register, which are then left out of the errors too), the mean and
max rotation error (angle of R_est^T R_true per frame), the translation-direction error (angle
between the estimated and true camera positions, frames more than 2 cm from the start), the
trajectory error (cm, mean over frames) after the least-squares scale of the estimated positions
onto the true ones, and the wall time per frame (ms; the engine from the first ``add`` to the end of
``solve_camera``, COLMAP from writing the first frame to the end of the mapping; decoding excluded).
Poses and truth are both taken relative to the first registered frame (frame 0 unless COLMAP
left it out). The mean row sums the registered frames, takes the largest max rotation error and
averages the rest over the sequences. Everything runs on one thread. Needs pycolmap 4.x
(``pip install pycolmap``; without it the engine also runs without its bundle adjustment).

    .venv/bin/python bench/camera_engines.py [--sequences 4] [--first 0] [--colmap-init-angle 16] [--engines engine,colmap] [--json out.json]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_camera import CACHE, rotation_errors  # noqa: E402
from camera_data import SEED, render_video  # noqa: E402

ENGINES = ("engine", "colmap")


def camera_errors(T_est: np.ndarray, T_true: np.ndarray, registered: np.ndarray) -> dict[str, Any]:
    """Errors of the registered frames' poses (N, 4, 4), both taken relative to the first registered frame."""
    idx = np.flatnonzero(registered)
    out: dict[str, Any] = {"registered": int(idx.size), "frames": int(len(T_true))}
    if idx.size < 2:
        return {**out, "rot_mean_deg": None, "rot_max_deg": None, "dir_mean_deg": None, "traj_err_cm": None}
    est = np.linalg.inv(T_est[idx[0]]) @ T_est[idx]
    true = np.linalg.inv(T_true[idx[0]]) @ T_true[idx]
    rot = rotation_errors(est, true)
    te, tt = est[:, :3, 3], true[:, :3, 3]
    far = np.linalg.norm(tt, axis=1) > 0.02
    cos = (te[far] * tt[far]).sum(1) / np.maximum(
        np.linalg.norm(te[far], axis=1) * np.linalg.norm(tt[far], axis=1), 1e-12)
    best = float((te * tt).sum() / max((te * te).sum(), 1e-12))  # least-squares scale onto the truth
    return {**out, "rot_mean_deg": float(rot.mean()), "rot_max_deg": float(rot.max()),
            "dir_mean_deg": float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean()) if far.any() else None,
            "traj_err_cm": float(100 * np.linalg.norm(best * te - tt, axis=1).mean())}


def run_engine(frames: np.ndarray, K: np.ndarray, hands: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """(T_cano_from_cam (N, 4, 4), registered (N,) bool, info) of the project's engine."""
    from unihand.camera.engine import BackgroundTracker, solve_camera

    t = time.perf_counter()
    tracker = BackgroundTracker(K, (frames.shape[2], frames.shape[1]))
    for frame, kp in zip(frames, hands):
        tracker.add(frame, [kp])
    est = solve_camera(tracker, "estimate")
    wall = time.perf_counter() - t
    registered = np.ones(len(frames), bool)
    if est.held_from is not None:
        registered[est.held_from:] = False
    return est.T_cano_from_cam, registered, {"wall_s": wall, "method": est.method, "stats": est.stats}


def run_colmap(frames: np.ndarray, K: np.ndarray, hands: np.ndarray, folder: Path,
               init_angle_deg: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """(T_cano_from_cam (N, 4, 4), registered (N,) bool, info) of pycolmap's incremental SfM in ``folder``."""
    import pycolmap

    from unihand.camera.engine import WORK_SIZE, hand_mask
    from unihand.geometry.camera import rescale_K

    pycolmap.logging.minloglevel = 2
    n, H, W = frames.shape[:3]
    s = min(1.0, WORK_SIZE / max(W, H))
    w, h = round(W * s), round(H * s)
    # the intrinsics of the downscaled pixels (pixel centres at integer coordinates), as the engine's
    Kw = rescale_K(K, s)
    params = [Kw[0, 0], Kw[1, 1], Kw[0, 2], Kw[1, 2]]
    images, masks, db, out = folder / "images", folder / "masks", folder / "database.db", folder / "sparse"
    for d in (images, masks, out):
        d.mkdir(parents=True)
    times: dict[str, float] = {}
    t = time.perf_counter()
    for i, (frame, kp) in enumerate(zip(frames, hands)):
        small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(images / f"{i:04d}.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(masks / f"{i:04d}.png.png"), hand_mask((h, w), [kp], s))  # COLMAP: <image name>.png
    times["write_s"] = time.perf_counter() - t
    t = time.perf_counter()
    pycolmap.extract_features(
        db, images, camera_mode=pycolmap.CameraMode.SINGLE,
        reader_options=pycolmap.ImageReaderOptions(
            camera_model="PINHOLE", camera_params=",".join(f"{p:.6f}" for p in params), mask_path=masks),
        extraction_options=pycolmap.FeatureExtractionOptions(num_threads=1, use_gpu=False),
        device=pycolmap.Device.cpu)
    times["extract_s"] = time.perf_counter() - t
    t = time.perf_counter()
    pycolmap.match_sequential(
        db, matching_options=pycolmap.FeatureMatchingOptions(num_threads=1, use_gpu=False),
        pairing_options=pycolmap.SequentialPairingOptions(num_threads=1), device=pycolmap.Device.cpu)
    times["match_s"] = time.perf_counter() - t
    t = time.perf_counter()
    opts = pycolmap.IncrementalPipelineOptions(
        num_threads=1, random_seed=0, extract_colors=False,
        ba_refine_focal_length=False, ba_refine_principal_point=False, ba_refine_extra_params=False)
    opts.mapper.abs_pose_refine_focal_length = False
    opts.mapper.abs_pose_refine_extra_params = False
    opts.mapper.init_min_tri_angle = init_angle_deg
    models = pycolmap.incremental_mapping(db, images, out, options=opts)
    times["map_s"] = time.perf_counter() - t
    T = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
    registered = np.zeros(n, bool)
    if models:
        rec = max(models.values(), key=lambda r: r.num_reg_images())
        for image_id in rec.reg_image_ids():
            image = rec.image(image_id)
            f = int(Path(image.name).stem)
            T[f] = np.linalg.inv(np.vstack([image.cam_from_world().matrix(), [0.0, 0.0, 0.0, 1.0]]))
            registered[f] = True
    return T, registered, {"wall_s": sum(times.values()), "models": len(models),
                           "model_sizes": sorted((r.num_reg_images() for r in models.values()), reverse=True),
                           **{k: round(v, 3) for k, v in times.items()}}


def run_sequence(index: int, init_angle_deg: float, engines: tuple[str, ...] = ENGINES) -> dict[str, Any]:
    from unihand.video.decode import open_video, read_all

    video, K, seq, to_pixels = render_video(index, CACHE)
    frames = read_all(open_video(video))
    hands = to_pixels(seq.conditions.extra["kp2d_gt"])  # (N, 21, 2) true keypoints, video pixels
    T_true = seq.camera.T_cano_from_cam.astype(np.float64)
    true_rot = rotation_errors(np.broadcast_to(np.eye(4), T_true.shape), T_true)
    row: dict[str, Any] = {"index": index, "activity": seq.activity, "true_rot_max_deg": float(true_rot.max()),
                           "true_travel_cm": float(100 * np.linalg.norm(T_true[:, :3, 3], axis=1).max())}
    results = {"engine": run_engine(frames, K, hands)} if "engine" in engines else {}
    if "colmap" in engines:
        with tempfile.TemporaryDirectory(prefix="colmap_") as tmp:
            results["colmap"] = run_colmap(frames, K, hands, Path(tmp), init_angle_deg)
    for name, (T, registered, info) in results.items():
        row[name] = {**camera_errors(T, T_true, registered), **info,
                     "ms_per_frame": 1000 * info["wall_s"] / len(frames)}
    return row


def _fmt(value: float | None, digits: int) -> str:
    return f"{'-' if value is None else format(value, f'.{digits}f'):>8}"


def line(label: str, r: dict[str, Any]) -> str:
    return (f"{label:<10} {r['registered']:>5}/{r['frames']:<5} {_fmt(r['rot_mean_deg'], 3)} "
            f"{_fmt(r['rot_max_deg'], 3)} {_fmt(r['dir_mean_deg'], 2)} {_fmt(r['traj_err_cm'], 2)} "
            f"{r['ms_per_frame']:9.1f}")


def mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows if r[key] is not None]
        return float(np.mean(vals)) if vals else None

    maxes = [r["rot_max_deg"] for r in rows if r["rot_max_deg"] is not None]
    return {"registered": sum(r["registered"] for r in rows), "frames": sum(r["frames"] for r in rows),
            "rot_mean_deg": mean("rot_mean_deg"), "rot_max_deg": max(maxes) if maxes else None,
            "dir_mean_deg": mean("dir_mean_deg"), "traj_err_cm": mean("traj_err_cm"),
            "ms_per_frame": mean("ms_per_frame")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sequences", type=int, default=4)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--colmap-init-angle", type=float, default=16.0,
                    help="COLMAP's init_min_tri_angle (degrees; its default 16)")
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"subset of {','.join(ENGINES)}")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    engines = tuple(e for e in ENGINES if e in args.engines.split(","))
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print(f"{'':<10} {'registered':>11} {'rot mean':>8} {'rot max':>8} {'dir deg':>8} {'traj cm':>8} {'ms/frame':>9}")
    rows = []
    for i in range(args.first, args.first + args.sequences):
        row = run_sequence(i, args.colmap_init_angle, engines)
        print(f"seq {SEED}/{i} ({row['activity']}; true up to {row['true_rot_max_deg']:.0f} deg, "
              f"{row['true_travel_cm']:.0f} cm)")
        for name in engines:
            print(line(f"  {name}", row[name]), flush=True)
        rows.append(row)
    summary = {name: mean_row([r[name] for r in rows]) for name in engines}
    print("mean")
    for name in engines:
        print(line(f"  {name}", summary[name]))
    if args.json:
        Path(args.json).write_text(json.dumps({"colmap_init_angle_deg": args.colmap_init_angle, "sequences": rows,
                                               "mean": summary}, indent=1, default=float))


if __name__ == "__main__":
    main()
