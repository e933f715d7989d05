"""DexYCB (Chao et al., 2021) from its official layout, one track per sequence and camera.

Layout read here (as the official dex-ycb-toolkit)::

    <root>/calibration/intrinsics/<serial>_640x480.yml      color: fx, fy, ppx, ppy
    <root>/calibration/mano_<mano_calib>/mano.yml             betas (10)
    <root>/<subject>/<sequence>/meta.yml                      num_frames, mano_sides, mano_calib
    <root>/<subject>/<sequence>/<serial>/labels_%06d.npz      pose_m (1,51), joint_3d (1,21,3),
                                                              joint_2d (1,21,2), seg (480,640)
    <root>/<subject>/<sequence>/<serial>/color_%06d.jpg

``pose_m[:, :3]`` is the global orientation, ``pose_m[:, 3:48]`` 45 MANO PCA coefficients
(``flat_hand_mean=False``) and ``pose_m[:, 48:51]`` the translation, in the camera frame; the
user's MANO turns the PCA pose into full axis-angle. Splits follow the toolkit's setups
(``s0`` default: train = sequences i % 5 != 4 of all 10 subjects; val = i % 5 == 4 of
subjects 0-1; test = i % 5 == 4 of subjects 2-9; all 8 cameras). Frames without a hand
annotation (``pose_m`` all zero or ``joint_3d`` all -1) are kept with ``valid`` False.
Each frame's occlusion ratio follows paper eq. 17, ``seg == 255`` being the visible hand.
Parsed sequences are cached (see :func:`load_tracks`).
"""

from __future__ import annotations

import functools
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import yaml

from unihand.data.datasets.common import (
    SkipReport,
    Track,
    cached,
    default_cache_dir,
    hand_model,
    mano_id,
    mano_rows,
    read_images,
    require_dir,
    visible_in_image,
)
from unihand.data.datasets.occlusion import hand_silhouette, occlusion_ratio
from unihand.errors import UserError
from unihand.hand import fk_numpy, pca_to_full

SUBJECTS = (
    "20200709-weiy", "20200813-ceppner", "20200820-amousavian", "20200903-ynarang", "20200908-yux",
    "20200918-ftozetoramos", "20200928-ahanda", "20201002-dieterf", "20201015-ychao", "20201022-lmanuelli",
)
SERIALS = (
    "836212060125", "839512060362", "840412060917", "841412060263",
    "932122060857", "932122060861", "932122061900", "932122062010",
)
IMAGE_SIZE = (640, 480)
FPS = 30.0
HAND_LABEL = 255  # value of the hand in the ``seg`` masks (objects are 1..21)
SEQUENCES_PER_SUBJECT = 100
_CACHE_VERSION = "dexycb-1"


def split_indices(setup: str, split: str) -> tuple[list[int], list[int], list[int]]:
    """(subject, serial, sequence) indices of a toolkit setup (s0-s3) and split (train/val/test)."""
    every = list(range(SEQUENCES_PER_SUBJECT))
    table = {
        ("s0", "train"): (list(range(10)), list(range(8)), [i for i in every if i % 5 != 4]),
        ("s0", "val"): ([0, 1], list(range(8)), [i for i in every if i % 5 == 4]),
        ("s0", "test"): (list(range(2, 10)), list(range(8)), [i for i in every if i % 5 == 4]),
        ("s1", "train"): ([0, 1, 2, 3, 4, 5, 9], list(range(8)), every),
        ("s1", "val"): ([6], list(range(8)), every),
        ("s1", "test"): ([7, 8], list(range(8)), every),
        ("s2", "train"): (list(range(10)), list(range(6)), every),
        ("s2", "val"): (list(range(10)), [6], every),
        ("s2", "test"): (list(range(10)), [7], every),
        ("s3", "train"): (list(range(10)), list(range(8)), [i for i in every if i // 5 not in (3, 7, 11, 15, 19)]),
        ("s3", "val"): (list(range(10)), list(range(8)), [i for i in every if i // 5 in (3, 19)]),
        ("s3", "test"): (list(range(10)), list(range(8)), [i for i in every if i // 5 in (7, 11, 15)]),
    }
    try:
        return table[(setup, split)]
    except KeyError:
        raise UserError(f"DexYCB: unknown setup/split {setup}/{split} (setups s0-s3, splits train/val/test)") from None


def _yaml(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"DexYCB: missing file {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"DexYCB: unreadable YAML {path} ({err.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise UserError(f"DexYCB: {path} does not hold a mapping")
    return data


def intrinsics(root: Path, serial: str) -> np.ndarray:
    """K (3, 3) of a camera's colour stream at 640x480."""
    path = root / "calibration" / "intrinsics" / f"{serial}_{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}.yml"
    try:
        c = _yaml(path)["color"]
        return np.array([[c["fx"], 0.0, c["ppx"]], [0.0, c["fy"], c["ppy"]], [0.0, 0.0, 1.0]])
    except (KeyError, TypeError):
        raise UserError(f"DexYCB: {path} lacks color: fx, fy, ppx, ppy") from None


def _read_labels(cam_dir: Path, num_frames: int) -> dict[str, np.ndarray]:
    """Stack a camera's label files; a missing or truncated file raises ``ValueError`` (skip)."""
    pose, j3, j2, seg = [], [], [], []
    for f in range(num_frames):
        path = cam_dir / f"labels_{f:06d}.npz"
        if not path.is_file():
            raise ValueError(f"missing {path.name}")
        try:
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as d:  # closed even when not a zip
                pose.append(np.asarray(d["pose_m"], np.float64).reshape(51))
                j3.append(np.asarray(d["joint_3d"], np.float64).reshape(21, 3))
                j2.append(np.asarray(d["joint_2d"], np.float64).reshape(21, 2))
                seg.append(np.asarray(d["seg"]))
        except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError) as err:
            raise ValueError(f"unreadable {path.name} ({err.__class__.__name__}: {err})") from None
    return {"pose_m": np.stack(pose), "joint_3d": np.stack(j3), "joint_2d": np.stack(j2), "seg": np.stack(seg)}


def convert_pose_m(pose_m: np.ndarray, betas: np.ndarray, hand: torch.nn.Module) -> np.ndarray:
    """(T, 51) DexYCB ``pose_m`` + betas (10,) -> (T, 61) MANO with full axis-angle hand pose."""
    pca = torch.from_numpy(np.asarray(pose_m[:, 3:48], np.float64))
    full = pca_to_full(pca, hand.hands_components, hand.hands_mean, flat_hand_mean=False).numpy()
    t = len(pose_m)
    return mano_rows(pose_m[:, :3], full, np.broadcast_to(betas, (t, 10)), pose_m[:, 48:51])


def _parse_camera(cam_dir: Path, num_frames: int, betas: np.ndarray, K: np.ndarray, mano_dir: str,
                  is_right: bool) -> dict[str, np.ndarray]:
    """Per-frame arrays of one camera in the recorded side's MANO (before mirroring)."""
    raw = _read_labels(cam_dir, num_frames)
    valid = ~np.all(raw["pose_m"] == 0, axis=-1) & ~np.all(raw["joint_3d"] == -1, axis=(-1, -2))
    hand = hand_model(mano_dir, is_right)
    mano = convert_pose_m(raw["pose_m"], betas, hand)
    _, vertices = fk_numpy(hand, mano)
    occlusion = np.full(num_frames, np.nan)
    for f in np.flatnonzero(valid):
        full = hand_silhouette(vertices[f], hand.faces, K, IMAGE_SIZE)
        occlusion[f] = occlusion_ratio(full, raw["seg"][f] == HAND_LABEL)
    return {"mano": mano, "joint_3d": raw["joint_3d"], "joint_2d": raw["joint_2d"], "valid": valid,
            "occlusion": occlusion}


def _subject_sequences(root: Path, subject: str, indices: list[int]) -> list[Path]:
    seqs = sorted(p for p in (root / subject).iterdir() if p.is_dir())
    if len(seqs) != SEQUENCES_PER_SUBJECT:
        print(f"DexYCB: note: {root / subject} holds {len(seqs)} sequence folders, the official release "
              f"{SEQUENCES_PER_SUBJECT}; the split by sequence index assumes the full set", file=sys.stderr)
    return [seqs[i] for i in indices if i < len(seqs)]


def load_tracks(
    root: str | Path, split: str = "test", *, mano_dir: str | Path | None = None, setup: str = "s0",
    cache_dir: str | Path | None = None, use_cache: bool = True,
) -> list[Track]:
    """Every (sequence, camera) of a split as a right-handed :class:`Track` in its camera frame.

    Needs the user's MANO (``mano_dir`` with ``MANO_RIGHT.pkl``, and ``MANO_LEFT.pkl`` for
    left-hand sequences). Parsed cameras are cached under ``cache_dir``
    (default :func:`default_cache_dir`) ``/dexycb``; ``use_cache=False`` reads the raw files only.
    Broken sequences/cameras are skipped and reported; the count is printed.
    """
    root = Path(root).expanduser()
    require_dir(root, "DexYCB root")
    require_dir(root / "calibration", "DexYCB calibration folder")
    if mano_dir is None:
        raise UserError("DexYCB stores hand poses as MANO PCA coefficients: give --mano-dir, the folder "
                        "holding MANO_RIGHT.pkl and MANO_LEFT.pkl")
    mano_dir = str(Path(mano_dir).expanduser())
    right_hand = hand_model(mano_dir, True)
    cache = None if not use_cache else Path(cache_dir or default_cache_dir()).expanduser() / "dexycb"
    subject_ind, serial_ind, sequence_ind = split_indices(setup, split)
    report = SkipReport("DexYCB")
    present = [SUBJECTS[i] for i in subject_ind if (root / SUBJECTS[i]).is_dir()]
    for i in subject_ind:
        if SUBJECTS[i] not in present:
            report.skip(SUBJECTS[i], f"subject folder {root / SUBJECTS[i]} is missing")
    if not present:
        raise UserError(f"DexYCB: none of the {split} subject folders ({', '.join(SUBJECTS[i] for i in subject_ind)}) "
                        f"is under {root}")
    serials = [SERIALS[i] for i in serial_ind]
    Ks = {s: intrinsics(root, s) for s in serials}
    tracks: list[Track] = []
    for subject in present:
        for seq_dir in _subject_sequences(root, subject, sequence_ind):
            name = f"{subject}/{seq_dir.name}"
            try:
                meta = _yaml(seq_dir / "meta.yml")
                num_frames = int(meta["num_frames"])
                side = str(meta["mano_sides"][0])
                calib = str(meta["mano_calib"][0])
            except (UserError, KeyError, IndexError, TypeError, ValueError) as err:
                report.skip(name, f"bad meta.yml ({err})")
                continue
            if side not in ("right", "left"):
                report.skip(name, f"mano_sides is {side!r}, expected 'right' or 'left'")
                continue
            is_right = side == "right"
            key = f"{_CACHE_VERSION}:{mano_id(mano_dir, is_right)}"  # a UserError names a missing MANO_LEFT.pkl
            try:
                betas = np.asarray(_yaml(root / "calibration" / f"mano_{calib}" / "mano.yml")["betas"], np.float64)
            except (UserError, KeyError, TypeError) as err:
                report.skip(name, f"no MANO shape calibration mano_{calib} ({err})")
                continue
            for serial in serials:
                cam_dir = seq_dir / serial
                track_name = f"{name}/{serial}"
                if not cam_dir.is_dir():
                    report.skip(track_name, f"camera folder {cam_dir} is missing")
                    continue
                parse = functools.partial(_parse_camera, cam_dir, num_frames, betas, Ks[serial], mano_dir, is_right)
                try:
                    data = cached(None if cache is None else cache / f"{track_name}.npz", key, parse)
                except ValueError as err:
                    report.skip(track_name, str(err))
                    continue
                tracks.append(_track(track_name, data, Ks[serial], is_right, right_hand,
                                     tuple(str(cam_dir / f"color_{f:06d}.jpg") for f in range(num_frames))))
    return report.finish(tracks, f"{root} ({setup}/{split})")


def _track(name: str, data: dict[str, np.ndarray], K: np.ndarray, is_right: bool, right_hand: torch.nn.Module,
           image_paths: tuple[str, ...]) -> Track:
    valid = data["valid"].astype(bool)
    kp2d = data["joint_2d"].astype(np.float32)
    mano = data["mano"].astype(np.float32)
    track = Track(
        name=name, mano=mano, joints=data["joint_3d"].astype(np.float32),
        rest_root=right_hand.rest_root(torch.from_numpy(mano[:, 48:58]).double()).numpy(),
        valid=valid, kp2d=kp2d, kp2d_mask=visible_in_image(kp2d, IMAGE_SIZE) & valid[:, None],
        K=K, image_size=IMAGE_SIZE, occlusion=data["occlusion"].astype(np.float64), is_right=is_right,
        fps=FPS, frames=functools.partial(read_images, image_paths),
    )
    return track if is_right else track.mirrored()
