"""The single ``unihand`` command line; each subcommand lives in its own module.

A subcommand module exposes ``register(subparsers)`` which adds its parser and sets
``func`` to a callable taking the parsed ``argparse.Namespace`` and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from unihand.errors import UserError

#: What ``unihand --help`` says about the whole tool.
DESCRIPTION = ("UniHand: 3D hand motion from video (estimate), and hand motion generated, infilled or edited from "
               "any mix of 2D keypoints, 3D keypoints and MANO parameters (generate). Try it with: unihand demo. "
               "Each command has its own help: unihand COMMAND --help.")

# name -> module; only the chosen subcommand's module is imported (fast start).
SUBCOMMANDS: dict[str, str] = {
    "synth": "unihand.cli.synth",
    "fk": "unihand.cli.fk",
    "metrics": "unihand.cli.metrics",
    "info": "unihand.cli.info",
    "train": "unihand.cli.train",
    "generate": "unihand.cli.generate",
    "estimate": "unihand.cli.estimate",
    "demo": "unihand.cli.demo",
    "evaluate": "unihand.cli.evaluate",
    "export": "unihand.cli.export",
}


def version() -> str:
    """The installed package's version (its metadata), else the source tree's ``__version__``."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("unihand")
    except PackageNotFoundError:
        from unihand import __version__

        return __version__


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only`` set, just that subcommand's module is imported (none for ``""``)."""
    parser = argparse.ArgumentParser(prog="unihand", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"unihand {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in SUBCOMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else "" if argv[:1] == ["--version"] else None
    args = build_parser(chosen).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"unihand {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
