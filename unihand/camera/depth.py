"""Metric scale of an estimated camera path from a monocular metric depth model (``--depth-model``).

Monocular tracking gives the camera path up to one scale. The hands give it too (bone lengths are
metric; :func:`unihand.refine.refiner.path_scale`), but only where the hand holds still in the world
while the camera moves: a hand that travels with the head (a grasp carried while the head turns to
follow it) is taken for camera motion, and no better hand estimate can tell the two apart
(``bench/camera_scale_bound.py``). A metric depth model reads the scale from the scene instead, as
HaWoR does with Metric3D for its SLAM: on a few frames of the clip the model's depth is sampled at
the tracked background points, and the ratio to the points' depth in the map (in the map's unit) is
the scale, its median over points and then over frames. The frames are kept during the detection
pass and read only once the camera is found to move with a map. The model is the user's, read from a local
directory (nothing is downloaded): a ``transformers`` Depth Anything (V2) Metric checkpoint, or,
through the Python API, any callable frame -> depth in metres.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from unihand.errors import UserError, require
from unihand.geometry.camera import rescale_pixels

#: Frames of the clip the depth model reads (evenly spread; at most one every
#: :data:`DEPTH_MIN_SPACING` frames).
DEPTH_FRAMES = 12
DEPTH_MIN_SPACING = 4
#: Frames are kept for the depth model at most this large (longer side, pixels).
DEPTH_KEEP_SIZE = 1920
#: A frame's ratio counts only with this many tracked points in the map in view.
MIN_DEPTH_POINTS = 20
#: ``transformers`` model types read as metric depth (metres) when their config says so. Depth Anything
#: only: ZoeDepth's processor pads its input and needs torchvision to undo it, which is not a dependency
#: (any other metric model can be passed to the Python API as a callable).
METRIC_MODEL_TYPES = ("depth_anything",)


class DepthModel(Protocol):
    """Anything that maps an RGB frame (H, W, 3) uint8 to its depth (H, W) in metres; ``index`` is the
    frame's position in the clip (a single-image model ignores it; a simulated one looks its truth up).
    An optional ``name`` attribute names it in the log and the summary."""

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray: ...


class TransformersDepth:
    """A ``transformers`` Depth Anything metric checkpoint in a local directory (``config.json``,
    ``preprocessor_config.json`` and the weights), on the CPU or ``device``."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu") -> None:
        import torch

        require("transformers", "depth", "--depth-model")
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
        except Exception as err:  # noqa: BLE001 - a bad config or weights file raises many kinds
            raise UserError(f"--depth-model {path}: cannot read the checkpoint: {type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}") from None
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


def model_name(model: DepthModel) -> str:
    """What the log and the summary call a depth model: its ``name``, else its type."""
    return str(getattr(model, "name", type(model).__name__))


def check_depth_checkpoint(path: str | os.PathLike) -> str:
    """The model type of a metric depth checkpoint directory, read from its ``config.json`` (one-line
    UserError for a missing directory or a model without metric output)."""
    import json

    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        raise UserError(f"--depth-model {path}: expected a directory with a transformers config.json "
                        f"(a Depth Anything V2 Metric checkpoint, downloaded beforehand)") from None
    kind = config.get("model_type") if isinstance(config, dict) else None
    # transformers reads a config without the key as relative depth (Depth Anything V1 and V2's base models)
    output = config.get("depth_estimation_type", "relative") if isinstance(config, dict) else None
    if kind not in METRIC_MODEL_TYPES or output != "metric":
        what = f"{kind} ({output} depth)" if kind == "depth_anything" else kind
        raise UserError(f"--depth-model {path}: config.json model_type {what!r} does not give metric depth; "
                        f"use a Depth Anything V2 Metric checkpoint (depth_estimation_type 'metric')")
    return str(kind)


DepthModelArg = str | os.PathLike | DepthModel | None


def load_depth_model(model: DepthModelArg, device: str = "cpu") -> DepthModel | None:
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
class DepthFrames:
    """Frames kept during the detection pass for the depth model (every ``every``-th, downscaled to at most
    :data:`DEPTH_KEEP_SIZE` pixels), with the background tracks seen in each. The model reads them only
    once the camera turns out to move with a map (:func:`depth_scale`): a still or only turning camera
    costs no depth reads."""

    every: int
    frames: list[int] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)  # (h, w, 3) uint8
    ids: list[np.ndarray] = field(default_factory=list)  # per frame: track ids (ascending)
    pts: list[np.ndarray] = field(default_factory=list)  # per frame: their positions in the kept image (n, 2)

    def wants(self, frame_index: int) -> bool:
        return frame_index % self.every == 0

    def _thin(self) -> None:
        """Every other kept frame dropped and the spacing doubled: a clip of unknown length keeps at most
        2 x :data:`DEPTH_FRAMES` frames."""
        keep = [k for k, f in enumerate(self.frames) if f % (2 * self.every) == 0]
        for name in ("frames", "images", "ids", "pts"):
            setattr(self, name, [getattr(self, name)[k] for k in keep])
        self.every *= 2

    def keep(self, frame_index: int, frame: np.ndarray, ids: np.ndarray, pts_full: np.ndarray) -> None:
        """Keep ``frame`` (H, W, 3) and its tracks ``ids`` at ``pts_full`` (n, 2) full-resolution pixels."""
        import cv2

        h, w = frame.shape[:2]
        s = min(1.0, DEPTH_KEEP_SIZE / max(h, w))
        if s < 1.0:
            frame = cv2.resize(frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        self.frames.append(int(frame_index))
        self.images.append(np.ascontiguousarray(frame))
        self.ids.append(np.asarray(ids, np.int64))
        self.pts.append(rescale_pixels(pts_full, s))
        if len(self.frames) > 2 * DEPTH_FRAMES:
            self._thin()


def sample_depth(depth: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``depth`` (H, W) at pixel positions ``pts`` (n, 2), bilinear (edge pixels repeated)."""
    import cv2

    x = pts[:, 0].astype(np.float32).reshape(-1, 1)
    y = pts[:, 1].astype(np.float32).reshape(-1, 1)
    return cv2.remap(np.asarray(depth, np.float32), x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).ravel()


def depth_scale(kept: DepthFrames, model: DepthModel,
                z_of: Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]) -> tuple[float | None, dict[str, Any]]:
    """(metres per map unit, stats). ``model`` reads each kept frame; ``z_of(frame, ids)`` -> (ids kept,
    their depth in the frame's camera, map units). Per frame the median of metres / z over its points
    (non-finite or non-positive depths dropped), then the median over frames; None when no frame has
    :data:`MIN_DEPTH_POINTS` points in the map."""
    name = model_name(model)
    per_frame, used = [], []
    t0 = time.perf_counter()
    for f, image, ids, pts in zip(kept.frames, kept.images, kept.ids, kept.pts):
        mapped, z = z_of(f, ids)
        if len(mapped) < MIN_DEPTH_POINTS:
            continue  # not worth a read
        depth = np.asarray(model(image, f), np.float32)
        if depth.shape != image.shape[:2]:
            raise UserError(f"depth model {name}: returned an array of shape {depth.shape} for frame {f}, "
                            f"expected {image.shape[:2]}")
        metres = sample_depth(depth, pts[np.searchsorted(ids, mapped)])
        good = np.isfinite(metres) & (metres > 0) & (z > 1e-9)
        if good.sum() < MIN_DEPTH_POINTS:
            continue
        per_frame.append(float(np.median(metres[good] / z[good])))
        used.append(f)
    stats: dict[str, Any] = {"model": name, "frames_kept": len(kept.frames), "frames_used": len(used),
                             "seconds": round(time.perf_counter() - t0, 3)}
    if not per_frame:
        return None, stats
    r = np.array(per_frame)
    scale = float(np.median(r))
    stats["spread"] = round(float(np.median(np.abs(np.log(r / scale)))), 4)  # median |log| deviation of the frames
    stats["scale_m_per_unit"] = scale
    return scale, stats
