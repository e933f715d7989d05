"""What every real-dataset adapter shares: the hand-track record, left->right mirroring,
skip-and-report for broken sequences, training windows and dataset mixing.

An adapter turns its files into :class:`Track` objects (one hand in one video, already
right-handed), then :class:`TrackWindows` cuts them into the training items that the
synthetic windows dataset also yields, so datasets can be mixed in one loader.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, WeightedRandomSampler

from unihand.data.io import load_npz, save_npz
from unihand.hand.joints import MANO_SLICES
from unihand.geometry.letterbox import Letterbox, letterbox
from unihand.errors import UserError
from unihand.geometry.camera import normalize_keypoints
from unihand.geometry.canonical import canonical_from_camera, canonical_from_world, transform_mano, transform_points
from unihand.geometry.mirror import (
    mirror_image,
    mirror_intrinsics,
    mirror_keypoints_2d,
    mirror_mano_vector,
    mirror_points,
)
from unihand.hand import load_hand_model
from unihand.hand.mano import mano_file

#: Training window length (paper B.1).
WINDOW = 48
#: x -> -x as a 4x4 transform; conjugating a camera pose by it mirrors the world (docs/design.md §2).
_MIRROR_4X4 = np.diag([-1.0, 1.0, 1.0, 1.0])

#: ``frames(indices)`` -> (n, H, W, 3) uint8 RGB images of a track, in the original (unmirrored) view.
FrameLoader = Callable[[np.ndarray], np.ndarray]
#: Optional hook to a vision feature cache: ``features(track_name, frame_indices)`` -> (n, ...) array.
#: For a left-hand track the cache must hold features of the mirrored frames.
FeatureHook = Callable[[str, np.ndarray], Any]


@dataclass
class Track:
    """One hand in one video. Arrays are always right-handed: a left hand (``is_right`` False)
    is stored mirrored (adapters build it in its own coordinates and call :meth:`mirrored`).

    With a static camera ``T_world_from_cam`` is None and 3D values are in the camera frame;
    with a moving camera 3D values are in the world frame and ``T_world_from_cam`` (T, 4, 4)
    gives each frame's camera. Frames without ground truth have ``valid`` False.
    """

    name: str
    mano: np.ndarray  # (T, 61) float32
    joints: np.ndarray  # (T, 21, 3) OpenPose order, metres
    rest_root: np.ndarray  # (T, 3) the RIGHT hand model's rest wrist for each frame's betas
    valid: np.ndarray  # (T,) bool
    kp2d: np.ndarray  # (T, 21, 2) pixels
    kp2d_mask: np.ndarray  # (T, 21) bool
    K: np.ndarray  # (3, 3) pinhole intrinsics (for a fisheye camera: its focal length and centre)
    image_size: tuple[int, int]  # (W, H)
    occlusion: np.ndarray  # (T,) eq. 17 ratio in [0, 1], NaN where unknown
    is_right: bool = True  # side of the recorded hand
    fps: float = 30.0
    T_world_from_cam: np.ndarray | None = None
    vertices: np.ndarray | None = None  # (T, 778, 3) ground-truth mesh, when an adapter keeps it
    frames: FrameLoader | None = field(default=None, repr=False)

    @property
    def num_frames(self) -> int:
        return int(self.mano.shape[0])

    def mirrored(self) -> "Track":
        """The x-mirror of the arrays (images flip as ``x -> W - 1 - x``); ``rest_root`` and
        ``is_right`` are kept."""
        w = int(self.image_size[0])
        T = None if self.T_world_from_cam is None else _MIRROR_4X4 @ self.T_world_from_cam @ _MIRROR_4X4
        return replace(
            self,
            mano=mirror_mano_vector(self.mano),
            joints=mirror_points(self.joints),
            kp2d=mirror_keypoints_2d(self.kp2d, w).astype(np.float32),
            K=mirror_intrinsics(np.asarray(self.K, dtype=np.float64), w),
            T_world_from_cam=T,
            vertices=None if self.vertices is None else mirror_points(self.vertices),
        )


class SkipReport:
    """Collects broken sequences: each is printed when skipped, the count at the end."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.skipped: list[tuple[str, str]] = []

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append((name, reason))
        print(f"{self.dataset}: skipped {name}: {reason}", file=sys.stderr)

    def finish(self, tracks: list[Track], what: str) -> list[Track]:
        """Print the counts; raise when nothing could be loaded."""
        print(f"{self.dataset}: loaded {len(tracks)} sequence(s), skipped {len(self.skipped)}", file=sys.stderr)
        if not tracks:
            detail = f" ({len(self.skipped)} skipped, first: {self.skipped[0][0]}: {self.skipped[0][1]})" if self.skipped else ""
            raise UserError(f"{self.dataset}: no usable sequence in {what}{detail}")
        return tracks


def require_dir(path: Any, what: str) -> None:
    """Raise a :class:`UserError` naming ``what`` when ``path`` is not a folder."""
    if not Path(path).is_dir():
        raise UserError(f"{what} not found: {path} is missing or not a folder")


def visible_in_image(kp2d: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(…, 21) bool: keypoints that land inside the image ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``."""
    size = np.asarray(image_size, dtype=np.float64)
    return np.all((kp2d >= -0.5) & (kp2d <= size - 0.5) & np.isfinite(kp2d), axis=-1)


def window_starts(track: Track, window: int = WINDOW) -> np.ndarray:
    """Starts s with a full window inside the track and ground truth at frame s (paper B.1)."""
    if track.num_frames < window:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(track.valid[: track.num_frames - window + 1])


def usable_tracks(tracks: Iterable[Track], report: SkipReport, window: int = WINDOW) -> list[Track]:
    """Keep tracks with at least one valid window; report the others."""
    kept = []
    for t in tracks:
        if t.num_frames < window:
            report.skip(t.name, f"{t.num_frames} frames, shorter than the {window}-frame window")
        elif len(window_starts(t, window)) == 0:
            report.skip(t.name, f"no frame with ground truth that starts a {window}-frame window")
        else:
            kept.append(t)
    return kept


def canonical_window(track: Track, start: int, length: int) -> dict[str, np.ndarray]:
    """MANO (n, 61) and joints (n, 21, 3) of ``[start, start + length)`` in its canonical frame.

    The canonical frame is the camera of the window's first frame (docs/design.md §2); for a static
    camera that is the camera frame itself.
    """
    sl = slice(start, start + length)
    mano = track.mano[sl].astype(np.float64)
    joints = track.joints[sl].astype(np.float64)
    if track.T_world_from_cam is not None:
        T = canonical_from_world(track.T_world_from_cam[sl].astype(np.float64))
        go, tr = MANO_SLICES["global_orient"], MANO_SLICES["transl"]
        mano[:, go], mano[:, tr] = transform_mano(mano[:, go], mano[:, tr], T, track.rest_root[sl].astype(np.float64))
        joints = transform_points(joints, T)
    return {"mano": mano.astype(np.float32), "joints": joints.astype(np.float32)}


class TrackWindows(Dataset):
    """Training windows of ``window`` frames from real-data tracks, with the item layout of
    :mod:`unihand.data.windows` (so real and synthetic data mix in one loader): ``mano``,
    ``joints``, ``kp2d`` (normalised) + ``kp2d_mask`` + ``kp2d_conf``, ``kp3d`` + ``kp3d_mask``,
    ``mano_mask``, ``occlusion``, ``K``, ``image_size``, ``T_cano_from_cam``, ``is_left``; with
    ``render_size`` S also ``frames`` (N, 3, S, S) uint8 letterboxed as the synthetic frames, and
    ``frame_K``; with a ``features`` hook also ``features``. Real 2D/3D keypoints are the ground
    truth (confidence 1); frames without ground truth are zero and masked.

    With ``random_start`` each item draws a valid start of its track at random (an epoch
    visits every track about ``T / window`` times); otherwise windows tile each track
    deterministically (the last one flush with its end).
    """

    def __init__(
        self, tracks: Sequence[Track], *, window: int = WINDOW, random_start: bool = True,
        render_size: int | None = None, features: FeatureHook | None = None,
    ) -> None:
        self.tracks = list(tracks)
        self.window = window
        self.random_start = random_start
        self.render_size = render_size
        self.features = features
        self._starts = [window_starts(t, window) for t in self.tracks]
        if any(len(s) == 0 for s in self._starts):
            raise ValueError("every track needs a valid window; filter with usable_tracks() first")
        self._index: list[tuple[int, int]] = []
        for ti, t in enumerate(self.tracks):
            if random_start:
                self._index += [(ti, -1)] * max(1, t.num_frames // window)
            else:
                tiles = list(range(0, t.num_frames - window + 1, window))
                if tiles[-1] != t.num_frames - window:
                    tiles.append(t.num_frames - window)
                self._index += [(ti, s) for s in tiles]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ti, start = self._index[index]
        track = self.tracks[ti]
        if start < 0:
            starts = self._starts[ti]
            start = int(starts[torch.randint(len(starts), ()).item()])
        return self.item(track, start)

    def item(self, track: Track, start: int) -> dict[str, torch.Tensor]:
        n = self.window
        sl = slice(start, start + n)
        cano = canonical_window(track, start, n)
        valid = track.valid[sl]
        kp2d_mask = track.kp2d_mask[sl] & valid[:, None]
        kp2d = normalize_keypoints(track.kp2d[sl].astype(np.float64), track.image_size)
        if track.T_world_from_cam is None:
            T_cano = np.tile(np.eye(4), (n, 1, 1))
        else:
            T_cano = canonical_from_camera(track.T_world_from_cam[sl].astype(np.float64))
        out: dict[str, Any] = {
            "mano": np.where(valid[:, None], cano["mano"], 0.0),
            "joints": np.where(valid[:, None, None], cano["joints"], 0.0),
            "kp2d": np.where(kp2d_mask[..., None], kp2d, 0.0),
            "kp2d_mask": kp2d_mask,
            "kp2d_conf": kp2d_mask.astype(np.float32),
            "kp3d": np.where(valid[:, None, None], cano["joints"], 0.0),
            "kp3d_mask": np.repeat(valid[:, None], 21, axis=1),
            "mano_mask": valid.copy(),
            "occlusion": np.nan_to_num(track.occlusion[sl], nan=0.0),
            "K": np.asarray(track.K),
            "image_size": np.asarray(track.image_size, dtype=np.float32),
            "T_cano_from_cam": T_cano,
            "is_left": np.bool_(not track.is_right),
        }
        if self.render_size is not None and track.frames is not None:
            lb = letterbox(track.image_size, self.render_size)
            out["frames"] = letterbox_frames(track, np.arange(start, start + n), lb).transpose(0, 3, 1, 2)
            out["frame_K"] = lb.frame_K(np.asarray(track.K))
        if self.features is not None:
            out["features"] = self.features(track.name, np.arange(start, start + n))
        return {k: _tensor(v) for k, v in out.items()}


def letterbox_frames(track: Track, indices: np.ndarray, lb: Letterbox) -> np.ndarray:
    """(n, S, S, 3) uint8 frames of a track as the right-handed model sees them (mirrored for a
    left hand), scaled into the square letterbox ``lb`` like the synthetic frames."""
    images = track.frames(indices)
    if not track.is_right:
        images = mirror_image(images, "HWC")
    out = np.zeros((len(images), lb.size, lb.size, 3), np.uint8)
    (ox, oy), w, h = lb.offset, lb.active_w, lb.active_h
    for i, im in enumerate(images):
        out[i, oy:oy + h, ox:ox + w] = cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA)
    return out


def _tensor(value: Any) -> torch.Tensor:
    """bool and uint8 arrays keep their dtype, everything else becomes float32."""
    arr = np.asarray(value)
    if arr.dtype in (np.bool_, np.uint8):
        return torch.as_tensor(arr)
    return torch.as_tensor(arr, dtype=torch.float32)


def mix(datasets: Sequence[Dataset], weights: Sequence[float] | None = None, num_samples: int | None = None,
        generator: torch.Generator | None = None) -> tuple[ConcatDataset, WeightedRandomSampler]:
    """Concatenate ``datasets`` and a sampler drawing dataset d with probability ``weights[d]``.

    Weights default to the datasets' sizes (plain concatenation); ``num_samples`` (an epoch)
    defaults to the total size.
    """
    sizes = [len(d) for d in datasets]
    if any(s == 0 for s in sizes):
        raise UserError("cannot mix an empty dataset")
    w = np.asarray(sizes if weights is None else weights, dtype=np.float64)
    if w.shape != (len(datasets),) or np.any(w < 0) or w.sum() <= 0:
        raise UserError(f"dataset weights {list(w)} must be {len(datasets)} non-negative numbers, not all zero")
    per_item = np.concatenate([np.full(s, wi / s) for s, wi in zip(sizes, w)])
    sampler = WeightedRandomSampler(torch.as_tensor(per_item, dtype=torch.double),
                                    num_samples or sum(sizes), replacement=True, generator=generator)
    return ConcatDataset(list(datasets)), sampler


def read_images(paths: tuple[str, ...], indices: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) uint8 RGB images ``paths[indices]`` (a :data:`FrameLoader` via ``functools.partial``)."""
    out = []
    for i in indices:
        im = cv2.imread(paths[int(i)], cv2.IMREAD_COLOR)
        if im is None:
            raise UserError(f"cannot read image {paths[int(i)]}")
        out.append(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
    return np.stack(out)


def mano_rows(global_orient: np.ndarray, hand_pose: np.ndarray, betas: np.ndarray, transl: np.ndarray) -> np.ndarray:
    """Stack MANO parameters into the (T, 61) layout of ``unihand.data.io.MANO_SLICES``."""
    return np.concatenate([global_orient, hand_pose, betas, transl], axis=-1).astype(np.float32)


def default_cache_dir() -> Path:
    """Where parsed dataset files are cached: ``$UNIHAND_CACHE`` or ``~/.cache/unihand``."""
    return Path(os.environ.get("UNIHAND_CACHE", Path.home() / ".cache" / "unihand")).expanduser()


@functools.lru_cache(maxsize=4)
def hand_model(mano_dir: str | None, is_right: bool) -> torch.nn.Module:
    """The user's MANO for one side (loaded once per process); None: the built-in kinematic hand."""
    return load_hand_model(mano_dir, is_right=is_right)


@functools.lru_cache(maxsize=4)
def mano_id(mano_dir: str, is_right: bool) -> str:
    """Short content hash of a MANO file (cache key); a :class:`UserError` names a missing file."""
    return hashlib.sha1(mano_file(mano_dir, is_right).read_bytes()).hexdigest()[:16]


def cached(path: Path | None, key: str, parse: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``parse()`` through an npz file at ``path`` stamped with ``key`` (None: no cache).

    A stale (other key) or damaged cache file is recomputed and rewritten.
    """
    if path is not None and path.is_file():
        try:
            data = load_npz(path)
            if str(data.pop("cache_key", "")) == key:
                return data
        except UserError:
            pass
    data = parse()
    if path is not None:
        save_npz(path, {**data, "cache_key": np.array(key)})
    return data
