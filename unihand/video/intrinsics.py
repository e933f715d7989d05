"""Camera intrinsics of a video: ``--intrinsics fx,fy,cx,cy``, ``--fov DEG`` (horizontal), or by default a
pinhole with :data:`~unihand.geometry.camera.DEFAULT_FOV_DEG` degrees across the image's longer side;
absurd values are one-line errors."""

from __future__ import annotations

import math

import numpy as np

from unihand.errors import UserError
from unihand.geometry.camera import DEFAULT_FOV_DEG, default_intrinsics, intrinsics_from_fov

#: Horizontal fields of view (degrees) accepted as plausible for a real camera.
FOV_RANGE = (5.0, 160.0)


def resolve_intrinsics(
    width: int, height: int, intrinsics: tuple[float, float, float, float] | str | None = None,
    fov: float | None = None,
) -> tuple[np.ndarray, str]:
    """``K`` (3, 3) float64 and a description of where it came from; absurd values raise UserError."""

    if intrinsics is not None and fov is not None:
        raise UserError("give either --intrinsics or --fov, not both")
    if intrinsics is not None:
        if isinstance(intrinsics, str):
            try:
                vals = [float(v) for v in intrinsics.replace(" ", "").split(",")]
            except ValueError:
                vals = []
            if len(vals) != 4:
                raise UserError(f"--intrinsics {intrinsics!r}: expected four numbers fx,fy,cx,cy (pixels)")
        else:
            vals = [float(v) for v in intrinsics]
        fx, fy, cx, cy = vals
        text = f"--intrinsics {fx:g},{fy:g},{cx:g},{cy:g}"
        if not all(math.isfinite(v) for v in vals) or fx <= 0 or fy <= 0:
            raise UserError(f"{text}: focal lengths must be positive finite numbers")
        hfov = math.degrees(2 * math.atan(width / (2 * fx)))
        if not FOV_RANGE[0] <= hfov <= FOV_RANGE[1]:
            raise UserError(
                f"{text}: fx={fx:g} px gives a {hfov:.1f} degree field of view on a {width} px wide video, "
                f"outside the plausible {FOV_RANGE[0]:g}-{FOV_RANGE[1]:g} degrees (are they for another resolution?)"
            )
        if not 0.5 <= fx / fy <= 2.0:
            raise UserError(f"{text}: fx/fy = {fx / fy:.2f}, expected close to 1 (square-ish pixels)")
        if not (0 <= cx <= width and 0 <= cy <= height):
            raise UserError(f"{text}: principal point ({cx:g}, {cy:g}) lies outside the {width}x{height} image")
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return K, text
    if fov is not None:
        if not (math.isfinite(fov) and FOV_RANGE[0] <= fov <= FOV_RANGE[1]):
            raise UserError(f"--fov {fov:g}: expected a horizontal field of view between "
                            f"{FOV_RANGE[0]:g} and {FOV_RANGE[1]:g} degrees")
        return intrinsics_from_fov(fov, width, height), f"--fov {fov:g} (horizontal)"
    return default_intrinsics(width, height), f"default: {DEFAULT_FOV_DEG:g} degrees across the longer side"
