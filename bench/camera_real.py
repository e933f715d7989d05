"""The camera on a real video you point it at (no ground truth needed): what ``unihand estimate`` gives.

No real moving-camera video with a licence the project may carry was found in the package registries
this project can reach (bench/RESULTS.md), so this benchmark runs on any path: your own egocentric
clip (a head-mounted or handheld camera, hands in view). It runs the whole ``estimate_video`` path
(MediaPipe, ``--hands both``, the shipped model, ``--camera auto``, no ``--fov``: the focal length comes
from the video when the camera turns) and reports, against the targets of the camera work:

- frames registered (``camera_valid``; target: at least 90 %), and the log's camera lines;
- per hand, the median / p90 of the per-frame reprojection error through the cameras (detected
  frames; targets: 8 / 16 px);
- per hand, the world-frame wrist speeds above 3 m/s (frames), a jump the video should show.

With ``--baseline`` the same video also runs with ``--camera static`` (in the same process).

    .venv/bin/python bench/camera_real.py --video my_clip.mp4 [--start 0 --end 4] [--baseline] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "right_hand_office.mp4"


def per_hand(res) -> dict:
    out = {}
    for side, r in res.hands.items():
        kp, mask, det = r.track.keypoints, r.conditions.kp2d_mask, r.track.detected
        err = np.linalg.norm(r.motion.joints_2d - kp, axis=-1)
        frame_err = np.array([np.median(err[f][mask[f]]) for f in range(len(err)) if det[f] and mask[f].any()])
        speed = np.linalg.norm(np.diff(r.motion.joints[:, 0], axis=0), axis=1) * float(r.motion.fps)
        out[side] = {"detected": int(det.sum()),
                     "reprojection_median_px": float(np.median(frame_err)) if len(frame_err) else None,
                     "reprojection_p90_px": float(np.percentile(frame_err, 90)) if len(frame_err) else None,
                     "wrist_speed_max_m_s": float(speed.max()) if len(speed) else 0.0,
                     "frames_over_3_m_s": (np.flatnonzero(speed > 3.0) + 1).tolist()}
    return out


def run(video: str, camera: str, start, end) -> dict:
    from unihand.video.estimate import estimate_video

    log: list[str] = []
    t = time.perf_counter()
    res = estimate_video(video, None, hands="both", camera=camera, start=start, end=end, render=False, progress=False,
                         log=log.append)
    wall = time.perf_counter() - t
    any_hand = next(iter(res.hands.values()))
    valid = np.asarray(any_hand.motion.extra["camera_valid"], bool)
    return {"camera": camera, "wall_s": wall, "frames": int(len(valid)), "registered": int(valid.sum()),
            "log": [m for m in log if m.startswith(("camera", "warning"))], "hands": per_hand(res),
            "summary_camera": {k: v for k, v in any_hand.summary["camera"].items() if k != "stats"},
            "timings": res.timings}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", default=str(SAMPLE))
    ap.add_argument("--start", default=None)
    ap.add_argument("--end", default=None)
    ap.add_argument("--baseline", action="store_true", help="also --camera static")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    out = {"video": args.video, "runs": []}
    for camera in ("auto", "static") if args.baseline else ("auto",):
        r = run(args.video, camera, args.start, args.end)
        out["runs"].append(r)
        print(f"--camera {camera}: {r['registered']}/{r['frames']} frames registered "
              f"({100 * r['registered'] / r['frames']:.0f} %), {r['wall_s']:.1f} s")
        for m in r["log"]:
            print("   ", m)
        for side, h in r["hands"].items():
            print(f"   {side}: reprojection median {h['reprojection_median_px']:.1f} / p90 {h['reprojection_p90_px']:.1f} px, "
                  f"wrist up to {h['wrist_speed_max_m_s']:.2f} m/s, {len(h['frames_over_3_m_s'])} frames over 3 m/s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
