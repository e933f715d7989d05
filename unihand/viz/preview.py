"""Contact sheet: a grid of rendered frames with their 2D keypoints and skeleton drawn on top.

Legend (also printed in the sheet's header):

- thin white skeleton: the ground-truth joints projected into the frame;
- green dots: observed 2D keypoints (the noisy detections, ``kp2d_mask`` on);
- red rings: joints with no observation (occluded, outside the image, or in a missing frame),
  drawn at their ground-truth position;
- tile caption: sequence, frame, hand side, occlusion ratio (a tile with no joints drawn, e.g.
  the first of a row in ``unihand synth --preview``, shows the frame as rendered).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from unihand.files import atomic_write
from unihand.hand.joints import OPENPOSE_PARENTS

OBSERVED_COLOR = (40, 230, 60)
MASKED_COLOR = (255, 40, 40)
SKELETON_COLOR = (255, 255, 255)
_SHIFT = 4


@dataclass
class PreviewTile:
    """One frame of the sheet; keypoints are in the frame's pixels."""

    image: np.ndarray  # (S, S, 3) uint8 RGB
    joints_2d: np.ndarray  # (21, 2) ground-truth projection
    kp2d: np.ndarray  # (21, 2) observed keypoints (meaningful where mask)
    mask: np.ndarray  # (21,) bool
    caption: str = ""


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]) * (1 << _SHIFT))), int(round(float(p[1]) * (1 << _SHIFT)))


def draw_keypoints(image: np.ndarray, joints_2d: np.ndarray, kp2d: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``image`` with the skeleton (GT) and keypoints (observed / masked) drawn on it."""
    img = np.ascontiguousarray(image).copy()
    r = max(1.5, img.shape[0] / 150.0)
    for j in range(1, 21):
        a, b = joints_2d[OPENPOSE_PARENTS[j]], joints_2d[j]
        if np.all(np.isfinite([a, b])):
            cv2.line(img, _pt(a), _pt(b), SKELETON_COLOR, 1, cv2.LINE_AA, _SHIFT)
    for j in range(21):
        if mask[j]:
            cv2.circle(img, _pt(kp2d[j]), int(r * (1 << _SHIFT)), OBSERVED_COLOR, -1, cv2.LINE_AA, _SHIFT)
        elif np.all(np.isfinite(joints_2d[j])):
            cv2.circle(img, _pt(joints_2d[j]), int(r * (1 << _SHIFT)), MASKED_COLOR, 1, cv2.LINE_AA, _SHIFT)
    return img


def _caption(img: np.ndarray, text: str) -> None:
    if not text:
        return
    scale = max(0.3, img.shape[0] / 560.0)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(img, (0, img.shape[0] - h - base - 4), (w + 4, img.shape[0]), (0, 0, 0), -1)
    cv2.putText(img, text, (2, img.shape[0] - base - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def contact_sheet(rows: list[list[PreviewTile]], title: str = "", gap: int = 4) -> np.ndarray:
    """(H, W, 3) uint8 RGB grid: one row per list, tiles drawn with :func:`draw_keypoints`."""
    if not rows or not rows[0]:
        raise ValueError("contact_sheet needs at least one tile")
    s = rows[0][0].image.shape[0]
    cols = max(len(r) for r in rows)
    header = 28 if title else 0
    sheet = np.full((header + len(rows) * (s + gap) + gap, cols * (s + gap) + gap, 3), 32, dtype=np.uint8)
    if title:
        cv2.putText(sheet, title, (gap, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (235, 235, 235), 1, cv2.LINE_AA)
    for i, row in enumerate(rows):
        for k, tile in enumerate(row):
            img = draw_keypoints(tile.image, tile.joints_2d, tile.kp2d, tile.mask)
            _caption(img, tile.caption)
            y, x = header + gap + i * (s + gap), gap + k * (s + gap)
            sheet[y:y + s, x:x + s] = img
    return sheet


LEGEND = "green: observed 2D keypoint | red ring: masked (occluded / out of image / missing frame) | white: GT skeleton"


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Atomically write an RGB uint8 image as PNG."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(buf.tobytes()), suffix=".png")


def sequence_tiles(frames: np.ndarray, joints_2d: np.ndarray, kp2d: np.ndarray, mask: np.ndarray,
                   picks: list[int], captions: list[str] | None = None) -> list[PreviewTile]:
    """Tiles for frames ``picks`` of one sequence (all keypoints already in frame pixels)."""
    captions = captions or [""] * len(picks)
    return [PreviewTile(frames[i], joints_2d[i], kp2d[i], mask[i], c) for i, c in zip(picks, captions)]
