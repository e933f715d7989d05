"""Throughput of the synthetic data generator (its targets, on a 2-core CPU):

- >= 200 sequences of 48 frames per second without rendering;
- >= 100 rendered 224 x 224 frames per second.

Usage::

    .venv/bin/python bench/bench_synth.py [--sequences 640] [--rendered 24] [--size 224]

Prints sequences/s (batched as the DataLoader fetches them, and one by one) and rendered frames/s
(rendering alone, and generation + rendering end to end). Single-threaded torch: the work is
many small array operations, where threads only add overhead.

Each figure is given twice: per wall-clock second, and per CPU second of this process
(``time.process_time``). The generator is single-threaded, so the CPU figure is what an idle
core delivers; on a shared machine the wall figure drops with the load average (printed).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import torch

from unihand.data.synthetic import SyntheticWorld


def timed(fn: Callable[[], int]) -> tuple[int, float, float]:
    """Run ``fn`` (returns a count); (count, wall seconds, CPU seconds of this process)."""
    w, c = time.perf_counter(), time.process_time()
    n = fn()
    return n, time.perf_counter() - w, time.process_time() - c


def report(label: str, n: int, wall: float, cpu: float, unit: str) -> None:
    print(f"{label:<28} {n / wall:7.1f} {unit}/s wall   {n / cpu:7.1f} {unit}/s per CPU second   "
          f"({n} in {wall:.2f} s wall, {cpu:.2f} s CPU)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=640, help="sequences generated without rendering")
    parser.add_argument("--rendered", type=int, default=24, help="sequences rendered (x 48 frames)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32, help="sequences generated per call (DataLoader batch)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    world = SyntheticWorld(args.seed)
    world.sequences(range(4))[0].render(args.size)  # warm-up (imports, caches)
    print(f"python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")

    def batched() -> int:
        for lo in range(0, args.sequences, args.batch):
            world.sequences(range(10_000 + lo, 10_000 + min(lo + args.batch, args.sequences)))
        return args.sequences

    report(f"generation, batches of {args.batch}", *timed(batched), "seq")
    one = max(args.sequences // 4, 1)
    report("generation, one by one", *timed(lambda: sum(1 for i in range(one) if world.sequence(20_000 + i))), "seq")
    seqs = world.sequences(range(30_000, 30_000 + args.rendered))
    report(f"rendering {args.size}x{args.size}", *timed(lambda: sum(len(s.render(args.size)) for s in seqs)), "frame")
    report("generation + rendering", *timed(
        lambda: sum(len(s.render(args.size)) for s in world.sequences(range(40_000, 40_000 + args.rendered)))), "frame")
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
