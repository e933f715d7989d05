"""3D trajectory plot of a hand motion (PNG, matplotlib's Agg backend, no display needed).

Left: the wrist path in 3D (camera frame of the first frame, shown with "up" up: x right,
z away from the camera, -y up), coloured by time, with the index fingertip path faint, the
hand skeleton drawn at a few instants and the camera at the origin; for a moving camera
(``camera_poses`` T_cano_from_cam (N, 4, 4)) the camera's path and its viewing direction at a few
instants. Right: wrist x, y, z against time, with the frames that were infilled (no detection)
shaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from unihand.data.windows import true_runs
from unihand.files import atomic_write
from unihand.hand.joints import OPENPOSE_PARENTS


def plot_trajectory(
    path: str | os.PathLike, joints: np.ndarray, fps: float = 30.0, infilled: np.ndarray | None = None,
    title: str = "", snapshots: int = 4, dpi: int = 110, camera_poses: np.ndarray | None = None,
    camera_valid: np.ndarray | None = None,
) -> Path:
    """Write the trajectory figure of ``joints`` (N, 21, 3) metres (canonical frame) to ``path``;
    ``camera_poses`` (N, 4, 4) T_cano_from_cam adds the camera's path; ``camera_valid`` (N,) bool marks
    the frames whose camera was not registered (crosses on the path, hatched in the time plots)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    joints = np.asarray(joints, dtype=np.float64)
    n = joints.shape[0]
    t = np.arange(n) / fps
    infilled = np.zeros(n, bool) if infilled is None else np.asarray(infilled, bool)
    unregistered = np.zeros(n, bool) if camera_valid is None else ~np.asarray(camera_valid, bool)

    def view(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return p[..., 0], p[..., 2], -p[..., 1]  # x right, depth, up

    fig = Figure(figsize=(12, 5.2), dpi=dpi)
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    ax = fig.add_subplot(1, 2, 1, projection="3d")
    wrist = joints[:, 0]
    tip = joints[:, 8]
    x, y, z = view(wrist)
    if n > 1:
        pts = np.stack([x, y, z], axis=-1)
        seg = np.stack([pts[:-1], pts[1:]], axis=1)
        lc = Line3DCollection(seg, cmap="viridis", linewidths=2.0)
        lc.set_array(t[:-1])
        ax.add_collection3d(lc)
        fig.colorbar(lc, ax=ax, shrink=0.6, pad=0.12, label="time (s)")
    tx, ty, tz = view(tip)
    ax.plot(tx, ty, tz, color="0.6", lw=0.8, alpha=0.7, label="index tip")
    if infilled.any():
        ax.scatter(x[infilled], y[infilled], z[infilled], s=8, c="red", depthshade=False, label="infilled frames")

    bones = []
    for k in np.unique(np.linspace(0, n - 1, min(snapshots, n)).round().astype(int)):
        q = np.stack(view(joints[k]), axis=-1)
        bones.extend((q[OPENPOSE_PARENTS[j]], q[j]) for j in range(1, 21))
    ax.add_collection3d(Line3DCollection(bones, colors="k", linewidths=0.8, alpha=0.6))
    ax.scatter([x[0]], [y[0]], [z[0]], s=30, c="green", label="start")
    allp = np.stack(view(joints.reshape(-1, 3)), -1)
    moving = camera_poses is not None and np.abs(np.asarray(camera_poses)[:, :3, :] - np.eye(4)[:3]).max() > 1e-6
    if moving:
        poses = np.asarray(camera_poses, np.float64)
        centre = np.stack(view(poses[:, :3, 3]), -1)
        ax.plot(*centre.T, color="C3", lw=1.5, label="camera path")
        if unregistered.any():
            ax.scatter(*centre[unregistered].T, marker="x", s=14, c="k", label="camera not registered")
        # viewing direction (the camera's +z) at a few instants, 5 cm long
        look = []
        for k in np.unique(np.linspace(0, n - 1, min(2 * snapshots, n)).round().astype(int)):
            tip_ = np.stack(view(poses[k, :3, 3] + 0.05 * poses[k, :3, 2]), -1)
            look.append((centre[k], tip_))
        ax.add_collection3d(Line3DCollection(look, colors="C3", linewidths=1.2))
        allp = np.concatenate([allp, centre])
    lo, hi = allp.min(0), allp.max(0)
    c, r = (lo + hi) / 2, max((hi - lo).max() / 2 * 1.1, 0.05)
    if np.all(np.abs(c) <= r):  # the first camera (origin) only when it falls inside the plotted box
        ax.scatter([0], [0], [0], marker="^", s=60, c="k", label="camera (frame 1)")
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] - r, c[1] + r)
    ax.set_zlim(c[2] - r, c[2] + r)
    from matplotlib.ticker import MaxNLocator

    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):  # few, small ticks: the labels then do not run into them
        axis.set_major_locator(MaxNLocator(4))
    ax.tick_params(labelsize=7, pad=1)
    ax.set_xlabel("x (m)", fontsize=8, labelpad=2)
    ax.set_ylabel("depth z (m)", fontsize=8, labelpad=2)
    ax.set_zlabel("up -y (m)", fontsize=8, labelpad=2)
    ax.view_init(elev=18, azim=-70)
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title("wrist path in the world (camera frame of frame 1)" if moving
                 else "wrist path in the camera frame of frame 1", fontsize=9)

    names = ("x", "y", "z")
    for k in range(3):
        a = fig.add_subplot(3, 2, 2 * (k + 1))
        a.plot(t, wrist[:, k], color=("C0", "C1", "C2")[k], lw=1.2)
        for s, e in true_runs(infilled):
            a.axvspan(t[s] - 0.5 / fps, t[min(e, n) - 1] + 0.5 / fps, color="red", alpha=0.15, lw=0)
        for s, e in true_runs(unregistered):
            a.axvspan(t[s] - 0.5 / fps, t[min(e, n) - 1] + 0.5 / fps, facecolor="none", edgecolor="0.4",
                      hatch="///", lw=0)
        a.set_ylabel(f"wrist {names[k]} (m)", fontsize=8)
        a.tick_params(labelsize=7)
        a.grid(alpha=0.3)
        if k == 2:
            a.set_xlabel("time (s); red = infilled" + ("; hatched = camera not registered" if unregistered.any() else ""),
                         fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.97, bottom=0.1, top=0.9, wspace=0.25, hspace=0.35)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")
