"""``unihand info``: parameter counts per module of a preset or a checkpoint."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show a preset's or checkpoint's size per module")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default="paper", help="paper | small (default: paper)")
    src.add_argument("--checkpoint", help="a UniHand checkpoint directory")
    p.set_defaults(func=main)


def parameter_table(model) -> list[tuple[str, int]]:
    """(module, parameter count) for the paper's modules."""
    vae, den = model.vae, model.denoiser
    motion_enc = sum(p.numel() for n, p in vae.named_parameters() if n.split(".")[0] in
                     ("motion_in", "dist_tokens", "motion_enc", "to_z", "to_mu", "to_logvar"))
    decoder = sum(p.numel() for n, p in vae.named_parameters() if n.split(".")[0] in
                  ("anchor_in", "unknown_anchor", "type_emb", "latent_in", "decoder", "motion_out"))
    rows = [("joint VAE: motion encoder", motion_enc)]
    rows += [(f"joint VAE: {m} condition encoder", sum(p.numel() for p in enc.parameters()))
             for m, enc in vae.cond_enc.items()]
    rows += [("joint VAE: autoregressive decoder", decoder),
             ("latent denoiser", sum(p.numel() for p in den.parameters()))]
    rows.append(("total", sum(p.numel() for p in model.parameters())))
    return rows


def main(args: argparse.Namespace) -> int:
    from unihand.config import model_config
    from unihand.models.unihand_model import UniHandModel

    if args.checkpoint:
        model = UniHandModel.from_pretrained(args.checkpoint)
        title = args.checkpoint
    else:
        model = UniHandModel(model_config(args.preset))
        title = f"preset '{args.preset}'"
    cfg = model.cfg
    print(f"UniHand {title}: VAE d={cfg.vae.d_model} layers={cfg.vae.layers} heads={cfg.vae.heads} "
          f"ffn={cfg.vae.ffn}; denoiser d={cfg.diffusion.d_model} layers={cfg.diffusion.layers} "
          f"heads={cfg.diffusion.heads} ffn={cfg.diffusion.ffn}")
    for name, count in parameter_table(model):
        print(f"  {name:<38} {count:>12,d}  ({count / 1e6:.2f} M)")
    return 0
