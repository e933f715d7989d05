"""The real sample video: UniHand against a per-frame baseline, measured in one run.

One pass of ``unihand estimate --no-render`` (decode, MediaPipe, tracking, generation, refinement,
writing) over ``right_hand_office.mp4``, timed per stage; then, from the same detections:

- UniHand, refinement on (the default) and off (the pure diffusion sample);
- the per-frame baseline: MediaPipe's world landmarks placed in the camera by ``cv2.solvePnP``
  against its 2D landmarks (:func:`unihand.eval.baselines.pnp_world_landmarks`), and the same
  Savitzky-Golay smoothed (window 9, order 2).

For each: median and p90 reprojection error (px) against the detector's 2D keypoints (the joints
the estimate used), mean and p99 joint acceleration (m/s^2), bone-length standard deviation over the
clip (mm, mean over bones), time per frame (ms), and the largest acceleration within 2 frames of
one of UniHand's window joins over the 95th percentile elsewhere. All with the same intrinsics (the default 60 degree
field of view across the longer side). Detector-only time = decode + detect of the same run.

    .venv/bin/python bench/real_sample.py [--video PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unihand.eval.baselines import pnp_world_landmarks, savgol_smooth
from unihand.eval.metrics import bone_lengths, joint_acceleration, window_join_ratio
from unihand.video.detect import HandDetector
from unihand.video.conditions import reproject, reprojection_stats
from unihand.video.estimate import estimate_video, load_model

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "right_hand_office.mp4"
WINDOW, OVERLAP = 48, 16  # the pipeline's windows


def row(joints_cam: np.ndarray, kp: np.ndarray, mask: np.ndarray, K: np.ndarray, fps: float, ms: float) -> dict:
    """The table's columns; the join ratio is taken at UniHand's window joins for every row (for the
    baselines, which have no windows, it tells how fast the motion itself is there)."""
    rep = reprojection_stats(reproject(joints_cam, K), kp, mask)
    acc = joint_acceleration(joints_cam, fps)
    acc = acc[np.isfinite(acc)]
    bones = bone_lengths(joints_cam)
    return {"reprojection_median_px": rep["median"], "reprojection_p90_px": rep["p90"],
            "accel_mean": float(acc.mean()), "accel_p99": float(np.percentile(acc, 99)),
            "bone_std_mm": float(1000 * np.nanstd(bones, axis=0).mean()), "ms_per_frame": ms,
            "join_ratio": window_join_ratio(np.nan_to_num(joints_cam), fps, WINDOW, OVERLAP)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=str(SAMPLE))
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)  # what `unihand estimate` uses (--threads 1)
    pipe = load_model(args.checkpoint)
    detector = HandDetector(max_hands=2)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = estimate_video(args.video, tmp, hands="both", model=pipe, detector=detector, render=False,
                             progress=False)
        total = time.perf_counter() - t0
    out: dict = {"video": args.video, "timings_s": {k: round(v, 3) for k, v in res.timings.items()},
                 "estimate_total_s": round(total, 3)}
    for side, hr in res.hands.items():
        n, fps, K = hr.track.num_frames, hr.motion.fps, res.K
        det_s = res.timings["decode"] + res.timings["detect"]
        kp, mask = hr.track.keypoints, hr.conditions.kp2d_mask
        t = time.perf_counter()
        pure = pipe(hr.conditions, generator=torch.Generator().manual_seed(0), refine=False).motions[0]
        t_pure = time.perf_counter() - t
        gen_s = res.timings[f"generate_{side}"]
        rows = {
            "unihand (refined)": row(hr.motion.joints, kp, mask, K, fps, 1000 * total / n),
            "unihand, refine off": row(pure.joints, kp, mask, K, fps, 1000 * (total - gen_s + t_pure) / n),
        }
        if hr.track.world is not None:
            t = time.perf_counter()
            pnp = pnp_world_landmarks(hr.track.world, kp, K)
            t_pnp = time.perf_counter() - t
            rows["per-frame PnP"] = row(pnp, kp, mask, K, fps, 1000 * (det_s + t_pnp) / n)
            rows["per-frame PnP + Savitzky-Golay (9, 2)"] = row(savgol_smooth(pnp), kp, mask, K, fps,
                                                                1000 * (det_s + t_pnp) / n)
        out[side] = {"frames": n, "detected": hr.track.num_detected, "rows": rows,
                     "detector_only_ms_per_frame": 1000 * det_s / n,
                     "estimate_over_detector_only": total / det_s}
        print(f"{side} hand: {n} frames, detected in {hr.track.num_detected}; estimate --no-render "
              f"{1000 * total / n:.1f} ms/frame = {total / det_s:.2f}x detector only ({1000 * det_s / n:.1f} ms/frame)")
        print(f"  {'':<40} {'reproj med':>10} {'p90':>6} {'acc mean':>9} {'acc p99':>8} {'bone std':>9} {'ms/frame':>9} "
              f"{'joins':>6}")
        for name, r in rows.items():
            print(f"  {name:<40} {r['reprojection_median_px']:>10.2f} {r['reprojection_p90_px']:>6.2f} "
                  f"{r['accel_mean']:>9.2f} {r['accel_p99']:>8.2f} {r['bone_std_mm']:>9.3f} {r['ms_per_frame']:>9.1f} "
                  f"{r['join_ratio']:>6.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
