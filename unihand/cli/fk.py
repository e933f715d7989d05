"""``unihand fk``: fill a motion file's joints (and MANO vertices) from its MANO parameters."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fk",
        help="compute joints (and vertices) of a motion file from its MANO parameters",
        description="Fill the joints (N,21,3, OpenPose order) of a motion file from its MANO parameters, "
        "for the motion's hand (is_right). With --mano-dir the official MANO model is used and the mesh "
        "vertices (N,778,3) are written too; without it, the built-in kinematic hand (joints only).",
    )
    parser.add_argument("motion", help="input motion file (.npz)")
    parser.add_argument("-o", "--output", required=True, help="output motion file (.npz), written atomically")
    parser.add_argument("--mano-dir", default=None, help="folder holding MANO_RIGHT.pkl / MANO_LEFT.pkl")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from unihand.data.io import Motion
    from unihand.hand.model import fk_numpy, load_hand_model

    motion = Motion.load(args.motion)
    hand = load_hand_model(args.mano_dir, is_right=motion.is_right)
    motion.joints, motion.vertices = fk_numpy(hand, motion.mano())
    path = motion.save(args.output)
    print(f"{path}: {motion.num_frames} frames, {hand.kind} {'right' if motion.is_right else 'left'} hand")
    return 0
