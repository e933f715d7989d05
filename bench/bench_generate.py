"""Generation speed and memory (issue 3): paper and small presets on this machine, float32 and int8.

Batch 1, 48 frames, 10 DDIM steps, CFG (conditional + unconditional in one batch), decoding
included, from 2D keypoints. Reference: a bare 16-layer d=512 transformer stack
(``nn.TransformerEncoder``) doing the same forward passes, measured in the same run. The
``paper`` rows are broken down into condition encoding, the 10 denoiser passes and VAE decoding
(each part timed on its own). ``int8``: ``UniHand.from_pretrained(..., quantize="int8")``.

    .venv/bin/python bench/bench_generate.py [--repeats 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from typing import Callable

import numpy as np
import torch

from unihand.config import model_config
from unihand.data.io import Conditions
from unihand.diffusion.sampling import guided_sample, sample_scheduler
from unihand.models.quantize import quantize
from unihand.pipeline import UniHand, condition_arrays

K = np.array([[600.0, 0, 320], [0, 600, 240], [0, 0, 1]], np.float32)


def conditions(n: int) -> Conditions:
    rng = np.random.default_rng(0)
    return Conditions(kp2d=rng.uniform(0.3, 0.7, (n, 21, 2)).astype(np.float32),
                      kp2d_mask=np.ones((n, 21), bool), K=K, image_size=np.array([640, 480]))


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bare_stack(passes: int, batch: int, tokens: int) -> Callable[[], None]:
    layer = torch.nn.TransformerEncoderLayer(512, 16, 2048, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
    stack = torch.nn.TransformerEncoder(layer, 16, enable_nested_tensor=False).eval()
    x = torch.randn(batch, tokens, 512)

    def run() -> None:
        with torch.inference_mode():
            for _ in range(passes):
                stack(x)
    return run


def parts(model: UniHand, cond: Conditions, repeats: int) -> list[tuple[str, float]]:
    """Median times of ``generate``'s three model stages, each called on its own."""
    batch = {k: torch.from_numpy(np.asarray(v))[None] for k, v in condition_arrays(cond, cond.num_frames).items()}
    dcfg = model.cfg.diffusion

    def denoise() -> torch.Tensor:
        return guided_sample(model.denoiser, sample_scheduler(dcfg), tokens, steps=dcfg.sample_steps,
                             cfg_scale=dcfg.cfg_scale)

    with torch.no_grad():
        tokens = model.condition_tokens(batch)
        latent = denoise()
        return [
            ("  condition encoding (2D keypoint encoder)", median_time(lambda: model.condition_tokens(batch), repeats)),
            ("  denoising (10 denoiser passes x batch 2)", median_time(denoise, repeats)),
            ("  VAE decoding (6 autoregressive segments)", median_time(lambda: model.decode_latent(latent), repeats)),
        ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cond = conditions(48)
    rows = []
    times: dict[str, float] = {}
    for preset in ("paper", "small"):
        for mode in ("float32", "int8"):
            torch.manual_seed(0)
            model = UniHand(model_config(preset)).eval()
            if mode == "int8":
                quantize(model)
            t = times[f"{preset} {mode}"] = median_time(lambda: model.generate(cond, seed=0), args.repeats)
            rows.append((f"{preset} preset, {mode}: generate 48 frames (batch 1, 10 DDIM steps, CFG, decode)", t))
            if preset == "paper":
                rows += parts(model, cond, args.repeats)
        if preset == "paper":
            times["bare10"] = median_time(bare_stack(10, 2, 49), args.repeats)
            times["bare20"] = median_time(bare_stack(20, 1, 49), args.repeats)
            rows.append(("bare 16-layer d=512 stack: 10 passes x batch 2 x 49 tokens", times["bare10"]))
            rows.append(("bare 16-layer d=512 stack: 20 passes x batch 1 x 49 tokens", times["bare20"]))
    small = UniHand(model_config("small")).eval()
    batch = {k: torch.from_numpy(np.asarray(v))[None].expand(64, *np.asarray(v).shape).contiguous()
             for k, v in {"kp2d": cond.kp2d, "kp2d_mask": cond.kp2d_mask, "K": K, "image_size": np.array([640.0, 480.0], np.float32)}.items()}
    t64 = median_time(lambda: small.sample(batch, num_frames=48), max(3, args.repeats // 3))
    rows.append(("small preset: batch 64 x 48 frames (sequences/s below)", t64))
    long_cond = conditions(1000)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_long = time.perf_counter()
    small.generate(long_cond, seed=0)
    t_long = time.perf_counter() - t_long
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"threads={torch.get_num_threads()}")
    for name, t in rows:
        print(f"{name:<90} {t * 1000:9.1f} ms")
    for mode in ("float32", "int8"):
        paper = times[f"paper {mode}"]
        print(f"paper {mode} / bare stack (same batching): {paper / times['bare10']:.2f}x ; "
              f"vs 20 single passes: {paper / times['bare20']:.2f}x")
    print(f"small preset throughput at batch 64: {64 / t64:.1f} sequences/s ({64 * 48 / t64:.0f} frames/s)")
    print(f"small preset, 1000-frame input: {t_long:.2f} s, peak RSS grew by {(rss1 - rss0) / 1024:.1f} MB")


if __name__ == "__main__":
    main()
