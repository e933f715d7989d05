"""``unihand synth``: write a synthetic 4D hand dataset (and a contact-sheet preview).

Layout of ``--out DIR``::

    DIR/synth.json                 what was generated (seed, count, frames, size, version)
    DIR/seq_00000/motion.npz       GT Motion (canonical frame) + extras (T_cano_from_cam, joints_cam, occlusion, ...)
    DIR/seq_00000/conditions.npz   Conditions (kp2d / kp3d / mano with masks; --conditions keeps some) + extras
    DIR/seq_00000/frames.mp4       H.264 video of the rendered frames (--render or --preview)
    DIR/seq_00000/frames.npz       lossless uint8 frames (N, S, S, 3) (--lossless)
    DIR/preview.png                contact sheet (--preview)

Sequence k of the set is ``SyntheticWorld(seed).sequence(start + k)``: the same bits on every
machine. Every file is written atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from unihand.cli.flags import ACTIVITY_NAMES, CAMERA_PRESET_NAMES, TRAIN_SEED
from unihand.errors import UserError
from unihand.files import atomic_write

if TYPE_CHECKING:
    from unihand.data.synthetic.world import SyntheticSequence

PREVIEW_ROWS = 6
PREVIEW_COLUMNS = 6
_CHUNK = 32
#: --conditions names -> the Conditions modality they keep.
MODALITIES = {"2d": "kp2d", "3d": "kp3d", "hand3d": "kp3d_hand", "mano": "mano"}


def preview_rows(seqs: list[SyntheticSequence], frames: list[np.ndarray], columns: int = PREVIEW_COLUMNS) -> list:
    """Contact-sheet rows: the first frame as rendered, then ``columns`` frames spread over the
    sequence with their keypoints (frame pixels)."""
    from unihand.viz.preview import PreviewTile, sequence_tiles

    rows = []
    for seq, fr in zip(seqs, frames):
        n = seq.num_frames
        picks = sorted(set(np.linspace(0, n - 1, columns).round().astype(int).tolist()))
        lb = seq.letterbox(fr.shape[1])
        occ = seq.conditions.extra["occlusion"]
        side = "R" if seq.is_right else "L"
        seen = seq.conditions.extra["in_image"].any(-1)
        caps = [f"#{seq.index} t{k} {side} " + (f"occ {int(round(100 * occ[k]))}%" if seen[k] else "out of view")
                for k in picks]
        raw = PreviewTile(fr[picks[0]], np.full((21, 2), np.nan), np.zeros((21, 2)), np.zeros(21, bool),
                          f"#{seq.index} {seq.activity}"[:34])
        rows.append([raw] + sequence_tiles(
            fr, lb.to_frame(seq.motion.joints_2d), lb.normalized_to_frame(seq.conditions.kp2d),
            seq.conditions.kp2d_mask, picks, caps,
        ))
    return rows


def parse_modalities(text: str) -> list[str]:
    """``--conditions 2d,hand3d`` -> the Conditions modalities kept (kp2d, kp3d_hand); one-line error otherwise."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in MODALITIES]
    if bad or not names:
        raise UserError(f"--conditions {text!r}: expected a comma-separated subset of {', '.join(MODALITIES)}")
    return [MODALITIES[n] for n in names]


def write_sequence(seq_dir: Path, seq: SyntheticSequence, frames: np.ndarray | None, lossless: bool,
                   keep: list[str] | None = None) -> None:
    """The sequence's files; ``keep``: the condition modalities written (None: all)."""
    from unihand.data.io import save_npz
    from unihand.viz.video import write_mp4

    seq.motion.save(seq_dir / "motion.npz")
    cond = seq.conditions
    dropped = [m for m in MODALITIES.values() if keep is not None and m not in keep]
    if dropped:
        cond = dataclasses.replace(cond, **{f: None for m in dropped for f in (m, f"{m}_mask")},
                                   **({"kp2d_conf": None} if "kp2d" in dropped else {}))
    cond.save(seq_dir / "conditions.npz")
    if frames is not None:
        write_mp4(seq_dir / "frames.mp4", frames, seq.motion.fps)
        if lossless:
            save_npz(seq_dir / "frames.npz", {"frames": frames})


def run(args: argparse.Namespace) -> int:
    from unihand.data.synthetic.world import SynthConfig, SyntheticWorld

    keep = parse_modalities(args.conditions)
    if args.num < 1:
        raise UserError(f"--num must be at least 1, got {args.num}")
    if args.frames < 2:
        raise UserError(f"--frames must be at least 2, got {args.frames}")
    for flag, value in (("--seed", args.seed), ("--start", args.start)):
        if not 0 <= value < 2**63:
            raise UserError(f"{flag} must be a whole number from 0 to 2**63 - 1, got {value}")
    if args.size < 32 or args.size % 2:
        raise UserError(f"--size must be an even number >= 32 (H.264 needs even sizes), got {args.size}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    render = args.render or args.preview or args.lossless
    config = SynthConfig(frames=args.frames, camera=args.camera, activity=args.activity)
    world = SyntheticWorld(args.seed, config)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "generator": "unihand synth", "seed": args.seed, "start": args.start, "num": args.num, "frames": args.frames,
        "fps": config.fps, "render": render, "size": args.size if render else None, "camera": args.camera,
        "activity": args.activity, "lossless": args.lossless, "conditions": keep,
    }
    atomic_write(out / "synth.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2) + "\n"), suffix=".json")

    from unihand.progress import Progress

    t0 = time.perf_counter()
    shown: list[SyntheticSequence] = []
    shown_frames: list[np.ndarray] = []
    indices = np.arange(args.start, args.start + args.num)
    with Progress(args.num, "synth", "sequence", summary=False) as bar:  # the last line says what was written
        for lo in range(0, args.num, _CHUNK):
            for seq in world.sequences(indices[lo:lo + _CHUNK]):
                frames = seq.render(args.size) if render else None
                write_sequence(out / f"seq_{seq.index - args.start:05d}", seq, frames, args.lossless, keep)
                if args.preview and len(shown) < PREVIEW_ROWS:
                    shown.append(seq)
                    shown_frames.append(frames)
                bar.update()
    msg = f"wrote {args.num} sequences x {args.frames} frames to {out}"
    if render:
        msg += f" (frames {args.size}x{args.size}: frames.mp4{' + frames.npz' if args.lossless else ''})"
    if args.preview:
        from unihand.viz.preview import LEGEND, contact_sheet, write_png

        sheet = contact_sheet(preview_rows(shown, shown_frames), title=LEGEND)
        path = write_png(out / "preview.png", sheet)
        msg += f"; preview: {path}"
    print(f"{msg} in {time.perf_counter() - t0:.1f} s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", help="write a synthetic 4D hand dataset (motions, conditions, rendered frames, preview)",
        description="Write a synthetic 4D hand dataset: per sequence the true motion, the conditions (noisy 2D "
        "keypoints, 3D keypoints, MANO) and optionally rendered frames, plus a contact-sheet preview. Sequence k is "
        "the same on every machine: index --start + k of the stream --seed (training uses seed 0, the test sets "
        "seeds from 1000 on).",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--num", type=int, default=8, help="number of sequences (default 8)")
    p.add_argument("--frames", type=int, default=48, help="frames per sequence (default 48, at 30 fps)")
    p.add_argument("--seed", type=int, default=TRAIN_SEED, help="stream seed (0: training; >= 1000: test sets)")
    p.add_argument("--start", type=int, default=0, help="index of the first sequence in the stream (default 0)")
    p.add_argument("--render", action="store_true", help="render full frames and write frames.mp4 (H.264)")
    p.add_argument("--size", type=int, default=224, help="rendered frame size S (S x S, letterboxed; default 224)")
    p.add_argument("--lossless", action="store_true",
                   help="also write frames.npz with the exact uint8 frames (implies --render)")
    p.add_argument("--preview", action="store_true",
                   help=f"render and write DIR/preview.png: {PREVIEW_COLUMNS} frames of the first {PREVIEW_ROWS} "
                   "sequences with their 2D keypoints (implies --render)")
    p.add_argument("--camera", choices=CAMERA_PRESET_NAMES, default=None, help="use one camera preset only")
    p.add_argument("--activity", choices=ACTIVITY_NAMES, default=None, help="use one hand activity only")
    p.add_argument("--conditions", default="2d,3d,hand3d,mano", metavar="LIST",
                   help="the conditions written to conditions.npz, a comma-separated subset of 2d (noisy 2D "
                        "keypoints, as a detector gives), 3d, hand3d (a detector's own root-relative 3D hand, as "
                        "MediaPipe's world landmarks) and mano (default: all four); motion.npz always holds the "
                        "true motion")
    p.set_defaults(func=run)
