"""Gap infilling on real hand motion, against linear interpolation and slerp, in one run.

The real motion: MediaPipe's 3D hand (world landmarks) over the whole real sample video, placed in the
camera frame by ``cv2.solvePnP`` on its 2D landmarks, Savitzky-Golay smoothed (window 9, order 2)
and fitted by the hand model (3D keypoints on every frame; 3.7 mm from the landmarks), so the truth is
a valid hand moving as the real one did; cut into 12 clips of 48 frames. In each clip a centred gap of
8, 16 or 32 frames: in 3D keypoints against linear interpolation of the keypoints, in MANO parameters
against slerp of the rotations and lerp of the translation; MPJPE inside the gap (mm), mean over the
clips and the number of clips where UniHand is worse than the baseline. Rows: UniHand refined
(default), the same without the second solve from the gap's interpolation (the former gap handling),
the pure sample.

    .venv/bin/python bench/infill_real.py [--video PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from unihand.data.io import Conditions
from unihand.eval.baselines import interpolate, pnp_world_landmarks, savgol_smooth
from unihand.eval.metrics import mpjpe
from unihand.hand import fk_numpy
from unihand.pipeline import UniHandPipeline
from unihand.refine.objective import RefineConfig
from unihand.refine.refiner import Refiner
from unihand.video.decode import open_video
from unihand.video.detect import HandDetector
from unihand.video.estimate import detect_video
from unihand.video.intrinsics import resolve_intrinsics
from unihand.video.track import track_hands

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "right_hand_office.mp4"
GAPS = (8, 16, 32)
CLIP = 48


def lerp(x: np.ndarray, known: np.ndarray) -> np.ndarray:
    t = np.arange(len(x))
    flat = x.reshape(len(x), -1)
    return np.stack([np.interp(t, t[known], flat[known, k]) for k in range(flat.shape[1])], 1).reshape(x.shape)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=str(SAMPLE))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    source = open_video(args.video)
    with HandDetector(max_hands=1) as detector:
        detections, _ = detect_video(source, detector, progress=False)
    track = track_hands(detections, sides=("right",))["right"]
    K, _ = resolve_intrinsics(source.info.width, source.info.height, None, None)
    real = savgol_smooth(pnp_world_landmarks(track.world, track.keypoints, K), 9, 2).astype(np.float32)
    n = (len(real) // CLIP) * CLIP
    pipe = UniHandPipeline.from_pretrained()
    base = dict(K=np.asarray(K, np.float32), image_size=np.array(source.info.image_size), fps=source.info.fps)
    fitted = pipe(Conditions(kp3d=real[:n], kp3d_mask=np.ones((n, 21), bool), **base)).motions[0]
    fit_err = mpjpe(fitted.joints, real[:n])
    hand = pipe.hand_model(True)
    one_solve = UniHandPipeline(pipe.model, pipe.scheduler, pipe.hand_model,
                                Refiner(pipe.refiner.hand, RefineConfig(gap_restart=False)))
    rows: dict[str, list[float]] = {}
    for a in range(0, n, CLIP):
        gt, mano = fitted.joints[a:a + CLIP], fitted.mano()[a:a + CLIP]
        for g in GAPS:
            known = np.ones(CLIP, bool)
            known[(CLIP - g) // 2:(CLIP - g) // 2 + g] = False
            inside = ~known
            conds = {"3d": Conditions(kp3d=gt, kp3d_mask=known, **base), "mano": Conditions(mano=mano, mano_mask=known, **base)}
            for mod, cond in conds.items():
                for name, p, refine in (("UniHand refined", pipe, True), ("one solve (former)", one_solve, True),
                                        ("pure sample", pipe, False)):
                    joints = p(cond, generator=torch.Generator().manual_seed(a), refine=refine).motions[0].joints
                    rows.setdefault(f"{mod} {g}: {name}", []).append(mpjpe(joints[inside], gt[inside]))
            rows.setdefault(f"3d {g}: linear interpolation", []).append(mpjpe(lerp(gt, known)[inside], gt[inside]))
            slerp = fk_numpy(hand, interpolate(mano, known))[0]
            rows.setdefault(f"mano {g}: slerp + lerp", []).append(mpjpe(slerp[inside], gt[inside]))
    out: dict = {"video": args.video, "clips": n // CLIP, "fit_to_landmarks_mm": fit_err, "rows": {}}
    print(f"real motion: {n // CLIP} clips of {CLIP} frames; the hand fitted to the landmarks at {fit_err:.2f} mm")
    for mod, baseline in (("3d", "linear interpolation"), ("mano", "slerp + lerp")):
        for g in GAPS:
            ref = np.array(rows[f"{mod} {g}: {baseline}"])
            for name in ("UniHand refined", "one solve (former)", "pure sample", baseline):
                v = np.array(rows[f"{mod} {g}: {name}"])
                worse = int((v > ref).sum()) if name != baseline else None
                out["rows"][f"{mod} {g}: {name}"] = {"mean_mm": float(v.mean()), "max_mm": float(v.max()), "worse_clips": worse}
                note = "" if worse is None else f"  worse than {baseline} on {worse}/{len(v)} clips"
                print(f"  {mod} gap {g:>2}: {name:<22} {v.mean():6.2f} mm (max {v.max():5.1f}){note}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
