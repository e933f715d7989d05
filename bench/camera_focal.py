"""The focal length estimated from the video (no ``--fov``, no ``--intrinsics``) against the truth.

Rendered clips of the hard set's **held-out** stream (:data:`camera_data.HARD_HELDOUT_SEED`: fast turns,
walking, motion blur, near hands, blank walls; 120 frames, 1280x720), each at a known horizontal field
of view. The camera stage runs as ``unihand estimate`` runs it when neither flag is given: the tracker
starts from the default intrinsics (60 degrees), :func:`unihand.camera.focal.estimate_focal` reads the
focal length from the rotation's homographies, the bundle adjustment of the map refines it, and the
poses are solved with the result. Reported per clip: the true and estimated field of view (degrees),
from the rotation alone and after the refinement, and the source the log names. The default 60 degrees'
error is the baseline.

    .venv/bin/python bench/camera_focal.py [--fovs 50,65,80,90,95,110] [--json out.json]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_camera import CACHE  # noqa: E402
from camera_data import HARD, HARD_HELDOUT_SEED, render_video  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fovs", default="50,65,80,90,95,110")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    from unihand.camera.engine import BackgroundTracker
    from unihand.camera.focal import estimate_focal
    from unihand.camera.stage import plan_camera, resolve_camera
    from unihand.geometry.camera import DEFAULT_FOV_DEG
    from unihand.video.decode import open_video
    from unihand.video.intrinsics import resolve_intrinsics

    rows = []
    for index, fov in enumerate(float(v) for v in args.fovs.split(",")):
        video, K, seq, to_pixels = render_video(index, CACHE, frames=HARD["frames"], seed=HARD_HELDOUT_SEED, hard=True,
                                                fov_deg=fov)
        src = open_video(video)
        w, h = src.info.width, src.info.height
        K0, _ = resolve_intrinsics(w, h)  # what estimate starts from without --fov / --intrinsics
        kp = np.where(seq.conditions.extra["in_image"][..., None], to_pixels(seq.conditions.extra["kp2d_gt"]), np.nan)
        tracker = BackgroundTracker(K0, (w, h))
        for k, (_, frame) in enumerate(src.frames()):
            tracker.add(frame, [kp[k]] if np.isfinite(kp[k]).all(axis=1).sum() >= 5 else [])
        f_rot, _ = estimate_focal(tracker)
        said: list[str] = []
        res = resolve_camera(plan_camera("auto"), tracker, seq.num_frames, 30.0, said.append, focal_unknown=True)
        true = math.degrees(2 * math.atan(w / 2 / K[0, 0]))
        rot = None if f_rot is None else math.degrees(2 * math.atan(tracker.work_shape[1] / 2 / f_rot))
        est = None if res.K is None else math.degrees(2 * math.atan(w / 2 / res.K[0, 0]))
        default = DEFAULT_FOV_DEG if w >= h else math.degrees(2 * math.atan(w / 2 / K0[0, 0]))
        row = {"index": index, "head_motion": "turn" if index % 3 == 2 else "hard", "true_fov_deg": true,
               "rotation_fov_deg": rot, "estimated_fov_deg": est, "source": res.info.get("focal", {}).get("source"),
               "error_deg": None if est is None else est - true, "default_error_deg": default - true,
               "registered": int(res.camera_valid(seq.num_frames).sum()), "frames": seq.num_frames}
        rows.append(row)
        print(f"clip {HARD_HELDOUT_SEED}/{index} ({row['head_motion']}): true {true:.1f} deg, rotation "
              f"{'-' if rot is None else f'{rot:.1f}'}, estimated {'-' if est is None else f'{est:.1f}'} "
              f"(error {'-' if est is None else f'{est - true:+.1f}'}; the default {default - true:+.1f}); "
              f"{row['source']}", flush=True)
    errs = [abs(r["error_deg"]) for r in rows if r["error_deg"] is not None]
    summary = {"estimated": f"{len(errs)}/{len(rows)}", "mean_abs_error_deg": float(np.mean(errs)) if errs else None,
               "max_abs_error_deg": float(np.max(errs)) if errs else None,
               "default_mean_abs_error_deg": float(np.mean([abs(r["default_error_deg"]) for r in rows]))}
    print(json.dumps(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({"clips": rows, "summary": summary}, indent=1, default=float))


if __name__ == "__main__":
    main()
