"""Metric scale of an estimated camera path from a monocular metric depth model (``--depth-model``).

Monocular tracking gives the camera path up to one scale. The hands give it too (bone lengths are
metric; :func:`unihand.refine.refiner.path_scale`), but only where the hand holds still in the world
while the camera moves: a hand that travels with the head (a grasp carried while the head turns to
follow it) is taken for camera motion, and no better hand estimate can tell the two apart
(``bench/camera_scale_bound.py``). A metric depth model reads the scale from the scene instead, as
HaWoR does with Metric3D for its SLAM: on a few frames of the clip the model's depth is sampled at
the tracked background points, and the ratio to the points' depth in the map (in the map's unit) is
the scale, its median over points and then over frames. The model is the user's, read from a local
directory (nothing is downloaded): a ``transformers`` metric depth checkpoint (Depth Anything V2
Metric, ZoeDepth), or any callable frame -> depth in metres.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from unihand.errors import UserError

#: Frames of the clip the depth model reads (evenly spread; at most one every
#: :data:`DEPTH_MIN_SPACING` frames).
DEPTH_FRAMES = 12
DEPTH_MIN_SPACING = 4
#: A frame's ratio counts only with this many tracked points in the map in view.
MIN_DEPTH_POINTS = 20
#: ``transformers`` model types whose output is metric depth (metres).
METRIC_MODEL_TYPES = ("depth_anything", "zoedepth")


class DepthModel(Protocol):
    """Anything that maps an RGB frame (H, W, 3) uint8 to its depth (H, W) in metres; ``index`` is the
    frame's position in the clip (a single-image model ignores it; a simulated one looks its truth up)."""

    name: str

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray: ...


class TransformersDepth:
    """A ``transformers`` metric depth checkpoint in a local directory (``config.json``,
    ``preprocessor_config.json`` and the weights), on the CPU or ``device``."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu") -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        from transformers.utils import logging as hf_logging

        path = Path(path)
        kind = check_depth_checkpoint(path)
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # the processor's note about an optional torchvision backend
        hf_logging.disable_progress_bar()
        try:
            self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
            self.model = AutoModelForDepthEstimation.from_pretrained(path, local_files_only=True).eval().to(device)
        except OSError as err:
            raise UserError(f"--depth-model {path}: cannot read the checkpoint: {err}") from None
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        self.device = device
        self.name = f"{kind}:{path.name}"
        self._torch = torch

    def __call__(self, frame: np.ndarray, index: int = 0) -> np.ndarray:
        inputs = self.processor(images=frame, return_tensors="pt").to(self.device)
        with self._torch.no_grad():
            out = self.model(**inputs)
        depth = self.processor.post_process_depth_estimation(out, target_sizes=[frame.shape[:2]])[0]["predicted_depth"]
        return depth.float().cpu().numpy()


def check_depth_checkpoint(path: str | os.PathLike) -> str:
    """The model type of a metric depth checkpoint directory, read from its ``config.json`` (one-line
    UserError for a missing directory or a model without metric output)."""
    import json

    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        raise UserError(f"--depth-model {path}: expected a directory with a transformers config.json "
                        f"(e.g. Depth Anything V2 Metric or ZoeDepth, downloaded beforehand)") from None
    kind = config.get("model_type") if isinstance(config, dict) else None
    output = config.get("depth_estimation_type", "metric") if isinstance(config, dict) else None
    if kind not in METRIC_MODEL_TYPES or output != "metric":
        what = f"{kind} ({output} depth)" if kind == "depth_anything" else kind
        raise UserError(f"--depth-model {path}: config.json model_type {what!r} does not give metric depth; "
                        f"use a metric checkpoint ({', '.join(METRIC_MODEL_TYPES)} with metric output)")
    return str(kind)


def load_depth_model(model: str | os.PathLike | DepthModel | None, device: str = "cpu") -> DepthModel | None:
    """``--depth-model``: None, a checkpoint directory, or a ready :class:`DepthModel`."""
    if model is None or callable(model):
        return model  # type: ignore[return-value]
    return TransformersDepth(model, device)


def depth_schedule(num_frames: int | None) -> int:
    """Every how many frames the depth model reads one (:data:`DEPTH_FRAMES` over the clip)."""
    if not num_frames or num_frames <= 0:
        return 8
    return max(DEPTH_MIN_SPACING, int(np.ceil(num_frames / DEPTH_FRAMES)))


@dataclass
class DepthSamples:
    """The depth model's metres at the tracked background points of a few frames."""

    model: str
    frames: list[int] = field(default_factory=list)
    ids: list[np.ndarray] = field(default_factory=list)  # per frame: track ids
    metres: list[np.ndarray] = field(default_factory=list)  # per frame: depth at those tracks
    seconds: float = 0.0

    def add(self, frame_index: int, depth: np.ndarray, ids: np.ndarray, pts_full: np.ndarray,
            image_shape: tuple[int, int] | None = None) -> None:
        """Sample ``depth`` (H, W) bilinearly at ``pts_full`` (n, 2) full-resolution pixels of tracks ``ids``;
        ``image_shape`` (H, W): the frame's, which the depth map must have."""
        depth = np.asarray(depth, np.float32)
        if depth.ndim != 2 or (image_shape is not None and depth.shape != tuple(image_shape)):
            want = "(H, W)" if image_shape is None else str(tuple(image_shape))
            raise UserError(f"depth model {self.model}: returned an array of shape {depth.shape} for frame "
                            f"{frame_index}, expected {want}")
        import cv2

        x = pts_full[:, 0].astype(np.float32).reshape(-1, 1)
        y = pts_full[:, 1].astype(np.float32).reshape(-1, 1)
        d = cv2.remap(depth, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).ravel()
        ok = np.isfinite(d) & (d > 0)
        self.frames.append(int(frame_index))
        self.ids.append(np.asarray(ids, np.int64)[ok])
        self.metres.append(d[ok].astype(np.float64))


def depth_scale(samples: DepthSamples, z_of: Any) -> tuple[float | None, dict[str, Any]]:
    """(metres per map unit, stats): ``z_of(frame, ids)`` -> (ids kept, their depth in the frame's camera, map
    units). Per frame the median of metres / z over its points, then the median over frames; None when no
    frame has :data:`MIN_DEPTH_POINTS` points in the map."""
    per_frame, used = [], []
    for f, ids, metres in zip(samples.frames, samples.ids, samples.metres):
        kept, z = z_of(f, ids)
        if len(kept) < MIN_DEPTH_POINTS:
            continue
        m = metres[np.searchsorted(ids, kept)]
        good = z > 1e-9
        if good.sum() < MIN_DEPTH_POINTS:
            continue
        per_frame.append(float(np.median(m[good] / z[good])))
        used.append(f)
    stats: dict[str, Any] = {"model": samples.model, "frames_read": len(samples.frames), "frames_used": len(used),
                             "seconds": round(samples.seconds, 3)}
    if not per_frame:
        return None, stats
    r = np.array(per_frame)
    scale = float(np.median(r))
    stats["spread"] = round(float(np.median(np.abs(np.log(r / scale)))), 4)  # median |log| deviation of the frames
    stats["scale_m_per_unit"] = scale
    return scale, stats
