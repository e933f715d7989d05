"""Generation speed and memory: paper and small presets on this machine, float32 and int8, in both
modes of the pipeline: pure sampling (``refine=False``, the paper's) and refined (the default).

Batch 1, 48 frames, 10 DDIM steps, CFG (conditional + unconditional in one batch), decoding
included, from the 2D keypoints of a held-out synthetic sequence (right hand, static camera, the
detector-like noise and masks); one ``UniHandPipeline`` call (built once) per timing. Reference: a
bare 16-layer d=512 transformer stack (``nn.TransformerEncoder``) doing the same forward passes,
measured in the same run; each mode's time is reported beside it. The ``paper`` rows are broken
down into condition encoding, the 10 denoiser passes and VAE decoding (each part timed on its
own). ``int8``: ``UniHandModel.from_pretrained(..., quantize="int8")``. The ``small`` rows use the
shipped checkpoint, the ``paper`` rows random weights (the same compute in the networks; the
refinement of a random-weight sample may take other iteration counts than a trained one's).

    .venv/bin/python bench/bench_generate.py [--repeats 15] [--threads 2] [--presets paper,small]
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
from unihand.data.synthetic.world import TEST_SEED, SynthConfig, SyntheticWorld
from unihand.diffusion.sampling import guided_sample, sample_scheduler
from unihand.models.quantize import quantize
from unihand.pipeline import UniHandModel, UniHandPipeline, condition_arrays

def conditions(n: int) -> Conditions:
    """The 2D keypoints (masks, confidences, K) of held-out synthetic sequence 0 of ``n`` frames."""
    c = SyntheticWorld(TEST_SEED, SynthConfig(frames=n, left_p=0.0, moving_camera_p=0.0)).sequence(0).conditions
    return Conditions(kp2d=c.kp2d, kp2d_mask=c.kp2d_mask, kp2d_conf=c.kp2d_conf, K=c.K, image_size=c.image_size,
                      fps=c.fps)


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


def parts(model: UniHandModel, cond: Conditions, repeats: int) -> list[tuple[str, float]]:
    """Median times of the pipeline's three model stages, each called on its own."""
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


MODES = {"pure": False, "refined": True}  # refine=...


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--presets", default="paper,small", help="paper (with the bare stack beside it), small")
    args = ap.parse_args()
    presets = args.presets.split(",")
    torch.set_num_threads(args.threads)
    cond = conditions(48)
    rows = []
    times: dict[str, float] = {}
    seeded = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    for preset in presets:
        for kind in ("float32", "int8"):
            torch.manual_seed(0)
            model = UniHandModel(model_config(preset)).eval() if preset == "paper" else UniHandModel.from_pretrained()
            if kind == "int8":
                quantize(model)
            pipe = UniHandPipeline(model)
            for mode, refine in MODES.items():
                t = times[f"{preset} {kind} {mode}"] = median_time(
                    lambda: pipe(cond, generator=seeded(), refine=refine), args.repeats)
                rows.append((f"{preset} preset, {kind}, {mode}: 48 frames (batch 1, 10 DDIM steps, CFG, decode)", t))
            if preset == "paper" and kind == "float32":
                rows += parts(model, cond, args.repeats)
        if preset == "paper":
            times["bare10"] = median_time(bare_stack(10, 2, 49), args.repeats)
            times["bare20"] = median_time(bare_stack(20, 1, 49), args.repeats)
            rows.append(("bare 16-layer d=512 stack: 10 passes x batch 2 x 49 tokens", times["bare10"]))
            rows.append(("bare 16-layer d=512 stack: 20 passes x batch 1 x 49 tokens", times["bare20"]))
    small = UniHandPipeline.from_pretrained()
    t64 = median_time(lambda: small(cond, num_samples=64, generator=seeded(), refine=False), max(3, args.repeats // 3))
    rows.append(("small preset, pure: batch 64 x 48 frames (sequences/s below)", t64))
    long_cond = conditions(1000)
    long: dict[str, float] = {}
    for mode, refine in MODES.items():
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        small(long_cond, generator=seeded(), refine=refine)
        long[mode] = time.perf_counter() - t
        long[f"{mode} rss"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    print(f"threads={torch.get_num_threads()}")
    for name, t in rows:
        print(f"{name:<90} {t * 1000:9.1f} ms")
    for kind in ("float32", "int8") if "paper" in presets else ():
        for mode in MODES:
            paper = times[f"paper {kind} {mode}"]
            print(f"paper {kind} {mode} / bare stack (same batching): {paper / times['bare10']:.2f}x ; "
                  f"vs 20 single passes: {paper / times['bare20']:.2f}x")
    print(f"small preset throughput at batch 64 (pure): {64 / t64:.1f} sequences/s ({64 * 48 / t64:.0f} frames/s)")
    for mode in MODES:
        print(f"small preset, 1000-frame input, {mode}: {long[mode]:.2f} s, peak RSS grew by {long[mode + ' rss']:.1f} MB")


if __name__ == "__main__":
    main()
