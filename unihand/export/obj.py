"""Wavefront OBJ export: one ``.obj`` per frame in a folder (``frame_00000.obj``, ...), written by trimesh.

Each file holds that frame's vertices (``v x y z``, metres, 6 decimals, in the motion's
canonical OpenCV frame, so they equal the motion's ``vertices`` for MANO) and the triangles
(``f a b c``, 1-based, counter-clockwise seen from outside). The folder is written beside its
final name and renamed into place (an earlier folder of that name is replaced whole).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from unihand.files import current_umask


def obj_text(vertices: np.ndarray, faces: np.ndarray, header: str = "") -> str:
    """OBJ text of one frame: ``vertices`` (V, 3), ``faces`` (F, 3) 0-based; ``header`` one comment line."""
    import trimesh
    from trimesh.exchange.obj import export_obj

    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False)
    return export_obj(mesh, include_normals=False, include_color=False, include_texture=False, digits=6,
                      header=" ".join(header.split()) or None)


def write_obj_folder(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray, header: str = "") -> Path:
    """Write one OBJ per frame of ``vertices`` (N, V, 3) into the folder ``path``, atomically."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if v.ndim != 3 or v.shape[2] != 3 or v.shape[0] == 0:
        raise ValueError(f"vertices must be (N, V, 3) with N >= 1, got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("vertices contain NaN or infinite values")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    old = None
    try:
        for k in range(v.shape[0]):
            (tmp / f"frame_{k:05d}.obj").write_text(obj_text(v[k], f, f"{header}, frame {k}".strip(", ")))
        umask = current_umask()
        os.chmod(tmp, 0o777 & ~umask)
        for p in tmp.iterdir():
            os.chmod(p, 0o666 & ~umask)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / path.name).exists() and not path.exists():
            os.replace(old / path.name, path)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return path
