"""Motion and conditions files (docs/design.md §7): validated loading and atomic saving.

Every reader goes through :func:`load_npz` so a bad file fails with one line naming
the file, the field and the expected shape, never a traceback from deep inside numpy.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from unihand.errors import UserError
from unihand.files import atomic_write
from unihand.hand.joints import MANO_DIM, MANO_SLICES


def save_npz(path: str | os.PathLike, arrays: dict[str, Any]) -> Path:
    """Atomically save a dict of arrays (None values skipped) as an uncompressed ``.npz``."""
    clean = {k: np.asarray(v) for k, v in arrays.items() if v is not None}
    return atomic_write(path, lambda tmp: np.savez(tmp, **clean), suffix=".npz")


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file (no pickles) or raise a one-line :class:`UserError`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected an .npz file")
    try:
        if not zipfile.is_zipfile(path):
            raise UserError(f"{path}: not an .npz file (an .npz is a zip archive of arrays, as numpy.savez writes)")
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:  # closed even when damaged
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise UserError(f"{path}: not a readable .npz file ({err.__class__.__name__}: {err})") from None


def check_array(
    path: str | os.PathLike, name: str, value: np.ndarray, shape: tuple[int | str | None, ...],
    *, finite: bool = True,
) -> np.ndarray:
    """Check ``value`` against ``shape`` (ints fixed, ``None``/names free) and return it as an array.

    Named dims (e.g. ``"N"``) are only checked for consistency by the caller; here they are free.
    """
    arr = np.asarray(value)
    dims = ["N" if d is None else str(d) for d in shape]
    expected = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
    if arr.ndim != len(shape) or any(isinstance(d, int) and d != s for d, s in zip(shape, arr.shape)):
        raise UserError(f"{path}: field '{name}' has shape {tuple(arr.shape)}, expected {expected}")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_:
        raise UserError(f"{path}: field '{name}' has dtype {arr.dtype}, expected numbers")
    if finite and np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise UserError(f"{path}: field '{name}' contains NaN or infinite values")
    return arr


def _frames(path: Path, arrays: dict[str, np.ndarray], names: list[str]) -> int:
    """Common frame count N of the named fields; raises when they disagree or N == 0."""
    counts = {n: arrays[n].shape[0] for n in names if n in arrays}
    if not counts:
        raise UserError(f"{path}: none of the fields {names} is present")
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"'{k}' has {v}" for k, v in counts.items())
        raise UserError(f"{path}: fields disagree on the number of frames ({detail})")
    n = next(iter(counts.values()))
    if n == 0:
        raise UserError(f"{path}: the sequence is empty (0 frames)")
    return n


def _meta(path: Path, raw: dict[str, np.ndarray]) -> dict[str, Any]:
    """Camera and sequence metadata shared by motion and conditions files."""
    out: dict[str, Any] = {}
    if "K" in raw:
        out["K"] = check_array(path, "K", raw["K"], (3, 3)).astype(np.float32)
    if "image_size" in raw:
        out["image_size"] = check_array(path, "image_size", raw["image_size"], (2,))
    if "fps" in raw:
        fps = float(check_array(path, "fps", np.reshape(raw["fps"], ()), ()))
        if fps <= 0:
            raise UserError(f"{path}: field 'fps' is {fps}, expected a positive number")
        out["fps"] = fps
    if "is_right" in raw:
        flag = np.asarray(raw["is_right"])
        if flag.size != 1:
            raise UserError(f"{path}: field 'is_right' has shape {flag.shape}, expected one value (True / False)")
        out["is_right"] = flag.reshape(()).item() if flag.dtype.kind in "biu" else str(flag.reshape(()))
    return out


def _as_array(value: Any) -> Any:
    """Torch tensors (detached, on the CPU) and lists as numpy arrays; None as is."""
    if value is None or isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


#: Largest magnitude per field that any motion, even a badly trained model's, can have: beyond it a
#: value is an encoding error (1e30), not a motion (metres for positions, radians, pixels for 2D joints).
MAGNITUDE_LIMITS = {"global_orient": 1e3, "hand_pose": 1e3, "betas": 1e3, "transl": 1e5, "joints": 1e5,
                    "vertices": 1e5, "kp3d": 1e5, "kp3d_hand": 1e5, "mano": 1e5, "joints_2d": 1e9}


def _check_float(where: str, name: str, value: Any, shape: tuple, *, finite: bool) -> np.ndarray:
    """A real-valued array of ``shape`` with plausible magnitudes (one-line errors), as float32."""
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
        raise UserError(f"{where}: field '{name}' has dtype {arr.dtype}, expected real numbers")
    arr = check_array(where, name, arr, shape, finite=finite)
    limit = MAGNITUDE_LIMITS.get(name)
    if limit is not None and arr.size:
        with np.errstate(invalid="ignore"):
            peak = float(np.nanmax(np.abs(arr), initial=0.0))
        if peak > limit:
            raise UserError(f"{where}: field '{name}' reaches {peak:.3g}, expected magnitudes up to {limit:g} "
                            "(metres, radians or pixels)")
    return arr.astype(np.float32)


def _check_mask(where: str, name: str, value: Any, shapes: list[tuple[int, ...]]) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape not in shapes:
        raise UserError(f"{where}: field '{name}' has shape {arr.shape}, expected {' or '.join(map(str, shapes))}")
    if arr.dtype != np.bool_ and not (np.issubdtype(arr.dtype, np.integer) and np.isin(arr, (0, 1)).all()):
        raise UserError(f"{where}: field '{name}' has dtype {arr.dtype}, expected booleans (or 0 / 1)")
    return arr.astype(bool)


def _check_meta(record: Any, where: str) -> None:
    """``is_right``, ``fps``, ``K``, ``image_size`` of a motion or conditions record."""
    from unihand.geometry.camera import check_image_size, check_intrinsics

    flag = record.is_right
    if isinstance(flag, np.ndarray) and flag.shape == ():
        flag = flag.item()
    if not isinstance(flag, (bool, np.bool_)) and not (isinstance(flag, (int, np.integer)) and flag in (0, 1)):
        raise UserError(f"{where}: field 'is_right' is {flag!r}, expected True (right hand) or False (left hand)")
    record.is_right = bool(flag)
    try:
        fps = float(record.fps)
    except (TypeError, ValueError):
        raise UserError(f"{where}: field 'fps' is {record.fps!r}, expected a positive number") from None
    if not (np.isfinite(fps) and fps > 0):
        raise UserError(f"{where}: field 'fps' is {fps}, expected a positive number")
    record.fps = fps
    if record.K is not None:
        K = check_intrinsics(_as_array(record.K), where)
        record.K = K.astype(np.float32)
    if record.image_size is not None:
        record.image_size = np.array(check_image_size(_as_array(record.image_size), where), np.int64)


class _NpzRecord:
    """Saving shared by motion and conditions files: fields + verbatim extras, atomically."""

    extra: dict[str, np.ndarray]
    is_right: bool
    fps: float

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | os.PathLike | None = None) -> None:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out["is_right"] = np.bool_(self.is_right)
        out["fps"] = np.float32(self.fps)
        return {**self.extra, **out}

    def save(self, path: str | os.PathLike) -> Path:
        """Validate (non-finite motion values are an error), then write atomically."""
        self.validate(f"{self.__class__.__name__.lower()} to write to {path}")
        return save_npz(path, self.to_dict())


@dataclass
class Motion(_NpzRecord):
    """A MANO hand motion of N frames in the canonical frame (metres)."""

    global_orient: np.ndarray  # (N, 3) axis-angle
    hand_pose: np.ndarray  # (N, 45) axis-angle, flat-hand mean
    betas: np.ndarray  # (N, 10)
    transl: np.ndarray  # (N, 3)
    joints: np.ndarray | None = None  # (N, 21, 3) OpenPose order
    vertices: np.ndarray | None = None  # (N, 778, 3) when a MANO model was used
    joints_2d: np.ndarray | None = None  # (N, 21, 2) pixels
    is_right: bool = True
    fps: float = 30.0
    K: np.ndarray | None = None  # (3, 3)
    image_size: np.ndarray | None = None  # (2,) as (W, H)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # other arrays kept verbatim

    def validate(self, where: str | os.PathLike | None = None) -> None:
        """Shapes, dtypes, one frame count, finite values and the metadata (one-line UserError)."""
        where = str(where or "Motion")
        shapes = {"global_orient": (None, 3), "hand_pose": (None, 45), "betas": (None, 10), "transl": (None, 3),
                  "joints": (None, 21, 3), "vertices": (None, 778, 3), "joints_2d": (None, 21, 2)}
        counts = {}
        for name, shape in shapes.items():
            value = _as_array(getattr(self, name))
            if value is None:
                continue
            value = _check_float(where, name, value, shape, finite=True)
            setattr(self, name, value)
            counts[name] = value.shape[0]
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"'{k}' has {v}" for k, v in counts.items())
            raise UserError(f"{where}: fields disagree on the number of frames ({detail})")
        _check_meta(self, where)

    @property
    def num_frames(self) -> int:
        return int(self.global_orient.shape[0])

    def mano(self) -> np.ndarray:
        """The flattened (N, 61) MANO vector."""
        return np.concatenate([self.global_orient, self.hand_pose, self.betas, self.transl], axis=-1)

    @classmethod
    def from_mano(cls, mano: np.ndarray, **kwargs: Any) -> "Motion":
        """Build from a flattened (N, 61) MANO vector."""
        mano = np.asarray(mano, dtype=np.float32)
        return cls(**{k: mano[:, s] for k, s in MANO_SLICES.items()}, **kwargs)

    @classmethod
    def load(cls, path: str | os.PathLike, *, require_joints: bool = False) -> "Motion":
        path = Path(path)
        raw = load_npz(path)
        required = list(MANO_SLICES) + (["joints"] if require_joints else [])
        missing = [k for k in required if k not in raw]
        if missing:
            raise UserError(
                f"{path}: missing field(s) {', '.join(repr(m) for m in missing)} "
                "(a motion file holds global_orient (N,3), hand_pose (N,45), betas (N,10), transl (N,3), joints (N,21,3))"
            )
        shapes = {
            "global_orient": (None, 3), "hand_pose": (None, 45), "betas": (None, 10), "transl": (None, 3),
            "joints": (None, 21, 3), "vertices": (None, 778, 3), "joints_2d": (None, 21, 2),
        }
        arrs = {k: check_array(path, k, raw[k], s).astype(np.float32) for k, s in shapes.items() if k in raw}
        _frames(path, arrs, list(arrs))
        known = set(shapes) | {"K", "image_size", "fps", "is_right"}
        extra = {k: v for k, v in raw.items() if k not in known}
        try:
            return cls(**arrs, **_meta(path, raw), extra=extra)
        except UserError as err:
            msg = str(err)
            raise UserError(msg if msg.startswith(str(path)) else f"{path}: {msg.removeprefix('Motion: ')}") from None



#: Normalised 2D keypoints further than this outside [0, 1] cannot be image observations.
KP2D_RANGE = (-2.0, 3.0)


def check_normalised(kp2d: np.ndarray, mask: np.ndarray | None = None, where: str = "conditions") -> None:
    """2D keypoints must be normalised by (W, H); values far beyond [0, 1] are pixels given by mistake."""
    kp = np.asarray(kp2d)
    if mask is not None:
        m = np.asarray(mask, bool)
        kp = kp[m] if m.ndim == 2 else kp[m].reshape(-1, 2)
    used = kp[np.isfinite(kp).all(-1)] if kp.size else kp
    if used.size and (used.max() > KP2D_RANGE[1] or used.min() < KP2D_RANGE[0]):
        worst = float(used.max() if used.max() > KP2D_RANGE[1] else used.min())
        raise UserError(
            f"{where}: 'kp2d' holds {worst:g}, but 2D keypoints are normalised to [0, 1] by the image size "
            "(W, H); pixels? divide them by (W, H) (Conditions.from_pixels does it)"
        )


CONDITION_SHAPES: dict[str, tuple[int | None, ...]] = {
    "kp2d": (None, 21, 2),
    "kp3d": (None, 21, 3),
    "kp3d_hand": (None, 21, 3),
    "mano": (None, MANO_DIM),
}


@dataclass
class Conditions(_NpzRecord):
    """Structured conditions of N frames, each with a per-frame (N,) or per-joint (N, 21) mask.

    NaN keypoints are treated as missing: they are zeroed and their mask entries switched off.
    """

    kp2d: np.ndarray | None = None  # (N, 21, 2) normalised to [0, 1] by (W, H)
    kp2d_mask: np.ndarray | None = None  # (N,) or (N, 21) bool
    kp2d_conf: np.ndarray | None = None  # (N, 21) detector confidence, optional
    kp3d: np.ndarray | None = None  # (N, 21, 3) canonical frame, metres
    kp3d_mask: np.ndarray | None = None
    # (N, 21, 3) hand-centred metric 3D keypoints, any origin and orientation per frame: a detector's
    # own 3D hand (MediaPipe's world landmarks); only their articulation is used (the refinement)
    kp3d_hand: np.ndarray | None = None
    kp3d_hand_mask: np.ndarray | None = None  # (N,) or (N, 21)
    mano: np.ndarray | None = None  # (N, 61)
    mano_mask: np.ndarray | None = None  # (N,)
    is_right: bool = True
    fps: float = 30.0
    K: np.ndarray | None = None
    image_size: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_pixels(cls, kp2d_px: np.ndarray, image_size: tuple[int, int] | np.ndarray, **kwargs: Any) -> "Conditions":
        """2D keypoints in pixels (N, 21, 2) -> normalised by ``image_size`` (W, H); other fields as given."""
        size = np.asarray(image_size, dtype=np.float64).reshape(2)
        if not np.all(size > 0):
            raise UserError(f"image_size {size.tolist()}: expected two positive numbers (W, H)")
        kp = (np.asarray(kp2d_px, dtype=np.float64) / size).astype(np.float32)
        return cls(kp2d=kp, image_size=size.astype(np.int64), **kwargs)

    def modalities(self) -> list[str]:
        return [m for m in CONDITION_SHAPES if getattr(self, m) is not None]

    def validate(self, where: str | os.PathLike | None = None) -> None:
        """Shapes, dtypes, masks, one frame count, confidences in [0, 1], normalised 2D keypoints and
        the metadata (one-line UserError). NaN keypoints are allowed: they count as masked."""
        where = str(where or "Conditions")
        counts = {}
        for m, shape in CONDITION_SHAPES.items():
            value = _as_array(getattr(self, m))
            mask = _as_array(getattr(self, f"{m}_mask"))
            if value is None:
                if mask is not None:
                    raise UserError(f"{where}: field '{m}_mask' is given without '{m}'")
                continue
            value = _check_float(where, m, value, shape, finite=False)
            n = value.shape[0]
            counts[m] = n
            setattr(self, m, value)
            if mask is not None:
                shapes = [(n,)] + ([(n, 21)] if m != "mano" else [])
                setattr(self, f"{m}_mask", _check_mask(where, f"{m}_mask", mask, shapes))
        conf = _as_array(self.kp2d_conf)
        if conf is not None:
            if self.kp2d is None:
                raise UserError(f"{where}: field 'kp2d_conf' is given without 'kp2d'")
            conf = _check_float(where, "kp2d_conf", conf, (self.kp2d.shape[0], 21), finite=True)
            if conf.size and (conf.min() < 0 or conf.max() > 1):
                bad = conf[(conf < 0) | (conf > 1)][0]
                raise UserError(f"{where}: field 'kp2d_conf' holds {bad:g}; confidences are expected in [0, 1]")
            self.kp2d_conf = conf
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"'{k}' has {v}" for k, v in counts.items())
            raise UserError(f"{where}: fields disagree on the number of frames ({detail})")
        if self.kp2d is not None:
            check_normalised(self.kp2d, self.kp2d_mask, where)
        _check_meta(self, where)

    @property
    def num_frames(self) -> int:
        mods = self.modalities()
        return int(getattr(self, mods[0]).shape[0]) if mods else 0

    def frame_mask(self, modality: str) -> np.ndarray:
        """(N,) bool: frames where ``modality`` carries any signal."""
        m = getattr(self, f"{modality}_mask")
        n = getattr(self, modality).shape[0]
        if m is None:
            return np.ones(n, dtype=bool)
        return m.any(axis=-1) if m.ndim == 2 else m.astype(bool)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Conditions":
        path = Path(path)
        raw = load_npz(path)
        mods = [m for m in CONDITION_SHAPES if m in raw]
        if not mods:
            raise UserError(
                f"{path}: no condition field found; expected any of kp2d (N,21,2), kp3d (N,21,3), "
                "kp3d_hand (N,21,3), mano (N,61)"
            )
        out: dict[str, Any] = {}
        for m in mods:
            arr = _check_float(str(path), m, raw[m], CONDITION_SHAPES[m], finite=False)
            out[m] = arr
            if f"{m}_mask" in raw:
                ok_shapes = [(arr.shape[0],)] + ([(arr.shape[0], 21)] if m != "mano" else [])
                out[f"{m}_mask"] = _check_mask(str(path), f"{m}_mask", raw[f"{m}_mask"], ok_shapes)
        if "kp2d_conf" in raw and "kp2d" in out:
            out["kp2d_conf"] = _check_float(str(path), "kp2d_conf", raw["kp2d_conf"], (None, 21), finite=True)
        _frames(path, out, mods + [f"{m}_mask" for m in mods] + ["kp2d_conf"])
        known = set(out) | {"K", "image_size", "fps", "is_right", "kp2d_conf"}
        extra = {k: v for k, v in raw.items() if k not in known}
        try:
            cond = cls(**out, **_meta(path, raw), extra=extra)
        except UserError as err:
            msg = str(err)
            raise UserError(msg if msg.startswith(str(path)) else f"{path}: {msg.removeprefix('Conditions: ')}") from None
        cond.mask_non_finite()
        return cond

    def mask_non_finite(self) -> None:
        """Zero NaN/inf entries and switch their mask off (per joint for keypoints, per frame for MANO)."""
        for m in self.modalities():
            arr = getattr(self, m)
            bad = ~np.isfinite(arr)
            if not bad.any():
                continue
            mask = getattr(self, f"{m}_mask")
            n = arr.shape[0]
            if m == "mano":
                keep = ~bad.any(axis=-1)
                mask = keep if mask is None else (mask & keep)
            else:
                keep = ~bad.any(axis=-1)  # (N, 21)
                if mask is None:
                    mask = np.ones((n, 21), dtype=bool)
                elif mask.ndim == 1:
                    mask = np.repeat(mask[:, None], 21, axis=1)
                mask = mask & keep
            setattr(self, m, np.where(bad, 0.0, arr).astype(np.float32))
            setattr(self, f"{m}_mask", mask)

