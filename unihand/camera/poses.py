"""Camera poses files -> ``T_cano_from_cam`` (N, 4, 4), relative to the first frame (docs/formats.md).

Three formats, told apart by the file name:

- ``.npz``: ``T_cano_from_cam`` (N, 4, 4) (camera i to the first camera, OpenCV axes, metres),
  or ``T_world_from_cam`` (N, 4, 4) (camera to any world frame; made relative to frame 0 here).
  Metric: the default scale is 1.
- COLMAP ``images.txt`` (any name ending in ``.txt``): per image a line ``IMAGE_ID QW QX QY QZ TX
  TY TZ CAMERA_ID NAME`` followed by its 2D points line; ``(Q, T)`` is ``cam_from_world`` (world to
  camera, Hamilton quaternion, scalar first), COLMAP's camera axes are OpenCV's. Frames are the
  images sorted by NAME (numbers in names compared as numbers: ``frame_2`` before ``frame_10``).
  A reconstruction's scale is arbitrary: the default scale is ``"fit"`` (fitted to the hands).
- Aria MPS ``closed_loop_trajectory.csv`` (any name ending in ``.csv``): columns
  ``tracking_timestamp_us``, ``tx_world_device`` .. ``tz_world_device``, ``qx_world_device`` ..
  ``qw_world_device`` (``T_world_device``: device to a gravity-aligned world, metres; the other
  columns are ignored). A file with exactly one row per frame is taken as it is; a longer one
  (MPS writes 1 kHz) is sampled at ``t0 + i / fps`` (``t0`` its first timestamp, or
  ``start_us``), translations interpolated linearly and rotations by slerp. The poses are the
  Aria *device* frame's; the RGB camera differs from it by a fixed extrinsic (the device
  calibration, not in this file): give it as ``device_from_camera`` (4, 4) to get the camera's
  own motion, ``T_device_cam^-1 T_device0^-1 T_device_i T_device_cam``. Metric: scale 1.

Every reader returns float64 poses with the identity at frame 0 and raises a one-line
:class:`~unihand.errors.UserError` for a missing or unreadable file, a frame count that does not
match, NaN or infinite values, and matrices that are not rigid (through
:func:`unihand.geometry.canonical.check_camera_poses`).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from unihand.errors import UserError
from unihand.geometry.canonical import check_camera_poses
from unihand.geometry.rotations import quat_to_matrix

#: Default scale of each format's translations: metres (1.0) or up to scale ("fit").
DEFAULT_SCALE = {"npz": 1.0, "colmap": "fit", "aria": 1.0}
ARIA_COLUMNS = ("tracking_timestamp_us", "tx_world_device", "ty_world_device", "tz_world_device",
                "qx_world_device", "qy_world_device", "qz_world_device", "qw_world_device")


def poses_format(path: str | os.PathLike) -> str:
    """``npz``, ``colmap`` or ``aria`` from the file name (UserError for anything else)."""
    suffix = Path(path).suffix.lower()
    fmt = {".npz": "npz", ".txt": "colmap", ".csv": "aria"}.get(suffix)
    if fmt is None:
        raise UserError(f"{path}: unknown camera poses format (expected an .npz with T_cano_from_cam, "
                        f"a COLMAP images.txt or an Aria closed_loop_trajectory.csv)")
    return fmt


def _rigid(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.zeros(R.shape[:-2] + (4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def relative_to_first(T_world_from_cam: np.ndarray) -> np.ndarray:
    """(N, 4, 4) camera-to-world poses -> T_cano_from_cam, the first camera as the frame."""
    T = np.asarray(T_world_from_cam, np.float64)
    R0, t0 = T[0, :3, :3], T[0, :3, 3]
    inv0 = _rigid(R0.T, -R0.T @ t0)
    out = inv0 @ T
    out[0] = np.eye(4)
    return out


def _check_quats(q: np.ndarray, where: str, rows: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(q)):
        bad = int(rows[np.flatnonzero(~np.all(np.isfinite(q), axis=1))[0]])
        raise UserError(f"{where}: NaN or infinite values (frame {bad})")
    norm = np.linalg.norm(q, axis=1)
    bad = np.flatnonzero(np.abs(norm - 1.0) > 1e-3)
    if bad.size:
        raise UserError(f"{where}: frame {int(rows[bad[0]])} holds a quaternion of norm {norm[bad[0]]:.4g}, "
                        f"not a rotation (expected unit quaternions); {bad.size} such frame(s)")
    return q / norm[:, None]


def _count(where: str, got: int, num_frames: int | None, what: str) -> None:
    if num_frames is not None and got != num_frames:
        raise UserError(f"{where}: {got} {what} for the {num_frames} frames of the video "
                        f"(one pose per frame read is needed)")


def read_npz(path: str | os.PathLike, num_frames: int | None = None) -> np.ndarray:
    """``T_cano_from_cam`` (or ``T_world_from_cam``) from an .npz file."""
    where = str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if "T_cano_from_cam" in keys:
                T, world = np.asarray(z["T_cano_from_cam"]), False
            elif "T_world_from_cam" in keys:
                T, world = np.asarray(z["T_world_from_cam"]), True
            else:
                raise UserError(f"{where}: no 'T_cano_from_cam' (N, 4, 4) array in the file "
                                f"(found: {', '.join(sorted(keys)) or 'nothing'})")
    except UserError:
        raise
    except (OSError, ValueError) as err:
        raise UserError(f"{where}: cannot read the camera poses ({err})") from None
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise UserError(f"{where}: shape {T.shape}, expected (N, 4, 4) (T_cano_from_cam, one per frame)")
    _count(where, T.shape[0], num_frames, "poses")
    T = check_camera_poses(T, T.shape[0], where)
    if world:
        return check_camera_poses(relative_to_first(T), T.shape[0], where)
    if np.abs(T[0] - np.eye(4)).max() > 1e-4:  # T_cano_from_cam with another first frame: make it relative
        T = relative_to_first(T)
    return T


def _natural_key(name: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name)]


def read_colmap_images(path: str | os.PathLike, num_frames: int | None = None) -> np.ndarray:
    """Poses of a COLMAP ``images.txt`` (images sorted by name) as T_cano_from_cam."""
    where = str(path)
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{where}: cannot read the COLMAP images file ({getattr(err, 'strerror', None) or err})") from None
    # after the comments, two lines per image: the image line and its 2D points line (maybe empty)
    body = [ln for ln in lines if not ln.lstrip().startswith("#")]
    while body and not body[0].strip():
        body.pop(0)
    entries = []
    for k in range(0, len(body), 2):
        line = body[k].strip()
        if not line:
            continue
        parts = line.split()
        try:
            if len(parts) < 10:
                raise ValueError
            int(parts[0]), int(parts[8])
            vals = [float(v) for v in parts[1:8]]
        except ValueError:
            raise UserError(f"{where}: line '{line[:60]}' is not 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME' "
                            f"(a COLMAP images.txt has two lines per image: this one and its 2D points)") from None
        entries.append((" ".join(parts[9:]), vals))
    if not entries:
        raise UserError(f"{where}: no image in the COLMAP images file")
    entries.sort(key=lambda e: _natural_key(e[0]))
    _count(where, len(entries), num_frames, "images")
    v = np.array([e[1] for e in entries])
    q = _check_quats(v[:, [1, 2, 3, 0]], where, np.arange(len(v)))  # (qw, qx, qy, qz) -> xyzw
    t = v[:, 4:7]
    if not np.all(np.isfinite(t)):
        raise UserError(f"{where}: NaN or infinite values (frame {int(np.flatnonzero(~np.isfinite(t).all(1))[0])})")
    R_cw = quat_to_matrix(q)
    R_wc = np.swapaxes(R_cw, 1, 2)
    T_wc = _rigid(R_wc, -np.einsum("nij,nj->ni", R_wc, t))
    return check_camera_poses(relative_to_first(T_wc), len(entries), where)


def read_aria_trajectory(
    path: str | os.PathLike, num_frames: int | None = None, fps: float | None = None,
    start_us: float | None = None, device_from_camera: np.ndarray | None = None,
) -> np.ndarray:
    """Poses of an Aria MPS ``closed_loop_trajectory.csv`` at the video's frames as T_cano_from_cam."""
    where = str(path)
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            missing = [c for c in ARIA_COLUMNS if c not in fields]
            if missing:
                raise UserError(f"{where}: not an Aria closed-loop trajectory (missing column(s) {', '.join(missing)})")
            rows = []
            for r in reader:
                try:
                    rows.append([float(r[c]) for c in ARIA_COLUMNS])
                except (TypeError, ValueError):
                    raise UserError(f"{where}: row {len(rows) + 1} holds a value that is not a number") from None
    except UserError:
        raise
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{where}: cannot read the Aria trajectory ({getattr(err, 'strerror', None) or err})") from None
    if not rows:
        raise UserError(f"{where}: no pose in the Aria trajectory")
    a = np.array(rows)
    ts, t, q = a[:, 0], a[:, 1:4], a[:, 4:8]
    if not np.all(np.isfinite(a)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(a), axis=1))[0])
        raise UserError(f"{where}: NaN or infinite values (row {bad + 1})")
    q = _check_quats(q, where, np.arange(len(q)))
    if num_frames is not None and len(a) != num_frames:
        if fps is None or len(a) < num_frames:
            _count(where, len(a), num_frames, "poses")
        if np.any(np.diff(ts) <= 0):
            raise UserError(f"{where}: tracking_timestamp_us is not increasing")
        t0 = ts[0] if start_us is None else float(start_us)
        want = t0 + np.arange(num_frames) * 1e6 / float(fps)
        if want[0] < ts[0] - 1e3 or want[-1] > ts[-1] + 1e3:
            raise UserError(f"{where}: the trajectory covers {(ts[-1] - ts[0]) / 1e6:.2f} s from its first timestamp, "
                            f"the {num_frames} frames at {fps:g} fps need {want[-1] - ts[0]:.0f} us from {t0:.0f} us")
        want = np.clip(want, ts[0], ts[-1])
        t = np.stack([np.interp(want, ts, t[:, c]) for c in range(3)], axis=1)
        q = Slerp(ts, Rotation.from_quat(q))(want).as_quat()
    T = _rigid(quat_to_matrix(q), t)
    if device_from_camera is not None:
        D = check_camera_poses(np.asarray(device_from_camera, np.float64)[None], 1, "device_from_camera")[0]
        T = T @ D
    return check_camera_poses(relative_to_first(T), len(T), where)


def read_poses(
    path: str | os.PathLike, num_frames: int | None = None, fps: float | None = None, **aria: object,
) -> tuple[np.ndarray, str]:
    """``(T_cano_from_cam (N, 4, 4), format)`` from any supported poses file (see the module doc)."""
    fmt = poses_format(path)
    if not Path(path).is_file():
        raise UserError(f"{path}: camera poses file not found")
    if fmt == "npz":
        return read_npz(path, num_frames), fmt
    if fmt == "colmap":
        return read_colmap_images(path, num_frames), fmt
    return read_aria_trajectory(path, num_frames, fps, **aria), fmt  # type: ignore[arg-type]
