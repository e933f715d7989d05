"""The exporter registry: format name -> writer, and :func:`export_motion`, which writes any of
them for one motion as one set (staged, then swapped in: :mod:`unihand.export.output_set`).

``writer(motion, path, **ctx) -> Path`` (:mod:`unihand.export.formats` lists the context keys).
Add a format with :func:`register`; ``unihand export``, ``unihand generate --format`` and
``unihand estimate`` all write through this table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unihand.errors import UserError
from unihand.export import formats


@dataclass(frozen=True)
class Exporter:
    """One format: its writer, output name (``{stem}`` is replaced) and what it holds."""

    name: str
    writer: Callable[..., Path]
    filename: str
    description: str
    uses_mesh: bool = False

    def output_name(self, stem: str) -> str:
        return self.filename.format(stem=stem)


REGISTRY: dict[str, Exporter] = {}


def register(exporter: Exporter) -> Exporter:
    REGISTRY[exporter.name] = exporter
    return exporter


for _e in (
    Exporter("npz", formats.write_npz, "{stem}.npz", "the motion file (MANO parameters, joints, extras)"),
    Exporter("json", formats.write_json, "{stem}.json", "summary: frames, duration, wrist path, extent, shape"),
    Exporter("bvh", formats.write_bvh, "{stem}.bvh", "skeleton animation from the MANO rotations (Y up)"),
    Exporter("html", formats.write_html, "{stem}.html", "self-contained 3D viewer: skeleton, mesh, cameras"),
    Exporter("png", formats.write_png, "{stem}.png", "3D trajectory plot"),
    Exporter("obj", formats.write_obj, "{stem}_obj", "folder of one OBJ mesh per frame", uses_mesh=True),
    Exporter("glb", formats.write_glb, "{stem}.glb", "one animated binary glTF mesh (Y up)", uses_mesh=True),
):
    register(_e)


def parse_formats(spec: str | Iterable[str]) -> list[str]:
    """``"obj,glb"`` / ``["obj", "glb"]`` / ``"all"`` -> known format names, order kept, no repeats."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in (str(i).strip().lower().lstrip(".") for i in items):
        if not item:
            continue
        names = list(REGISTRY) if item == "all" else [item]
        for name in names:
            if name not in REGISTRY:
                raise UserError(f"unknown export format {item!r} (choose from {', '.join(REGISTRY)}, or all)")
            if name not in out:
                out.append(name)
    if not out:
        raise UserError("no export format given (choose from " + ", ".join(REGISTRY) + ")")
    return out


def export_motion(
    motion: Any, outdir: str | os.PathLike, formats_: str | Iterable[str], *, stem: str,
    source: str | os.PathLike | None = None, mano_dir: str | os.PathLike | None = None, hand: Any = None,
    names: dict[str, str] | None = None, **ctx: Any,
) -> dict[str, Path]:
    """Write ``motion`` in every format of ``formats_`` into ``outdir`` as ``{stem}...`` (one set:
    all files appear together or none, earlier files of these names are replaced); returns the
    paths by format. ``names`` overrides the file name of some formats (e.g. ``{"npz": "m.npz"}``).
    Every input is checked before anything is written."""
    from unihand.export.checks import require_motion_finite
    from unihand.export.mesh import hand_model, motion_mesh
    from unihand.export.output_set import OutputSet

    chosen = parse_formats(formats_)
    src = str(source or f"motion {stem}")
    outs = {n: (names or {}).get(n) or REGISTRY[n].output_name(stem) for n in chosen}
    require_motion_finite(motion, src, ", ".join(outs.values()))
    hand = hand_model(motion, mano_dir, hand)
    shared = {"source": src, "mano_dir": mano_dir, "hand": hand, **ctx}
    if any(REGISTRY[n].uses_mesh for n in chosen) and shared.get("mesh") is None:
        shared["mesh"] = motion_mesh(motion, hand=hand, source=src, what=", ".join(outs.values()))
    try:
        with OutputSet(outdir, set(outs.values())) as out:
            for n in chosen:
                REGISTRY[n].writer(motion, out.path(outs[n]), **shared)
    except ValueError as err:
        raise UserError(f"{src}: {err}; nothing written") from None
    except OSError as err:
        raise UserError(f"{outdir}: writing outputs failed ({err.strerror or err}); nothing written") from None
    return {n: out.files[outs[n]] for n in chosen}
