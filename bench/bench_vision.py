"""Speed of the vision condition: backbone + hand perceptron for one 48-frame sequence.

Backbones: the small CNN and a randomly initialised DINOv2-small-sized ViT (hidden 384, 12 layers,
6 heads, patch 14; random weights give the same speed as the released ones). Paths timed:
uncached (backbone + perceptron), cache miss (backbone + safetensors write), cache hit (frame and
weight hashing + safetensors read) + perceptron; perceptron at paper size (d_model 512, 8 heads,
2 layers). Prints a Markdown table.

    .venv/bin/python bench/bench_vision.py [--frames 48] [--size 224] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from unihand.models.backbones import DenseTokens, VisionBackbone, build_backbone
from unihand.models.feature_cache import FeatureCache
from unihand.models.perceptron import HandPerceptron


class Timing:
    """Best wall time and the process CPU time of that run, in ms (CPU time is less sensitive to other load)."""

    def __init__(self) -> None:
        self.runs: list[tuple[float, float]] = []

    def run(self, fn: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        self.runs.append(((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000))

    def __str__(self) -> str:
        wall, cpu = min(self.runs)
        return f"{wall:.0f} ({cpu:.0f})"


def timed(fn: Callable[[], object], repeats: int) -> Timing:
    """``repeats`` timed runs after one warm-up."""
    fn()
    timing = Timing()
    for _ in range(repeats):
        timing.run(fn)
    return timing


def bench(label: str, backbone: VisionBackbone, frames: np.ndarray, repeats: int, cache_root: Path) -> str:
    perceptron = HandPerceptron(d_vision=backbone.dim, d_model=512, heads=8, layers=2).eval()
    init = torch.randn(1, 512)
    backbone.freeze()
    dense = backbone.encode(frames)

    def perceive(dense: DenseTokens) -> torch.Tensor:
        with torch.no_grad():
            return perceptron(dense.tokens[None], init, token_valid=dense.valid)

    t_uncached = timed(lambda: perceive(backbone.encode(frames)), repeats)
    t_backbone = timed(lambda: backbone.encode(frames), repeats)
    t_perceptron = timed(lambda: perceive(dense), repeats)
    t_miss = Timing()
    for i in range(repeats):
        cache = FeatureCache(cache_root / str(i))
        t_miss.run(lambda: cache.get_or_compute(frames, backbone))
    t_hit = timed(lambda: cache.get_or_compute(frames, backbone), repeats)
    t_cached = timed(lambda: perceive(cache.get_or_compute(frames, backbone)), repeats)
    size_mb = sum(p.stat().st_size for p in cache.root.glob("*.safetensors")) / 2**20
    tokens = "x".join(str(s) for s in dense.tokens.shape)
    return (
        f"| {label} | {tokens} | {t_backbone} | {t_perceptron} | {t_uncached} "
        f"| {t_miss} | {t_hit} | {t_cached} | {size_mb:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=224, help="frame side in pixels (square frames)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    frames = np.random.default_rng(0).integers(0, 256, size=(args.frames, args.size, args.size, 3), dtype=np.uint8)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"{args.frames} frames of {args.size}x{args.size}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {cpu}; best of {args.repeats} runs; "
          f"load average before: {os.getloadavg()[0]:.1f}\n")
    print("| backbone | tokens (N,h,w,d_v) | backbone | perceptron | uncached total | cache miss (backbone + write) "
          "| cache hit (hash + read) | cached total | entry MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        backbones = {
            "small CNN (d_v 160)": build_backbone("small", input_size=args.size),
            "DINOv2-small-sized, random": build_backbone("dinov2", size="small", untrained=True, input_size=args.size),
        }
        for i, (label, backbone) in enumerate(backbones.items()):
            print(bench(label, backbone, frames, args.repeats, Path(tmp) / str(i)), flush=True)
    print("\ncells: best wall ms (process CPU ms of that run, all threads)")


if __name__ == "__main__":
    main()
