"""HOT3D (Banerjee et al., 2025), Aria main RGB stream (``214-1``), both hands, moving camera.

Two official layouts are read:

- **HOT3D-Clips** (what the paper uses): ``<root>/train_aria/clip-<id>.tar`` (or the tars
  directly in ``<root>``), each holding per frame ``<frame>.cameras.json`` (per stream:
  ``calibration`` with the FISHEYE624 ``projection_params``, ``image_width/height``, and
  ``T_world_from_camera``), ``<frame>.hands.json`` (``left``/``right``: ``mano_pose.thetas``
  = 15 PCA coefficients, ``mano_pose.wrist_xform`` = axis-angle + translation in world, as
  smplx takes them; ``visibilities_modeled`` per stream), ``<frame>.image_214-1.jpg``, and
  ``__hand_shapes.json__`` (``mano`` betas).
- **Raw recordings** (the public sample): ``<root>/<recording>/`` with ``metadata.json``,
  ``mano_hand_pose_trajectory.jsonl`` (hand "0" left / "1" right: ``pose`` 15 PCA, ``betas``,
  ``wrist_xform`` = ``t_xyz`` + ``q_wxyz`` in world), ``headset_trajectory.csv``
  (``T_world_device``), ``masks/*.csv`` (which timestamps belong to stream 214-1) and
  ``mps/slam/online_calibration.jsonl`` (``camera-rgb``: ``T_Device_Camera`` and FISHEYE624
  parameters). Images live in the recording's VRS file and are not read.

MANO PCA poses use ``flat_hand_mean=False``; the world-frame MANO and the camera trajectory
``T_world_from_cam`` go into each :class:`Track`; windows move to the canonical frame (camera
of their first frame) when they are cut. The RGB camera is a fisheye (FISHEYE624); the model
takes pinhole cameras, so a track uses the pinhole camera with the fisheye's focal length and
centre, as the official tools' ``--undistort`` does: 2D joints are projected with that ``K``
and frames are undistorted to it (``cv2.remap``).

The paper's split (1,272 train / 244 test clips out of the official Aria training clips) is
not published; ours is deterministic by clip id: the Aria training clips sorted by id, the last
``round(n * 244 / 1516)`` for test, the rest for training (exactly 1,272 / 244 for the full
1,516). ``split='all'`` takes every clip (and is the only split of raw recordings).
"""

from __future__ import annotations

import csv
import functools
import json
import tarfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from unihand.data.datasets.common import (
    SkipReport,
    Track,
    cached,
    default_cache_dir,
    hand_model,
    mano_id,
    mano_rows,
    require_dir,
    visible_in_image,
)
from unihand.errors import UserError
from unihand.geometry.camera import project
from unihand.geometry.canonical import make_transform, rigid_inverse, transform_points
from unihand.geometry.rotations import matrix_to_axis_angle, quat_wxyz_to_matrix
from unihand.hand import fk_numpy, pca_to_full

RGB_STREAM = "214-1"
FPS = 30.0
#: HOT3D's Aria RGB images (the raw online calibration does not state the size).
ARIA_RGB_SIZE = (1408, 1408)
PAPER_TRAIN, PAPER_TEST = 1272, 244
SIDES = ("left", "right")
_RAW_SIDE_KEYS = {"left": "0", "right": "1"}
_CACHE_VERSION = "hot3d-1"


# ----------------------------------------------------------------------------- camera model
def fisheye624_project(points: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Project camera-frame points (..., 3) with a FISHEYE624 camera -> pixels (..., 2).

    ``params`` is ``[fx, fy, cx, cy, k1..k6, p1, p2, s1..s4]`` (16) or the Aria form with one
    focal length ``[f, cx, cy, ...]`` (15). Arctan (equidistant) projection, then 6 radial,
    2 tangential and 4 thin-prism terms, as the hand_tracking_toolkit / projectaria model.
    """
    params = np.asarray(params, dtype=np.float64)
    if params.shape == (15,):
        params = np.concatenate([params[:1], params])
    if params.shape != (16,):
        raise UserError(f"HOT3D: FISHEYE624 needs 15 or 16 projection parameters, got {params.size}")
    fx, fy, cx, cy = params[:4]
    k, (p1, p2), s = params[4:10], params[10:12], params[12:16]
    x, y, z = np.moveaxis(np.asarray(points, dtype=np.float64), -1, 0)
    r = np.hypot(x, y)
    scale = np.arctan2(r, z) / np.maximum(r, 1e-300)
    u, v = x * scale, y * scale
    r2 = u * u + v * v
    radial = 1.0 + sum(k[i] * r2 ** (i + 1) for i in range(6))
    u, v = u * radial, v * radial
    r2 = u * u + v * v
    uu = u + 2 * p2 * u * v + p1 * (r2 + 2 * u * u) + s[0] * r2 + s[1] * r2 * r2
    vv = v + 2 * p1 * u * v + p2 * (r2 + 2 * v * v) + s[2] * r2 + s[3] * r2 * r2
    return np.stack([fx * uu + cx, fy * vv + cy], axis=-1)


def pinhole_K(params: np.ndarray) -> np.ndarray:
    """The pinhole part (focal lengths and centre) of FISHEYE624 parameters as a 3x3 ``K``."""
    p = np.asarray(params, dtype=np.float64)
    fx, fy, cx, cy = (p[0], p[0], p[1], p[2]) if p.size == 15 else p[:4]
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def se3(quat_wxyz: Any, translation: Any) -> np.ndarray:
    """4x4 rigid transform from a wxyz quaternion and a translation."""
    R = quat_wxyz_to_matrix(np.asarray(quat_wxyz, dtype=np.float64))
    return make_transform(R, np.asarray(translation, dtype=np.float64))


# ----------------------------------------------------------------------------- shared conversion
def world_mano(pca15: np.ndarray, wrist_aa: np.ndarray, wrist_t: np.ndarray, betas: np.ndarray,
               hand: torch.nn.Module) -> np.ndarray:
    """HOT3D MANO (15 PCA, flat_hand_mean=False, smplx wrist transform) -> (T, 61) full axis-angle.

    ``betas`` is (10,) or per frame (T, 10)."""
    full = pca_to_full(torch.from_numpy(np.asarray(pca15, np.float64)), hand.hands_components, hand.hands_mean,
                       flat_hand_mean=False).numpy()
    return mano_rows(wrist_aa, full, np.broadcast_to(betas, (len(full), 10)), wrist_t)


def _side_arrays(mano: np.ndarray, valid: np.ndarray, T_world_from_cam: np.ndarray, params: np.ndarray,
                 image_size: tuple[int, int], hand: torch.nn.Module) -> dict[str, np.ndarray]:
    """World joints and their projection into each frame's (undistorted, pinhole) camera."""
    joints, _ = fk_numpy(hand, mano.astype(np.float64))
    cam = transform_points(joints, rigid_inverse(T_world_from_cam)[:, None])
    kp2d = project(cam, pinhole_K(params))
    inside = visible_in_image(kp2d, image_size) & (cam[..., 2] > 0)
    return {"joints": joints, "kp2d": kp2d, "kp2d_mask": inside & valid[:, None]}


def _track(name: str, side: str, data: dict[str, np.ndarray], params: np.ndarray, image_size: tuple[int, int],
           right_hand: torch.nn.Module, frames: Any) -> Track:
    mano = data["mano"].astype(np.float32)
    track = Track(
        name=name, mano=mano, joints=data["joints"].astype(np.float32),
        rest_root=right_hand.rest_root(torch.from_numpy(mano[:, 48:58]).double()).numpy(),
        valid=data["valid"].astype(bool), kp2d=data["kp2d"].astype(np.float32),
        kp2d_mask=data["kp2d_mask"].astype(bool), K=pinhole_K(params), image_size=image_size,
        occlusion=data["occlusion"].astype(np.float64), is_right=side == "right", fps=FPS,
        T_world_from_cam=data["T_world_from_cam"].astype(np.float64), frames=frames,
    )
    return track if side == "right" else track.mirrored()


# ----------------------------------------------------------------------------- HOT3D-Clips
def clip_split(clip_ids: list[int], split: str) -> list[int]:
    """The deterministic paper-sized split of sorted Aria training clip ids (module doc)."""
    ids = sorted(clip_ids)
    n_test = round(len(ids) * PAPER_TEST / (PAPER_TRAIN + PAPER_TEST))
    if split == "train":
        return ids[: len(ids) - n_test]
    if split == "test":
        return ids[len(ids) - n_test:]
    if split == "all":
        return ids
    raise UserError(f"HOT3D: unknown split {split!r} (train, test or all)")


def _clip_id(path: Path) -> int:
    return int(path.name[len("clip-"):-len(".tar")])


def _json_member(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> Any:
    fh = tar.extractfile(members[name])
    if fh is None:
        raise ValueError(f"{name} is not a file")
    return json.load(fh)


def _check_complete(path: Path, members: list[tarfile.TarInfo]) -> None:
    """A tar ends with two zero blocks after its last member; a cut download does not."""
    end = max((m.offset_data + -(-m.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE for m in members), default=0)
    with open(path, "rb") as fh:
        fh.seek(end)
        marker = fh.read(2 * tarfile.BLOCKSIZE)
    if marker != bytes(2 * tarfile.BLOCKSIZE):
        raise ValueError("truncated clip (the tar ends without its end-of-archive marker)")


def _parse_clip(path: Path, mano_dir: str) -> dict[str, np.ndarray]:
    """Per-frame arrays of both hands of one clip (in each hand's own MANO, world frame)."""
    try:
        with tarfile.open(path) as tar:
            members = {m.name: m for m in tar.getmembers()}
            _check_complete(path, list(members.values()))
            keys = sorted(n[: -len(".cameras.json")] for n in members if n.endswith(".cameras.json"))
            if not keys:
                raise ValueError("no <frame>.cameras.json inside")
            if "__hand_shapes.json__" not in members:
                raise ValueError("no __hand_shapes.json__ (hand shape) inside")
            betas = np.asarray(_json_member(tar, members, "__hand_shapes.json__")["mano"], np.float64)
            cams = [_json_member(tar, members, f"{k}.cameras.json")[RGB_STREAM] for k in keys]
            hands = [_json_member(tar, members, f"{k}.hands.json") if f"{k}.hands.json" in members else {}
                     for k in keys]
            images = [members.get(f"{k}.image_{RGB_STREAM}.jpg") for k in keys]
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"unreadable clip ({err.__class__.__name__}: {err})") from None
    except KeyError as err:
        raise ValueError(f"no stream {RGB_STREAM} or field {err} in the clip (is it an Aria clip?)") from None
    calib = cams[0]["calibration"]
    T = np.stack([se3(c["T_world_from_camera"]["quaternion_wxyz"], c["T_world_from_camera"]["translation_xyz"])
                  for c in cams])
    out: dict[str, np.ndarray] = {
        "T_world_from_cam": T,
        "params": np.asarray(calib["projection_params"], np.float64),
        "image_size": np.array([calib["image_width"], calib["image_height"]]),
        "image_offsets": np.array([[m.offset_data, m.size] if m is not None else [-1, 0] for m in images]),
    }
    n = len(keys)
    for side in SIDES:
        valid = np.array([bool(h.get(side)) and "mano_pose" in h[side] for h in hands])
        pca, xform = np.zeros((n, 15)), np.zeros((n, 6))
        occlusion = np.full(n, np.nan)
        for i in np.flatnonzero(valid):
            pose = hands[i][side]["mano_pose"]
            pca[i], xform[i] = pose["thetas"], pose["wrist_xform"]
            vis = hands[i][side].get("visibilities_modeled", {}).get(RGB_STREAM)
            occlusion[i] = np.nan if vis is None else 1.0 - float(vis)
        if not valid.any():
            continue
        hand = hand_model(mano_dir, side == "right")
        mano = world_mano(pca, xform[:, :3], xform[:, 3:], betas, hand)
        arrays = _side_arrays(mano, valid, T, out["params"], tuple(out["image_size"]), hand)
        out.update({f"{side}/{k}": v for k, v in {**arrays, "mano": mano, "valid": valid,
                                                    "occlusion": occlusion}.items()})
    return out


@functools.lru_cache(maxsize=4)
def undistort_maps(params: tuple[float, ...], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps from the fisheye image to the pinhole camera :func:`pinhole_K` of ``params``."""
    K = pinhole_K(np.asarray(params))
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    src = fisheye624_project(rays, np.asarray(params)).astype(np.float32)
    return src[..., 0], src[..., 1]


def _read_tar_images(path: str, offsets: np.ndarray, params: tuple[float, ...], indices: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) uint8 RGB frames of a clip, read by byte offset from its tar and undistorted."""
    out = []
    with open(path, "rb") as fh:
        for i in indices:
            start, size = (int(v) for v in offsets[int(i)])
            if start < 0:
                raise UserError(f"HOT3D: {path} has no {RGB_STREAM} image for frame {int(i)}")
            fh.seek(start)
            im = cv2.cvtColor(cv2.imdecode(np.frombuffer(fh.read(size), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            map_x, map_y = undistort_maps(params, im.shape[1], im.shape[0])
            out.append(cv2.remap(im, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))
    return np.stack(out)


def _clip_tracks(clips: list[Path], mano_dir: str, cache: Path | None, report: SkipReport) -> list[Track]:
    right_hand = hand_model(mano_dir, True)
    key = f"{_CACHE_VERSION}:{mano_id(mano_dir, True)}:{mano_id(mano_dir, False)}"
    tracks = []
    for path in clips:
        name = path.stem
        try:
            data = cached(None if cache is None else cache / f"{name}.npz", key,
                          functools.partial(_parse_clip, path, mano_dir))
        except ValueError as err:
            report.skip(name, str(err))
            continue
        size = (int(data["image_size"][0]), int(data["image_size"][1]))
        frames = functools.partial(_read_tar_images, str(path), data["image_offsets"], tuple(data["params"].tolist()))
        sides = [s for s in SIDES if f"{s}/mano" in data]
        if not sides:
            report.skip(name, "no MANO hand annotation in any frame (a test clip?)")
        for side in sides:
            arrays = {k.split("/", 1)[1]: v for k, v in data.items() if k.startswith(f"{side}/")}
            arrays["T_world_from_cam"] = data["T_world_from_cam"]
            tracks.append(_track(f"{name}/{side}", side, arrays, data["params"], size, right_hand, frames))
    return tracks


# ----------------------------------------------------------------------------- raw recordings
def _csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise ValueError(f"missing {path.name}")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _rgb_timestamps(rec: Path) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps of stream 214-1 and whether hand and headset poses are available there."""
    ok: dict[int, bool] = {}
    for mask in ("mask_hand_pose_available", "mask_headset_pose_available"):
        path = rec / "masks" / f"{mask}.csv"
        if not path.is_file():
            continue
        for row in _csv(path):
            if row["stream_id"] == RGB_STREAM:
                t = int(row["timestamp[ns]"])
                ok[t] = ok.get(t, True) and row["mask"].strip().lower() == "true"
    if not ok:
        raise ValueError(f"no {RGB_STREAM} timestamps in masks/mask_hand_pose_available.csv")
    ts = np.array(sorted(ok), dtype=np.int64)
    return ts, np.array([ok[int(t)] for t in ts])


def _rgb_calibration(rec: Path) -> tuple[np.ndarray, np.ndarray]:
    """``T_device_from_camera`` and FISHEYE624 parameters of camera-rgb (first online calibration)."""
    path = rec / "mps" / "slam" / "online_calibration.jsonl"
    if not path.is_file():
        raise ValueError(f"missing {path.relative_to(rec)} (the RGB camera calibration)")
    with open(path) as fh:
        first = json.loads(fh.readline())
    for cam in first.get("CameraCalibrations", []):
        if cam.get("Label") == "camera-rgb":
            q = cam["T_Device_Camera"]["UnitQuaternion"]
            T = se3([q[0], *q[1]], cam["T_Device_Camera"]["Translation"])
            return T, np.asarray(cam["Projection"]["Params"], np.float64)
    raise ValueError(f"{path.name} has no camera-rgb calibration")


def _parse_recording(rec: Path, mano_dir: str) -> dict[str, np.ndarray]:
    ts, available = _rgb_timestamps(rec)
    T_device_cam, params = _rgb_calibration(rec)
    poses = {}
    with open(rec / "mano_hand_pose_trajectory.jsonl") as fh:
        for line in fh:
            if line.strip():
                entry = json.loads(line)
                poses[int(entry["timestamp_ns"])] = entry["hand_poses"]
    headset = {int(r["timestamp[ns]"]): r for r in _csv(rec / "headset_trajectory.csv")}
    n = len(ts)
    has_device = np.array([int(t) in headset for t in ts])
    T_world_device = np.stack([
        se3([float(headset[t][f"q_wo_{a}"]) for a in "wxyz"], [float(headset[t][f"t_wo_{a}[m]"]) for a in "xyz"])
        if t in headset else np.eye(4) for t in map(int, ts)
    ])
    T = T_world_device @ T_device_cam
    out: dict[str, np.ndarray] = {"T_world_from_cam": T, "params": params, "image_size": np.array(ARIA_RGB_SIZE)}
    for side in SIDES:
        entries = [poses.get(int(t), {}).get(_RAW_SIDE_KEYS[side]) for t in ts]
        valid = available & has_device & np.array([e is not None for e in entries])
        if not valid.any():
            continue
        pca, aa, tr, betas = np.zeros((n, 15)), np.zeros((n, 3)), np.zeros((n, 3)), np.zeros((n, 10))
        for i in np.flatnonzero(valid):
            e = entries[i]
            pca[i], betas[i], tr[i] = e["pose"], e["betas"], e["wrist_xform"]["t_xyz"]
            aa[i] = matrix_to_axis_angle(quat_wxyz_to_matrix(np.asarray(e["wrist_xform"]["q_wxyz"], np.float64)))
        betas[~valid] = betas[valid][0]
        hand = hand_model(mano_dir, side == "right")
        mano = world_mano(pca, aa, tr, betas, hand)
        arrays = _side_arrays(mano, valid, T, params, ARIA_RGB_SIZE, hand)
        out.update({f"{side}/{k}": v for k, v in {**arrays, "mano": mano, "valid": valid,
                                                    "occlusion": np.full(n, np.nan)}.items()})
    return out


def _recording_tracks(recordings: list[Path], mano_dir: str, cache: Path | None, report: SkipReport) -> list[Track]:
    right_hand = hand_model(mano_dir, True)
    key = f"{_CACHE_VERSION}:{mano_id(mano_dir, True)}:{mano_id(mano_dir, False)}"
    tracks = []
    for rec in recordings:
        name = rec.name
        try:
            headset = json.loads((rec / "metadata.json").read_text()).get("headset")
        except (OSError, json.JSONDecodeError) as err:
            report.skip(name, f"unreadable metadata.json ({err.__class__.__name__})")
            continue
        if headset != "Aria":
            report.skip(name, f"headset {headset!r} has no RGB stream (the paper uses Aria recordings only)")
            continue
        try:
            data = cached(None if cache is None else cache / f"{name}.npz", key,
                          functools.partial(_parse_recording, rec, mano_dir))
        except (ValueError, KeyError, TypeError, json.JSONDecodeError, OSError) as err:
            report.skip(name, f"{err.__class__.__name__}: {err}")
            continue
        for side in SIDES:
            if f"{side}/mano" in data:
                arrays = {k.split("/", 1)[1]: v for k, v in data.items() if k.startswith(f"{side}/")}
                arrays["T_world_from_cam"] = data["T_world_from_cam"]
                tracks.append(_track(f"{name}/{side}", side, arrays, data["params"], ARIA_RGB_SIZE, right_hand, None))
    return tracks


# ----------------------------------------------------------------------------- entry point
def load_tracks(
    root: str | Path, split: str = "test", *, mano_dir: str | Path | None = None,
    cache_dir: str | Path | None = None, use_cache: bool = True,
) -> list[Track]:
    """Every hand of every clip (or raw Aria recording) of ``split`` as a right-handed world-frame
    :class:`Track`. Needs the user's MANO (both ``MANO_RIGHT.pkl`` and ``MANO_LEFT.pkl``: HOT3D
    has both hands). Broken clips are skipped and reported; the count is printed.
    """
    root = Path(root).expanduser()
    require_dir(root, "HOT3D root")
    if mano_dir is None:
        raise UserError("HOT3D stores hand poses as MANO PCA coefficients: give --mano-dir, the folder "
                        "holding MANO_RIGHT.pkl and MANO_LEFT.pkl")
    mano_dir = str(Path(mano_dir).expanduser())
    cache = None if not use_cache else Path(cache_dir or default_cache_dir()).expanduser() / "hot3d"
    report = SkipReport("HOT3D")
    clip_dir = root / "train_aria" if (root / "train_aria").is_dir() else root
    clips = {_clip_id(p): p for p in clip_dir.glob("clip-*.tar")}
    if clips:
        chosen = [clips[i] for i in clip_split(list(clips), split)]
        tracks = _clip_tracks(chosen, mano_dir, cache, report)
        return report.finish(tracks, f"{clip_dir} ({split}: {len(chosen)} of {len(clips)} clips)")
    recordings = sorted(p for p in [root, *root.iterdir()] if (p / "mano_hand_pose_trajectory.jsonl").is_file())
    if not recordings:
        raise UserError(f"HOT3D: no clips (train_aria/clip-*.tar) and no recordings (*/mano_hand_pose_trajectory.jsonl) "
                        f"under {root}")
    if split != "all":
        raise UserError(f"HOT3D: {root} holds raw recordings, which have no clip split; use split 'all' "
                        "(the paper's train/test split is defined on HOT3D-Clips)")
    return report.finish(_recording_tracks(recordings, mano_dir, cache, report), str(root))
