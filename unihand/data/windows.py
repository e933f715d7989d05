"""PyTorch datasets of training windows: N frames of GT motion with their masked conditions.

Two sources, one item layout:

- :class:`SyntheticWindows` generates window ``i`` on the fly as sequence ``i`` of
  ``SyntheticWorld(seed)``, so an epoch can be any size and no data is stored. With a batch
  sampler the DataLoader calls :meth:`SyntheticWindows.__getitems__`, which generates the
  whole batch at once (several times faster than one by one).
- :class:`SynthDirWindows` reads a directory written by ``unihand synth``.

Splits: training uses seed 0 (:data:`~unihand.data.synthetic.world.TRAIN_SEED`); test sets
use seeds >= 1000 (:data:`~unihand.data.synthetic.world.TEST_SEED`, e.g. 1000, 1001, ...),
whose random streams are disjoint from the training stream.

Item (a dict of tensors; float32 unless noted), N frames:

==================  ==============  =====================================================
``mano``            (N, 61)         GT MANO, canonical frame (global_orient|hand_pose|betas|transl)
``joints``          (N, 21, 3)      GT joints, canonical frame, OpenPose order, metres
``kp2d``            (N, 21, 2)      observed 2D keypoints, normalised by (W, H); 0 where masked
``kp2d_mask``       (N, 21) bool    observed joints
``kp2d_conf``       (N, 21)         detector confidence (0 where masked)
``kp3d``            (N, 21, 3)      noisy canonical 3D keypoints; 0 where masked
``kp3d_mask``       (N, 21) bool
``mano_mask``       (N,) bool
``occlusion``       (N,)            GT occlusion ratio (paper eq. 17)
``K``               (3, 3)          camera intrinsics (pixels of the W x H camera image)
``image_size``      (2,)            (W, H)
``T_cano_from_cam`` (N, 4, 4)       camera poses in the canonical frame (GT; identity at frame 0)
``is_left``         () bool         the hand was a left hand (mirrored to a right one below)
``frames``          (N, 3, S, S)    uint8 RGB, letterboxed full frames (only with ``render=True``)
``frame_K``         (3, 3)          intrinsics of ``frames`` (only with ``render=True``)
==================  ==============  =====================================================

Left hands are mirrored to right hands (``mirror_left=True``, the default: the network is
right-hand only, docs/design.md §2) with :mod:`unihand.geometry.mirror`: MANO parameters, 3D points
(x -> -x), 2D keypoints (u -> W - 1 - u), intrinsics (cx -> W - 1 - cx), camera poses and the
frames (flipped; the letterbox bars are symmetric, so ``frame_K`` is the letterbox of the
mirrored K).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from unihand.data.io import Conditions, Motion, load_npz
from unihand.geometry.letterbox import letterbox
from unihand.data.synthetic.world import TRAIN_SEED, SynthConfig, SyntheticSequence, SyntheticWorld
from unihand.errors import UserError
from unihand.geometry.mirror import (
    mirror_image, mirror_intrinsics, mirror_keypoints_2d_normalized, mirror_mano_vector, mirror_points,
)

_MIRROR4 = np.diag([-1.0, 1.0, 1.0, 1.0]).astype(np.float32)


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` frame ranges of the maximal runs of True in a (N,) mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(mask, bool).astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _per_joint(mask: np.ndarray | None, n: int) -> np.ndarray:
    if mask is None:
        return np.ones((n, 21), dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    return np.repeat(mask[:, None], 21, axis=1) if mask.ndim == 1 else mask


def make_item(
    motion: Motion, cond: Conditions, *, frames: np.ndarray | None = None, start: int = 0, length: int | None = None,
    mirror_left: bool = True,
) -> dict[str, torch.Tensor]:
    """One window ``[start, start + length)`` of a sequence as the item dict (see module doc).

    Args:
        motion: GT motion (canonical frame) with K, image_size and extra ``T_cano_from_cam``.
        cond: its conditions (any missing modality gives zeros and an all-False mask).
        frames: (N, S, S, 3) uint8 letterboxed frames of the whole sequence, or None.
    """
    n_all = motion.num_frames
    length = n_all - start if length is None else length
    sl = slice(start, start + length)
    f32 = np.float32
    K = np.asarray(motion.K if motion.K is not None else cond.K, dtype=np.float64)
    size = np.asarray(motion.image_size if motion.image_size is not None else cond.image_size, dtype=np.int64)
    mano = motion.mano()[sl].astype(f32)
    joints = np.asarray(motion.joints, dtype=f32)[sl]
    if cond.kp2d is not None:
        kp2d = np.asarray(cond.kp2d, dtype=np.float64)[sl]
        kp2d_mask = _per_joint(cond.kp2d_mask, n_all)[sl]
        conf = np.asarray(cond.kp2d_conf, dtype=f32)[sl] if cond.kp2d_conf is not None else kp2d_mask.astype(f32)
    else:
        kp2d, kp2d_mask, conf = np.zeros((length, 21, 2)), np.zeros((length, 21), bool), np.zeros((length, 21), f32)
    if cond.kp3d is not None:
        kp3d, kp3d_mask = np.asarray(cond.kp3d, dtype=f32)[sl], _per_joint(cond.kp3d_mask, n_all)[sl]
    else:
        kp3d, kp3d_mask = np.zeros((length, 21, 3), f32), np.zeros((length, 21), bool)
    mano_mask = (np.ones(n_all, bool) if cond.mano_mask is None else np.asarray(cond.mano_mask, bool))[sl]
    if cond.mano is None:
        mano_mask = np.zeros(length, bool)
    occlusion = np.asarray(cond.extra.get("occlusion", motion.extra.get("occlusion", np.zeros(n_all))), dtype=f32)[sl]
    T = np.asarray(motion.extra.get("T_cano_from_cam", np.broadcast_to(np.eye(4), (n_all, 4, 4))), dtype=f32)[sl]
    is_left = not motion.is_right
    clip = None if frames is None else frames[sl]
    frame_K = None
    if clip is not None:
        lb = letterbox(size, clip.shape[1])
    if is_left and mirror_left:
        w = int(size[0])
        mano = mirror_mano_vector(mano)
        joints = mirror_points(joints)
        kp3d = np.where(kp3d_mask[..., None], mirror_points(kp3d), 0.0).astype(f32)
        kp2d = np.where(kp2d_mask[..., None], mirror_keypoints_2d_normalized(kp2d, w), 0.0)
        K = mirror_intrinsics(K, w)
        T = _MIRROR4 @ T @ _MIRROR4
        if clip is not None:
            clip = mirror_image(clip, "HWC")
    if clip is not None:
        frame_K = lb.frame_K(K)
    item = {
        "mano": torch.from_numpy(np.ascontiguousarray(mano, dtype=f32)),
        "joints": torch.from_numpy(np.ascontiguousarray(joints, dtype=f32)),
        "kp2d": torch.from_numpy(kp2d.astype(f32)),
        "kp2d_mask": torch.from_numpy(np.ascontiguousarray(kp2d_mask)),
        "kp2d_conf": torch.from_numpy(np.ascontiguousarray(conf, dtype=f32)),
        "kp3d": torch.from_numpy(np.ascontiguousarray(kp3d, dtype=f32)),
        "kp3d_mask": torch.from_numpy(np.ascontiguousarray(kp3d_mask)),
        "mano_mask": torch.from_numpy(np.ascontiguousarray(mano_mask)),
        "occlusion": torch.from_numpy(np.ascontiguousarray(occlusion)),
        "K": torch.from_numpy(K.astype(f32)),
        "image_size": torch.from_numpy(size.astype(f32)),
        "T_cano_from_cam": torch.from_numpy(np.ascontiguousarray(T, dtype=f32)),
        "is_left": torch.tensor(is_left),
    }
    if clip is not None:
        item["frames"] = torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1, 2)))
        item["frame_K"] = torch.from_numpy(frame_K.astype(f32))
    return item


class SyntheticWindows(Dataset):
    """Windows generated on the fly: item ``i`` is sequence ``i`` of ``SyntheticWorld(seed, config)``.

    Args:
        length: number of items of an epoch (any size; the stream is unbounded).
        seed: :data:`TRAIN_SEED` (0) for training, >= 1000 for test sets.
        frames: window length N.
        render: also render the frames (``size`` x ``size``, letterboxed).
        offset: index of item 0 in the stream (e.g. to resume, or to cut a stream in parts).
    """

    def __init__(
        self, length: int = 100_000, *, seed: int = TRAIN_SEED, frames: int = 48, render: bool = False, size: int = 224,
        config: SynthConfig | None = None, mirror_left: bool = True, offset: int = 0, mano_dir: str | None = None,
    ) -> None:
        config = config or SynthConfig()
        if config.frames != frames:
            config = SynthConfig(**{**config.__dict__, "frames": frames})
        self.world = SyntheticWorld(seed, config, mano_dir=mano_dir)
        self.length = int(length)
        self.render = render
        self.size = int(size)
        self.mirror_left = mirror_left
        self.offset = int(offset)

    def __len__(self) -> int:
        return self.length

    def identity(self) -> dict[str, Any]:
        """Everything that determines item ``i`` (for caches keyed by index), ``render`` aside."""
        return {"seed": self.world.seed, "config": dataclasses.asdict(self.world.config), "size": self.size,
                "mirror_left": self.mirror_left, "offset": self.offset, "hand": type(self.world.hands[True]).__name__}

    def without_frames(self) -> "SyntheticWindows":
        """The same windows without rendering (a shallow copy sharing the world)."""
        plain = copy.copy(self)
        plain.render = False
        return plain

    def _item(self, seq: SyntheticSequence) -> dict[str, torch.Tensor]:
        frames = seq.render(self.size) if self.render else None
        return make_item(seq.motion, seq.conditions, frames=frames, mirror_left=self.mirror_left)

    def _check(self, i: int) -> int:
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} windows")
        return self.offset + i

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self._item(self.world.sequence(self._check(int(i))))

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        """A whole batch generated at once (the DataLoader uses this with ``batch_size``)."""
        seqs = self.world.sequences([self._check(int(i)) for i in indices])
        return [self._item(s) for s in seqs]


def _read_frames(seq_dir: Path) -> np.ndarray | None:
    """Frames of a written sequence: lossless ``frames.npz`` if present, else decoded ``frames.mp4``."""
    npz = seq_dir / "frames.npz"
    if npz.exists():
        return load_npz(npz)["frames"]
    mp4 = seq_dir / "frames.mp4"
    if mp4.exists():
        import imageio.v3 as iio

        return np.asarray(iio.imread(mp4, plugin="FFMPEG"))
    return None


class SynthDirWindows(Dataset):
    """Windows read from a directory written by ``unihand synth`` (``seq_*/motion.npz`` + ``conditions.npz``).

    Args:
        root: the ``--out`` directory.
        frames: window length (default: each sequence's full length); sequences shorter than it
            are skipped.
        stride: step between window starts (default: ``frames``).
        render: also return the frames (from ``frames.npz``, else decoded from ``frames.mp4``).
    """

    def __init__(self, root: str | os.PathLike, *, frames: int | None = None, stride: int | None = None,
                 render: bool = False, mirror_left: bool = True) -> None:
        self.root = Path(root)
        dirs = sorted(p for p in self.root.glob("seq_*") if (p / "motion.npz").exists())
        if not dirs:
            raise UserError(f"{self.root}: no sequences (expected seq_*/motion.npz written by `unihand synth`)")
        self.render = render
        self.mirror_left = mirror_left
        self.windows: list[tuple[Path, int, int]] = []
        for d in dirs:
            with np.load(d / "motion.npz") as z:
                n = int(z["global_orient"].shape[0])
            length = frames or n
            step = stride or length
            self.windows += [(d, s, length) for s in range(0, n - length + 1, step)]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        d, start, length = self.windows[i]
        motion = Motion.load(d / "motion.npz", require_joints=True)
        cond = Conditions.load(d / "conditions.npz")
        frames = None
        if self.render:
            frames = _read_frames(d)
            if frames is None:
                raise UserError(f"{d}: no frames.npz or frames.mp4 (write the set with `unihand synth --render`)")
        return make_item(motion, cond, frames=frames, start=start, length=length, mirror_left=self.mirror_left)
