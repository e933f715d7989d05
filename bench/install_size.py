"""The core install as a user gets it: a fresh venv, ``pip install`` of the built wheel with the
project's constraints; wall time, the venv's size on disk and its largest packages.

    python bench/install_size.py [--wheel dist/unihand-*.whl] [--extras video] [--keep DIR]

Without ``--wheel`` the wheel is built from this checkout first (``pip wheel --no-deps``, not
timed). The install is timed as one ``pip install -c constraints.txt WHEEL[extras]`` in a new venv
(pip's download cache is whatever this machine has: run twice, the second run shows the warm
cache). Then, unless ``--no-smoke``, the install is used as a user would: ``unihand --help`` and an
unconditional ``unihand generate`` of 16 frames (the core generates without any extra). The venv is
deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def du(path: Path) -> int:
    """Bytes on disk under ``path`` (regular files, links not followed)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def build_wheel(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(ROOT)], check=True)
    return next(out.glob("unihand-*.whl"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, default=None)
    ap.add_argument("--extras", default="", help="comma-separated extras, e.g. video")
    ap.add_argument("--python", default="python3", help="interpreter the venv is made from")
    ap.add_argument("--keep", type=Path, default=None, help="keep the venv in this folder")
    ap.add_argument("--no-smoke", action="store_true", help="skip running the installed command")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or build_wheel(Path(tmp) / "dist")
        venv = args.keep or Path(tmp) / "venv"
        subprocess.run([args.python, "-m", "venv", str(venv)], check=True)
        empty = du(venv)
        target = f"{wheel}[{args.extras}]" if args.extras else str(wheel)
        t = time.perf_counter()
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"),
                        target], check=True)
        wall = time.perf_counter() - t
        size = du(venv) - empty
        site = next((venv / "lib").glob("python*/site-packages"))
        sizes = sorted(((du(p) if p.is_dir() else p.stat().st_size, p.name) for p in site.iterdir()
                        if not p.name.endswith((".dist-info", ".pth")) and p.name != "__pycache__"), reverse=True)
        print(f"wheel {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB), extras [{args.extras}]")
        print(f"install: {wall:.1f} s wall, venv grew by {size / 1e9:.2f} GB")
        print("largest: " + ", ".join(f"{name} {n / 1e6:.0f} MB" for n, name in sizes[:10]))
        absent = [m for m in ("lightning", "tensorboard", "transformers") if (site / m).exists()]
        print(f"train / depth packages in the install: {', '.join(absent) or 'none'}")
        if not args.no_smoke:
            exe = venv / "bin" / "unihand"
            subprocess.run([str(exe), "--help"], check=True, stdout=subprocess.DEVNULL)
            t = time.perf_counter()
            out = subprocess.run([str(exe), "generate", "-o", str(Path(tmp) / "m.npz"), "--frames", "16"],
                                 check=True, capture_output=True, text=True, cwd=tmp)
            print(f"smoke: unihand --help ok; {out.stdout.strip()} (whole command {time.perf_counter() - t:.1f} s)")
        if args.keep is None:
            shutil.rmtree(venv)


if __name__ == "__main__":
    main()
