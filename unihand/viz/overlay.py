"""Overlay videos: the input frames with the detected 2D keypoints and the estimated 3D joints
reprojected, written as H.264 MP4 through imageio-ffmpeg (OpenCV cannot write H.264 here).

Legend drawn on every frame:

- small white dots: the 2D keypoints the detector returned (grey crosses where a joint was
  masked for low confidence);
- coloured skeleton (one colour per finger): the 3D joints of the output motion projected
  with the camera intrinsics;
- frames with no detection at all (infilled by the model) get a red border and an
  ``INFILLED`` banner, and their skeleton is drawn in dashes.

Rendering streams: frames are decoded again from the source, drawn and piped to ffmpeg one at
a time, and every hand's overlay is written in the same decoding pass.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unihand.hand.joints import OPENPOSE_PARENTS
from unihand.viz.video import H264Writer

#: One RGB colour per finger (thumb, index, middle, ring, little) for the reprojected skeleton.
FINGER_COLORS = np.array(
    [[255, 80, 80], [255, 190, 40], [80, 220, 80], [40, 170, 255], [200, 90, 255]], dtype=np.uint8
)
DETECTED_COLOR = (255, 255, 255)
MASKED_COLOR = (150, 150, 150)
INFILL_COLOR = (230, 40, 40)


def joint_finger(j: int) -> int:
    """Finger index 0..4 of OpenPose joint ``j`` (the wrist counts as the middle finger)."""
    return 2 if j == 0 else (j - 1) // 4


@dataclass
class OverlayTrack:
    """What to draw for one hand over the N frames of a clip (pixels of the source frames)."""

    joints_2d: np.ndarray  # (N, 21, 2) reprojected output joints
    detected_kp: np.ndarray | None = None  # (N, 21, 2) detector keypoints, NaN where none
    kp_mask: np.ndarray | None = None  # (N, 21) bool: joint used as a condition
    infilled: np.ndarray | None = None  # (N,) bool: no detection in the frame
    label: str = ""
    vertices_2d: np.ndarray | None = None  # (N, V, 2) reprojected mesh vertices (MANO only)
    vertex_depth: np.ndarray | None = None  # (N, V)
    faces: np.ndarray | None = None  # (F, 3)


def _dashed_line(img: np.ndarray, a: np.ndarray, b: np.ndarray, color: tuple, thickness: int, dash: float) -> None:
    import cv2

    length = float(np.linalg.norm(b - a))
    if not np.isfinite(length) or length < 1:
        return
    n = max(1, int(length / dash))
    for k in range(0, n, 2):
        p = a + (b - a) * (k / n)
        q = a + (b - a) * (min(k + 1, n) / n)
        cv2.line(img, tuple(int(v) for v in p), tuple(int(v) for v in q), color, thickness, cv2.LINE_AA)


def _draw_mesh(img: np.ndarray, v2d: np.ndarray, depth: np.ndarray, faces: np.ndarray, scale: float) -> None:
    """Flat-shaded mesh, painter's algorithm, blended at 50 %."""
    import cv2

    if not (np.all(np.isfinite(v2d)) and np.all(depth > 0)):
        return
    layer = img.copy()
    tri = v2d[faces] * scale  # (F, 3, 2)
    zf = depth[faces].mean(axis=1)
    # shade by the screen-space facing (a cheap Lambert on the projected normal's z)
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    for f in np.argsort(-zf):
        shade = 0.55 + 0.45 * min(1.0, abs(area[f]) / (np.abs(area).max() + 1e-9) * 4)
        color = tuple(int(c * shade) for c in (120, 180, 255))
        cv2.fillConvexPoly(layer, np.round(tri[f] * 16).astype(np.int32), color, cv2.LINE_AA, shift=4)
    cv2.addWeighted(layer, 0.5, img, 0.5, 0, dst=img)


def draw_hand(img: np.ndarray, track: OverlayTrack, t: int, scale: float = 1.0) -> np.ndarray:
    """Draw frame ``t`` of ``track`` onto ``img`` (RGB uint8, already resized by ``scale``)."""
    import cv2

    th = max(1, int(round(2 * max(img.shape[:2]) / 720)))
    r_det = max(2, th + 1)
    infilled = bool(track.infilled[t]) if track.infilled is not None else False
    if track.vertices_2d is not None and track.faces is not None and track.vertex_depth is not None:
        _draw_mesh(img, track.vertices_2d[t], track.vertex_depth[t], track.faces, scale)
    j2d = track.joints_2d[t] * scale
    if np.all(np.isfinite(j2d)):
        for j in range(1, 21):
            p = OPENPOSE_PARENTS[j]
            color = tuple(int(c) for c in FINGER_COLORS[joint_finger(j)])
            if infilled:
                _dashed_line(img, j2d[p], j2d[j], color, th + 1, dash=6 * th)
            else:
                cv2.line(img, tuple(int(v) for v in j2d[p]), tuple(int(v) for v in j2d[j]), color, th + 1, cv2.LINE_AA)
        for j in range(21):
            color = tuple(int(c) for c in FINGER_COLORS[joint_finger(j)])
            cv2.circle(img, tuple(int(v) for v in j2d[j]), th + 2, color, -1, cv2.LINE_AA)
    if track.detected_kp is not None:
        kp = track.detected_kp[t] * scale
        for j in range(21):
            if not np.all(np.isfinite(kp[j])):
                continue
            c = tuple(int(v) for v in kp[j])
            used = track.kp_mask is None or bool(track.kp_mask[t, j])
            if used:
                cv2.circle(img, c, r_det, DETECTED_COLOR, -1, cv2.LINE_AA)
                cv2.circle(img, c, r_det, (0, 0, 0), 1, cv2.LINE_AA)
            else:
                d = th + 2
                cv2.line(img, (c[0] - d, c[1] - d), (c[0] + d, c[1] + d), MASKED_COLOR, th, cv2.LINE_AA)
                cv2.line(img, (c[0] - d, c[1] + d), (c[0] + d, c[1] - d), MASKED_COLOR, th, cv2.LINE_AA)
    return img


def draw_legend(img: np.ndarray, frame_index: int, infilled: bool, label: str = "") -> np.ndarray:
    """Frame number, hand label and a legend in the top-left corner; red border when infilled."""
    import cv2

    h, w = img.shape[:2]
    s = max(max(h, w) / 1280, 0.6)  # legible on small frames too
    font = cv2.FONT_HERSHEY_SIMPLEX
    fs, th = 0.75 * s, max(1, int(round(1.5 * s)))
    x0, y, dy = int(14 * s), int(30 * s), int(28 * s)

    # a translucent panel behind the legend keeps it legible (an outline drawn with a thicker
    # stroke would be wider than the text: OpenCV 5 renders these fonts with weight-dependent widths)
    panel_w = x0 + int(217 * s) + cv2.getTextSize("3D output, reprojected", font, fs, th)[0][0] + int(10 * s)
    y1 = min(h, y + 2 * dy + int(12 * s))
    x1 = min(w, panel_w)
    roi = img[0:y1, 0:x1]
    roi[:] = (roi.astype(np.float32) * 0.45).astype(np.uint8)

    def text(t: str, x: int, yy: int, scale: float = fs) -> None:
        cv2.putText(img, t, (x, yy), font, scale, (255, 255, 255), th, cv2.LINE_AA)

    text(f"frame {frame_index}" + (f"   {label} hand" if label else ""), x0, y)
    r = max(2, int(4 * s))
    cy = y + dy - int(6 * s)
    cv2.circle(img, (x0 + r, cy), r, DETECTED_COLOR, -1, cv2.LINE_AA)
    cv2.circle(img, (x0 + r, cy), r, (0, 0, 0), 1, cv2.LINE_AA)
    text("detected 2D", x0 + int(18 * s), y + dy)
    x1 = x0 + int(175 * s)
    for k, c in enumerate(FINGER_COLORS):
        cv2.line(img, (x1 + int(7 * s) * k, cy + int(5 * s)), (x1 + int(7 * s) * k + int(5 * s), cy - int(5 * s)),
                 tuple(int(v) for v in c), th + 1, cv2.LINE_AA)
    text("3D output, reprojected", x1 + int(42 * s), y + dy)
    d = max(2, int(5 * s))
    cy2 = cy + dy
    cv2.line(img, (x0, cy2 - d), (x0 + 2 * d, cy2 + d), MASKED_COLOR, th, cv2.LINE_AA)
    cv2.line(img, (x0, cy2 + d), (x0 + 2 * d, cy2 - d), MASKED_COLOR, th, cv2.LINE_AA)
    text("low confidence, masked", x0 + int(18 * s), y + 2 * dy)
    if infilled:
        b = max(3, int(6 * s))
        cv2.rectangle(img, (0, 0), (w - 1, h - 1), INFILL_COLOR, b)
        msg = "INFILLED: no detection"
        (tw, tht), _ = cv2.getTextSize(msg, font, fs * 1.1, th)
        xa, ya = w - tw - int(24 * s), int(16 * s)
        cv2.rectangle(img, (xa - 8, ya - 4), (xa + tw + 8, ya + tht + 10), INFILL_COLOR, -1)
        cv2.putText(img, msg, (xa, ya + tht + 2), font, fs * 1.1, (255, 255, 255), th, cv2.LINE_AA)
    return img


def output_size(width: int, height: int, max_side: int = 1280) -> tuple[int, int, float]:
    """Even (W, H) no larger than ``max_side`` on the longer side, and the scale used."""
    s = min(1.0, max_side / max(width, height))
    w, h = int(round(width * s / 2)) * 2, int(round(height * s / 2)) * 2
    return max(w, 2), max(h, 2), s


def render_overlays(
    frames: Iterable[np.ndarray], outputs: dict[str | Path, OverlayTrack], fps: float,
    frame_offset: int = 0, max_side: int = 1280, progress: Callable[[], None] | None = None,
) -> list[Path]:
    """Write one overlay video per entry of ``outputs`` in a single pass over ``frames``.

    ``frames`` yields the N RGB frames the tracks refer to (e.g. a :class:`VideoSource`);
    ``frame_offset`` is added to the frame number printed on each frame; ``progress`` is called
    once per frame. Files are rendered to temporary names beside their targets and renamed only
    once every one of them is complete; on any error none is left behind.
    """
    import cv2

    paths = [Path(p) for p in outputs]
    tracks = list(outputs.values())
    tmps: list[Path] = []
    writers: list[H264Writer] = []
    try:
        for p in paths:
            p.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".mp4")
            os.close(fd)
            tmps.append(Path(tmp))
        scale = 1.0
        for t, frame in enumerate(frames):
            if not writers:
                w, h, scale = output_size(frame.shape[1], frame.shape[0], max_side)
                writers = [H264Writer(tmp, (w, h), fps, threads=None) for tmp in tmps]  # an output: speed
            base = frame if scale == 1.0 else cv2.resize(frame, writers[0].size, interpolation=cv2.INTER_AREA)
            for tr, wr in zip(tracks, writers):
                if t >= tr.joints_2d.shape[0]:
                    continue
                img = base.copy()
                draw_hand(img, tr, t, scale)
                infilled = bool(tr.infilled[t]) if tr.infilled is not None else False
                draw_legend(img, frame_offset + t, infilled, tr.label)
                wr.write(img)
            if progress is not None:
                progress()
        if not writers:
            raise ValueError("no frame to render")
        while writers:
            writers.pop().close()
        for tmp, p in zip(tmps, paths):
            os.replace(tmp, p)
        tmps = []
    finally:
        for wr in writers:
            with contextlib.suppress(Exception):
                wr.close()
        for tmp in tmps:
            with contextlib.suppress(OSError):
                tmp.unlink()
    return paths
