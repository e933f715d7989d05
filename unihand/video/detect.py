"""2D hand keypoints, handedness and per-joint confidence per frame with MediaPipe Hands.

MediaPipe (``mediapipe==0.10.21``, models bundled in the wheel, nothing downloaded) returns
21 landmarks in the OpenPose/MediaPipe order used everywhere in UniHand, and a handedness
label that **assumes a mirrored (selfie) image**. On an ordinary camera video it comes out
swapped: on ``right_hand_office.mp4`` (one right hand) it says "Left" on every frame. The
detector therefore flips the label unless told the video is mirrored (``mirrored=True``).

MediaPipe gives no per-landmark confidence for hands (``visibility``/``presence`` are 0).
The per-joint confidence here is 1 for landmarks inside the image and falls to 0 for
landmarks extrapolated beyond its border (0.15 hand sizes out); the tracker lowers it
further for joints that jump inconsistently in time (see :mod:`unihand.video.track`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from unihand.errors import UserError


@dataclass
class Detection:
    """One hand found in one frame (pixels of the full-resolution frame)."""

    keypoints: np.ndarray  # (21, 2) pixels, OpenPose order
    confidence: np.ndarray  # (21,) in [0, 1]
    right_prob: float  # P(right hand), corrected for a non-mirrored video
    score: float  # MediaPipe's handedness score (certainty of its label)
    depth: np.ndarray | None = None  # (21,) MediaPipe's relative z (same scale as x pixels), optional
    world: np.ndarray | None = None  # (21, 3) MediaPipe's world landmarks: metres, hand-centred, camera axes

    @property
    def is_right(self) -> bool:
        return self.right_prob >= 0.5

    @property
    def center(self) -> np.ndarray:
        return self.keypoints.mean(axis=0)

    @property
    def scale(self) -> float:
        """Hand size in pixels: the diagonal of the keypoints' bounding box."""
        lo, hi = self.keypoints.min(axis=0), self.keypoints.max(axis=0)
        return float(max(np.linalg.norm(hi - lo), 1.0))


def outside_confidence(keypoints: np.ndarray, width: int, height: int, scale: float, falloff: float = 0.15) -> np.ndarray:
    """1 inside the image, linearly down to 0 at ``falloff`` hand sizes beyond its border."""
    lo = np.zeros(2)
    hi = np.array([width - 1, height - 1], dtype=float)
    out = np.maximum(lo - keypoints, 0) + np.maximum(keypoints - hi, 0)
    dist = np.linalg.norm(out, axis=-1)
    return np.clip(1.0 - dist / (falloff * max(scale, 1.0)), 0.0, 1.0).astype(np.float32)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C++ logging (TFLite/glog banners) written straight to file descriptor 2."""
    fd = 2  # C++ writes to the process's fd 2, whatever Python's sys.stderr is
    try:
        sys.stderr.flush()
        saved = os.dup(fd)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


class HandDetector:
    """MediaPipe Hands in video (tracking) mode: call it on consecutive RGB frames.

    Args:
        max_hands: hands per frame (2 for ``--hands both``).
        model_complexity: 0 (lite) or 1 (full landmark model).
        min_detection_confidence / min_tracking_confidence: MediaPipe's thresholds.
        scale: run on the frame resized by this factor (< 1 is faster); keypoints are
            returned in full-resolution pixels.
        mirrored: the video is a selfie (horizontally mirrored) image; keep MediaPipe's label.
        static: detect every frame independently (slower, no temporal tracking).
    """

    def __init__(
        self, max_hands: int = 2, model_complexity: int = 1, min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5, scale: float = 1.0, mirrored: bool = False, static: bool = False,
    ) -> None:
        try:
            with _quiet_stderr():
                import mediapipe as mp

                hands_mod = mp.solutions.hands
        except ImportError as err:  # pragma: no cover - depends on the install
            raise UserError(
                f"MediaPipe is needed for video estimation but could not be imported ({err}); "
                "install it with: pip install --no-deps mediapipe==0.10.21 absl-py 'protobuf<5' flatbuffers"
            ) from None
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        self.scale = float(scale)
        self.mirrored = bool(mirrored)
        with _quiet_stderr():
            self._hands = hands_mod.Hands(
                static_image_mode=static, max_num_hands=max_hands, model_complexity=model_complexity,
                min_detection_confidence=min_detection_confidence, min_tracking_confidence=min_tracking_confidence,
            )
            # start the graph now, while its C++ start-up banners are silenced
            self._hands.process(np.zeros((64, 64, 3), np.uint8))
        self._quiet = True

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        """Hands in one RGB uint8 frame (H, W, 3)."""
        import cv2

        h, w = frame.shape[:2]
        img = frame
        if self.scale < 1:
            img = cv2.resize(frame, (max(1, round(w * self.scale)), max(1, round(h * self.scale))),
                             interpolation=cv2.INTER_AREA)
        img = np.ascontiguousarray(img)
        if self._quiet:  # C++ banners come when the graph starts and when it first finds a hand
            with _quiet_stderr():
                res = self._hands.process(img)
        else:
            res = self._hands.process(img)
        if not res.multi_hand_landmarks:
            return []
        self._quiet = False
        out = []
        worlds = res.multi_hand_world_landmarks or [None] * len(res.multi_hand_landmarks)
        for lms, hd, wl in zip(res.multi_hand_landmarks, res.multi_handedness, worlds):
            arr = np.array([(p.x, p.y, p.z) for p in lms.landmark], dtype=np.float64)
            # MediaPipe's normalised coords span the image edges [0, 1]; ours have integer pixel
            # centres (geometry.camera), hence the half-pixel shift. Resolution independent.
            kp = arr[:, :2] * np.array([w, h]) - 0.5
            cls = hd.classification[0]
            says_right = cls.label.lower() == "right"
            is_right_label = says_right if self.mirrored else not says_right
            p_label = float(np.clip(cls.score, 0.5, 1.0))
            right_prob = p_label if is_right_label else 1.0 - p_label
            det = Detection(
                keypoints=kp.astype(np.float32), confidence=np.ones(21, np.float32), right_prob=right_prob,
                score=float(cls.score), depth=(arr[:, 2] * w).astype(np.float32),
                world=None if wl is None else np.array([(p.x, p.y, p.z) for p in wl.landmark], np.float32),
            )
            det.confidence = outside_confidence(det.keypoints, w, h, det.scale)
            out.append(det)
        return out

    def close(self) -> None:
        self._hands.close()

    def __enter__(self) -> "HandDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SimulatedDetector:
    """Plays back a synthetic sequence's detector-like 2D keypoints as per-frame detections.

    Keypoints are given in the pixels of the (cropped) video frames; masked joints keep their
    true position with confidence 0 (a detector outputs every joint; the low confidence is what
    marks them), frames where the hand is lost return nothing.
    """

    def __init__(self, conditions, to_pixels, right_prob: float) -> None:
        self.c = conditions
        self.to_pixels = to_pixels
        self.right_prob = right_prob
        self.t = 0

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        t = self.t
        self.t += 1
        c = self.c
        if t >= c.kp2d.shape[0]:
            return []
        mask = c.kp2d_mask[t] if c.kp2d_mask.ndim == 2 else np.repeat(c.kp2d_mask[t], 21)
        if mask.sum() < 2:
            return []
        gt = c.extra["kp2d_gt"][t]
        kp = self.to_pixels(np.where(mask[:, None], c.kp2d[t], gt))
        conf = np.where(mask, c.kp2d_conf[t] if c.kp2d_conf is not None else 1.0, 0.0)
        return [Detection(kp.astype(np.float32), conf.astype(np.float32), self.right_prob, 0.95)]
