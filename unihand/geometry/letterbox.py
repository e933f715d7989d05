"""Letterboxing: where a (W, H) camera image lies inside a square frame of ``size`` pixels.

One geometry for every place that fits images into squares, with the bars placed by ``mode``:

- ``"center"``: equal bars on both sides (rendered synthetic frames, dataset clips), so a
  horizontally flipped frame is the letterbox of the mirrored camera image;
- ``"corner"``: the image at the top-left, padding at the bottom/right (the vision backbones'
  input, :func:`unihand.models.image.letterbox_pixels`), so token rows and columns start on the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Placements of the bars (see the module doc).
MODES = ("center", "corner")


@dataclass(frozen=True)
class Letterbox:
    """Placement of a (W, H) camera image in a square ``size`` frame."""

    size: int
    width: int  # camera image size
    height: int
    active_w: int  # size of the scaled camera image inside the frame
    active_h: int
    mode: str = "center"

    @property
    def offset(self) -> tuple[int, int]:
        if self.mode == "corner":
            return 0, 0
        return (self.size - self.active_w) // 2, (self.size - self.active_h) // 2

    @property
    def scale(self) -> tuple[float, float]:
        return self.active_w / self.width, self.active_h / self.height

    def to_frame(self, pixels: np.ndarray) -> np.ndarray:
        """Camera pixels (..., 2) -> frame pixels (integer pixel centres on both sides)."""
        s = np.array(self.scale)
        return (pixels + 0.5) * s - 0.5 + np.array(self.offset)

    def normalized_to_frame(self, kp: np.ndarray) -> np.ndarray:
        """Keypoints normalised by the camera's (W, H) -> frame pixels."""
        return self.to_frame(kp * np.array([self.width, self.height]))

    def frame_K(self, K: np.ndarray) -> np.ndarray:
        """Intrinsics of the frame: projecting with it gives frame pixels directly."""
        sx, sy = self.scale
        ox, oy = self.offset
        Kf = np.array(K, dtype=np.float64).copy()
        Kf[0] = Kf[0] * sx
        Kf[1] = Kf[1] * sy
        Kf[0, 2] = sx * (K[0, 2] + 0.5) - 0.5 + ox
        Kf[1, 2] = sy * (K[1, 2] + 0.5) - 0.5 + oy
        return Kf

    def crop(self, frames: np.ndarray) -> np.ndarray:
        """Frames (..., size, size, C) -> the camera image inside them, bars removed (..., active_h, active_w, C)."""
        ox, oy = self.offset
        return frames[..., oy:oy + self.active_h, ox:ox + self.active_w, :]

    def crop_K(self, K: np.ndarray) -> np.ndarray:
        """Intrinsics of the cropped frames (:meth:`crop`)."""
        Kc = self.frame_K(K)
        Kc[:2, 2] -= np.array(self.offset)
        return Kc

    def normalized_to_crop(self, kp: np.ndarray) -> np.ndarray:
        """Keypoints normalised by the camera's (W, H) -> pixels of the cropped frames (:meth:`crop`)."""
        return self.normalized_to_frame(kp) - np.array(self.offset)


def letterbox(image_size: tuple[int, int] | np.ndarray, size: int, mode: str = "center") -> Letterbox:
    """Letterbox of a (W, H) camera image in a square frame of ``size`` pixels (``mode``: :data:`MODES`).

    ``center``: the bars have equal widths (the active size is ``size`` less two equal bars);
    ``corner``: the longer side fills the frame, the other is rounded (at least one pixel)."""
    if mode not in MODES:
        raise ValueError(f"letterbox mode {mode!r}: choose from {', '.join(MODES)}")
    w, h = int(image_size[0]), int(image_size[1])
    s = size / max(w, h)
    if mode == "corner":
        return Letterbox(size, w, h, max(1, round(w * s)), max(1, round(h * s)), mode)
    aw = size - 2 * int(round((size - w * s) / 2))
    ah = size - 2 * int(round((size - h * s) / 2))
    return Letterbox(size, w, h, aw, ah, mode)
