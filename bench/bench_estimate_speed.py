"""The whole ``unihand estimate`` process on the real sample against MediaPipe Hands alone, and where the
difference goes.

Each repeat runs, in turn, three processes as a user would (wall time from start to exit):

1. ``unihand estimate samples/right_hand_office.mp4 --hands right --no-render`` (the default refinement);
2. the same with ``--refine off`` (its generation stage minus this one's is the refinement);
3. MediaPipe Hands alone: a Python process that imports MediaPipe and OpenCV, decodes the same frames
   with OpenCV and runs ``mp.solutions.hands.Hands`` in video mode (``static_image_mode=False``), one
   hand (``max_num_hands=1``), the full landmark model, on each frame.

Medians of ``--repeats``; the estimate's stages come from its own ``timings:`` line, start-up is the
process's wall time minus those stages (interpreter, imports, argument checks, the summary).

    python bench/bench_estimate_speed.py [--repeats 3] [--video samples/right_hand_office.mp4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "right_hand_office.mp4"

MEDIAPIPE_ALONE = r"""
import json, sys, time
t0 = time.perf_counter()
import cv2
import mediapipe as mp
t_import = time.perf_counter() - t0
hands = mp.solutions.hands.Hands(static_image_mode=False, max_num_hands=1, model_complexity=1)
cap = cv2.VideoCapture(sys.argv[1])
decode = detect = 0.0
frames = found = 0
while True:
    t = time.perf_counter()
    ok, frame = cap.read()
    if not ok:
        break
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    decode += time.perf_counter() - t
    t = time.perf_counter()
    res = hands.process(rgb)
    detect += time.perf_counter() - t
    frames += 1
    found += bool(res.multi_hand_landmarks)
print(json.dumps({"import": t_import, "decode": decode, "detect": detect, "frames": frames, "found": found}))
"""


def run(argv: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return time.perf_counter() - t, done.stdout


def estimate_timings(stdout: str) -> dict[str, float]:
    """The ``timings: stage 1.23s, ...`` line ``unihand estimate`` prints."""
    line = next(l for l in stdout.splitlines() if l.startswith("timings: "))
    return {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+)s", line)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--video", type=Path, default=SAMPLE)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    script = Path(sys.executable).parent / "unihand"
    unihand = [str(script)] if script.exists() else [sys.executable, "-m", "unihand"]
    rows: dict[str, list] = {"estimate": [], "estimate_refine_off": [], "mediapipe": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = [*unihand, "estimate", str(args.video), "--hands", "right", "--no-render", "-o"]
        for rep in range(args.repeats):
            wall, out = run([*base, f"{tmp}/on"])
            rows["estimate"].append({"wall": wall, **estimate_timings(out)})
            wall, out = run([*base, f"{tmp}/off", "--refine", "off"])
            rows["estimate_refine_off"].append({"wall": wall, **estimate_timings(out)})
            wall, out = run([sys.executable, "-c", MEDIAPIPE_ALONE, str(args.video)])
            rows["mediapipe"].append({"wall": wall, **json.loads(out)})
            print(f"repeat {rep + 1}: estimate {rows['estimate'][-1]['wall']:.1f} s, refine off "
                  f"{rows['estimate_refine_off'][-1]['wall']:.1f} s, MediaPipe alone {wall:.1f} s", flush=True)
    med = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in rows.items()}
    est, off, mp = med["estimate"], med["estimate_refine_off"], med["mediapipe"]
    stages = {k: v for k, v in est.items() if k != "wall"}
    refinement = est["generate_right"] - off["generate_right"]
    breakdown = {
        "start-up (interpreter, imports, checks, summary)": est["wall"] - sum(stages.values()),
        "open video + intrinsics": stages.get("open", 0.0),
        "load model": stages.get("load_model", 0.0),
        "load detector (MediaPipe graph)": stages.get("load_detector", 0.0),
        "decode": stages.get("decode", 0.0),
        "detect (MediaPipe, one hand)": stages.get("detect", 0.0),
        "camera check (background tracking + decision)": stages.get("camera", 0.0),
        "track": stages.get("track", 0.0),
        "generation (10 DDIM steps per window)": off["generate_right"],
        "refinement": refinement,
        "write motion + summary": sum(v for k, v in stages.items() if k.startswith("write")),
    }
    print(f"\n{args.video.name}, {int(mp['frames'])} frames; medians of {args.repeats}")
    print(f"unihand estimate --hands right --no-render: {est['wall']:.1f} s")
    print(f"  with --refine off:                        {off['wall']:.1f} s")
    print(f"MediaPipe Hands alone (one hand, video mode): {mp['wall']:.1f} s (import {mp['import']:.1f}, "
          f"decode {mp['decode']:.1f}, detect {mp['detect']:.1f}; hand on {int(mp['found'])} frames)")
    print(f"ratio: {est['wall'] / mp['wall']:.2f}x (refine off: {off['wall'] / mp['wall']:.2f}x)")
    print("where the estimate's time goes:")
    for k, v in breakdown.items():
        print(f"  {k:<50} {v:6.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "medians": med, "breakdown": breakdown}, indent=2))


if __name__ == "__main__":
    main()
