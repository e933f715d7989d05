"""What the camera stage costs next to the hand detector, on a real video (default: the static real sample).

Streams the video once; every frame goes to MediaPipe (the detector ``unihand estimate`` runs) and to
two camera front ends fed the same frame and the detector's hands: the one ``--camera auto`` runs (the
still-camera probe, which hands over to the full tracker when the background moves) and the full
tracker alone (what ``--camera estimate`` runs). Then each back end (``solve_camera``). Reported per
frame: decoding, detection, and each camera path (front end + back end), and the camera's cost as a
fraction of the detector's. One thread for OpenCV and torch.

    .venv/bin/python bench/camera_cost.py [--video samples/right_hand_office.mp4] [--json out.json]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "right_hand_office.mp4"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", default=str(SAMPLE))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    from unihand.camera.engine import BackgroundTracker, solve_camera
    from unihand.video.decode import open_video
    from unihand.video.detect import HandDetector
    from unihand.video.intrinsics import resolve_intrinsics

    src = open_video(args.video)
    K, _ = resolve_intrinsics(src.info.width, src.info.height)
    det = HandDetector(max_hands=2)
    paths = {"auto (probe)": BackgroundTracker(K, src.info.image_size, probe=True),
             "estimate (full tracker)": BackgroundTracker(K, src.info.image_size)}
    t = {"decode": 0.0, "detect": 0.0}
    n = 0
    frames = src.frames()
    while True:
        t0 = time.perf_counter()
        item = next(frames, None)
        t["decode"] += time.perf_counter() - t0
        if item is None:
            break
        t0 = time.perf_counter()
        hands = [d.keypoints for d in det(item[1])]
        t["detect"] += time.perf_counter() - t0
        for tr in paths.values():
            tr.add(item[1], hands)
        n += 1
    det.close()
    out = {"video": str(args.video), "frames": n, "decode_ms": 1000 * t["decode"] / n,
           "detect_ms": 1000 * t["detect"] / n, "paths": {}}
    print(f"{Path(args.video).name}: {n} frames; decode {out['decode_ms']:.2f} ms/frame, "
          f"MediaPipe {out['detect_ms']:.2f} ms/frame")
    for name, tr in paths.items():
        t0 = time.perf_counter()
        est = solve_camera(tr, "auto" if name.startswith("auto") else "estimate")
        back = time.perf_counter() - t0
        row = {"front_ms": 1000 * tr.seconds / n, "back_ms": 1000 * back / n,
               "total_ms": 1000 * (tr.seconds + back) / n, "method": est.method,
               "background_motion_px": est.stats.get("background_motion_px"), "probe": est.stats.get("probe"),
               "rotation_max_deg": float(est.rotation_deg().max())}
        row["vs_detector"] = row["total_ms"] / out["detect_ms"]
        out["paths"][name] = row
        print(f"  camera {name}: {row['total_ms']:.2f} ms/frame (front {row['front_ms']:.2f}, back {row['back_ms']:.2f}), "
              f"{100 * row['vs_detector']:.1f} % of the detector; {est.method}, background "
              f"{row['background_motion_px']} px, rotation up to {row['rotation_max_deg']:.2f} deg")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
