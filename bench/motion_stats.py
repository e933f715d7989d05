"""Statistics of the synthetic hand motion next to published hand kinematics.

Usage::

    .venv/bin/python bench/motion_stats.py [--sequences 500] [--seed 0]

Samples ``--sequences`` sequences of the default synthetic world (48 frames at 30 fps, every
activity) for ranges of motion, DIP/PIP coupling, wrist speeds and velocity synergies, and as many
whole reach-to-grasp episodes (12 s at 120 Hz, from :mod:`unihand.data.synthetic.motion`) for the
transport's velocity profile, the grip aperture and postural synergies; prints one table, each
row next to the published value and its source (docs/design.md §12 lists the references).
Angles are the generator's anatomical angles (:mod:`unihand.hand.anatomy`); the "wrist" rows are
the hand's orientation relative to the window's first frame about its own axes (forearm and wrist
together: the generator has no forearm).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from unihand.data.synthetic import SyntheticWorld
from unihand.data.synthetic.motion import (
    DIP, MCP, PIP, aperture, sample_finger_motion, sample_wrist_motion,
)
from unihand.hand import hand_pose_to_angles

#: The 16 angles of the synergy analyses (like Santello et al.'s 15 glove angles): MCP and PIP
#: flexion of the four fingers, index/ring/little MCP abduction, thumb CMC (3), MCP and IP flexion.
_SYNERGY_ANGLES = ([(j, 0) for j in MCP] + [(j, 0) for j in PIP] + [(0, 1), (9, 1), (6, 1)]
                   + [(12, 0), (12, 1), (12, 2), (13, 0), (14, 0)])
_K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
_SIZE = np.array([640, 480])


def _pct(x: np.ndarray, q: tuple[float, ...]) -> str:
    return " / ".join(f"{v:.0f}" for v in np.percentile(x, q))


def _explained(x: np.ndarray) -> np.ndarray:
    """Cumulative fraction of variance explained by the principal components of rows ``x``."""
    s = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2
    return np.cumsum(s) / s.sum()


def world_stats(seed: int, count: int) -> dict[str, np.ndarray]:
    """Angles (deg), wrist speeds and excursions of ``count`` default world sequences."""
    world = SyntheticWorld(seed)
    angles, dips, peak, excursion, vel = [], [], [], [], []
    for lo in range(0, count, 50):
        for s in world.sequences(range(lo, min(lo + 50, count))):
            a = np.rad2deg(hand_pose_to_angles(s.motion.hand_pose.astype(np.float64), is_right=s.is_right))
            angles.append(a)
            vel.append(np.diff(np.stack([a[:, j, k] for j, k in _SYNERGY_ANGLES], -1), axis=0))
            wrist = s.motion.joints[:, 0].astype(np.float64)
            peak.append(np.linalg.norm(np.diff(wrist, axis=0), axis=-1).max() * s.motion.fps)
            R = Rotation.from_rotvec(s.motion.global_orient.astype(np.float64))
            rel = (R[0].inv() * R).as_rotvec()  # about the first frame's hand axes
            excursion.append(np.rad2deg(rel.max(0) - rel.min(0)))
            dips.append((a[:, PIP, 0], a[:, DIP, 0]))
    return dict(angles=np.concatenate(angles), peak=np.array(peak), excursion=np.array(excursion),
                vel=np.concatenate(vel), pip=np.concatenate([p for p, _ in dips]),
                dip=np.concatenate([d for _, d in dips]))


def episode_stats(seed: int, count: int) -> dict[str, np.ndarray]:
    """Transport, aperture and grip statistics of ``count`` whole grasp episodes."""
    t = np.arange(0.0, 12.0, 1.0 / 120.0)
    out: dict[str, list] = {k: [] for k in ("t_peak", "peak", "shape_ratio", "peaks", "t_mga", "mga", "size",
                                            "grip", "hold", "excursion", "palm_peak")}
    for i in range(count):
        ss = np.random.SeedSequence([seed, 77, i]).spawn(2)
        f = sample_finger_motion(np.random.default_rng(ss[0]), t, "grasp")
        ep = f.episode
        w = sample_wrist_motion(np.random.default_rng(ss[1]), t, _K, _SIZE, activity="grasp", episode=ep)
        reach = (t >= ep.start) & (t <= ep.contact)
        speed = np.linalg.norm(np.gradient(w.transport, t, axis=0), axis=-1)[reach]
        palm = np.linalg.norm(np.gradient(w.center, t, axis=0), axis=-1)[reach]
        k = int(speed.argmax())
        out["t_peak"].append((t[reach][k] - ep.start) / ep.duration)
        out["peak"].append(speed[k])
        out["palm_peak"].append(palm.max())
        out["shape_ratio"].append(speed[k] / (np.linalg.norm(w.transport[0]) / ep.duration))  # approach distance
        rising, falling = np.diff(speed[:k + 1]), np.diff(speed[k:])
        out["peaks"].append(bool((rising >= -1e-9).all() and (falling <= 1e-9).all()))
        ap = aperture(f.angles[reach])
        out["t_mga"].append((t[reach][ap.argmax()] - ep.start) / ep.duration)
        out["mga"].append(ap.max())
        out["size"].append(ep.size)
        i_hold = int(np.searchsorted(t, ep.contact + 0.1))
        out["grip"].append(np.rad2deg([f.angles[i_hold, j, c] for j, c in _SYNERGY_ANGLES]))
        held = (t > ep.contact + 0.1) & (t < ep.release)
        out["hold"].append(np.rad2deg(f.angles[held].mean(0)))
        R = Rotation.from_matrix(w.rotation)
        rel = (R[0].inv() * R).as_rotvec()  # body axes
        out["excursion"].append(np.rad2deg(rel.max(0) - rel.min(0)))
    return {k: np.array(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=500, help="world sequences and grasp episodes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    w = world_stats(args.seed, args.sequences)
    e = episode_stats(args.seed, args.sequences)
    a, hold = w["angles"], e["hold"]
    q, arc = (1, 50, 99), (50, 95, 100)
    flex = {name: a[:, rows, 0].ravel() for name, rows in (("MCP", MCP), ("PIP", PIP), ("DIP", DIP))}
    held = {name: hold[:, rows, 0].mean() for name, rows in (("MCP", MCP), ("PIP", PIP), ("DIP", DIP))}
    flexed = w["pip"] >= 20.0
    ratio = w["dip"][flexed] / w["pip"][flexed]
    slope, intercept = np.polyfit(100 * e["size"], 100 * e["mga"], 1)
    grip_pc = _explained(e["grip"])
    vel_pc = _explained(w["vel"])
    ex_w, ex_e = w["excursion"], e["excursion"]
    rows = [
        ("Ranges of motion (degrees; p1 / p50 / p99 of all frames; mean while holding an object)", "", ""),
        ("finger MCP flexion", f"{_pct(flex['MCP'], q)}; hold {held['MCP']:.0f}",
         "AAOS 0-90 (hyperext. 45); functional 19-71 [Bain 2015]; ADL mean 61 [Hume 1990]"),
        ("finger PIP flexion", f"{_pct(flex['PIP'], q)}; hold {held['PIP']:.0f}",
         "AAOS 0-100; functional 23-87 [Bain 2015]; ADL mean 60 [Hume 1990]"),
        ("finger DIP flexion", f"{_pct(flex['DIP'], q)}; hold {held['DIP']:.0f}",
         "AAOS 0-90; functional 10-64 [Bain 2015]; ADL mean 39 [Hume 1990]"),
        ("thumb MCP flexion", f"{_pct(a[:, 13, 0], q)}; hold {hold[:, 13, 0].mean():.0f}",
         "AAOS 0-50; ADL mean 21 [Hume 1990]"),
        ("thumb IP flexion", f"{_pct(a[:, 14, 0], q)}; hold {hold[:, 14, 0].mean():.0f}",
         "AAOS 0-80; ADL mean 18 [Hume 1990]"),
        ("thumb CMC flexion / abduction", f"{_pct(a[:, 12, 0], q)} | {_pct(a[:, 12, 1], q)}",
         "AAOS CMC flexion 15, extension 20, abduction 70 (clinical axes, not these)"),
        ("wrist arc per window: pro/supination", f"{_pct(ex_w[:, 0], arc)} (p50/p95/max)",
         "AAOS 160 (80 + 80); ADL 100 (50 + 50) [Morrey 1981]"),
        ("  flexion/extension | deviation", f"{_pct(ex_w[:, 2], arc)} | {_pct(ex_w[:, 1], arc)}",
         "AAOS 150 | 50; ADL 114 (54 + 60) | 57 (17 + 40) [Ryu 1991]"),
        ("wrist arc per grasp episode (same)", f"{_pct(ex_e[:, 0], arc)} | {_pct(ex_e[:, 2], arc)} | "
         f"{_pct(ex_e[:, 1], arc)}", "as above"),
        ("DIP-PIP coupling", "", ""),
        ("DIP/PIP ratio, frames with PIP >= 20", f"{np.median(ratio):.2f} (p5-p95 {np.percentile(ratio, 5):.2f}-"
         f"{np.percentile(ratio, 95):.2f})", "2/3 [Rijpkema & Girard 1991]; 0.70 FDP-driven [Nimbarte 2008]"),
        ("Speeds and velocity profile", "", ""),
        ("peak wrist speed per 48-frame window (m/s)", "p5/p50/p95/max " + " / ".join(
            f"{v:.2f}" for v in np.percentile(w["peak"], (5, 50, 95, 100))), "design: slow 0.1 to fast 1.5 reaches"),
        ("peak transport speed per reach (m/s)", "p5/p50/p95/max " + " / ".join(
            f"{v:.2f}" for v in np.percentile(e["peak"], (5, 50, 95, 100))),
         f"same; palm centre with sway: max {e['palm_peak'].max():.2f}"),
        ("time to peak velocity (% of reach)", f"{100 * e['t_peak'].mean():.0f} "
         f"({100 * e['t_peak'].min():.0f}-{100 * e['t_peak'].max():.0f})",
         "50 minimum jerk [Flash & Hogan 1985]; earlier with a long low-velocity phase [Jeannerod 1984]"),
        ("peak / mean speed", f"{e['shape_ratio'].mean():.2f} "
         f"({e['shape_ratio'].min():.2f}-{e['shape_ratio'].max():.2f})", "1.875 minimum jerk [Flash & Hogan 1985]"),
        ("single-peaked (bell) transports", f"{100 * e['peaks'].mean():.0f} %", "bell-shaped [Flash & Hogan 1985]"),
        ("Grip aperture (thumb-index tips)", "", ""),
        ("time of max aperture (% of reach)", f"{100 * e['t_mga'].mean():.0f} (p5-p95 "
         f"{100 * np.percentile(e['t_mga'], 5):.0f}-{100 * np.percentile(e['t_mga'], 95):.0f})",
         "about 60-80; closure from the low-velocity phase (~75) [Jeannerod 1984]"),
        ("max aperture vs object size (cm)", f"MGA = {intercept:.1f} + {slope:.2f} x size",
         "slope ~0.8 [Marteniuk 1990; review Smeets & Brenner 1999]"),
        ("Synergies (PCA, 16 angles)", "", ""),
        ("grip postures at contact: PC1 | PC1+2", f"{100 * grip_pc[0]:.0f} | {100 * grip_pc[1]:.0f} %",
         "PC1+2 > 80 % [Santello 1998]"),
        ("angular velocities, all frames: PC1 | PC1+2", f"{100 * vel_pc[0]:.0f} | {100 * vel_pc[1]:.0f} %",
         "PC1+2 ~60 % in daily life [Ingram 2008]"),
    ]
    width = max(len(r[0]) for r in rows if r[1]) + 2
    value = max(len(r[1]) for r in rows) + 2
    print(f"{args.sequences} world sequences (seed {args.seed}, 48 frames) and {args.sequences} grasp episodes\n")
    print(f"{'quantity':<{width}}{'synthetic':<{value}}published")
    for name, synth, pub in rows:
        print(f"\n{name}" if not synth else f"{name:<{width}}{synth:<{value}}{pub}")


if __name__ == "__main__":
    main()
