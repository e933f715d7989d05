"""Cost of ``--depth-model`` on this CPU: a Depth Anything V2 Small-sized metric model (the released
architecture, random weights: no weights can be downloaded here; they cost the same) read through
:class:`unihand.camera.depth.TransformersDepth` on 1280x720 frames, as ``unihand estimate`` reads 12
frames of a clip.

    .venv/bin/python bench/depth_model_speed.py [--threads 1] [--reads 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def small_metric_checkpoint(path: Path) -> Path:
    """Depth Anything V2 Small's architecture (DINOv2 ViT-S/14 backbone, DPT head), metric output, at ``path``."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessorPil

    backbone = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                            image_size=518, patch_size=14, out_indices=[3, 6, 9, 12], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64,
                                 reassemble_hidden_size=384, depth_estimation_type="metric", max_depth=20)
    DepthAnythingForDepthEstimation(config).save_pretrained(path)
    DPTImageProcessorPil(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                         resample=3).save_pretrained(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reads", type=int, default=5)
    args = ap.parse_args()
    import torch

    from unihand.camera.depth import DEPTH_FRAMES, TransformersDepth

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = TransformersDepth(small_metric_checkpoint(Path(tmp) / "da2-small-metric"))
        params = sum(p.numel() for p in model.model.parameters()) / 1e6
        frame = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
        model(frame, 0)  # warm-up
        times = []
        for k in range(args.reads):
            t = time.perf_counter()
            d = model(frame, k)
            times.append(time.perf_counter() - t)
    med = float(np.median(times))
    print(f"Depth Anything V2 Small-sized ({params:.1f} M parameters), {args.threads} thread(s): "
          f"{1000 * med:.0f} ms per 1280x720 read (median of {args.reads}), output {d.shape}; "
          f"{DEPTH_FRAMES} reads per clip: {DEPTH_FRAMES * med:.1f} s")


if __name__ == "__main__":
    main()
