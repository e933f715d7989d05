"""``unihand export``: write a motion file in other formats (mesh, BVH, viewer, plot, summary)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_FORMATS = "json,bvh,html,png,glb"


def register(sub: argparse._SubParsersAction) -> None:
    from unihand.export.registry import REGISTRY

    listing = "; ".join(f"{e.name}: {e.output_name('STEM')} - {e.description}" for e in REGISTRY.values())
    p = sub.add_parser(
        "export", help="write a motion file as meshes (OBJ, GLB), BVH, an HTML viewer, a plot or a JSON summary",
        description="Write MOTION.npz in other formats, all into OUTDIR as one set (every file appears at once, "
        f"or none on an error). Formats: {listing}. Meshes are MANO's with --mano-dir, else the built-in "
        "hand's capsule mesh.",
    )
    p.add_argument("motion", help="motion .npz")
    p.add_argument("--format", "-f", default=DEFAULT_FORMATS,
                   help=f"comma-separated formats, or 'all' (default: {DEFAULT_FORMATS})")
    p.add_argument("-o", "--output", metavar="OUTDIR", help="output folder (default: the motion file's)")
    p.add_argument("--stem", help="output file name stem (default: the motion file's name)")
    p.add_argument("--mano-dir", help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl: MANO mesh and skeleton")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from unihand.data.io import Motion
    from unihand.export.registry import export_motion, parse_formats

    formats = parse_formats(args.format)  # an unknown format fails before the file is read
    src = Path(args.motion)
    motion = Motion.load(src)
    outdir = Path(args.output) if args.output else src.parent
    files = export_motion(motion, outdir, formats, stem=args.stem or src.stem, source=src, mano_dir=args.mano_dir)
    for fmt, path in files.items():
        print(f"{fmt}: {path}")
    return 0
