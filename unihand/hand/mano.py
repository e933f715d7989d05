"""MANO from the user's official ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``, without chumpy (docs/design.md §3).

The pickles are read by :class:`ManoUnpickler`, which rebuilds numpy arrays, chumpy ``Ch``
arrays (as numpy) and ``scipy.sparse`` csc/csr matrices and refuses every other class
without calling it. The known sign bug of the official left-hand shape space is fixed on load
(``shapedirs[:, 0, :] *= -1``, the fix InterHand2.6M/HaMeR-era code applies on top of smplx,
which loads the file as is). :class:`ManoHand` is LBS with pose blend shapes; it matches
``smplx.MANO(use_pca=False, flat_hand_mean=True)`` and adds the fingertip vertices as joints.
"""

from __future__ import annotations

import codecs
import importlib
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import torch

from unihand.errors import UserError
from unihand.hand.joints import FINGERTIP_VERTEX_IDS, MANO_PARENTS, MANO_TO_OPENPOSE
from unihand.hand.kinematic import HandModel, forward_kinematics, rotation_batch
from unihand.hand.output import HandOutput

MANO_URL = "https://mano.is.tue.mpg.de"
NUM_VERTICES = 778


class _ChumpyArray:
    """Stand-in for a pickled ``chumpy.ch.Ch``: keeps its state, later replaced by ``state['x']``."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _SparseMatrix:
    """Stand-in for a pickled scipy sparse matrix, rebuilt from its arrays after loading."""

    fmt = ""
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _CscMatrix(_SparseMatrix):
    fmt = "csc"


class _CsrMatrix(_SparseMatrix):
    fmt = "csr"


_PLACEHOLDERS = (_ChumpyArray, _CscMatrix, _CsrMatrix)


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """Safe ``copyreg._reconstructor``: only instantiates the placeholders above."""
    if cls not in _PLACEHOLDERS or base is not object or state is not None:
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")
    return cls()


def _allowed_classes() -> dict[tuple[str, str], Any]:
    """(module, name) -> the object :class:`ManoUnpickler` hands out for it."""
    installed = "numpy._core" if hasattr(np, "_core") else "numpy.core"
    multiarray = importlib.import_module(f"{installed}.multiarray")
    numeric = importlib.import_module(f"{installed}.numeric")
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):  # numpy 1.x / 2.x names
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol 5
    for module in ("copy_reg", "copyreg"):
        allowed[(module, "_reconstructor")] = _reconstructor
    for module in ("__builtin__", "builtins"):  # object: base of reconstructed objects; sets: chumpy state
        allowed.update({(module, "object"): object, (module, "set"): set, (module, "frozenset"): frozenset})
    allowed[("_codecs", "encode")] = codecs.encode  # bytes in protocol-2 pickles written by Python 3
    allowed[("chumpy.ch", "Ch")] = _ChumpyArray
    for fmt, cls in (("csc", _CscMatrix), ("csr", _CsrMatrix)):
        for module in (f"scipy.sparse.{fmt}", f"scipy.sparse._{fmt}", "scipy.sparse"):
            allowed[(module, f"{fmt}_matrix")] = cls
    return allowed


class ManoUnpickler(pickle.Unpickler):
    """Unpickler for MANO files: numpy arrays, chumpy arrays and scipy sparse matrices only."""

    def __init__(self, file: Any, path: str | os.PathLike) -> None:
        super().__init__(file, encoding="latin1")
        self.path = path
        self.allowed = _allowed_classes()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UserError(
                f"{self.path}: refusing to load class {module}.{name} (a MANO file holds only arrays); "
                "is this an official MANO file?"
            ) from None


def _to_plain(obj: Any, path: str | os.PathLike) -> Any:
    """Replace the placeholders left by :class:`ManoUnpickler` with numpy / scipy objects."""
    if isinstance(obj, dict):
        return {k: _to_plain(v, path) for k, v in obj.items()}
    if isinstance(obj, _ChumpyArray):
        state = obj.state if isinstance(obj.state, dict) else {}
        if "x" not in state:
            raise UserError(f"{path}: a chumpy object holds no array ('x'); is this an official MANO file?")
        return np.asarray(_to_plain(state["x"], path))
    if isinstance(obj, _SparseMatrix):
        state = obj.state if isinstance(obj.state, dict) else {}
        try:
            arrays = (state["data"], state["indices"], state["indptr"])
            shape = tuple(state.get("_shape", state.get("shape")))
        except (KeyError, TypeError):
            raise UserError(f"{path}: unreadable sparse matrix (fields {sorted(state)})") from None
        make = scipy.sparse.csc_matrix if obj.fmt == "csc" else scipy.sparse.csr_matrix
        return make(arrays, shape=shape)
    return obj


def load_mano_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """Read an official MANO pickle without chumpy; chumpy arrays become numpy arrays."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = ManoUnpickler(fh, path).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise UserError(f"{path}: not a readable MANO pickle ({err.__class__.__name__}: {err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a dict of arrays, found {type(data).__name__}")
    return _to_plain(data, path)


_EXPECTED = {
    "v_template": (NUM_VERTICES, 3),
    "shapedirs": (NUM_VERTICES, 3, 10),
    "posedirs": (NUM_VERTICES, 3, 135),
    "J_regressor": (16, NUM_VERTICES),
    "weights": (NUM_VERTICES, 16),
    "kintree_table": (2, 16),
    "f": (None, 3),
    "hands_components": (None, 45),
    "hands_mean": (45,),
}


def mano_file(mano_dir: str | os.PathLike, is_right: bool = True) -> Path:
    """Path of ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` in ``mano_dir``; a :class:`UserError` if absent."""
    path = Path(mano_dir).expanduser() / f"MANO_{'RIGHT' if is_right else 'LEFT'}.pkl"
    if not path.is_file():
        raise UserError(
            f"MANO model not found: {path.resolve()} does not exist. MANO cannot be shipped: register at "
            f"{MANO_URL}, download 'Models & Code' (mano_v1_2) and point --mano-dir at the folder "
            "holding MANO_RIGHT.pkl and MANO_LEFT.pkl (mano_v1_2/models)"
        )
    return path


def load_mano_arrays(path: str | os.PathLike, is_right: bool = True) -> dict[str, np.ndarray]:
    """Validated float64 / int arrays of a MANO file, left-hand shapedirs fixed."""
    raw = load_mano_pickle(path)
    missing = [k for k in _EXPECTED if k not in raw]
    if missing:
        raise UserError(f"{path}: missing field(s) {', '.join(missing)}; is this an official MANO file?")
    out: dict[str, np.ndarray] = {}
    for key, shape in _EXPECTED.items():
        value = raw[key]
        arr = value.toarray() if scipy.sparse.issparse(value) else np.asarray(value)
        if arr.ndim != len(shape) or any(d is not None and d != s for d, s in zip(shape, arr.shape, strict=True)):
            raise UserError(f"{path}: field '{key}' has shape {arr.shape}, expected {shape}")
        if not np.issubdtype(arr.dtype, np.number):
            raise UserError(f"{path}: field '{key}' has dtype {arr.dtype}, expected numbers")
        out[key] = arr.astype(np.int64 if key in ("f", "kintree_table") else np.float64)
        if not np.isfinite(out[key]).all():
            raise UserError(f"{path}: field '{key}' holds NaN or infinite values; is this file damaged?")
    parents = out["kintree_table"][0].copy()
    parents[0] = -1
    if tuple(parents) != MANO_PARENTS:
        raise UserError(f"{path}: kinematic tree {parents.tolist()} is not MANO's {list(MANO_PARENTS)}")
    if not is_right:
        out["shapedirs"][:, 0, :] *= -1
    return out


def pca_to_full(
    pca_coeffs: torch.Tensor, hands_components: torch.Tensor, hands_mean: torch.Tensor, flat_hand_mean: bool = False
) -> torch.Tensor:
    """(..., k) MANO PCA coefficients -> (..., 45) full axis-angle ``hand_pose`` (flat-hand mean).

    ``flat_hand_mean`` is the dataset's setting: ``False`` (DexYCB, HOT3D) adds ``hands_mean``.
    """
    k = pca_coeffs.shape[-1]
    full = pca_coeffs @ hands_components[:k].to(pca_coeffs)
    return full if flat_hand_mean else full + hands_mean.to(pca_coeffs)


def full_to_pca(
    hand_pose: torch.Tensor, hands_components: torch.Tensor, hands_mean: torch.Tensor, num_comps: int,
    flat_hand_mean: bool = False,
) -> torch.Tensor:
    """(..., 45) ``hand_pose`` -> (..., num_comps) least-squares PCA coefficients (inverse of :func:`pca_to_full`)."""
    comps = hands_components[:num_comps].to(hand_pose)
    centred = hand_pose if flat_hand_mean else hand_pose - hands_mean.to(hand_pose)
    return centred @ torch.linalg.pinv(comps)


class ManoHand(HandModel):
    """MANO with linear blend skinning and pose blend shapes (778 vertices, 21 joints).

    Parameters and output as :class:`unihand.hand.kinematic.KinematicHand`; build with
    :meth:`from_dir`. ``hands_components`` / ``hands_mean`` are kept for :func:`pca_to_full`.
    """

    kind = "mano"

    def __init__(self, arrays: dict[str, np.ndarray], is_right: bool = True) -> None:
        super().__init__()
        self.is_right = is_right
        self.faces = arrays["f"]
        buffers = {
            "v_template": arrays["v_template"],
            "shapedirs": arrays["shapedirs"],
            "posedirs": arrays["posedirs"].reshape(-1, 135).T,  # (135, 778 * 3)
            "J_regressor": arrays["J_regressor"],
            "lbs_weights": arrays["weights"],
            "hands_components": arrays["hands_components"],
            "hands_mean": arrays["hands_mean"],
        }
        for name, value in buffers.items():
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value)), persistent=False)

    @classmethod
    def from_dir(cls, mano_dir: str | os.PathLike, is_right: bool = True) -> ManoHand:
        """Load ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` from ``mano_dir``."""
        return cls(load_mano_arrays(mano_file(mano_dir, is_right), is_right), is_right)

    def extra_repr(self) -> str:
        return f"is_right={self.is_right}"

    def _shaped(self, betas: torch.Tensor | None, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shaped template (..., 778, 3) and rest joints (..., 16, 3)."""
        v = self.v_template.to(like)
        if betas is not None:
            v = v + torch.einsum("...l,vcl->...vc", betas.to(like), self.shapedirs.to(like))
        return v, self.J_regressor.to(like) @ v

    def rest_root(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """Rest wrist joint position (..., 3) for ``betas`` (``None``: mean shape)."""
        like = betas if betas is not None else self.v_template
        return self._shaped(betas, like)[1][..., 0, :]

    def reference(self) -> torch.Tensor:
        return self.v_template

    def forward_rotations(
        self, rotations: torch.Tensor, betas: torch.Tensor | None = None, transl: torch.Tensor | None = None,
    ) -> HandOutput:
        """LBS from local rotation matrices (..., 16, 3, 3) (row 0: global orientation)."""
        like, lead, rot = rotation_batch(rotations, betas, transl)
        v_shaped, rest = self._shaped(betas, like)
        v_shaped, rest = v_shaped.expand(*lead, NUM_VERTICES, 3), rest.expand(*lead, 16, 3)

        pose_feature = (rot[..., 1:, :, :] - torch.eye(3, dtype=like.dtype, device=like.device)).flatten(-3)
        v_posed = v_shaped + (pose_feature @ self.posedirs.to(like)).unflatten(-1, (NUM_VERTICES, 3))

        offsets = rest - rest[..., list((0,) + MANO_PARENTS[1:]), :]
        root = rest[..., 0, :] if transl is None else rest[..., 0, :] + transl.to(like)
        rot_glob, joints16 = forward_kinematics(rot, offsets, root)
        trans = joints16 - (rot_glob @ rest[..., None])[..., 0]  # posed minus rotated rest joint
        weights = self.lbs_weights.to(like)
        vert_rot = torch.einsum("vj,...jab->...vab", weights, rot_glob)
        vertices = (vert_rot @ v_posed[..., None])[..., 0] + weights @ trans

        tips = vertices[..., list(FINGERTIP_VERTEX_IDS), :]
        joints = torch.cat([joints16, tips], -2)[..., list(MANO_TO_OPENPOSE), :]
        return HandOutput(joints=joints, joints16=joints16, vertices=vertices, rotations=rot_glob)
