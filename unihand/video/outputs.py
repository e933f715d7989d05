"""The output set of ``estimate``: per hand its motion, summary, overlay, plot, viewer and BVH, written
into a staging folder and swapped in for the previous run's as one unit (:mod:`unihand.export.output_set`):
a failure leaves the earlier set as it was, a kill mid-swap is completed or undone by the next run, and
files of an earlier run that this one does not make (the overlay after ``--no-render``, the other hand)
are removed. Files come from the exporter registry (:mod:`unihand.export`); the overlay video is
rendered in a second streaming pass over the video."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from unihand.errors import UserError

if TYPE_CHECKING:
    from unihand.video.decode import VideoSource
    from unihand.video.estimate import HandResult, Timings

HAND_CHOICES = {"right": ("right",), "left": ("left",), "both": ("right", "left")}
OUTPUT_NAMES = {
    "motion": "{hand}_motion.npz", "summary": "{hand}_summary.json", "overlay": "{hand}_overlay.mp4",
    "trajectory": "{hand}_trajectory.png", "viewer": "{hand}_viewer.html", "bvh": "{hand}.bvh",
}
#: Files of the registry per output (the overlay video is rendered apart).
RENDERED = {"trajectory": "png", "viewer": "html", "bvh": "bvh"}


def check_output_dir(outdir: str | os.PathLike, create: bool = True) -> Path:
    """Make sure files can be written in ``outdir`` (UserError if not), creating it if needed;
    ``create=False`` checks its nearest existing parent instead, so a run that fails later leaves nothing."""
    outdir = Path(outdir)
    try:
        if outdir.exists() and not outdir.is_dir():
            raise UserError(f"{outdir}: output path exists and is not a folder")
        probe = outdir
        if create:
            outdir.mkdir(parents=True, exist_ok=True)
        elif not outdir.exists():
            probe = next(p for p in outdir.absolute().parents if p.exists())
            if not probe.is_dir():
                raise UserError(f"{outdir}: cannot write outputs there ({probe} is not a folder)")
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise UserError(f"{outdir}: cannot write outputs there ({err.strerror or err})") from None
    return outdir


def owned_names() -> set[str]:
    """Every output name ``estimate`` may write into a folder (both hands): the set it replaces."""
    return {v.format(hand=side) for v in OUTPUT_NAMES.values() for side in HAND_CHOICES["both"]}


def write_outputs(
    outdir: Path, source: "VideoSource", results: dict[str, "HandResult"], timings: "Timings", *, render: bool,
    progress_bar: Callable[[int, str], Any], say: Callable[[str], None],
    mesh: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None, mano_dir: str | None = None,
) -> None:
    """Write this run's whole output set into staging and swap it in for the previous one as one unit;
    ``render=False``: the motions and summaries only. Fills each result's ``files``."""
    from unihand.export.output_set import OutputSet
    from unihand.export.registry import REGISTRY

    names = {side: {k: v.format(hand=side) for k, v in OUTPUT_NAMES.items()} for side in results}
    try:
        with OutputSet(outdir, owned_names()) as out:
            for side, r in results.items():
                with timings(f"write_motion_{side}"):
                    REGISTRY["npz"].writer(r.motion, out.path(names[side]["motion"]))
            if render:
                staged = {side: {key: out.path(name) for key, name in names[side].items()} for side in results}
                render_files(staged, source, results, timings, mesh, mano_dir)
                say("rendering the overlay video(s)")
                render_overlay_videos(staged, source, results, timings, progress_bar, mesh)
            for side, r in results.items():
                r.summary["timings_s"] = hand_timings(timings, side)
                r.summary["outputs"] = {k: v for k, v in names[side].items() if out.path(v).exists() or k == "summary"}
                REGISTRY["json"].writer(r.motion, out.path(names[side]["summary"]), summary=r.summary)
    except OSError as err:
        raise UserError(f"{outdir}: writing outputs failed ({err.strerror or err})") from None
    for side, r in results.items():
        r.files.update({key: out.files[name] for key, name in names[side].items() if name in out.files})


def render_files(
    staged: dict[str, dict[str, Path]], source: "VideoSource", results: dict[str, "HandResult"], timings: "Timings",
    mesh: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None, mano_dir: str | None = None,
) -> None:
    """The plot, viewer and BVH of every hand (:data:`RENDERED`), at their staged paths."""
    from unihand.export.registry import REGISTRY

    info = source.info
    for side, r in results.items():
        m = r.motion
        ctx: dict[str, Any] = {"source": f"{side} hand of {info.path.name}", "infilled": r.infilled,
                               "side": f"{side} hand", "first_frame": info.start, "mano_dir": mano_dir}
        if mesh and side in mesh and m.vertices is not None:
            from unihand.export.mesh import MeshSequence

            ctx["mesh"] = MeshSequence(np.asarray(m.vertices, np.float64), mesh[side][2], "mano")
        for key, fmt in RENDERED.items():
            title = f"{side} hand - {info.path.name}" if fmt == "png" else f"UniHand - {side} hand - {info.path.name}"
            with timings(f"render_{key}_{side}"):
                REGISTRY[fmt].writer(m, staged[side][key], **ctx, title=title)


def render_overlay_videos(
    staged: dict[str, dict[str, Path]], source: "VideoSource", results: dict[str, "HandResult"], timings: "Timings",
    progress_bar: Callable[[int, str], Any], mesh: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
) -> None:
    """Every hand's overlay video in one more streaming pass over the video."""
    from unihand.viz.overlay import OverlayTrack, render_overlays

    info = source.info
    with timings("render_overlay"), progress_bar(len(next(iter(results.values())).track.detected), "overlay") as bar:
        tracks = {
            staged[side]["overlay"]: OverlayTrack(
                joints_2d=r.motion.joints_2d, detected_kp=r.track.keypoints, kp_mask=r.conditions.kp2d_mask,
                infilled=r.infilled, label=side,
                **(dict(zip(("vertices_2d", "vertex_depth", "faces"), mesh[side])) if mesh and side in mesh else {}),
            )
            for side, r in results.items()
        }
        render_overlays(source, tracks, info.fps, frame_offset=info.start, progress=lambda: bar.update(1))


def hand_timings(timings: dict[str, float], side: str) -> dict[str, float]:
    """Shared stages plus this hand's own (``generate_right`` -> ``generate``)."""
    out = {}
    for k, v in timings.items():
        for s in ("right", "left"):
            if k.endswith(f"_{s}"):
                if s == side:
                    out[k[: -len(s) - 1]] = round(v, 4)
                break
        else:
            out[k] = round(v, 4)
    return out
