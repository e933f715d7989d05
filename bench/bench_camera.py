"""Moving camera: camera estimation and world-frame hands on synthetic video with known poses.

1. ``--sequences`` rendered synthetic videos (:mod:`camera_data`: test stream 2000, realistic head
   motion, 3D room background with parallax, 1280x720 at 90 degrees, 96 frames, H.264 CRF 20, right
   hands, occluders and detection gaps). Each runs the whole ``unihand estimate`` path (shipped model,
   refinement on) three times: ``--camera estimate``, ``--camera static`` and the true poses. The
   2D keypoints come from the simulated detector (the true keypoints with detector-like noise,
   occlusions and gaps; ``--detector mediapipe`` runs MediaPipe on the frames instead), so the runs
   differ only in the camera.
   Reported: camera rotation error (angle of R_est^T R_true per frame; mean and max over frames),
   translation-direction error (angle between the estimated and true camera positions, frames more
   than 2 cm from the start), scale error (the refinement's fitted scale over the least-squares
   scale of the estimated translations onto the true ones, minus 1), the camera trajectory error
   after that optimal scale (cm), G-MPJPE of the world-frame joints for the three runs, and the
   camera stage's time per frame.
   ``--depth``: also ``--camera estimate`` with a simulated metric depth model (``camera_data.SimulatedDepth``:
   the rendered room's true depth times a per-clip scale error drawn log-normal with sigma
   :data:`DEPTH_CLIP_SIGMA`, with per-frame and per-pixel noise), the camera's scale then read from
   the scene; and the same with fixed scale errors of -15 % and +15 % (sensitivity).
2. The real sample (static camera, 1280x720, 621 frames, MediaPipe): ``--camera estimate`` must
   find it still (rotation under 1 degree over the clip); ``--camera auto`` must call it static.

``--set hard`` / ``--set heldout``: the hard set (:mod:`camera_data`: fast turns, walking, motion blur,
near hands, blank walls; 120 frames), with the frames the camera registered (``camera_valid``) and the
largest world-frame wrist speed (estimate and truth) per clip.

    .venv/bin/python bench/bench_camera.py [--set test|hard|heldout] [--sequences 8] [--depth] [--json out.json] [--no-real]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from camera_data import HARD_HELDOUT_SEED, HARD_SEED, SEED, SETS, SimulatedDepth, clip  # noqa: E402

from unihand.eval.metrics import rotation_errors_deg as rotation_errors  # noqa: E402

#: The simulated metric depth model's errors (``--depth``): a log-normal scale error of the whole clip
#: (sigma), per-frame and per-pixel log-normal noise; the fixed biases of the sensitivity runs.
DEPTH_CLIP_SIGMA, DEPTH_FRAME_SIGMA, DEPTH_PIXEL_SIGMA = 0.10, 0.05, 0.05
DEPTH_BIASES = {"depth_short": 0.85, "depth_long": 1.15}

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "right_hand_office.mp4"
CACHE = Path(__file__).resolve().parents[1] / "runs" / "bench_camera"


def camera_errors(T_unit: np.ndarray, T_metric: np.ndarray, T_true: np.ndarray) -> dict:
    rot = rotation_errors(T_unit, T_true)
    te, tt, tm = T_unit[:, :3, 3], T_true[:, :3, 3], T_metric[:, :3, 3]
    far = np.linalg.norm(tt, axis=1) > 0.02
    cos = (te[far] * tt[far]).sum(1) / np.maximum(np.linalg.norm(te[far], axis=1) * np.linalg.norm(tt[far], axis=1), 1e-12)
    direction = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    best = float((te * tt).sum() / max((te * te).sum(), 1e-12))  # least-squares scale onto the truth
    fitted = float(np.linalg.norm(tm, axis=1).sum() / max(np.linalg.norm(te, axis=1).sum(), 1e-12))
    return {
        "rot_mean_deg": float(rot.mean()), "rot_max_deg": float(rot.max()),
        "dir_mean_deg": float(direction.mean()) if far.any() else None,
        "scale_error": fitted / best - 1 if best > 0 else None,
        "traj_err_cm": float(100 * np.linalg.norm(best * te - tt, axis=1).mean()),
        "true_rot_max_deg": float(rotation_errors(np.broadcast_to(np.eye(4), T_true.shape), T_true).max()),
        "true_travel_cm": float(100 * np.linalg.norm(tt, axis=1).max()),
    }


def wrist_speed_max(joints: np.ndarray, fps: float) -> float:
    """Largest world-frame wrist speed (m/s) between consecutive frames."""
    return float(np.linalg.norm(np.diff(joints[:, 0], axis=0), axis=1).max() * fps)


def run_sequence(index: int, model, detector_kind: str, depth: bool = False, which: str = "test") -> dict:
    from unihand.video.detect import SimulatedDetector
    from unihand.eval.metrics import g_mpjpe, mpjpe
    from unihand.video.estimate import estimate_video

    video, K, seq, to_pixels = clip(index, which, CACHE)
    intr = (K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    gt = seq.motion.joints.astype(np.float64)
    T_true = seq.camera.T_cano_from_cam
    out: dict = {"index": index, "activity": seq.activity, "frames": int(len(gt)),
                 "true_wrist_speed_max": wrist_speed_max(gt, seq.motion.fps)}
    runs = {"estimate": {"camera": "estimate"}, "static": {"camera": "static"}, "true": {"camera_poses": T_true},
            "oracle_scale": {}}
    size = tuple(int(v) for v in seq.camera.image_size)
    if depth:  # the clip's scale error drawn once per sequence, then the fixed-bias sensitivity runs
        bias = float(np.exp(DEPTH_CLIP_SIGMA * np.random.default_rng([SEED, index]).normal()))
        for name, b in {"depth": bias, **DEPTH_BIASES}.items():
            runs[name] = {"camera": "estimate", "depth_model": SimulatedDepth(
                seq, K, size, b, DEPTH_FRAME_SIGMA, DEPTH_PIXEL_SIGMA, seed=index)}
        out["depth_bias"] = bias
    for name, kw in runs.items():
        if name == "oracle_scale":  # the estimated poses at the scale that fits the true ones best
            kw = {"camera_poses": oracle_scaled(out["camera"]["unit_poses"], T_true)}
        if detector_kind == "mediapipe":
            from unihand.video.detect import HandDetector

            det = HandDetector(max_hands=2)
        else:
            det = SimulatedDetector(seq.conditions, to_pixels, 0.95)
        t = time.perf_counter()
        res = estimate_video(video, None, hands="right", intrinsics=intr, model=model, detector=det, render=False,
                             progress=False, **kw)
        wall = time.perf_counter() - t
        if hasattr(det, "close"):
            det.close()
        r = res.hands["right"]
        joints = r.motion.joints.astype(np.float64)
        out[name] = {"g_mpjpe_mm": g_mpjpe(joints, gt), "mpjpe_mm": mpjpe(joints, gt), "wall_s": wall,
                     "camera_s": res.timings.get("camera", 0.0), "detected": int(r.track.detected.sum()),
                     "wrist_speed_max": wrist_speed_max(joints, seq.motion.fps),
                     "registered": int(np.asarray(r.motion.extra["camera_valid"]).sum())}
        if name.startswith("depth"):
            T_metric = r.motion.extra["T_cano_from_cam"].astype(np.float64)
            out[name]["scale_error"] = camera_errors(_last_estimate(res), T_metric, T_true)["scale_error"]
            out[name]["depth_stats"] = r.summary["camera"].get("stats", {}).get("depth")
        if name == "estimate":
            cam = r.summary["camera"]
            est = _last_estimate(res)
            T_metric = r.motion.extra["T_cano_from_cam"].astype(np.float64)
            out["camera"] = {**camera_errors(est, T_metric, T_true), "method": cam.get("method"), "unit_poses": est,
                             "source": cam["source"], "scale_m_per_unit": cam.get("scale_m_per_unit"),
                             "ms_per_frame": 1000 * res.timings.get("camera", 0.0) / len(gt),
                             "stats": cam.get("stats")}
    return out


def oracle_scaled(T_unit: np.ndarray, T_true: np.ndarray) -> np.ndarray:
    """Unit-scale poses with their translations at the least-squares scale onto the true ones."""
    te, tt = T_unit[:, :3, 3], T_true[:, :3, 3]
    out = T_unit.copy()
    out[:, :3, 3] *= float((te * tt).sum() / max((te * te).sum(), 1e-12))
    return out


def _last_estimate(res) -> np.ndarray:
    """The unit-scale estimated poses: the metric ones divided by the fitted scale."""
    r = next(iter(res.hands.values()))
    T = r.motion.extra["T_cano_from_cam"].astype(np.float64).copy()
    s = r.summary["camera"].get("scale_m_per_unit")
    if isinstance(s, float) and s > 0:
        T[:, :3, 3] /= s
    return T


def real_sample(model) -> dict:
    from unihand.video.estimate import estimate_video

    out = {}
    for mode in ("estimate", "auto"):
        t = time.perf_counter()
        res = estimate_video(SAMPLE, None, hands="right", model=model, render=False, progress=False, camera=mode)
        r = res.hands["right"]
        T = r.motion.extra["T_cano_from_cam"].astype(np.float64)
        out[mode] = {"source": r.summary["camera"]["source"],
                     "rotation_max_deg": float(rotation_errors(np.broadcast_to(np.eye(4), T.shape), T).max()),
                     "camera_ms_per_frame": 1000 * res.timings.get("camera", 0.0) / T.shape[0],
                     "frames": int(T.shape[0]), "wall_s": time.perf_counter() - t,
                     "stats": r.summary["camera"].get("stats")}
    return out


def _num(value: float | None, digits: int, sign: str = "") -> str:
    return "-" if value is None else format(value, f"{sign}.{digits}f")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--detector", choices=("simulated", "mediapipe"), default="simulated")
    ap.add_argument("--json", default=None)
    ap.add_argument("--depth", action="store_true",
                    help="also run --camera estimate with a simulated metric depth model (the scale from the scene)")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--set", choices=SETS, default="test", help="the test stream, or the hard set's tuning / held-out stream")
    args = ap.parse_args()
    import torch

    from unihand.video.estimate import load_model

    torch.set_num_threads(1)
    model = load_model()
    rows = []
    for i in range(args.first, args.first + args.sequences):
        row = run_sequence(i, model, args.detector, args.depth, args.set)
        c = row["camera"]
        seed = {"test": SEED, "hard": HARD_SEED, "heldout": HARD_HELDOUT_SEED}[args.set]
        print(f"seq {seed}/{i}: {c['method']}, registered {row['estimate']['registered']}/{row['frames']}, "
              f"wrist speed max est {row['estimate']['wrist_speed_max']:.2f} true {row['true_wrist_speed_max']:.2f} m/s, "
              f"rot {c['rot_mean_deg']:.2f}/{c['rot_max_deg']:.2f} deg "
              f"(true up to {c['true_rot_max_deg']:.0f} deg, {c['true_travel_cm']:.0f} cm), dir {_num(c['dir_mean_deg'], 1)} deg, "
              f"scale err {_num(None if c['scale_error'] is None else 100 * c['scale_error'], 1, '+')} %, "
              f"traj {c['traj_err_cm']:.2f} cm, {c['ms_per_frame']:.1f} ms/frame | "
              f"G-MPJPE est {row['estimate']['g_mpjpe_mm']:.1f} static {row['static']['g_mpjpe_mm']:.1f} "
              f"true {row['true']['g_mpjpe_mm']:.1f} oracle scale {row['oracle_scale']['g_mpjpe_mm']:.1f} mm", flush=True)
        if args.depth:
            print("   with depth: " + ", ".join(
                f"{k} {row[k]['g_mpjpe_mm']:.1f} mm (scale {100 * row[k]['scale_error']:+.1f} %)"
                for k in ("depth", *DEPTH_BIASES)) + f"; clip bias {row['depth_bias']:.3f}", flush=True)
        row["camera"].pop("unit_poses")
        rows.append(row)
    cams = [r["camera"] for r in rows]
    agg = {
        "rot_mean_deg": float(np.mean([c["rot_mean_deg"] for c in cams])),
        "rot_max_deg": float(np.max([c["rot_max_deg"] for c in cams])),
        "dir_mean_deg": float(np.mean([c["dir_mean_deg"] for c in cams if c["dir_mean_deg"] is not None])),
        "scale_abs_error": float(np.mean([abs(c["scale_error"]) for c in cams if c["scale_error"] is not None])),
        "traj_err_cm": float(np.mean([c["traj_err_cm"] for c in cams])),
        "ms_per_frame": float(np.mean([c["ms_per_frame"] for c in cams])),
        **{f"g_mpjpe_{k}_mm": float(np.mean([r[k]["g_mpjpe_mm"] for r in rows])) for k in ("estimate", "static", "true", "oracle_scale")},
    }
    agg["ratio_est_true"] = agg["g_mpjpe_estimate_mm"] / agg["g_mpjpe_true_mm"]
    agg["registered_fraction"] = sum(r["estimate"]["registered"] for r in rows) / sum(r["frames"] for r in rows)
    if args.depth:
        for k in ("depth", *DEPTH_BIASES):
            agg[f"g_mpjpe_{k}_mm"] = float(np.mean([r[k]["g_mpjpe_mm"] for r in rows]))
            agg[f"ratio_{k}_true"] = agg[f"g_mpjpe_{k}_mm"] / agg["g_mpjpe_true_mm"]
            agg[f"scale_abs_error_{k}"] = float(np.mean([abs(r[k]["scale_error"]) for r in rows]))
    agg["ratio_est_static"] = agg["g_mpjpe_estimate_mm"] / agg["g_mpjpe_static_mm"]
    print(json.dumps(agg, indent=1))
    out = {"sequences": rows, "aggregate": agg, "detector": args.detector}
    if not args.no_real and SAMPLE.exists() and args.set == "test":
        out["real_sample"] = real_sample(model)
        print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "stats"} for k, v in out["real_sample"].items()},
                         indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
