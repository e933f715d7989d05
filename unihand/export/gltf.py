"""One animated binary glTF (``.glb``) of a mesh sequence, written with numpy alone: trimesh's glTF
exporter writes static scenes only (no animations), and pygltflib would only hold the same buffers
and accessors built here.

Layout (glTF 2.0, one file, readable by Blender, three.js / model-viewer, trimesh, pygltflib):

- one node per frame (``frame_00000`` ...), children of a root node ``unihand_motion``, each
  with its own mesh (positions and normals of that frame; the triangle indices are one shared
  accessor) and one PBR material (skin coloured, double sided);
- one animation ``motion`` that shows each frame's node during its frame only: a STEP scale
  track per node (0 outside its frame, 1 during it; 2-3 keys each, so the file grows linearly
  with the frame count). Frame k lasts from ``k / fps`` to ``(k + 1) / fps``. Nodes other than
  the first have scale 0 at rest, so a viewer without animation shows the first frame.

Why per-frame nodes and not morph targets: a morph-target animation needs a weight per target
per key, N x N numbers for N frames (36 MB of weights for a 100 s clip), and viewers differ in
how many targets they blend; node scale tracks are supported everywhere and stay O(N).

Coordinates: glTF is +Y up, metres; the motion's canonical OpenCV frame (x right, y down, z
forward) is rotated 180 degrees about x, ``(x, y, z) -> (x, -y, -z)``, as in the BVH file.
``asset.extras`` records fps, frames, vertex count and the mesh kind.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from unihand.files import atomic_write

#: OpenCV camera frame -> glTF's Y-up frame.
CV_TO_YUP = np.diag([1.0, -1.0, -1.0])
SKIN = [0.88, 0.68, 0.58, 1.0]
_FLOAT, _USHORT, _UINT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def glb_bytes(vertices: np.ndarray, faces: np.ndarray, fps: float = 30.0, *, normals: np.ndarray | None = None,
              kind: str = "mesh", name: str = "unihand_motion") -> bytes:
    """The GLB file of ``vertices`` (N, V, 3) metres (canonical OpenCV frame) and ``faces`` (F, 3)."""
    from unihand.export.mesh import vertex_normals

    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if v.ndim != 3 or v.shape[2] != 3 or v.shape[0] == 0 or v.shape[1] == 0:
        raise ValueError(f"vertices must be (N, V, 3) with N, V >= 1, got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0 or f.min() < 0 or f.max() >= v.shape[1]:
        raise ValueError(f"faces must be (F, 3) indices into {v.shape[1]} vertices")
    if not np.all(np.isfinite(v)):
        raise ValueError("vertices contain NaN or infinite values")
    n, nv = v.shape[:2]
    pos = (v @ CV_TO_YUP.T).astype("<f4")
    nrm = (vertex_normals(pos.astype(np.float64), f) if normals is None else np.asarray(normals) @ CV_TO_YUP.T)
    nrm = nrm.astype("<f4")
    blob = bytearray()
    views: list[dict] = []
    accessors: list[dict] = []

    def add_view(data: bytes, target: int | None = None) -> int:
        while len(blob) % 4:
            blob.append(0)
        view = {"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        blob.extend(data)
        views.append(view)
        return len(views) - 1

    def add_accessor(view: int, offset: int, ctype: int, count: int, typ: str, **extra) -> int:
        accessors.append({"bufferView": view, "byteOffset": offset, "componentType": ctype, "count": count,
                          "type": typ, **extra})
        return len(accessors) - 1

    wide = nv > 65535
    idx = f.astype("<u4" if wide else "<u2").reshape(-1)
    index_acc = add_accessor(add_view(idx.tobytes(), _ELEMENT_ARRAY_BUFFER), 0, _UINT if wide else _USHORT,
                             idx.size, "SCALAR")
    pos_view = add_view(pos.tobytes(), _ARRAY_BUFFER)
    nrm_view = add_view(nrm.tobytes(), _ARRAY_BUFFER)
    frame_bytes = nv * 12
    meshes, nodes = [], [{"name": name, "children": list(range(1, n + 1))}]
    for k in range(n):
        pa = add_accessor(pos_view, k * frame_bytes, _FLOAT, nv, "VEC3",
                          min=pos[k].min(0).tolist(), max=pos[k].max(0).tolist())
        na = add_accessor(nrm_view, k * frame_bytes, _FLOAT, nv, "VEC3")
        meshes.append({"name": f"frame_{k:05d}", "primitives": [
            {"attributes": {"POSITION": pa, "NORMAL": na}, "indices": index_acc, "material": 0, "mode": 4}]})
        node = {"name": f"frame_{k:05d}", "mesh": k}
        if k > 0:
            node["scale"] = [0.0, 0.0, 0.0]
        nodes.append(node)
    gltf: dict = {
        "asset": {"version": "2.0", "generator": "unihand",
                  "extras": {"fps": float(fps), "frames": n, "vertices": nv, "faces": int(f.shape[0]), "mesh": kind,
                             "frame": "canonical camera frame turned Y-up: (x, -y, -z)"}},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": nodes, "meshes": meshes,
        "materials": [{"name": "skin", "doubleSided": True,
                       "pbrMetallicRoughness": {"baseColorFactor": SKIN, "metallicFactor": 0.0, "roughnessFactor": 0.8}}],
    }
    if n > 1:
        dt = 1.0 / float(fps)
        times, values, spans = [], [], []
        for k in range(n):
            if k == 0:
                t, s = [0.0, dt], [1.0, 0.0]
            elif k == n - 1:
                t, s = [0.0, k * dt], [0.0, 1.0]
            else:
                t, s = [0.0, k * dt, (k + 1) * dt], [0.0, 1.0, 0.0]
            spans.append((len(times), len(t)))
            times.extend(t)
            values.extend(s)
        tarr = np.asarray(times, "<f4")
        sarr = np.repeat(np.asarray(values, "<f4")[:, None], 3, axis=1)
        tview, sview = add_view(tarr.tobytes()), add_view(sarr.tobytes())
        samplers, channels = [], []
        for k, (start, count) in enumerate(spans):
            ti = add_accessor(tview, 4 * start, _FLOAT, count, "SCALAR",
                              min=[float(tarr[start])], max=[float(tarr[start + count - 1])])
            si = add_accessor(sview, 12 * start, _FLOAT, count, "VEC3")
            samplers.append({"input": ti, "output": si, "interpolation": "STEP"})
            channels.append({"sampler": k, "target": {"node": k + 1, "path": "scale"}})
        gltf["animations"] = [{"name": "motion", "samplers": samplers, "channels": channels}]
    while len(blob) % 4:
        blob.append(0)
    gltf.update(bufferViews=views, accessors=accessors, buffers=[{"byteLength": len(blob)}])
    text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total), struct.pack("<I4s", len(text), b"JSON"), text,
                     struct.pack("<I4s", len(blob), b"BIN\x00"), bytes(blob)])


def write_glb(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray, fps: float = 30.0, *,
              kind: str = "mesh") -> Path:
    """Atomically write :func:`glb_bytes` to ``path``."""
    data = glb_bytes(vertices, faces, fps, kind=kind)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), suffix=".glb")
