"""How fast the command line starts: ``unihand --help``, ``unihand --version`` and every ``unihand CMD --help``,
beside ``python -c "import torch"``, each a whole process as a user runs it, medians of ``--repeats`` runs
taken in turn in one run.

    python bench/bench_cli_start.py [--repeats 5]

The ``unihand`` script next to this interpreter is used when it exists (an installed or editable
package), else ``python -m unihand``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def command() -> list[str]:
    script = Path(sys.executable).parent / "unihand"
    return [str(script)] if script.exists() else [sys.executable, "-m", "unihand"]


def wall(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from unihand.cli import SUBCOMMANDS

    unihand = command()
    runs = {"unihand --help": unihand + ["--help"], "unihand --version": unihand + ["--version"],
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
            **{f"unihand {c} --help": unihand + [c, "--help"] for c in SUBCOMMANDS}}
    for argv in runs.values():  # warm the file cache once
        wall(argv)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):  # in turn, so a busy moment hits every command alike
        for name, argv in runs.items():
            times[name].append(wall(argv))
    print(f"{' '.join(unihand)} (Python {sys.version.split()[0]}), medians of {args.repeats}:")
    for name, ts in times.items():
        print(f"  {name:<28} {statistics.median(ts):6.3f} s  (min {min(ts):.3f}, max {max(ts):.3f})")
    helps = [statistics.median(times[f"unihand {c} --help"]) for c in SUBCOMMANDS]
    torch_s = statistics.median(times['python -c "import torch"'])
    print(f"slowest command help: {max(helps):.3f} s; unihand --help is "
          f"{statistics.median(times['unihand --help']) / torch_s:.2f}x a bare import torch")


if __name__ == "__main__":
    main()
