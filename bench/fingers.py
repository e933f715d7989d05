"""Folded single fingers and fast open/close transitions on held-out synthetic sets, in one run.

Two test activities of the synthetic world (outside its training mix): ``single_fingers`` (one or
two fingers folded, or the ring finger onto the thumb, while the others stay open) and ``snap`` (a
fist opening and closing within 2-4 frames), seeds 1100 and 1101, 48 frames, both hands, static and
moving cameras (their true poses given). The conditions are the synthetic detector's 2D keypoints
and its simulated 3D hand (``kp3d_hand``: PA-MPJPE about 12 mm, as MediaPipe's world landmarks).

Rows: UniHand refined (default), the 2D keypoints alone, the former refinement (2D only, fixed 1 cm
kernel, former smoothness scales), the pure sample; and the per-frame baseline built from the same
detector output (its 3D hand placed by ``cv2.solvePnP`` on its 2D keypoints, frame by frame).
Columns: PA-MPJPE and fingertip error after the same per-frame alignment (mm, over the frames the
baseline has); for ``snap`` also the lag of each opening and closing the detector saw (frames
between the truth's and the estimate's crossing of mid-openness: mean / max; the per-frame baseline
has no lag of its own).

    .venv/bin/python bench/fingers.py [--num 24] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from unihand.data.io import Conditions
from unihand.data.synthetic.world import TEST_SEED, SynthConfig, SyntheticWorld
from unihand.geometry.alignment import procrustes_align
from unihand.pipeline import UniHandPipeline
from unihand.refine.objective import RefineConfig
from unihand.refine.refiner import Refiner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_sample import FORMER  # noqa: E402

TIPS = [4, 8, 12, 16, 20]
SETS = {"single_fingers": TEST_SEED + 100, "snap": TEST_SEED + 101}


def conditions(s, with_3d: bool = True) -> Conditions:
    c = s.conditions
    return Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask, kp2d_conf=c.kp2d_conf, K=c.K, image_size=c.image_size,
                      fps=c.fps, is_right=c.is_right, kp3d_hand=c.kp3d_hand if with_3d else None,
                      kp3d_hand_mask=c.kp3d_hand_mask if with_3d else None)


def per_frame_pnp(s) -> np.ndarray:
    """(N, 21, 3) the detector's 3D hand placed on its 2D keypoints frame by frame (camera frame; NaN where
    the detector has fewer than 6 keypoints)."""
    c = s.conditions
    out = np.full((s.num_frames, 21, 3), np.nan)
    px = c.kp2d * c.image_size
    for i in np.flatnonzero((c.kp2d_mask.sum(1) >= 6) & c.kp3d_hand_mask):
        v = c.kp2d_mask[i]
        obj = c.kp3d_hand[i].astype(np.float64)
        ok, r, t = cv2.solvePnP(obj[v], px[i, v].astype(np.float64), c.K.astype(np.float64), None,
                                flags=cv2.SOLVEPNP_SQPNP)
        if ok:
            out[i] = obj @ cv2.Rodrigues(r)[0].T + t[:, 0]
    return out


def errors(est_cam: np.ndarray, truth_cam: np.ndarray, frames: np.ndarray) -> tuple[float, float]:
    """PA-MPJPE and PA fingertip error (mm) over ``frames``."""
    al, _ = procrustes_align(est_cam[frames].astype(np.float64), truth_cam[frames].astype(np.float64))
    e = 1000 * np.linalg.norm(al - truth_cam[frames], axis=-1)
    return float(e.mean()), float(e[:, TIPS].mean())


def to_camera(joints: np.ndarray, T: np.ndarray) -> np.ndarray:
    Tc = np.linalg.inv(T.astype(np.float64))
    return np.einsum("nij,nkj->nki", Tc[:, :3, :3], joints) + Tc[:, None, :3, 3]


def lags(truth: np.ndarray, est: np.ndarray, seen: np.ndarray) -> list[float]:
    """Frames between the truth's and the estimate's crossings of mid-openness, at transitions the detector saw."""
    o_t, o_e = (np.linalg.norm(j[:, [8, 12, 16, 20]] - j[:, :1], axis=-1).mean(1) for j in (truth, est))
    mid = 0.5 * (o_t.min() + o_t.max())

    def cross(x: np.ndarray) -> np.ndarray:
        i = np.flatnonzero(np.diff(np.sign(x - mid)) != 0)
        return i + (mid - x[i]) / (x[i + 1] - x[i])

    t_c, e_c = cross(o_t), cross(o_e)
    out = []
    for t in t_c:
        f = int(round(t))
        if seen[max(f - 2, 0):f + 3].all():
            out.append(float(np.abs(e_c - t).min()) if e_c.size else float("inf"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num", type=int, default=24)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pipe = UniHandPipeline.from_pretrained()
    variants = {
        "UniHand refined (2D + detector 3D)": (pipe, True, True),
        "detector 3D as start only (no 3D term)": (UniHandPipeline(pipe.model, pipe.scheduler, pipe.hand_model, Refiner(
            pipe.refiner.hand, RefineConfig(sigma_hand3d=float("inf")))), True, True),
        "UniHand refined, 2D only": (pipe, False, True),
        "former refinement (2D only)": (UniHandPipeline(pipe.model, pipe.scheduler, pipe.hand_model,
                                                        Refiner(pipe.refiner.hand, RefineConfig(**FORMER))), False, True),
        "UniHand pure sample (refine off)": (pipe, True, False),
    }
    out: dict = {}
    for activity, seed in SETS.items():
        seqs = SyntheticWorld(seed, SynthConfig(activity=activity)).sequences(list(range(args.num)))
        rows: dict[str, dict[str, list[float]]] = {}
        for s in seqs:
            T, truth = s.motion.extra["T_cano_from_cam"], s.joints_cam
            base = per_frame_pnp(s)
            frames = np.isfinite(base[:, 0, 0])
            if frames.sum() < 2:
                continue
            seen = s.conditions.kp2d_mask.sum(1) >= 6
            for name, (p, with_3d, refine) in variants.items():
                m = p(conditions(s, with_3d), generator=torch.Generator().manual_seed(s.index), camera_poses=T,
                      refine=refine).motions[0]
                est = to_camera(m.joints, T)
                pa, tip = errors(est, truth, frames)
                r = rows.setdefault(name, {"pa": [], "tip": [], "lag": []})
                r["pa"].append(pa)
                r["tip"].append(tip)
                if activity == "snap":
                    r["lag"] += lags(truth, est, seen)
            pa, tip = errors(base, truth, frames)
            r = rows.setdefault("per-frame PnP (detector 3D on its 2D)", {"pa": [], "tip": [], "lag": []})
            r["pa"].append(pa)
            r["tip"].append(tip)
        print(f"{activity} (seed {seed}, {len(seqs)} sequences)")
        out[activity] = {}
        for name, r in rows.items():
            lag = [x for x in r["lag"] if np.isfinite(x)]
            res = {"pa_mpjpe_mm": float(np.mean(r["pa"])), "tip_mm": float(np.mean(r["tip"]))}
            if activity == "snap" and r["lag"]:
                res.update(lag_mean=float(np.mean(lag)) if lag else None, lag_max=float(np.max(lag)) if lag else None,
                           transitions=len(r["lag"]))
            out[activity][name] = res
            extra = f"  lag mean {res['lag_mean']:.2f} max {res['lag_max']:.2f} ({res['transitions']})" if "lag_max" in res else ""
            print(f"  {name:<40} PA-MPJPE {res['pa_mpjpe_mm']:6.2f}  tips {res['tip_mm']:6.2f}{extra}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
